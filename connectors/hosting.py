"""Long-lived inbound, hosted once for every platform: long polling, websockets, IMAP IDLE.

A connector supplies a `PollingSource` ("fetch the next batch") or a `SessionSource` ("run the
session"); this module owns the rest, the same way for all of them:

- one owner across processes: a lease in the account document, renewed while the source runs
  (every process runs a runner per account; the others wait for the lease);
- cursors saved only after the batch is stored, and only while the lease is still ours, so a
  crash repeats at most one batch (which ingest's idempotency absorbs) and a process that lost
  its lease cannot move another owner's cursor;
- rate limits: `RateLimited` pauses the account (or the scope) in the database, and the runner
  waits it out; a pause set by another process is honoured before each round;
- errors: backoff with full jitter, the account's health `degraded` with the last error in words,
  `error` after many in a row, `needs_reauth` when the platform refuses the credentials; health
  clears on the next good round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Batch, Connector, InboundSource, PollingSource, SessionSource
from inbox.accounts import AccountStore
from inbox.clock import Clock
from inbox.models import CredentialsRefused, PermanentError, RateLimited

log = logging.getLogger(__name__)

LEASE_SECONDS = 45.0
ERROR_AFTER = 8  # consecutive failures before the state says `error`, not `degraded`
BACKOFF_CAP = 60.0
REAUTH_RETRY = 60.0
PROCESS = uuid.uuid4().hex[:12]


def backoff(failures: int, cap: float = BACKOFF_CAP) -> float:
    return min(cap, 0.5 * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0)  # noqa: S311


@dataclass
class RunnerStats:
    rounds: int = 0
    stored: int = 0
    failures: int = 0
    sessions: int = 0
    owner: bool = False
    last_error: str | None = None
    history: list[str] = field(default_factory=list)


class Runner:
    """Runs one account's inbound source while this process holds the account's lease."""

    def __init__(self, connector: Connector, source: InboundSource, accounts: AccountStore,
                 clock: Clock, *, lease_seconds: float = LEASE_SECONDS,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.connector = connector
        self.source = source
        self.accounts = accounts
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.owner = f"{PROCESS}:{connector.account.id}"
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.stats = RunnerStats()

    @property
    def account_id(self) -> str:
        return self.connector.account.id

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=f"inbound-{self.account_id}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.accounts.release_lease(self.account_id, self.owner)
        self.stats.owner = False

    async def _wait(self, seconds: float) -> None:
        """Sleep, but wake at once for a stop."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _lease(self) -> bool:
        now = await self.clock.fresh()
        held = await self.accounts.take_lease(self.account_id, self.owner, now,
                                              self.lease_seconds)
        self.stats.owner = held
        return held

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.step()

    async def step(self) -> None:
        """One turn of the loop: take the lease, honour a pause, run one round or session,
        and deal with what went wrong (never raises but for cancellation)."""
        runtime = self.connector.runtime
        try:
            if not await self._lease():
                await self._wait(self.lease_seconds / 3)
                return
            paused = await runtime.paused_for(self.source.name)
            if paused > 0:
                await self._wait(paused)
                return
            if is_polling(self.source):
                await self._round(self.source)  # type: ignore[arg-type]
            else:
                await self._session(self.source)  # type: ignore[arg-type]
            self.stats.failures = 0
        except asyncio.CancelledError:
            raise
        except RateLimited as exc:
            await runtime.pause(exc.retry_after, exc.scope)
            await self._safe_report("degraded", exc.human, "rate_limited")
            await self._wait(exc.retry_after)
        except CredentialsRefused as exc:
            self.stats.last_error = exc.code
            await self._safe_report("needs_reauth", exc.human, exc.code)
            await self._wait(REAUTH_RETRY)
        except Exception as exc:
            await self._failed(exc)

    async def _failed(self, exc: Exception) -> None:
        self.stats.failures += 1
        human = getattr(exc, "human", None) or f"{type(exc).__name__}"
        code = getattr(exc, "code", None) or "inbound_failed"
        self.stats.last_error = human
        permanent = isinstance(exc, PermanentError)
        state = "error" if permanent or self.stats.failures >= ERROR_AFTER else "degraded"
        delay = backoff(self.stats.failures)
        log.warning("account %s: %s failed (%s); retrying in %.1f s", self.account_id,
                    self.source.name, human, delay)
        await self._safe_report(state, human, code)
        await self._wait(delay)

    async def _safe_report(self, state: str, human: str, code: str) -> None:
        with contextlib.suppress(Exception):
            await self.connector.runtime.report_health(state, human, code=code)  # type: ignore[arg-type]

    async def _round(self, source: PollingSource) -> None:
        runtime = self.connector.runtime
        batch: Batch = await source.fetch(runtime)
        if batch.events:
            await runtime.sink(batch.events)
            self.stats.stored += len(batch.events)
        if batch.cursors:
            saved = await self.accounts.save_cursors(self.account_id, batch.cursors,
                                                     owner=self.owner)
            if not saved:
                log.warning("account %s: lease lost during a round; cursor not saved",
                            self.account_id)
        if batch.usage:
            await runtime.record_usage(batch.usage)
        await self._note(batch.note)
        await runtime.report_health("active")
        self.stats.rounds += 1
        await self._wait(batch.wait_seconds)

    async def _note(self, note: str | None) -> None:
        if note != getattr(self, "_last_note", None):
            self._last_note = note
            await self.connector.runtime.save_info({"inbound_note": note})

    async def _session(self, source: SessionSource) -> None:
        """Run the session beside a lease keeper; losing the lease ends the session."""
        runtime = self.connector.runtime

        async def ready() -> None:
            self.stats.sessions += 1
            await runtime.report_health("active")

        session = asyncio.create_task(source.run(runtime, ready),
                                      name=f"session-{self.account_id}")
        keeper = asyncio.create_task(self._keep_lease(session))
        try:
            await session
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if not session.done():
                session.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await session
        self.stats.rounds += 1
        # a session that ended by itself (the platform closed it) is restarted after a breath
        await self._wait(0.5)

    async def _keep_lease(self, session: asyncio.Task[None]) -> None:
        while not session.done():
            await self._wait(self.lease_seconds / 3)
            try:
                held = await self._lease()
            except Exception as exc:  # the database is away: the session may go on for now
                log.warning("account %s: lease renewal failed: %s", self.account_id,
                            type(exc).__name__)
                continue
            if not held:
                log.warning("account %s: lease taken over; ending the session",
                            self.account_id)
                session.cancel()
                return


def is_polling(source: InboundSource) -> bool:
    """A polling source has `fetch`; a session source has `run` (the two Protocols)."""
    return callable(getattr(source, "fetch", None))


class InboundHost:
    """The runners of this process, one per account with long-lived inbound."""

    def __init__(self, accounts: AccountStore, clock: Clock, *,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.accounts = accounts
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.runners: dict[str, Runner] = {}

    async def start(self, connector: Connector) -> Runner | None:
        await self.stop(connector.account.id)
        source = connector.inbound()
        if source is None:
            return None
        runner = Runner(connector, source, self.accounts, self.clock,
                        lease_seconds=self.lease_seconds)
        self.runners[connector.account.id] = runner
        runner.start()
        return runner

    async def stop(self, account_id: str) -> None:
        runner = self.runners.pop(account_id, None)
        if runner is not None:
            await runner.stop()

    async def stop_all(self) -> None:
        runners, self.runners = list(self.runners.values()), {}
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
