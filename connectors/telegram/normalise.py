"""Telegram update → `InboundMessage` | `Ignored`. Pure functions, no I/O.

Field meanings follow the Bot API reference, https://core.telegram.org/bots/api#update and
https://core.telegram.org/bots/api#message. Only a payload we cannot make sense of raises
(`UnparseableUpdate`); a payload we understand but do not store is `Ignored(reason)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from inbox.models import (
    AccountId,
    Attachment,
    Author,
    ConversationKind,
    Ignored,
    InboundMessage,
    Interaction,
)

if TYPE_CHECKING:
    from connectors.base import AccountContext

PLATFORM = "telegram"

# Telegram ids fit in 52 bits; anything beyond int64 is garbage (and a huge int would make
# `str()` itself raise ValueError past Python's digit limit).
_MAX_ID = 2**63
# Unix seconds up to the year ~2500: keeps datetime.fromtimestamp away from OverflowError.
_MAX_DATE = 16_725_225_600

# Service messages: https://core.telegram.org/bots/api#message ("service message" fields).
_SERVICE_KEYS: tuple[str, ...] = (
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo",
    "delete_chat_photo", "group_chat_created", "supergroup_chat_created",
    "channel_chat_created", "message_auto_delete_timer_changed", "migrate_to_chat_id",
    "migrate_from_chat_id", "pinned_message", "successful_payment", "refunded_payment",
    "users_shared", "chat_shared", "connected_website", "write_access_allowed", "passport_data",
    "proximity_alert_triggered", "boost_added", "chat_background_set", "forum_topic_created",
    "forum_topic_edited", "forum_topic_closed", "forum_topic_reopened",
    "general_forum_topic_hidden", "general_forum_topic_unhidden", "giveaway_created",
    "giveaway_winners", "giveaway_completed", "video_chat_scheduled", "video_chat_started",
    "video_chat_ended", "video_chat_participants_invited", "web_app_data", "gift", "unique_gift",
    "paid_message_price_changed", "checklist_tasks_done", "checklist_tasks_added",
)
# Content we understand but do not turn into an inbox message.
_UNSUPPORTED_CONTENT: tuple[str, ...] = (
    "poll", "dice", "game", "invoice", "story", "paid_media", "giveaway", "checklist",
)

# Telegram's own service account that posts automatic forwards from a linked channel.
_TELEGRAM_SERVICE_USER_ID = 777000


class UnparseableUpdate(ValueError):
    """The payload is not a Telegram update we can read (wrong shape or types)."""


# ----------------------------------------------------------------------------- typed getters


def _fail(where: str, problem: str) -> UnparseableUpdate:
    return UnparseableUpdate(f"{where}: {problem}")


def _map(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, Mapping):
        raise _fail(where, f"'{key}' must be an object, got {type(value).__name__}")
    return value


def _opt_map(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    return None if obj.get(key) is None else _map(obj, key, where)


def _int(obj: Mapping[str, Any], key: str, where: str, *, lo: int = -_MAX_ID,
         hi: int = _MAX_ID) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, f"'{key}' must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise _fail(where, f"'{key}' is out of range")
    return value


def _opt_int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, where)


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _fail(where, f"'{key}' must be a string, got {type(value).__name__}")


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _opt_str(obj, key, where)
    if value is None:
        raise _fail(where, f"'{key}' is missing")
    return value


def _number(obj: Mapping[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, f"'{key}' must be a number, got {type(value).__name__}")
    return value


def _ts(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    return datetime.fromtimestamp(_int(obj, key, where, lo=0, hi=_MAX_DATE), tz=UTC)


# ----------------------------------------------------------------------------- people


def _person_name(user: Mapping[str, Any], where: str) -> str:
    first = _opt_str(user, "first_name", where) or ""
    last = _opt_str(user, "last_name", where) or ""
    return f"{first} {last}".strip()


def _author_from_user(user: Mapping[str, Any]) -> Author:
    where = "message.from"
    user_id = str(_int(user, "id", where))
    handle = _opt_str(user, "username", where)
    is_bot = user.get("is_bot", False)
    if not isinstance(is_bot, bool):
        raise _fail(where, "'is_bot' must be a boolean")
    return Author(user_id=user_id, name=_person_name(user, where) or handle or user_id,
                  handle=handle, is_bot=is_bot,
                  locale=_opt_str(user, "language_code", where) or None)


def _author_from_chat(chat: Mapping[str, Any]) -> Author:
    """Anonymous group admins and linked channels post as a chat (`sender_chat`)."""
    where = "message.sender_chat"
    chat_id = str(_int(chat, "id", where))
    handle = _opt_str(chat, "username", where)
    name = _opt_str(chat, "title", where) or _person_name(chat, where) or handle or chat_id
    return Author(user_id=f"chat:{chat_id}", name=name, handle=handle, is_bot=False)


def _display(name: str, handle: str | None) -> str:
    if handle and name and name != handle:
        return f"{name} (@{handle})"
    return name or (f"@{handle}" if handle else "")


def _forwarded_from(msg: Mapping[str, Any]) -> str | None:
    """Bot API 7.0 `forward_origin` (MessageOrigin), else the legacy forward_* fields."""
    origin = _opt_map(msg, "forward_origin", "message")
    if origin is not None:
        where = "message.forward_origin"
        kind = _str(origin, "type", where)
        if kind == "user":
            user = _map(origin, "sender_user", where)
            return _display(_person_name(user, where), _opt_str(user, "username", where))
        if kind == "hidden_user":
            return _str(origin, "sender_user_name", where)
        if kind in ("chat", "channel"):
            chat = _map(origin, "sender_chat" if kind == "chat" else "chat", where)
            name = _display(_opt_str(chat, "title", where) or "", _opt_str(chat, "username", where))
            signature = _opt_str(origin, "author_signature", where)
            return f"{name} ({signature})" if signature else name
        return f"unknown origin: {kind}"
    legacy_user = _opt_map(msg, "forward_from", "message")
    if legacy_user is not None:
        where = "message.forward_from"
        return _display(_person_name(legacy_user, where),
                        _opt_str(legacy_user, "username", where))
    legacy_chat = _opt_map(msg, "forward_from_chat", "message")
    if legacy_chat is not None:
        where = "message.forward_from_chat"
        return _display(_opt_str(legacy_chat, "title", where) or "",
                        _opt_str(legacy_chat, "username", where))
    return _opt_str(msg, "forward_sender_name", "message")


# ----------------------------------------------------------------------------- attachments


def _file(kind: str, media: Mapping[str, Any], *, mime: str | None,
          extra_keys: tuple[str, ...] = (), name: str | None = None) -> Attachment:
    where = f"message.{kind}"
    extra: dict[str, Any] = {}
    unique = _opt_str(media, "file_unique_id", where)
    if unique is not None:
        extra["file_unique_id"] = unique
    for key in extra_keys:
        value = media.get(key)
        if value is not None:
            if not isinstance(value, str | int | float):
                raise _fail(where, f"'{key}' has the wrong type")
            extra[key] = value
    return Attachment(type=kind, file_id=_str(media, "file_id", where), name=name,
                      size=_opt_int(media, "file_size", where),
                      mime=_opt_str(media, "mime_type", where) or mime, extra=extra)


def _photo(value: Any) -> Attachment:
    if not isinstance(value, list) or not value or not all(isinstance(p, Mapping) for p in value):
        raise _fail("message.photo", "must be a non-empty list of PhotoSize objects")

    def area(size: Mapping[str, Any]) -> int:
        return (_int(size, "width", "message.photo", lo=0)
                * _int(size, "height", "message.photo", lo=0))

    largest = max(value, key=area)  # Telegram lists sizes smallest first, but don't rely on it
    return _file("photo", largest, mime="image/jpeg", extra_keys=("width", "height"))


def _sticker(media: Mapping[str, Any]) -> Attachment:
    if media.get("is_video") is True:
        mime = "video/webm"
    elif media.get("is_animated") is True:
        mime = "application/x-tgsticker"
    else:
        mime = "image/webp"
    return _file("sticker", media, mime=mime, extra_keys=("emoji", "set_name", "width", "height"))


def _location(media: Mapping[str, Any]) -> Attachment:
    where = "message.location"
    return Attachment(type="location", extra={"latitude": _number(media, "latitude", where),
                                              "longitude": _number(media, "longitude", where)})


def _venue(media: Mapping[str, Any]) -> Attachment:
    where = "message.venue"
    loc = _map(media, "location", where)
    return Attachment(type="venue", name=_opt_str(media, "title", where), extra={
        "latitude": _number(loc, "latitude", where), "longitude": _number(loc, "longitude", where),
        "address": _opt_str(media, "address", where)})


def _contact(media: Mapping[str, Any]) -> Attachment:
    where = "message.contact"
    extra: dict[str, Any] = {"phone_number": _str(media, "phone_number", where)}
    user_id = _opt_int(media, "user_id", where)
    if user_id is not None:
        extra["user_id"] = str(user_id)
    return Attachment(type="contact", name=_person_name(media, where) or None, extra=extra)


_MEDIA: dict[str, Callable[[Mapping[str, Any]], Attachment]] = {
    "animation": lambda m: _file("animation", m, mime="video/mp4",
                                 extra_keys=("width", "height", "duration"),
                                 name=_opt_str(m, "file_name", "message.animation")),
    "document": lambda m: _file("document", m, mime=None,
                                name=_opt_str(m, "file_name", "message.document")),
    "audio": lambda m: _file("audio", m, mime="audio/mpeg",
                             extra_keys=("duration", "performer", "title"),
                             name=_opt_str(m, "file_name", "message.audio")),
    "video": lambda m: _file("video", m, mime="video/mp4",
                             extra_keys=("width", "height", "duration"),
                             name=_opt_str(m, "file_name", "message.video")),
    "video_note": lambda m: _file("video_note", m, mime="video/mp4",
                                  extra_keys=("length", "duration")),
    "voice": lambda m: _file("voice", m, mime="audio/ogg", extra_keys=("duration",)),
    "sticker": _sticker,
    "venue": _venue,
    "location": _location,
    "contact": _contact,
}


def _attachments(msg: Mapping[str, Any]) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    if msg.get("photo") is not None:
        found.append(_photo(msg["photo"]))
    for key, build in _MEDIA.items():
        if msg.get(key) is None:
            continue
        if key == "document" and msg.get("animation") is not None:
            continue  # Telegram repeats an animation as `document` for old clients
        if key == "location" and msg.get("venue") is not None:
            continue  # a venue carries its location; Telegram sends both
        found.append(build(_map(msg, key, "message")))
    return tuple(found)


# ----------------------------------------------------------------------------- messages


def _present(msg: Mapping[str, Any], key: str) -> bool:
    return key in msg and msg[key] is not None and msg[key] is not False and msg[key] != []


def _reply_to(msg: Mapping[str, Any], chat_id: int) -> str | None:
    replied = _opt_map(msg, "reply_to_message", "message")
    if replied is None:
        return None
    replied_id = _int(replied, "message_id", "message.reply_to_message")
    # In forum topics every message "replies" to the topic's creation message; that is
    # threading, not a reply: https://core.telegram.org/bots/api#message (is_topic_message).
    if "forum_topic_created" in replied and msg.get("message_thread_id") == replied_id:
        return None
    return f"{chat_id}:{replied_id}"


def _message(msg: Mapping[str, Any], account_id: AccountId, bot_id: str | None,
             *, edited: bool, raw: dict[str, Any]) -> InboundMessage | Ignored:
    chat = _map(msg, "chat", "message")
    chat_id = _int(chat, "id", "message.chat")
    chat_type = _str(chat, "type", "message.chat")
    message_id = _int(msg, "message_id", "message", lo=0)
    platform_ts = _ts(msg, "date", "message")
    edited_at = _ts(msg, "edit_date", "message") if edited else None

    kind: ConversationKind
    if chat_type == "private":
        kind = "dm"
    elif chat_type in ("group", "supergroup"):
        kind = "group"
    elif chat_type == "channel":
        return Ignored("channel message")
    else:
        return Ignored(f"unsupported chat type: {chat_type[:40]}")

    sender = _opt_map(msg, "from", "message")
    sender_chat = _opt_map(msg, "sender_chat", "message")
    if sender is not None:
        sender_id = _int(sender, "id", "message.from")
        if bot_id is not None and str(sender_id) == str(bot_id):
            return Ignored("own message")
        if msg.get("is_automatic_forward") is True or (
                sender_id == _TELEGRAM_SERVICE_USER_ID and sender_chat is not None):
            return Ignored("automatic forward from a linked channel")

    for key in _SERVICE_KEYS:
        if _present(msg, key):
            return Ignored(f"service message: {key}")

    text = _opt_str(msg, "text", "message")
    if text is None:
        text = _opt_str(msg, "caption", "message") or ""
    attachments = _attachments(msg)
    if not text and not attachments:
        for key in _UNSUPPORTED_CONTENT:
            if _present(msg, key):
                return Ignored(f"unsupported content: {key}")
        return Ignored("service message: no text or media")

    # "For backward compatibility, if the message was sent on behalf of a chat, the field
    # from contains a fake sender user" (GroupAnonymousBot, Channel_Bot): prefer sender_chat.
    if sender_chat is not None:
        author = _author_from_chat(sender_chat)
    elif sender is not None:
        author = _author_from_user(sender)
    else:
        raise _fail("message", "has neither 'from' nor 'sender_chat'")

    return InboundMessage(
        account_id=account_id,
        platform=PLATFORM,
        external_id=f"{chat_id}:{message_id}",
        thread_key=str(chat_id),
        kind=kind,
        author=author,
        text=text,
        platform_ts=platform_ts,
        attachments=attachments,
        reply_to=_reply_to(msg, chat_id),
        forwarded_from=_forwarded_from(msg),
        edited_at=edited_at,
        thread_title=_opt_str(chat, "title", "message.chat") if kind == "group" else None,
        raw=raw,
    )


def _callback_query(query: Mapping[str, Any], account_id: AccountId, bot_id: str | None,
                    raw: dict[str, Any]) -> Interaction | Ignored:
    """A press of one of our inline keyboard buttons
    (https://core.telegram.org/bots/api#callbackquery): `data` is the button's `action:value`
    (`Button.data`). The payload has no time of its own; the pressed message's date stands
    in (the host records when it handled the press)."""
    where = "callback_query"
    query_id = _str(query, "id", where)
    user = _map(query, "from", where)
    user_id = _int(user, "id", f"{where}.from")
    data = _opt_str(query, "data", where)
    if not data or ":" not in data:
        return Ignored("callback query without our button data")
    message = _opt_map(query, "message", where)
    if message is None:
        return Ignored("callback query from an inline message")
    chat = _map(message, "chat", f"{where}.message")
    if bot_id is not None:
        sender = _opt_map(message, "from", f"{where}.message")
        if sender is not None and str(_int(sender, "id", f"{where}.message.from")) != bot_id:
            return Ignored("callback query on a message that is not ours")
    action, _, value = data.partition(":")
    return Interaction(account_id=account_id, platform=PLATFORM,
                       thread_key=str(_int(chat, "id", f"{where}.message.chat")),
                       user_id=str(user_id), action=action, value=value,
                       at=_ts(message, "date", f"{where}.message"), external_id=query_id,
                       raw=raw)


Handler = Callable[[Mapping[str, Any], AccountId, str | None, dict[str, Any]],
                   InboundMessage | Interaction | Ignored]


def _ignore(reason: str) -> Handler:
    return lambda _body, _account, _bot, _raw: Ignored(reason)


HANDLERS: dict[str, Handler] = {
    "message": lambda m, a, b, r: _message(m, a, b, edited=False, raw=r),
    "edited_message": lambda m, a, b, r: _message(m, a, b, edited=True, raw=r),
    "callback_query": _callback_query,
    # Channels are broadcast, not support conversations; business messages need a
    # business connection we don't model yet.
    "channel_post": _ignore("channel post"),
    "edited_channel_post": _ignore("channel post"),
}


def dispatch_key(payload: Any) -> str | None:
    """The entry of `HANDLERS` an update goes to (its one field besides `update_id`)."""
    if not isinstance(payload, Mapping):
        return None
    return next((field for field in HANDLERS if field in payload), None)


def normalise(payload: Any, account: AccountContext) -> InboundMessage | Interaction | Ignored:
    """The contract's entry point (connectors.base.Normaliser)."""
    return normalise_update(payload, AccountId(account.id), account.platform_id)


def normalise_update(update: Mapping[str, Any], account_id: AccountId,
                     bot_id: str | None = None) -> InboundMessage | Interaction | Ignored:
    """Normalise one Telegram `Update` object.

    `bot_id` is our bot's numeric id (the token's prefix / `getMe().id`): its own messages,
    which Telegram echoes into groups, are `Ignored("own message")`.
    """
    if not isinstance(update, Mapping):
        raise UnparseableUpdate(f"update must be an object, got {type(update).__name__}")
    _int(update, "update_id", "update", lo=0)
    fields = [key for key in update if key != "update_id"]
    if not fields:
        raise UnparseableUpdate("update carries nothing besides update_id")
    for field, handler in HANDLERS.items():
        if field in update:
            body = update[field]
            if not isinstance(body, Mapping):
                raise _fail("update", f"'{field}' must be an object, got {type(body).__name__}")
            return handler(body, account_id, bot_id, dict(update))
    shown = ", ".join(sorted(str(key)[:40] for key in fields)[:5])
    return Ignored(f"unsupported update: {shown}")
