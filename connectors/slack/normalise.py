"""Slack Events API payload → `InboundEvent` | `Ignored`. Pure functions, no I/O.

Payloads are the `event_callback` envelopes of https://docs.slack.dev/apis/events-api/ (the
same JSON arrives in a Socket Mode `events_api` envelope's `payload`). The discriminator is the
inner `event.type`, plus `event.subtype` for messages (https://docs.slack.dev/reference/events/message/).

Conversations: a DM (`channel_type: im`) is one conversation, keyed by its channel id. In
channels, private channels and group DMs the conversation is the thread, keyed
`{channel}:{thread root ts}` (a top-level message is the root of its own future thread), unless
the account's `channel_as_conversation` option makes the whole channel one conversation.
`external_id` is `{channel}:{ts}`: Slack's own identity of a message, so the same post arriving
as `message` and as `app_mention` (two subscriptions, two deliveries) is stored once.

Only a payload we cannot read raises (`UnreadablePayload`); known-but-unsupported events are
`Ignored(reason)`, and so are our own app's messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import AccountContext
from connectors.slack.mrkdwn import to_plain
from inbox.models import (
    AccountId,
    Attachment,
    Author,
    ConversationKind,
    Ignored,
    InboundEvent,
    InboundMessage,
    Interaction,
    MessageDeleted,
    ReactionChanged,
)

PLATFORM = "slack"

# Account options read here; `SlackConnector.option_fields` declares them with these defaults.
OPTION_DEFAULTS: dict[str, Any] = {"channel_as_conversation": False, "accept_bot_messages": False}

# Message subtypes that are a person's message like any other (https://docs.slack.dev/reference/events/message/#subtypes).
_PLAIN_SUBTYPES = frozenset({"me_message"})
# Slack ts: "<unix seconds>.<6 digits>", unique per channel.
_TS = re.compile(r"^(\d{1,11})(?:\.(\d{1,9}))?$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_SECONDS = 16_725_225_600  # year ~2500: keeps datetime away from OverflowError


class UnreadablePayload(ValueError):
    """Not a Slack Events API payload we can read (wrong shape or types)."""


# ----------------------------------------------------------------------------- typed getters


def _map(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, Mapping):
        raise UnreadablePayload(f"{where}: '{key}' must be an object, got {type(value).__name__}")
    return value


def _opt_map(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    return None if obj.get(key) is None else _map(obj, key, where)


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise UnreadablePayload(f"{where}: '{key}' must be a string, got {type(value).__name__}")


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _opt_str(obj, key, where)
    if not value:
        raise UnreadablePayload(f"{where}: '{key}' is missing")
    return value


def _id(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _str(obj, key, where)
    if not _ID.match(value):
        raise UnreadablePayload(f"{where}: '{key}' is not a Slack id")
    return value


def _ts(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _str(obj, key, where)
    if not _TS.match(value):
        raise UnreadablePayload(f"{where}: '{key}' is not a Slack timestamp")
    return value


def _opt_ts(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if obj.get(key) is None else _ts(obj, key, where)


def when(ts: str) -> datetime:
    """A Slack ts as an aware datetime, without the rounding a float would bring."""
    match = _TS.match(ts)
    if match is None:
        raise UnreadablePayload(f"'{ts}' is not a Slack timestamp")
    seconds = int(match.group(1))
    if seconds > _MAX_SECONDS:
        raise UnreadablePayload(f"timestamp '{ts}' is out of range")
    micros = int((match.group(2) or "0").ljust(6, "0")[:6])
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)


def _option(account: AccountContext, name: str) -> bool:
    return bool(account.options.get(name, OPTION_DEFAULTS[name]))


# ----------------------------------------------------------------------------- who we are


@dataclass(frozen=True, slots=True)
class _Own:
    bot_user_id: str | None
    bot_id: str | None
    app_id: str | None


def _own_ids(payload: Mapping[str, Any], account: AccountContext) -> _Own:
    """Our bot user, bot and app ids: from `check()`'s info, else the platform id
    (`{team}:{app or bot id}`), else the envelope itself: `api_app_id` is the app the event
    is delivered to, and a bot entry of `authorizations` is that app's bot user."""
    info = account.info
    bot_user_id, bot_id, app_id = (info.get("bot_user_id"), info.get("bot_id"),
                                   info.get("app_id"))
    if account.platform_id and ":" in account.platform_id:
        ours = account.platform_id.split(":", 1)[1]
        if ours.startswith("A"):
            app_id = app_id or ours
        elif ours.startswith("B"):
            bot_id = bot_id or ours
    api_app_id = payload.get("api_app_id")
    if isinstance(api_app_id, str) and api_app_id:
        app_id = app_id or api_app_id
    if bot_user_id is None:
        for auth in payload.get("authorizations") or ():
            if isinstance(auth, Mapping) and auth.get("is_bot") and isinstance(
                    auth.get("user_id"), str):
                bot_user_id = auth["user_id"]
                break
    return _Own(bot_user_id, bot_id, app_id)


def _is_own(msg: Mapping[str, Any], own: _Own) -> bool:
    profile = msg.get("bot_profile")
    profile_app = profile.get("app_id") if isinstance(profile, Mapping) else None
    pairs = ((msg.get("bot_id"), own.bot_id), (msg.get("app_id"), own.app_id),
             (profile_app, own.app_id), (msg.get("user"), own.bot_user_id))
    return any(mine is not None and value == mine for value, mine in pairs)


def _is_bot(msg: Mapping[str, Any]) -> bool:
    """Another app's message: `bot_id` / `bot_profile`, or the classic `subtype: bot_message`
    (https://docs.slack.dev/reference/events/message/bot_message/)."""
    return bool(msg.get("bot_id") or msg.get("bot_profile")
                or msg.get("subtype") == "bot_message")


# ----------------------------------------------------------------------------- pieces


def _conversation(channel: str, channel_type: str | None, root: str,
                  account: AccountContext) -> tuple[ConversationKind, str]:
    """`app_mention` carries no `channel_type`: the id's first letter tells (D: DM, C: channel,
    G: private channel or group DM)."""
    if channel_type is None:
        channel_type = {"D": "im", "C": "channel", "G": "group"}.get(channel[:1], "channel")
    if channel_type == "im":
        return "dm", channel
    if _option(account, "channel_as_conversation"):
        return "group", channel
    return "group", f"{channel}:{root}"


def _reply_route(kind: ConversationKind, thread_key: str, ts: str,
                 thread_ts: str | None) -> dict[str, Any] | None:
    """The thread an answer to this message goes to, where the key (`{channel}:{root}` names
    it) does not say; it comes back as `OutboundMessage.reply_route`. A DM is answered in the
    DM, or in the thread the customer wrote in; a channel kept as one conversation, in the
    message's thread (started by the answer for a top-level message)."""
    if ":" in thread_key:
        return None
    if kind == "dm":
        return {"thread_ts": thread_ts} if thread_ts else None
    return {"thread_ts": thread_ts or ts}


def _author(msg: Mapping[str, Any], where: str) -> Author:
    """Name and avatar only as far as the payload has them (`user_profile` on some messages,
    `bot_profile` / `username` on bots); `users.info` fills them in after storing."""
    bot_id = _opt_str(msg, "bot_id", where)
    user_id = _opt_str(msg, "user", where) or bot_id
    if not user_id:
        raise UnreadablePayload(f"{where}: neither 'user' nor 'bot_id'")
    name = handle = avatar = None
    profile = _opt_map(msg, "user_profile", where)
    if profile:
        name = profile.get("display_name") or profile.get("real_name") or None
        handle = profile.get("name") or None
        avatar = profile.get("image_72") or None
    bot = _opt_map(msg, "bot_profile", where)
    if bot:
        name = name or bot.get("name") or None
        icons = bot.get("icons")
        if isinstance(icons, Mapping):
            avatar = avatar or icons.get("image_72") or icons.get("image_48") or None
    name = name or _opt_str(msg, "username", where) or user_id
    return Author(user_id=user_id, name=str(name), handle=handle if isinstance(handle, str)
                  else None, is_bot=_is_bot(msg),
                  avatar_url=avatar if isinstance(avatar, str) else None)


def _file_kind(mime: str | None) -> str:
    major = (mime or "").split("/", 1)[0]
    return {"image": "photo", "video": "video", "audio": "audio"}.get(major, "document")


def _files(msg: Mapping[str, Any], where: str) -> tuple[Attachment, ...]:
    """Files of a `file_share` (https://docs.slack.dev/reference/objects/file-object/). The
    bytes stay on Slack: `url_private_download` needs the bot token as Bearer. Files a free
    workspace has hidden (`mode: hidden_by_limit`) or deleted (`tombstone`) have no URL."""
    files = msg.get("files")
    if files is None:
        return ()
    if not isinstance(files, list):
        raise UnreadablePayload(f"{where}: 'files' must be a list")
    out = []
    for i, file in enumerate(files):
        fwhere = f"{where}.files[{i}]"
        if not isinstance(file, Mapping):
            raise UnreadablePayload(f"{fwhere}: must be an object")
        mime = _opt_str(file, "mimetype", fwhere) or None
        size = file.get("size")
        extra = {key: file[key] for key in ("url_private_download", "url_private", "filetype",
                                            "title", "permalink", "mode", "file_access")
                 if isinstance(file.get(key), str) and file[key]}
        out.append(Attachment(
            type=_file_kind(mime), file_id=_id(file, "id", fwhere),
            name=_opt_str(file, "name", fwhere) or _opt_str(file, "title", fwhere) or None,
            size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0
            else None, mime=mime, extra=extra))
    return tuple(out)


def _build(payload: Mapping[str, Any], msg: Mapping[str, Any], channel: str,
           channel_type: str | None, account: AccountContext, own: _Own, where: str, *,
           edited_at: datetime | None = None) -> InboundMessage:
    ts = _ts(msg, "ts", where)
    thread_ts = _opt_ts(msg, "thread_ts", where)
    kind, thread_key = _conversation(channel, channel_type, thread_ts or ts, account)
    text = _opt_str(msg, "text", where) or ""
    return InboundMessage(
        account_id=AccountId(account.id), platform=PLATFORM, external_id=f"{channel}:{ts}",
        thread_key=thread_key, kind=kind, author=_author(msg, where),
        text=to_plain(text, own.bot_user_id), platform_ts=when(ts),
        attachments=_files(msg, where),
        reply_to=f"{channel}:{thread_ts}" if thread_ts and thread_ts != ts else None,
        edited_at=edited_at, raw=dict(payload),
        reply_route=_reply_route(kind, thread_key, ts, thread_ts))


# ----------------------------------------------------------------------------- handlers

Handler = Callable[[Mapping[str, Any], Mapping[str, Any], AccountContext],
                   InboundEvent | Ignored]


def _message(payload: Mapping[str, Any], event: Mapping[str, Any],
             account: AccountContext) -> InboundEvent | Ignored:
    """A new message: plain, `app_mention`, `file_share`, `thread_broadcast`, `bot_message`."""
    where = "event"
    channel = _id(event, "channel", where)
    own = _own_ids(payload, account)
    if _is_own(event, own):
        return Ignored("own message")
    if _is_bot(event) and not _option(account, "accept_bot_messages"):
        return Ignored("bot message")
    return _build(payload, event, channel, _opt_str(event, "channel_type", where), account,
                  own, where)


def _changed(payload: Mapping[str, Any], event: Mapping[str, Any],
             account: AccountContext) -> InboundEvent | Ignored:
    """`message_changed` (https://docs.slack.dev/reference/events/message/message_changed/):
    `message` is the message as it is now, with the original `ts`. Slack also sends it when it
    merely attaches a link preview (no `edited`, same text): that is no edit. A thread root
    deleted while it has replies becomes a `tombstone` message: that is a deletion."""
    where = "event"
    channel = _id(event, "channel", where)
    msg = _map(event, "message", where)
    previous = _opt_map(event, "previous_message", where)
    own = _own_ids(payload, account)
    if _is_own(msg, own) or (previous is not None and _is_own(previous, own)):
        return Ignored("own message")
    if msg.get("subtype") == "tombstone":
        return MessageDeleted(account_id=AccountId(account.id), platform=PLATFORM,
                              external_id=f"{channel}:{_ts(msg, 'ts', 'event.message')}",
                              deleted_at=when(_ts(event, "ts", where)), raw=dict(payload))
    if _is_bot(msg) and not _option(account, "accept_bot_messages"):
        return Ignored("bot message")
    edited = _opt_map(msg, "edited", "event.message")
    if edited is None and previous is not None and previous.get("text") == msg.get("text"):
        return Ignored("message_changed without an edit (a link preview was added)")
    edited_at = when(_ts(edited, "ts", "event.message.edited") if edited is not None
                     else _ts(event, "ts", where))
    return _build(payload, msg, channel, _opt_str(event, "channel_type", where), account,
                  own, "event.message", edited_at=edited_at)


def _deleted(payload: Mapping[str, Any], event: Mapping[str, Any],
             account: AccountContext) -> InboundEvent | Ignored:
    """`message_deleted` (https://docs.slack.dev/reference/events/message/message_deleted/):
    `deleted_ts` is the deleted message's ts; the text stays in our store for the record."""
    where = "event"
    channel = _id(event, "channel", where)
    previous = _opt_map(event, "previous_message", where)
    if previous is not None and _is_own(previous, _own_ids(payload, account)):
        return Ignored("own message")
    return MessageDeleted(account_id=AccountId(account.id), platform=PLATFORM,
                          external_id=f"{channel}:{_ts(event, 'deleted_ts', where)}",
                          deleted_at=when(_ts(event, "ts", where)), raw=dict(payload))


def _reaction(payload: Mapping[str, Any], event: Mapping[str, Any],
              account: AccountContext) -> InboundEvent | Ignored:
    """`reaction_added` / `reaction_removed` (https://docs.slack.dev/reference/events/reaction_added/):
    only reactions on messages; `item.ts` names the message reacted to."""
    where = "event"
    item = _map(event, "item", where)
    if item.get("type") != "message":
        return Ignored(f"reaction on a {item.get('type')!s}")
    user = _id(event, "user", where)
    if user == _own_ids(payload, account).bot_user_id:
        return Ignored("own reaction")
    return ReactionChanged(
        account_id=AccountId(account.id), platform=PLATFORM,
        external_id=f"{_id(item, 'channel', 'event.item')}:{_ts(item, 'ts', 'event.item')}",
        user_id=user, reaction=_str(event, "reaction", where),
        added=event.get("type") == "reaction_added", at=when(_ts(event, "event_ts", where)),
        raw=dict(payload))


def _block_actions(payload: Mapping[str, Any], event: Mapping[str, Any],
                   account: AccountContext) -> Interaction | Ignored:
    """A press of a Block Kit button under one of our messages: an interactivity payload
    (https://docs.slack.dev/reference/interaction-payloads/block_actions-payload/), POSTed
    form-encoded to the Request URL or sent as a Socket Mode `interactive` envelope. Our
    buttons carry `action_id` = `action:value` (`Button.data`, unique in its block)."""
    where = "block_actions"
    user = _map(payload, "user", where)
    user_id = _id(user, "id", f"{where}.user")
    channel = _id(_map(payload, "channel", where), "id", f"{where}.channel")
    message = _opt_map(payload, "message", where) or {}
    container = _opt_map(payload, "container", where) or {}
    ts = _opt_ts(message, "ts", f"{where}.message") or _opt_ts(
        container, "message_ts", f"{where}.container")
    if ts is None:
        return Ignored("a button press outside a message")
    root = _opt_ts(message, "thread_ts", f"{where}.message") or _opt_ts(
        container, "thread_ts", f"{where}.container") or ts
    _, thread_key = _conversation(channel, None, root, account)
    actions = payload.get("actions")
    if not isinstance(actions, list):
        raise UnreadablePayload(f"{where}: 'actions' must be a list")
    for i, action in enumerate(actions):  # a button press carries one action
        awhere = f"{where}.actions[{i}]"
        if not isinstance(action, Mapping):
            raise UnreadablePayload(f"{awhere}: must be an object")
        action_id = _str(action, "action_id", awhere)
        name, sep, value = action_id.partition(":")
        if not sep or action.get("type") != "button":
            continue
        pressed = _ts(action, "action_ts", awhere)
        return Interaction(account_id=AccountId(account.id), platform=PLATFORM,
                           thread_key=thread_key, user_id=user_id, action=name, value=value,
                           at=when(pressed), external_id=f"{channel}:{pressed}",
                           raw=dict(payload))
    return Ignored("no button of ours was pressed")


HANDLERS: dict[str, Handler] = {
    "block_actions": _block_actions,
    "message": _message,
    "app_mention": _message,
    "message.file_share": _message,
    "message.thread_broadcast": _message,
    "message.bot_message": _message,
    "message.message_changed": _changed,
    "message.message_deleted": _deleted,
    "reaction_added": _reaction,
    "reaction_removed": _reaction,
}


def dispatch_key(payload: Any) -> str | None:
    """The HANDLERS entry for an `event_callback`; None for anything else (including message
    subtypes we do not store: channel_join, channel_topic, pinned_item, ...) and a
    `block_actions` interactivity payload (a button press)."""
    if isinstance(payload, Mapping) and payload.get("type") == "block_actions":
        return "block_actions"
    if not isinstance(payload, Mapping) or payload.get("type") != "event_callback":
        return None
    event = payload.get("event")
    if not isinstance(event, Mapping):
        return None
    etype, subtype = event.get("type"), event.get("subtype")
    if etype == "message" and subtype is not None:
        if not isinstance(subtype, str):
            return None
        key = "message" if subtype in _PLAIN_SUBTYPES else f"message.{subtype}"
    else:
        key = etype if isinstance(etype, str) else ""
    return key if key in HANDLERS else None


def describe(payload: Any) -> str:
    """`event.type[.subtype]` of a payload, for logs and Ignored reasons."""
    if not isinstance(payload, Mapping):
        return type(payload).__name__
    event = payload.get("event")
    if not isinstance(event, Mapping):
        return str(payload.get("type"))
    subtype = event.get("subtype")
    return f"{event.get('type')}.{subtype}" if subtype else str(event.get("type"))


def normalise(payload: Any, account: AccountContext) -> InboundEvent | Ignored:
    if not isinstance(payload, Mapping):
        raise UnreadablePayload(f"payload must be an object, got {type(payload).__name__}")
    ptype = payload.get("type")
    if not isinstance(ptype, str) or not ptype:
        raise UnreadablePayload("payload has no 'type': not a Slack Events API payload")
    if ptype == "url_verification":
        return Ignored("url_verification is answered by the connector")
    if ptype == "block_actions":
        return _block_actions(payload, {}, account)
    if ptype != "event_callback":
        return Ignored(f"unsupported payload type: {ptype}")
    event = _map(payload, "event", "payload")
    _str(event, "type", "event")
    _opt_str(event, "subtype", "event")
    key = dispatch_key(payload)
    if key is None:
        return Ignored(f"unsupported event: {describe(payload)}")
    return HANDLERS[key](payload, event, account)
