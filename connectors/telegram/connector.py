"""Telegram through python-telegram-bot: webhook, long polling, send, check, files.

The bot token lives only inside the `telegram.Bot`; our webhook URL carries the account id and
Telegram proves itself with the `X-Telegram-Bot-Api-Secret-Token` header
(https://core.telegram.org/bots/api#setwebhook). Telegram waits about a minute for a webhook's
answer and delivers again after a non-2xx one.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
    ReplyParameters,
)
from telegram import error as tg
from telegram.request import HTTPXRequest

from connectors.base import (
    AccountContext,
    AccountInfo,
    AccountRuntime,
    AttachmentStream,
    ConnectError,
    ConnectorBase,
    CredentialField,
    HttpRequest,
    HttpResponse,
    Notice,
    chunks_of,
)
from connectors.rendering import signature_line, with_greeting
from connectors.telegram import normalise as normaliser
from connectors.telegram.errors import classify
from connectors.telegram.polling import ALLOWED_UPDATES, TelegramPolling
from connectors.telegram.strings import STRINGS
from inbox.models import (
    AccountId,
    AgentIdentity,
    Delivery,
    InboundMessage,
    Interaction,
    Measure,
    OutboundMessage,
    PermanentError,
    RenderContext,
    Rendered,
    TextEntity,
    utf16_len,
)

log = logging.getLogger(__name__)

DEFAULT_API = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
TEXT_LIMIT = 4096  # UTF-16 code units: https://core.telegram.org/bots/api#sendmessage
CALLBACK_DATA_LIMIT = 64  # bytes: https://core.telegram.org/bots/api#inlinekeyboardbutton


class TelegramConnector(ConnectorBase):
    platform: ClassVar[str] = "telegram"
    modes: ClassVar[tuple[str, ...]] = ("webhook", "polling")
    webhook_modes: ClassVar[tuple[str, ...]] = ("webhook",)
    ack_deadline: ClassVar[float] = 60.0
    strings: ClassVar[Mapping[str, Mapping[str, str]]] = STRINGS
    normaliser: ClassVar[Any] = normaliser
    native_buttons: ClassVar[bool] = True  # an inline keyboard; presses are callback queries
    secret_patterns: ClassVar[tuple[str, ...]] = (r"\d{5,}:[A-Za-z0-9_-]{30,}",)
    credential_fields: ClassVar[tuple[CredentialField, ...]] = (
        CredentialField("bot_token", "Bot token", secret=True,
                        pattern=r"^[0-9]{3,15}:[A-Za-z0-9_-]{20,}$",
                        help="The token @BotFather gave you, like 123456:ABC-DEF…"),
    )

    def __init__(self, account: AccountContext, runtime: AccountRuntime) -> None:
        super().__init__(account, runtime)
        base = (account.api_base_url or DEFAULT_API).rstrip("/")
        self.bot = Bot(
            account.secret("bot_token"), base_url=f"{base}/bot",
            base_file_url=f"{base}/file/bot",
            request=HTTPXRequest(connection_pool_size=32, read_timeout=10, write_timeout=10,
                                 connect_timeout=5, pool_timeout=5),
            get_updates_request=HTTPXRequest(connection_pool_size=2, read_timeout=40,
                                             connect_timeout=5),
        )
        self._initialised = False
        self.bot_id = account.platform_id

    async def _ready(self) -> None:
        if not self._initialised:
            await self.bot.initialize()
            self._initialised = True

    # ------------------------------------------------------------------ lifecycle

    async def check(self) -> AccountInfo:
        try:
            me = await self.bot.get_me()
        except (tg.InvalidToken, tg.Forbidden) as exc:
            raise ConnectError("invalid_auth", "Telegram refused this bot token.") from exc
        except tg.TimedOut as exc:
            raise ConnectError("cannot_connect", "Telegram did not answer in time.") from exc
        except tg.BadRequest as exc:
            raise ConnectError("invalid_auth", "Telegram refused the request.") from exc
        except tg.NetworkError as exc:
            raise ConnectError("cannot_connect", "Could not reach the Telegram API.") from exc
        except tg.TelegramError as exc:
            raise ConnectError("unknown", "Telegram answered unexpectedly.") from exc
        self.bot_id = str(me.id)
        return AccountInfo(platform_id=str(me.id), username=me.username,
                           display_name=me.first_name)

    async def on_create(self) -> None:
        """Webhook mode: point Telegram at our URL with the account's secret. Polling mode:
        remove any webhook, since Telegram refuses getUpdates while one is set."""
        try:
            if self.account.mode == "webhook":
                if not self.account.webhook_url or not self.account.webhook_secret:
                    raise ConnectError("unknown", "the account has no webhook URL or secret")
                await self.bot.set_webhook(
                    self.account.webhook_url,
                    secret_token=self.account.webhook_secret.get_secret_value(),
                    allowed_updates=ALLOWED_UPDATES)
            else:
                await self.bot.delete_webhook()
        except tg.TelegramError as exc:
            raise ConnectError("cannot_connect", f"Telegram refused the webhook setup: "
                               f"{classify(exc).human}") from exc

    async def on_delete(self) -> None:
        with contextlib.suppress(tg.TelegramError):
            await self.bot.delete_webhook()

    async def close(self) -> None:
        if self._initialised:
            with contextlib.suppress(Exception):
                await self.bot.shutdown()
            self._initialised = False

    # ------------------------------------------------------------------ inbound

    def verify(self, headers: Mapping[str, str]) -> bool:
        expected = self.account.webhook_secret
        given = headers.get(SECRET_HEADER)
        if expected is None or given is None:
            return False
        return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())

    async def handle_webhook(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse.error(405, "method_not_allowed", "Telegram posts updates")
        if not self.verify(request.headers):
            return HttpResponse.error(401, "bad_signature", "missing or wrong secret token")
        try:
            update = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return HttpResponse.error(400, "bad_json", "body is not JSON")
        result = self.parse(update)
        if isinstance(result, str):
            return HttpResponse.error(400, "unparseable", result)
        if result is None:
            return HttpResponse.of_json(200, {"ok": True, "ignored": True})
        (stored,) = await self.runtime.sink([result])
        if isinstance(result, Interaction):
            await self.answer(result)
        return HttpResponse.of_json(200, {"ok": True, "message_id": stored.message_id})

    async def answer(self, press: Interaction) -> None:
        """`answerCallbackQuery`, so the customer's button stops spinning
        (https://core.telegram.org/bots/api#answercallbackquery). Best effort: an unanswered
        query only spins until Telegram gives up on it."""
        if not press.external_id:
            return
        try:
            await self._ready()
            await self.bot.answer_callback_query(press.external_id)
        except (tg.TelegramError, ValueError) as exc:
            log.info("telegram account %s: could not answer a button press: %s",
                     self.account.id, type(exc).__name__)

    def parse(self, update: Any) -> InboundMessage | Interaction | str | None:
        """The message or button press to store, None to ignore, or the reason it cannot be
        parsed."""
        try:
            result = normaliser.normalise_update(update, AccountId(self.account.id),
                                                 self.bot_id)
        except normaliser.UnparseableUpdate as exc:
            return str(exc)
        if isinstance(result, InboundMessage | Interaction):
            return result
        log.info("telegram account %s: ignored update: %s", self.account.id, result.reason)
        return None

    def inbound(self) -> TelegramPolling | None:
        if self.account.mode != "polling":
            return None
        return TelegramPolling(self.bot, self._ready, self.parse, self.account.id, classify,
                               answer=self.answer)

    # ------------------------------------------------------------------ outbound

    def render(self, identity: AgentIdentity, text: str, context: RenderContext) -> Rendered:
        """A bot cannot change its sender name, so the reply ends with the signature line, the
        agent's name in bold through a `bold` entity (offsets in UTF-16 code units,
        https://core.telegram.org/api/entities), sent without parse_mode, so nothing the agent
        types is ever read as markup."""
        body = with_greeting(identity, text)
        line, spans = signature_line(identity)
        buttons = tuple(b for b in context.buttons
                        if len(b.data.encode()) <= CALLBACK_DATA_LIMIT)
        if not line.strip():
            return Rendered(text=body, shown_name=identity.name, buttons=buttons)
        prefix = f"{body}\n\n" if body else ""
        base = utf16_len(prefix)
        entities = tuple(
            TextEntity("bold", base + utf16_len(line[:start]), utf16_len(line[start:end]))
            for start, end in spans if end > start)
        return Rendered(text=prefix + line, entities=entities, shown_name=identity.name,
                        buttons=buttons)

    def measure(self, text: str, context: RenderContext) -> Measure:
        return Measure(used=utf16_len(text), limit=TEXT_LIMIT, unit="utf16")

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
            chat_id = int(outbound.thread_key)
        except ValueError:
            raise PermanentError("This conversation has no Telegram chat to answer in.",
                                 code="no_chat") from None
        if outbound.buttons:  # one row: a survey's 1–5
            params["reply_markup"] = InlineKeyboardMarkup([[
                InlineKeyboardButton(b.label, callback_data=b.data) for b in outbound.buttons]])
        try:
            await self._ready()
            sent = await self.bot.send_message(chat_id=chat_id, text=outbound.text,
                                               entities=entities or None, **params)
        except (tg.TelegramError, ValueError) as exc:
            raise classify(exc) from exc
        return Delivery(external_id=f"{sent.chat.id}:{sent.message_id}", platform_ts=sent.date)

    async def fetch_attachment(self, attachment: Mapping[str, Any]) -> AttachmentStream:
        """The file's bytes, fetched with the bot token kept server-side (getFile, then the
        file path on the file host). Bot API files are at most 20 MB, so they fit in memory."""
        file_id = attachment.get("file_id")
        if not file_id:
            raise PermanentError("This attachment has no file on Telegram.", code="no_file")
        try:
            await self._ready()
            file = await self.bot.get_file(str(file_id))
            data = bytes(await file.download_as_bytearray())
        except tg.TelegramError as exc:
            raise classify(exc) from exc
        name = (file.file_path or "").rpartition("/")[2] or None
        return AttachmentStream(chunks=chunks_of(data), mime=attachment.get("mime"),
                                name=attachment.get("name") or name, size=len(data))

    def notices(self, snapshot: Mapping[str, Any]) -> list[Notice]:
        if snapshot.get("mode") == "polling":
            return [Notice("notice.polling")]
        return []
