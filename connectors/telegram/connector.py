"""Telegram I/O through python-telegram-bot: webhook, long-polling, send, check, files.

The bot token lives only inside the `telegram.Bot`; our webhook URL carries the account id and
Telegram proves itself with the `X-Telegram-Bot-Api-Secret-Token` header
(https://core.telegram.org/bots/api#setwebhook).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import uuid
import warnings
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from telegram import Bot, MessageEntity, ReplyParameters
from telegram import error as tg
from telegram.request import HTTPXRequest

from connectors.base import (
    AccountContext,
    AccountInfo,
    ConnectError,
    CredentialField,
    Sink,
    WebhookResponse,
)
from connectors.telegram.normalise import UnparseableUpdate, normalise
from connectors.telegram.poller import Poller
from inbox.models import (
    AccountId,
    Delivery,
    DeliveryError,
    InboundMessage,
    OutboundMessage,
    PermanentError,
    RateLimited,
    TransientError,
)

log = logging.getLogger(__name__)

DEFAULT_API = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
ALLOWED_UPDATES = ["message", "edited_message"]

_PERMANENT_HUMAN = {
    "bot was blocked by the user": "The customer blocked the bot.",
    "chat not found": "Telegram no longer knows this chat (it was deleted or the bot was removed).",
    "user is deactivated": "The customer's Telegram account was deleted.",
    "bot was kicked": "The bot was removed from this group.",
    "not enough rights": "The bot is not allowed to write in this group.",
    "message is too long": "The reply is longer than Telegram allows.",
}


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def classify(exc: Exception) -> DeliveryError:
    """Map a python-telegram-bot error to a typed delivery error.

    Order matters: BadRequest and TimedOut are subclasses of NetworkError, so they are checked
    before it; a blanket `except NetworkError` would retry permanent errors.
    """
    if isinstance(exc, tg.RetryAfter):
        with warnings.catch_warnings():  # PTB 22 warns that this becomes a timedelta
            warnings.simplefilter("ignore")
            retry_after = _seconds(exc.retry_after)
        return RateLimited(retry_after, "Telegram asked us to slow down.")
    if isinstance(exc, tg.InvalidToken):
        return PermanentError("The bot token is no longer valid; an admin must update the "
                              "channel account.", code="invalid_auth")
    if isinstance(exc, tg.Forbidden | tg.BadRequest | tg.ChatMigrated):
        text = str(exc).lower()
        for needle, human in _PERMANENT_HUMAN.items():
            if needle in text:
                return PermanentError(human, code=needle.replace(" ", "_"))
        if isinstance(exc, tg.ChatMigrated):
            return PermanentError("The group was upgraded to a supergroup; reply in the new "
                                  "conversation.", code="chat_migrated")
        kind = "forbidden" if isinstance(exc, tg.Forbidden) else "bad_request"
        return PermanentError(f"Telegram refused the reply: {exc}", code=kind)
    if isinstance(exc, tg.TimedOut):
        return TransientError("Telegram did not answer in time.", code="timeout")
    if isinstance(exc, tg.NetworkError):
        return TransientError(f"Telegram could not be reached: {exc}", code="network")
    if isinstance(exc, tg.TelegramError):
        return TransientError(f"Telegram error: {exc}", code="telegram")
    return TransientError("Unexpected error while talking to Telegram.", code="unknown")


class TelegramConnector:
    platform: ClassVar[str] = "telegram"
    text_limit: ClassVar[int] = 4096
    modes: ClassVar[tuple[str, ...]] = ("webhook", "polling")
    credential_fields: ClassVar[tuple[CredentialField, ...]] = (
        CredentialField("bot_token", "Bot token", secret=True,
                        pattern=r"^[0-9]{3,15}:[A-Za-z0-9_-]{20,}$",
                        help="The token @BotFather gave you, like 123456:ABC-DEF…"),
    )

    def __init__(self, account: AccountContext, sink: Sink, db: Any = None) -> None:
        self.account = account
        self.sink = sink
        self.db = db
        base = (account.api_base_url or DEFAULT_API).rstrip("/")
        self.bot = Bot(
            str(account.credentials["bot_token"]), base_url=f"{base}/bot",
            base_file_url=f"{base}/file/bot",
            request=HTTPXRequest(connection_pool_size=32, read_timeout=10, write_timeout=10,
                                 connect_timeout=5, pool_timeout=5),
            get_updates_request=HTTPXRequest(connection_pool_size=2, read_timeout=40,
                                             connect_timeout=5),
        )
        self._initialised = False
        self._poller: Poller | None = None
        self.poller_owner = uuid.uuid4().hex
        self.bot_id = account.platform_id

    def __repr__(self) -> str:
        return f"TelegramConnector(account={self.account.id!r})"

    async def _ready(self) -> None:
        if not self._initialised:
            await self.bot.initialize()
            self._initialised = True

    async def check(self) -> AccountInfo:
        try:
            me = await self.bot.get_me()
        except (tg.InvalidToken, tg.Forbidden) as exc:
            raise ConnectError("invalid_auth", "Telegram refused this bot token.") from exc
        except tg.TimedOut as exc:
            raise ConnectError("cannot_connect", "Telegram did not answer in time.") from exc
        except tg.BadRequest as exc:
            raise ConnectError("invalid_auth", f"Telegram refused the request: {exc}") from exc
        except tg.NetworkError as exc:
            raise ConnectError("cannot_connect", "Could not reach the Telegram API.") from exc
        except tg.TelegramError as exc:
            raise ConnectError("unknown", f"Telegram answered unexpectedly: {exc}") from exc
        self.bot_id = str(me.id)
        return AccountInfo(platform_id=str(me.id), username=me.username,
                           display_name=me.first_name)

    async def register_webhook(self) -> None:
        """Point Telegram at our webhook URL with the account's secret."""
        if not self.account.webhook_url or not self.account.webhook_secret:
            raise ConnectError("unknown", "the account has no webhook URL or secret")
        try:
            await self.bot.set_webhook(self.account.webhook_url,
                                       secret_token=str(self.account.webhook_secret),
                                       allowed_updates=ALLOWED_UPDATES)
        except tg.TelegramError as exc:
            raise ConnectError("cannot_connect", f"setWebhook failed: {classify(exc)}") from exc

    async def remove_webhook(self) -> None:
        with contextlib.suppress(tg.TelegramError):
            await self.bot.delete_webhook()

    def verify(self, headers: Mapping[str, str]) -> bool:
        expected = self.account.webhook_secret
        given = headers.get(SECRET_HEADER)
        if not expected or given is None:
            return False
        return hmac.compare_digest(given.encode(), str(expected).encode())

    async def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        if not self.verify(headers):
            return WebhookResponse(401, {"error": {"code": "bad_signature",
                                                   "message": "missing or wrong secret token"}})
        try:
            update = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return WebhookResponse(400, {"error": {"code": "bad_json",
                                                   "message": "body is not JSON"}})
        result = self.parse(update)
        if isinstance(result, str):
            return WebhookResponse(400, {"error": {"code": "unparseable", "message": result}})
        if result is None:
            return WebhookResponse(200, {"ok": True, "ignored": True})
        stored = await self.sink(result)
        return WebhookResponse(200, {"ok": True, "message_id": getattr(stored, "message_id",
                                                                       None)})

    def parse(self, update: Any) -> InboundMessage | str | None:
        """The message to store, None to ignore, or the reason it cannot be parsed."""
        try:
            result = normalise(update, AccountId(self.account.id), self.bot_id)
        except UnparseableUpdate as exc:
            return str(exc)
        if isinstance(result, InboundMessage):
            return result
        log.info("telegram account %s: ignored update: %s", self.account.id, result.reason)
        return None

    async def start(self) -> None:
        if self.account.mode == "polling" and self.db is not None and self._poller is None:
            self._poller = Poller(self, self.db)
            self._poller.start()

    async def stop(self) -> None:
        if self._poller is not None:
            await self._poller.stop()
            self._poller = None
        if self._initialised:
            with contextlib.suppress(Exception):
                await self.bot.shutdown()
            self._initialised = False

    async def send(self, outbound: OutboundMessage) -> Delivery:
        params: dict[str, Any] = {}
        if outbound.reply_to:
            _, _, message_id = outbound.reply_to.rpartition(":")
            if message_id.isdigit():
                params["reply_parameters"] = ReplyParameters(
                    message_id=int(message_id), allow_sending_without_reply=True)
        entities = [MessageEntity(type=e.type, offset=e.offset, length=e.length)
                    for e in outbound.entities]
        try:
            await self._ready()
            sent = await self.bot.send_message(chat_id=int(outbound.thread_key),
                                               text=outbound.text, entities=entities or None,
                                               **params)
        except (tg.TelegramError, ValueError) as exc:
            raise classify(exc) from exc
        return Delivery(external_id=f"{sent.chat.id}:{sent.message_id}", platform_ts=sent.date)

    async def fetch_file(self, file_id: str) -> tuple[bytes, str | None]:
        """The file's bytes and its path's name, fetched with the bot token kept server-side."""
        try:
            await self._ready()
            file = await self.bot.get_file(file_id)
            data = await file.download_as_bytearray()
        except tg.TelegramError as exc:
            raise classify(exc) from exc
        name = (file.file_path or "").rpartition("/")[2] or None
        return bytes(data), name

    async def poll_once(self, offset: int | None, timeout: int) -> tuple[list[Any], int | None]:
        """One getUpdates call: the raw updates and the offset that confirms them."""
        await self._ready()
        kwargs: dict[str, Any] = {"timeout": timeout, "allowed_updates": ALLOWED_UPDATES}
        if offset is not None:
            kwargs["offset"] = offset
        with warnings.catch_warnings():  # the raw payloads are what we want, not Update objects
            warnings.simplefilter("ignore")
            raws = await self.bot.do_api_request("getUpdates", api_kwargs=kwargs,
                                                 read_timeout=timeout + 10)
        if not isinstance(raws, list):
            raise tg.TelegramError("getUpdates did not return a list")
        ids = [u["update_id"] for u in raws if isinstance(u, dict)
               and isinstance(u.get("update_id"), int)]
        return raws, (max(ids) + 1 if ids else offset)
