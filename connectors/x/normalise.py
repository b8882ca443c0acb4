"""X payload → `InboundMessage` | `Ignored`. Pure functions, no I/O.

Three families of payload reach this module, and `dispatch_key` tells them apart:

- `"tweet"`: one post as the v2 API returns it (`{"data": <Post>, "includes": {...}}`), which is
  what the poller makes of each post of a `GET /2/users/:id/mentions` page (`split_posts`).
  Fields: https://docs.x.com/x-api/fundamentals/data-dictionary;
- `"dm_event"`: one DM event from `GET /2/dm_events` (`split_dm_events`), same envelope
  (https://docs.x.com/x-api/direct-messages/lookup/integrate);
- X Activity API deliveries (webhook or stream), keyed by their `event_type`
  (https://docs.x.com/x-api/activity/event-payloads). The docs show the envelope wrapped in
  `{"data": {...}}` and describe the same fields unwrapped; both are accepted. Post events carry
  a v2 Post as `payload`; `dm.received` / `dm.sent` carry the legacy (v1.1) shape
  `{"direct_message_events": [...], "users": {id: {"data": <User>}}}`.

Only a payload that cannot be read raises (`UnreadablePayload`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.base import AccountContext
from connectors.x.fields import (
    UnreadablePayload,
    dm_conversation_key,
    id_str,
    iso_ts,
    map_at,
    maps_at,
    ms_ts,
    opt_str,
    strs_at,
)
from inbox.models import (
    AccountId,
    Attachment,
    Author,
    ConversationKind,
    Ignored,
    InboundEvent,
    InboundMessage,
)

__all__ = ["HANDLERS", "UnreadablePayload", "dispatch_key", "normalise", "split_dm_events",
           "split_posts"]

PLATFORM = "x"
Result = InboundEvent | Ignored | list[InboundEvent]
Handler = Callable[[Mapping[str, Any], AccountContext], Result]

OWN = "own message"

# ----------------------------------------------------------------------------- splitting pages


def _includes(page: Mapping[str, Any]) -> Mapping[str, Any]:
    inc = page.get("includes")
    return inc if isinstance(inc, Mapping) else {}


def _pick(includes: Mapping[str, Any], key: str, field: str, wanted: set[str]) -> list[Any]:
    items = includes.get(key)
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, Mapping) and i.get(field) in wanted]


def _referenced_ids(item: Mapping[str, Any]) -> set[str]:
    refs = item.get("referenced_tweets") or item.get("referenced_posts") or []
    return {r["id"] for r in refs if isinstance(r, Mapping) and isinstance(r.get("id"), str)}


def _media_keys(item: Mapping[str, Any]) -> list[str]:
    """`attachments.media_keys` in the item's order."""
    att = item.get("attachments")
    keys = att.get("media_keys") if isinstance(att, Mapping) else None
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def _subset(item: Mapping[str, Any], includes: Mapping[str, Any], user_ids: set[str],
            ) -> dict[str, Any]:
    """The part of a page's `includes` that one item refers to, so its stored `raw` stays
    small. X returns referenced posts as `includes.tweets` (the newer OpenAPI calls it
    `posts`); both are kept as given."""
    out: dict[str, Any] = {}
    users = _pick(includes, "users", "id", user_ids)
    media = _pick(includes, "media", "media_key", set(_media_keys(item)))
    if users:
        out["users"] = users
    if media:
        out["media"] = media
    for key in ("tweets", "posts"):
        posts = _pick(includes, key, "id", _referenced_ids(item))
        if posts:
            out[key] = posts
    return out


def split_posts(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A mentions page → one `{"data": post, "includes": ...}` payload per post."""
    data = page.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise UnreadablePayload("page: 'data' must be a list")
    includes = _includes(page)
    out: list[dict[str, Any]] = []
    for post in data:
        if not isinstance(post, Mapping):
            raise UnreadablePayload("page: every post must be an object")
        author = post.get("author_id")
        out.append({"data": dict(post),
                    "includes": _subset(post, includes, {author} if author else set())})
    return out


def split_dm_events(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A `GET /2/dm_events` page → one payload per event."""
    data = page.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise UnreadablePayload("page: 'data' must be a list")
    includes = _includes(page)
    out: list[dict[str, Any]] = []
    for event in data:
        if not isinstance(event, Mapping):
            raise UnreadablePayload("page: every DM event must be an object")
        users = {event["sender_id"]} if isinstance(event.get("sender_id"), str) else set()
        out.append({"data": dict(event), "includes": _subset(event, includes, users)})
    return out


# ----------------------------------------------------------------------------- people & media


def _user_author(user: Mapping[str, Any] | None, user_id: str) -> Author:
    if user is None:
        return Author(user_id=user_id, name=user_id)
    where = f"user {user_id}"
    handle = opt_str(user, "username", where) or opt_str(user, "screen_name", where)
    name = opt_str(user, "name", where) or handle or user_id
    avatar = (opt_str(user, "profile_image_url", where)
              or opt_str(user, "profile_image_url_https", where))
    return Author(user_id=user_id, name=name, handle=handle, avatar_url=avatar or None,
                  is_bot=False)


def _find_user(includes: Mapping[str, Any], user_id: str) -> Mapping[str, Any] | None:
    for user in maps_at(includes, "users", "includes"):
        if user.get("id") == user_id:
            return user
    return None


def _variants(media: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A video's or animated GIF's renditions (`variants`: `bit_rate`, `content_type`, `url`;
    an HLS playlist has no `bit_rate`), only the well-formed ones."""
    out: list[dict[str, Any]] = []
    for v in media.get("variants") or ():
        if not isinstance(v, Mapping) or not isinstance(v.get("url"), str):
            continue
        item: dict[str, Any] = {"url": v["url"]}
        if isinstance(v.get("content_type"), str):
            item["content_type"] = v["content_type"]
        if isinstance(v.get("bit_rate"), int) and not isinstance(v.get("bit_rate"), bool):
            item["bit_rate"] = v["bit_rate"]
        out.append(item)
    return out


def _media(includes: Mapping[str, Any], keys: Sequence[str]) -> tuple[Attachment, ...]:
    """`includes.media` objects for the item's `attachments.media_keys`, in its order; a key
    whose object is missing (X leaves it out for media it will not show), or whose object
    carries no readable key, keeps a stub."""
    by_key = {m["media_key"]: m for m in maps_at(includes, "media", "includes")
              if isinstance(m.get("media_key"), str)}
    found: list[Attachment] = []
    for key in keys:
        media = by_key.get(key)
        if media is None:
            found.append(Attachment(type="unknown", file_id=key))
            continue
        where = f"media {key}"
        extra = {k: media[k] for k in ("url", "preview_image_url", "alt_text", "width",
                                       "height", "duration_ms")
                 if isinstance(media.get(k), str | int) and not isinstance(media.get(k), bool)}
        variants = _variants(media)
        if variants:
            extra["variants"] = variants
        found.append(Attachment(type=opt_str(media, "type", where) or "unknown", file_id=key,
                                extra=extra))
    return tuple(found)


# ----------------------------------------------------------------------------- posts


def _refs(post: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    refs: list[tuple[str, str]] = []
    for ref in maps_at(post, "referenced_tweets", where):
        refs.append((opt_str(ref, "type", where) or "", id_str(ref, "id", where)))
    return refs


def _post(post: Mapping[str, Any], includes: Mapping[str, Any], account: AccountContext,
          raw: Mapping[str, Any], *, kind: ConversationKind | None = None) -> Result:
    where = "post"
    post_id = id_str(post, "id", where)
    author_id = id_str(post, "author_id", where)
    if account.platform_id and author_id == account.platform_id:
        return Ignored(OWN)
    refs = _refs(post, where)
    if any(t == "retweeted" for t, _ in refs):
        return Ignored("a repost carries no words of its own")
    history = strs_at(post, "edit_history_tweet_ids", where) or [post_id]
    first = history[0]
    created = iso_ts(post, "created_at", where)
    conversation = opt_str(post, "conversation_id", where) or post_id
    replied_to = next((i for t, i in refs if t == "replied_to"), None)
    if kind is None:
        in_reply_to_user = opt_str(post, "in_reply_to_user_id", where)
        ours = account.platform_id is not None and in_reply_to_user == account.platform_id
        kind = "comment_thread" if ours else "mention"
    text = opt_str(post, "text", where) or ""
    note = post.get("note_tweet")
    if isinstance(note, Mapping) and isinstance(note.get("text"), str):
        text = note["text"]  # long posts: `text` is cut at 280, the full text is here
    return InboundMessage(
        account_id=AccountId(account.id), platform=PLATFORM, external_id=first,
        thread_key=conversation, kind=kind,
        author=_user_author(_find_user(includes, author_id), author_id), text=text,
        platform_ts=created, attachments=_media(includes, _media_keys(post)),
        reply_to=replied_to, edited_at=created if post_id != first else None,
        raw=dict(raw), thread_aliases=tuple(dict.fromkeys(
            i for t, i in refs if t in ("replied_to", "quoted") and i != conversation)))


def _tweet(payload: Mapping[str, Any], account: AccountContext) -> Result:
    return _post(map_at(payload, "data", "payload"), _includes(payload), account, payload)


# ----------------------------------------------------------------------------- v2 DM events


def _dm_event(payload: Mapping[str, Any], account: AccountContext) -> Result:
    where = "dm_event"
    event = map_at(payload, "data", where)
    kind = opt_str(event, "event_type", where)
    if kind != "MessageCreate":
        return Ignored(f"DM event {kind or '?'} is not a message")
    event_id = id_str(event, "id", where)
    sender = id_str(event, "sender_id", where)
    if account.platform_id and sender == account.platform_id:
        return Ignored(OWN)
    conversation = opt_str(event, "dm_conversation_id", where)
    if conversation is None:
        if not account.platform_id:
            raise UnreadablePayload(f"{where}: no 'dm_conversation_id' and no own id to build it")
        conversation = dm_conversation_key(sender, account.platform_id)
    if "-" not in conversation:
        return Ignored("group DMs are not supported: a reply can only go to one person")
    includes = _includes(payload)
    aliases = tuple(i for _, i in _refs({"referenced_tweets": event.get("referenced_tweets")
                                         or event.get("referenced_posts") or []}, where))
    return InboundMessage(
        account_id=AccountId(account.id), platform=PLATFORM, external_id=event_id,
        thread_key=conversation, kind="dm",
        author=_user_author(_find_user(includes, sender), sender),
        text=opt_str(event, "text", where) or "", platform_ts=iso_ts(event, "created_at", where),
        attachments=_media(includes, _media_keys(event)),
        raw=dict(payload), thread_aliases=aliases)


# ----------------------------------------------------------------------------- Activity API


def _envelope(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The X Activity API envelope, wrapped in `data` (as every example shows) or bare."""
    data = payload.get("data")
    if isinstance(data, Mapping) and "event_type" in data and "payload" in data:
        return data
    if "event_type" in payload and "payload" in payload:
        return payload
    return None


def _check_filter(env: Mapping[str, Any], account: AccountContext) -> Ignored | None:
    filt = env.get("filter")
    user = filt.get("user_id") if isinstance(filt, Mapping) else None
    if account.platform_id and isinstance(user, str) and user != account.platform_id:
        return Ignored(f"event for another account ({user})")
    return None


def _activity_post(payload: Mapping[str, Any], account: AccountContext) -> Result:
    env = _envelope(payload)
    if env is None:
        raise UnreadablePayload("activity: no envelope")
    other = _check_filter(env, account)
    if other is not None:
        return other
    inc = env.get("includes")
    includes = inc if isinstance(inc, Mapping) else {}
    kind: ConversationKind | None = (
        "comment_thread" if env.get("event_type") == "post.reply.create" else None)
    return _post(map_at(env, "payload", "activity"), includes, account, payload, kind=kind)


def _legacy_user(users: Mapping[str, Any], user_id: str) -> Mapping[str, Any] | None:
    entry = users.get(user_id)
    if not isinstance(entry, Mapping):
        return None
    inner = entry.get("data")
    return inner if isinstance(inner, Mapping) else entry  # XAA wraps users in "data"


def _legacy_attachments(data: Mapping[str, Any], where: str) -> tuple[Attachment, ...]:
    att = data.get("attachment")
    if not isinstance(att, Mapping) or not isinstance(att.get("media"), Mapping):
        return ()
    media = att["media"]
    extra = {k: media[k] for k in ("media_url_https", "url", "expanded_url")
             if isinstance(media.get(k), str)}
    return (Attachment(type=opt_str(media, "type", where) or "unknown",
                       file_id=opt_str(media, "id_str", where), extra=extra),)


def _activity_dm(payload: Mapping[str, Any], account: AccountContext) -> Result:
    env = _envelope(payload)
    if env is None:
        raise UnreadablePayload("activity: no envelope")
    other = _check_filter(env, account)
    if other is not None:
        return other
    body = map_at(env, "payload", "activity")
    users = body.get("users") if isinstance(body.get("users"), Mapping) else {}
    found: list[InboundEvent] = []
    reasons: list[str] = []
    for event in maps_at(body, "direct_message_events", "activity.payload"):
        where = "direct_message_event"
        if event.get("type") != "message_create":
            reasons.append(f"DM event {event.get('type')!r} is not a message")
            continue
        create = map_at(event, "message_create", where)
        sender = id_str(create, "sender_id", where)
        if account.platform_id and sender == account.platform_id:
            reasons.append(OWN)
            continue
        target = map_at(create, "target", where)
        recipient = id_str(target, "recipient_id", where)
        data = map_at(create, "message_data", where)
        found.append(InboundMessage(
            account_id=AccountId(account.id), platform=PLATFORM,
            external_id=id_str(event, "id", where),
            thread_key=dm_conversation_key(sender, recipient), kind="dm",
            author=_user_author(_legacy_user(users, sender), sender),
            text=opt_str(data, "text", where) or "",
            platform_ts=ms_ts(event, "created_timestamp", where),
            attachments=_legacy_attachments(data, where), raw=dict(payload)))
    if not found:
        return Ignored(reasons[0] if reasons else "no direct message in the event")
    return found[0] if len(found) == 1 else found


# ----------------------------------------------------------------------------- dispatch

HANDLERS: dict[str, Handler] = {
    "tweet": _tweet,
    "dm_event": _dm_event,
    "post.mention.create": _activity_post,
    "post.reply.create": _activity_post,
    "post.create": _activity_post,  # our own posts: always Ignored(OWN), kept for the record
    "dm.received": _activity_dm,
    "dm.sent": _activity_dm,  # our own DMs, including the replies we send: Ignored(OWN)
}


def dispatch_key(payload: Any) -> str | None:
    if not isinstance(payload, Mapping):
        return None
    env = _envelope(payload)
    if env is not None:
        kind = env.get("event_type")
        return kind if isinstance(kind, str) and kind in HANDLERS else None
    data = payload.get("data")
    if not isinstance(data, Mapping):
        return None
    if "event_type" in data and ("sender_id" in data or "dm_conversation_id" in data
                                 or data.get("event_type") == "MessageCreate"):
        return "dm_event"
    if "id" in data and "text" in data and "event_type" not in data:
        return "tweet"
    return None


def normalise(payload: Any, account: AccountContext) -> Result:
    """One payload → a message (or several, for a multi-event DM delivery) or `Ignored`."""
    key = dispatch_key(payload)
    if key is None:
        if not isinstance(payload, Mapping):
            raise UnreadablePayload(f"payload must be an object, got {type(payload).__name__}")
        env = _envelope(payload)
        kind = env.get("event_type") if env is not None else None
        return Ignored(f"unsupported X event: {kind}" if kind else "not an X event we know")
    return HANDLERS[key](payload, account)

