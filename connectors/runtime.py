"""The host's side of the contract: the `AccountRuntime` a connector gets for its account.

Everything a runtime keeps lives in the database (`inbox.accounts`), so it holds across
restarts and is shared by every process: cursors, health, rate-limit pauses, usage counters,
refreshed credentials, a small cache. Events go to an `EventSink`, which the composition root
builds: messages, edits, deletes and reactions into the inbox; delivery reports to the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from connectors.base import AccountState, StoreResult
from inbox.accounts import AccountStore, month_key, safe_key
from inbox.blobs import Blobs
from inbox.clock import Clock
from inbox.models import (
    Author,
    DeliveryReport,
    InboundEvent,
    InboundMessage,
    Interaction,
    MessageDeleted,
    ReactionChanged,
)
from inbox.secrets import CredentialBox
from inbox.store import Store

log = logging.getLogger(__name__)

TOUCH_EVERY = 10.0
PAUSES_FRESH = 1.0

EventSink = Callable[[Sequence[InboundEvent]], Awaitable[list[StoreResult]]]
Enricher = Callable[[Author], Awaitable[Author | None]]
HealthListener = Callable[[str, str, str | None], Awaitable[None]]
"""(account_id, new state, previous state) after a change of an account's health."""


class HostRuntime:
    """One account's runtime. Health is written only when it changes (remembered here), so a
    connector may report on every round at no cost. The account's shared pauses are read at
    most once a second (`PAUSES_FRESH`): every send asks for them, and under load each read
    waits its turn at the database; a pause this process sets is known at once, another
    process's within the second (a send in that second meets the platform's own 429)."""

    def __init__(self, account_id: str, *, sink: EventSink, accounts: AccountStore,
                 box: CredentialBox, blobs: Blobs, clock: Clock, store: Store | None = None,
                 on_health: HealthListener | None = None) -> None:
        self._account_id = account_id
        self._sink = sink
        self.accounts = accounts
        self.box = box
        self.blobs = blobs
        self.clock = clock
        self.on_health = on_health
        self._health: tuple[str, str | None, str | None] | None = None
        self._touched = -TOUCH_EVERY
        self.enricher: Enricher | None = None
        self.store = store
        self._enriching: set[asyncio.Task[None]] = set()
        self.last_results: list[StoreResult] = []
        self._pauses: dict[str, Any] = {}  # as last read from the database
        self._own_pauses: dict[str, Any] = {}  # set here: known at once, whatever a read says
        self._pauses_read = -PAUSES_FRESH

    def __repr__(self) -> str:
        return f"HostRuntime(account={self._account_id!r})"

    @property
    def account_id(self) -> str:
        return self._account_id

    async def sink(self, events: Sequence[InboundEvent]) -> list[StoreResult]:
        if not events:
            return []
        results = await self._sink(events)
        self.last_results = results
        if self.enricher is not None:
            for event, result in zip(events, results, strict=True):
                if isinstance(event, InboundMessage) and result.created:
                    self._enrich_later(event, result)
        mono = time.monotonic()
        if mono - self._touched >= TOUCH_EVERY:  # activity, not a write per message
            self._touched = mono
            await self.accounts.touch_inbound(self._account_id, self.clock.now())
        return results

    async def load_cursor(self, name: str = "default") -> Any:
        return await self.accounts.load_cursor(self._account_id, name)

    async def save_cursor(self, value: Any, name: str = "default") -> None:
        await self.accounts.save_cursors(self._account_id, {name: value})

    async def report_health(self, state: AccountState, error: str | None = None, *,
                            code: str | None = None) -> None:
        key = (state, code, error)
        if key == self._health:
            return
        before = await self.accounts.set_health(self._account_id, state, code=code,
                                                message=error, at=self.clock.now())
        self._health = key
        if before is not None:
            previous = before.get("status", "active")
            if previous != state:
                log.info("account %s: %s → %s%s", self._account_id, previous, state,
                         f" ({code}: {error})" if error else "")
            if self.on_health is not None:
                await self.on_health(self._account_id, state, previous)

    def _enrich_later(self, event: InboundMessage, result: StoreResult) -> None:
        """After the acknowledgement: ask the connector for the author's profile and apply it
        to the contact and the message (a failure only leaves the payload's own name)."""
        async def enrich() -> None:
            assert self.enricher is not None and self.store is not None
            try:
                profile = await self.enricher(event.author)
                if profile is not None:
                    await self.store.apply_profile(self._account_id, profile,
                                                   message_id=result.message_id,
                                                   conversation_id=result.conversation_id)
            except Exception as exc:
                log.info("account %s: no profile for %s: %s", self._account_id,
                         event.author.user_id, type(exc).__name__)

        task = asyncio.create_task(enrich())
        self._enriching.add(task)
        task.add_done_callback(self._enriching.discard)

    async def settle(self) -> None:
        """Wait for the enrichments still running (tests, shutdown)."""
        while self._enriching:
            await asyncio.gather(*self._enriching, return_exceptions=True)

    def forget_health(self) -> None:
        """The stored state changed elsewhere (an admin fixed the credentials)."""
        self._health = None

    async def save_credentials(self, updates: Mapping[str, str]) -> None:
        doc = await self.accounts.get(self._account_id)
        current = {k: v.get_secret_value() for k, v in self.box.open(doc["credentials"]).items()}
        current.update({k: str(v) for k, v in updates.items()})
        await self.accounts.update(self._account_id, {"credentials": self.box.seal(current)})

    async def pause(self, seconds: float, scope: str = "account") -> None:
        until = self.clock.now() + timedelta(seconds=max(seconds, 0.0))
        await self.accounts.pause(self._account_id, scope, until)
        key = safe_key(scope)
        self._own_pauses[key] = max(self._own_pauses.get(key, until), until)

    async def paused_for(self, scope: str = "account") -> float:
        if time.monotonic() - self._pauses_read >= PAUSES_FRESH:
            self._pauses_read = time.monotonic()
            self._pauses = await self.accounts.pauses(self._account_id)
        pauses = dict(self._pauses)
        for name, until in self._own_pauses.items():
            pauses[name] = max(pauses.get(name, until), until)
        now = self.clock.now()
        wanted = {safe_key(scope), "account"}
        left = [(until - now).total_seconds() for name, until in pauses.items()
                if name in wanted and until > now]
        return max(left, default=0.0)

    async def record_usage(self, counts: Mapping[str, int]) -> None:
        await self.accounts.record_usage(self._account_id, month_key(self.clock.now()), counts)

    async def usage(self, month: str | None = None) -> dict[str, int]:
        return await self.accounts.usage(self._account_id, month or month_key(self.clock.now()))

    async def save_info(self, updates: Mapping[str, Any]) -> None:
        await self.accounts.save_info(self._account_id, updates)

    async def cache_get(self, key: str) -> Any:
        return await self.accounts.cache_get(self._account_id, key, self.clock.now())

    async def cache_set(self, key: str, value: Any, ttl_seconds: float) -> None:
        await self.accounts.cache_set(self._account_id, key, value,
                                      self.clock.now() + timedelta(seconds=ttl_seconds))

    async def store_blob(self, data: bytes, *, name: str | None, mime: str | None) -> str:
        return await self.blobs.put(data, name=name, mime=mime, account_id=self._account_id)

    async def now(self) -> Any:
        return await self.clock.fresh()


def reveal(credentials: Mapping[str, SecretStr]) -> dict[str, str]:
    """Plain values, for sealing again (never for logging)."""
    return {k: v.get_secret_value() for k, v in credentials.items()}


ReportHandler = Callable[[DeliveryReport], Awaitable[StoreResult]]


class EventRouter:
    """The `EventSink` of every runtime: messages, edits, deletes, reactions and button presses
    into the inbox; a delivery report to whoever keeps the outbox (`on_report`)."""

    def __init__(self, store: Store, on_report: ReportHandler | None = None) -> None:
        self.store = store
        self.on_report = on_report

    async def __call__(self, events: Sequence[InboundEvent]) -> list[StoreResult]:
        # concurrently, so one batch's messages share one group commit (ingest keeps order)
        return list(await asyncio.gather(*(self._one(e) for e in events)))

    async def _one(self, event: InboundEvent) -> StoreResult:
        if isinstance(event, InboundMessage):
            r = await self.store.ingest(event)
            return StoreResult(r.message_id, r.conversation_id, r.created)
        if isinstance(event, MessageDeleted):
            found = await self.store.apply_delete(event)
        elif isinstance(event, ReactionChanged):
            found = await self.store.apply_reaction(event)
        elif isinstance(event, Interaction):
            found = await self.store.record_interaction(event)
            return StoreResult(found.message_id, found.conversation_id or None, found.created)
        elif isinstance(event, DeliveryReport):
            if self.on_report is None:
                log.warning("account %s: a delivery report arrived and nothing handles it",
                            event.account_id)
                return StoreResult(None, None, False)
            return await self.on_report(event)
        else:
            raise TypeError(f"not an inbound event: {type(event).__name__}")
        if found is None:
            log.info("account %s: %s for a message never stored (%s)", event.account_id,
                     type(event).__name__, event.external_id)
            return StoreResult(None, None, False)
        return StoreResult(found.message_id, found.conversation_id, False)
