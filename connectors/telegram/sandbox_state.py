"""State, request parsing and payload builders of the Telegram Bot API sandbox.

Shapes follow https://core.telegram.org/bots/api; error descriptions are the strings the real
API returns, because clients (and our connector) classify errors by status and description.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from inbox.models import utf16_len

# Types the API may send (https://core.telegram.org/bots/api#update). chat_member and
# message_reaction* are only delivered when asked for explicitly in allowed_updates.
UPDATE_TYPES: tuple[str, ...] = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
)
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

DEFAULT_DESCRIPTIONS: dict[int, str] = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
         "instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

# How form-encoded values are typed: PTB (and curl users) send strings as-is and everything
# else JSON-encoded (telegram/request/_requestparameter.py, `json_value`).
_JSON_PARAMS = frozenset({
    "entities", "caption_entities", "reply_parameters", "reply_markup", "allowed_updates",
    "link_preview_options", "media",
})
_INT_PARAMS = frozenset({
    "offset", "limit", "message_id", "message_thread_id", "max_connections",
    "reply_to_message_id", "from_chat_id",
})
_FLOAT_PARAMS = frozenset({"timeout"})
_BOOL_PARAMS = frozenset({
    "drop_pending_updates", "disable_notification", "protect_content",
    "allow_sending_without_reply", "disable_web_page_preview", "allow_paid_broadcast",
})
Params = dict[str, Any]
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ApiError(Exception):
    """Becomes an `{"ok": false, ...}` envelope with this HTTP status."""

    def __init__(self, status: int, description: str | None = None, *,
                 retry_after: int | None = None) -> None:
        if description is None:
            description = (f"Too Many Requests: retry after {retry_after}" if status == 429
                           else DEFAULT_DESCRIPTIONS.get(status, "Unknown error"))
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error_code": self.status,
                               "description": self.description}
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


@dataclass
class Failure:
    method: str  # a Bot API method name, or "*" for any
    error: ApiError
    times: int | None  # None: until clear_failures()


@dataclass
class SandboxFile:
    file_id: str
    data: bytes
    file_path: str
    mime: str

    def as_api(self) -> dict[str, Any]:
        unique = hashlib.sha1(self.file_id.encode(), usedforsecurity=False).hexdigest()[:16]
        return {"file_id": self.file_id, "file_unique_id": unique,
                "file_size": len(self.data), "file_path": self.file_path}


@dataclass
class BotState:
    token: str
    id: int
    username: str
    first_name: str
    next_update_id: int = 1
    pending: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    poll_generation: int = 0
    allowed_updates: list[str] = field(default_factory=list)
    webhook_url: str = ""
    webhook_secret: str | None = None
    webhook_task: asyncio.Task[None] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    sent_changed: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[dict[str, Any]] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    answered: list[str] = field(default_factory=list)

    def user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name,
                "username": self.username}

    def get_me(self) -> dict[str, Any]:
        return self.user() | {"can_join_groups": True, "can_read_all_group_messages": False,
                              "supports_inline_queries": False, "can_connect_to_business": False,
                              "has_main_web_app": False}

    def notify(self) -> None:
        """Wake every waiter (long polls, the webhook pusher): swap in a fresh Event."""
        self.changed.set()
        self.changed = asyncio.Event()

    def next_message_id(self, chat_id: int) -> int:
        known = self.messages.get(chat_id)
        return max(known, default=0) + 1 if known else 1

    def remember(self, message: Mapping[str, Any]) -> None:
        chat = message.get("chat")
        if isinstance(chat, Mapping) and isinstance(chat.get("id"), int):
            self.chats[chat["id"]] = dict(chat)
            if isinstance(message.get("message_id"), int):
                self.messages.setdefault(chat["id"], {})[message["message_id"]] = dict(message)

    def take_failure(self, method: str) -> ApiError | None:
        for failure in self.failures:
            if failure.method in (method, "*"):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                return failure.error
        return None

    def confirm(self, offset: int) -> None:
        """getUpdates `offset`: everything below it is confirmed and forgotten; a negative
        offset keeps only the last -offset updates."""
        if offset < 0:
            del self.pending[:max(0, len(self.pending) + offset)]
        else:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]

    def webhook_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"url": self.webhook_url, "has_custom_certificate": False,
                                "pending_update_count": len(self.pending)}
        if self.webhook_url:
            info["max_connections"] = 40
            info["ip_address"] = "127.0.0.1"
        if self.allowed_updates:
            info["allowed_updates"] = list(self.allowed_updates)
        if self.last_error_message is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        return info

    def wants(self, update_type: str) -> bool:
        if self.allowed_updates:
            return update_type in self.allowed_updates
        return update_type not in OPT_IN_UPDATES


def update_type(update: Mapping[str, Any]) -> str | None:
    return next((key for key in update if key in UPDATE_TYPES), None)


def typed_param(key: str, value: str) -> Any:
    """Type one form-encoded parameter the way the Bot API does (by parameter name)."""
    try:
        if key in _JSON_PARAMS:
            return json.loads(value)
        if key in _INT_PARAMS:
            return int(value)
        if key in _FLOAT_PARAMS:
            return float(value)
    except ValueError as exc:
        raise ApiError(400, f"Bad Request: can't parse {key}") from exc
    if key in _BOOL_PARAMS:
        return value.strip().lower() in ("true", "1")
    if key == "chat_id" and re.fullmatch(r"-?\d{1,20}", value):
        return int(value)
    return value


def check_secret(secret: Any) -> str | None:
    if secret in (None, ""):
        return None
    if not isinstance(secret, str) or not _SECRET_TOKEN.fullmatch(secret):
        raise ApiError(400, "Bad Request: secret token contains unallowed characters")
    return secret


def check_entities(text: str, entities: Any) -> list[dict[str, Any]]:
    """Entities count UTF-16 code units; the real API rejects spans outside the text."""
    if entities is None:
        return []
    if not isinstance(entities, list):
        raise ApiError(400, "Bad Request: can't parse entities JSON object")
    size = utf16_len(text)
    for entity in entities:
        if not (isinstance(entity, dict) and isinstance(entity.get("type"), str)
                and isinstance(entity.get("offset"), int)
                and isinstance(entity.get("length"), int)):
            raise ApiError(400, "Bad Request: can't parse entities: wrong entity")
        if entity["offset"] < 0 or entity["length"] <= 0 \
                or entity["offset"] + entity["length"] > size:
            raise ApiError(400, "Bad Request: can't parse entities: entity beyond end of text")
    return [dict(e) for e in entities]


def text_update(bot: BotState, chat_id: int, text: str, *, user: Mapping[str, Any] | None,
                chat_type: str, chat_title: str | None,
                reply_to_message_id: int | None) -> dict[str, Any]:
    """A realistic `message` update, as a customer typing `text` would produce."""
    if user is None:
        uid = chat_id if chat_type == "private" else 100_000_000 + abs(chat_id) % 10**8
        user = {"id": uid, "is_bot": False, "first_name": "Test", "last_name": f"User{uid}",
                "username": f"test_user_{uid}", "language_code": "en"}
    sender = {"is_bot": False} | dict(user)
    if chat_type == "private":
        chat: dict[str, Any] = {"id": chat_id, "type": "private"}
        for key in ("first_name", "last_name", "username"):
            if key in sender:
                chat[key] = sender[key]
    else:
        chat = {"id": chat_id, "title": chat_title or f"Test {chat_type} {chat_id}",
                "type": chat_type}
        if chat_type == "group":
            chat["all_members_are_administrators"] = True
    message: dict[str, Any] = {"message_id": bot.next_message_id(chat_id), "from": sender,
                               "chat": chat, "date": int(time.time()), "text": text}
    if reply_to_message_id is not None:
        replied = bot.messages.get(chat_id, {}).get(reply_to_message_id)
        message["reply_to_message"] = replied or {"message_id": reply_to_message_id,
                                                  "chat": chat, "date": message["date"]}
    if text.startswith("/"):
        command = text.split()[0]
        message["entities"] = [{"offset": 0, "length": utf16_len(command),
                                "type": "bot_command"}]
    return {"message": message}


async def control(request: web.Request, action: Callable[[dict[str, Any]], Any],
                   status: int) -> web.Response:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise TypeError("body must be a JSON object")
        result = action(body)
    except (KeyError, TypeError, ValueError) as exc:
        return web.json_response({"ok": False, "description": f"bad request: {exc}"}, status=400)
    return web.json_response({"ok": True, "result": True if result is None else result},
                             status=status)


async def read_params(request: web.Request) -> Params:
    """Query string, JSON body, urlencoded or multipart form, as the Bot API accepts them."""
    params: Params = {k: typed_param(k, v) for k, v in request.query.items()}
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise ApiError(400, "Bad Request: can't parse JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: JSON body must be an object")
        return params | body
    for key, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            params[key] = {"filename": value.filename, "size": len(value.file.read()),
                           "content_type": value.content_type}
        else:
            params[key] = typed_param(key, str(value))
    return params
