"""Long polling `getUpdates` for accounts in polling mode, as a `PollingSource`.

The host runs it (connectors/hosting.py): it holds the account's lease, stores each batch, and
only then saves the offset that confirms it, so a crash repeats at most one batch. The next
`getUpdates` with that offset tells Telegram to forget the confirmed updates
(https://core.telegram.org/bots/api#getupdates).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from telegram import Bot
from telegram import error as tg

from connectors.base import AccountRuntime, Batch
from inbox.models import InboundMessage, Interaction, TransientError

log = logging.getLogger(__name__)

POLL_TIMEOUT = 20
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]

Parse = Callable[[Any], InboundMessage | Interaction | str | None]
Answer = Callable[[Interaction], Any]


class TelegramPolling:
    name = "getUpdates"

    def __init__(self, bot: Bot, ready: Callable[[], Any], parse: Parse, account_id: str,
                 classify: Callable[[Exception], Exception], *,
                 poll_timeout: int = POLL_TIMEOUT, answer: Answer | None = None) -> None:
        self.bot = bot
        self._ready = ready
        self.parse = parse
        self.account_id = account_id
        self.classify = classify
        self.poll_timeout = poll_timeout
        self.answer = answer
        self.rounds = 0

    async def fetch(self, runtime: AccountRuntime) -> Batch:
        offset = await runtime.load_cursor()
        try:
            raws, next_offset = await self._get_updates(offset)
        except tg.Conflict as exc:
            raise TransientError("a webhook is set for this bot, so Telegram refuses long "
                                 "polling", code="webhook_set") from exc
        except tg.TelegramError as exc:
            raise self.classify(exc) from exc
        events: list[InboundMessage | Interaction] = []
        for raw in raws:
            parsed = self.parse(raw)
            if isinstance(parsed, InboundMessage | Interaction):
                events.append(parsed)
                if isinstance(parsed, Interaction) and self.answer is not None:
                    # the button stops spinning now; a press stored twice (a repeated
                    # round) is the same interaction id, stored once
                    await self.answer(parsed)
            elif isinstance(parsed, str):
                log.warning("telegram account %s: dropped unparseable update: %s",
                            self.account_id, parsed)
        self.rounds += 1
        cursors = {"default": next_offset} if raws else {}
        return Batch(events=events, cursors=cursors)

    async def _get_updates(self, offset: int | None) -> tuple[list[Any], int | None]:
        """One getUpdates call: the raw updates and the offset that confirms them."""
        await self._ready()
        kwargs: dict[str, Any] = {"timeout": self.poll_timeout,
                                  "allowed_updates": ALLOWED_UPDATES}
        if offset is not None:
            kwargs["offset"] = offset
        with warnings.catch_warnings():  # the raw payloads are what we want, not Update objects
            warnings.simplefilter("ignore")
            raws = await self.bot.do_api_request("getUpdates", api_kwargs=kwargs,
                                                 read_timeout=self.poll_timeout + 10)
        if not isinstance(raws, list):
            raise tg.TelegramError("getUpdates did not return a list")
        ids = [u["update_id"] for u in raws if isinstance(u, dict)
               and isinstance(u.get("update_id"), int) and not isinstance(u["update_id"], bool)]
        return raws, (max(ids) + 1 if ids else offset)
