"""Long-polling `getUpdates` for accounts in polling mode.

Exactly one process polls an account: it holds a lease in the account document (renewed on
every round, timed by the database's clock). The offset is persisted only after the updates of a
round are stored, so a crash repeats at most that round, and ingest's idempotency absorbs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from telegram import error as tg

from inbox.clock import DbClock
from inbox.db import Database
from inbox.models import InboundMessage

if TYPE_CHECKING:
    from connectors.telegram.connector import TelegramConnector

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=45)
POLL_TIMEOUT = 20


class Poller:
    def __init__(self, connector: TelegramConnector, db: Database,
                 poll_timeout: int = POLL_TIMEOUT, owner: str | None = None) -> None:
        self.connector = connector
        self.db = db
        self.clock = DbClock(db)
        # One owner per connector, not per start: a lease renewal still in flight when a stop
        # cancelled it may land after the stop released the lease, and must not lock out the
        # same process's next start for a whole lease.
        self.owner = owner or connector.poller_owner
        self.poll_timeout = poll_timeout
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    @property
    def _filter(self) -> dict[str, Any]:
        return {"_id": ObjectId(self.connector.account.id)}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"poller-{self.connector.account.id}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(Exception):
            await self.db.accounts.update_one({**self._filter, "poller.owner": self.owner},
                                              {"$set": {"poller": None}})

    async def take_lease(self) -> bool:
        now = await self.clock.now()
        doc = await self.db.accounts.find_one_and_update(
            {**self._filter, "$or": [{"poller": None}, {"poller.owner": self.owner},
                                     {"poller.lease_until": {"$lt": now}}]},
            {"$set": {"poller": {"owner": self.owner, "lease_until": now + LEASE}}},
            projection={"cursor": 1})
        return doc is not None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if not await self.take_lease():
                    await asyncio.sleep(LEASE.total_seconds() / 3)
                    continue
                await self.round()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(60.0, 0.5 * 2 ** min(failures, 7)) * random.uniform(0.5, 1.0)  # noqa: S311
                reason = ("a webhook is set for this bot" if isinstance(exc, tg.Conflict)
                          else type(exc).__name__)
                log.warning("telegram account %s: polling failed (%s); retrying in %.1fs",
                            self.connector.account.id, reason, delay)
                with contextlib.suppress(Exception):
                    await self.db.accounts.update_one(
                        self._filter, {"$set": {"last_error": f"polling failed: {reason}",
                                                "last_error_at": await self.clock.now()}})
                await asyncio.sleep(delay)

    async def round(self) -> int:
        """Fetch, store, then confirm one batch of updates; returns how many were stored."""
        account = await self.db.accounts.find_one(self._filter, {"cursor": 1})
        offset = account.get("cursor") if account else None
        raws, next_offset = await self.connector.poll_once(offset, self.poll_timeout)
        messages: list[InboundMessage] = []
        for raw in raws:
            parsed = self.connector.parse(raw)
            if isinstance(parsed, InboundMessage):
                messages.append(parsed)
            elif isinstance(parsed, str):
                log.warning("telegram account %s: dropped unparseable update: %s",
                            self.connector.account.id, parsed)
        # Together, so they share one group commit; in order, so the batch keeps their order.
        await asyncio.gather(*[self.connector.sink(m) for m in messages])
        stored = len(messages)
        if raws:
            fields: dict[str, Any] = {"cursor": next_offset}
            if stored:
                fields["last_inbound_at"] = await self.clock.now()
            await self.db.accounts.update_one({**self._filter, "poller.owner": self.owner},
                                              {"$set": fields})
        self.rounds += 1
        return stored
