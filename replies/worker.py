"""The delivery worker: one claimer loop per process feeding a bounded set of local send tasks.

Why one claimer: on the embedded database many clients racing for the same queue collapse its
throughput, while one loop that claims and hands messages to tasks does not. It claims as many
replies as it has free send slots in one round (`Outbox.claim_many`, a few commands whatever
their number), so delivery keeps up when every command waits behind ingest's writes. Several
processes may each run one worker; the outbox's compare-and-set claim keeps them apart.

Why per-account bookkeeping: a platform that rate-limits or fails for one account (one bot)
must not hold up the others. An account that answered 429 is not claimed for until its
retry-after has passed; one that keeps failing transiently is paused with a short growing
back-off; and no account may occupy more than `per_account` of the send slots, so slow 5xx
answers from one platform cannot starve the rest.

Shared with other processes, through the database: a platform's 429 pauses the account (or the
one method it limits) for every process (`AccountRuntime.pause`), and an account whose
credentials the platform refused is `needs_reauth`: its replies are not claimed (they wait
without burning attempts) until an admin fixes the credentials.

Latency: `enqueue` (and a finished reply releasing the next one in its conversation) calls
`wake()`, so an idle worker claims at once; a reply queued by another process wakes it through
the process's change feed (inbox/changes.py, outbox changes); an idle worker sleeps until the
next retry is due (a slow poll stays as a safety net, e.g. for a database without change
streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta

from connectors.base import Connector
from inbox.changes import ChangeFeed, HistoryLost
from inbox.models import (
    CredentialsRefused,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)
from replies.outbox import Claim, Outbox, outbound_of

log = logging.getLogger(__name__)

ConnectorLookup = Callable[[str], Awaitable[Connector]]
"""account_id → its connector; raises LookupError when the account no longer exists."""
Unavailable = Callable[[], Awaitable[set[str]]]
"""The accounts no process may send for now (credentials refused, paused as a whole)."""

ACCOUNT_REMOVED = "The channel account was removed"
UNEXPECTED = "Unexpected error while sending; will retry"
NO_ANSWER = "The platform did not answer in time; will retry"
_ACCOUNT_PAUSE_CAP = 30.0
UNAVAILABLE_EVERY = 1.0
LEASE_MARGIN = 0.2


class DeliveryWorker:
    def __init__(self, outbox: Outbox, connectors: ConnectorLookup, *, concurrency: int = 16,
                 per_account: int | None = None, poll_interval: float = 5.0,
                 send_timeout: float | None = None, clock_sync_interval: float = 300.0,
                 unavailable: Unavailable | None = None,
                 feed: ChangeFeed | None = None) -> None:
        self.outbox = outbox
        self.feed = feed
        self._own_feed: ChangeFeed | None = None
        self.connectors = connectors
        self.unavailable = unavailable
        self._shared: set[str] = set()
        self._shared_at = float("-inf")
        self.concurrency = max(1, concurrency)
        self.per_account = per_account or max(1, self.concurrency // 2)
        self.poll_interval = poll_interval
        # a send must end well inside its lease, or another process may take it and send again
        self.send_timeout = send_timeout or outbox.settings.lease_seconds * (1 - LEASE_MARGIN)
        self.clock_sync_interval = clock_sync_interval
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: Counter[str] = Counter()
        self._paused: dict[str, float] = {}  # account → monotonic time it may be claimed again
        self._failures: Counter[str] = Counter()
        self._runner: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._next_due: float | None = None  # monotonic time the next retry comes due
        self._stopping = False
        self.sent = 0
        outbox.subscribe(self.wake)

    def wake(self) -> None:
        """Something may be due now (an enqueue, a released follower): claim without waiting."""
        self._wake.set()

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping = False
        await self.outbox.sync_clock()
        self._runner = asyncio.create_task(self._run(), name="delivery-claimer")
        self._watcher = asyncio.create_task(self._watch(), name="delivery-watcher")

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop claiming, let sends in flight finish for `grace` s, then cancel the rest (their
        leases expire and another process, or the next start, retries them)."""
        self._stopping = True
        self._wake.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._runner is not None:
            await self._runner
            self._runner = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    # the claimer

    async def _run(self) -> None:
        next_sync = time.monotonic() + self.clock_sync_interval
        while not self._stopping:
            self._wake.clear()  # before claiming: a wake() during the claim is not lost
            if time.monotonic() >= next_sync:
                await self.outbox.sync_clock()
                next_sync = time.monotonic() + self.clock_sync_interval
            free = self.concurrency - len(self._tasks)
            if free > 0:
                try:
                    await self._refresh_shared()
                    claims = await self.outbox.claim_many(
                        free, exclude_accounts=self._excluded(), per_account=self.per_account,
                        busy=self._inflight)
                except Exception as exc:
                    log.warning("claiming replies failed: %s", type(exc).__name__)
                    await asyncio.sleep(self.poll_interval)
                    continue
                for claim in claims:
                    self._spawn(claim)
                if claims:
                    continue
                await self._learn_next_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_timeout())

    async def _watch(self) -> None:
        """Wake on every change of the outbox: a reply queued or released by any process."""
        feed = self.feed
        if feed is None:  # alone (tests, tools): a feed of its own
            feed = self._own_feed = ChangeFeed(self.outbox.db, ["outbox"])
            await feed.start()
        sub = feed.subscribe("delivery", ["outbox"], ["insert", "update", "replace"])
        try:
            self.wake()  # whatever was queued before the subscription
            while not self._stopping:
                try:
                    got = await sub.next_batch(None)
                except HistoryLost:
                    got = None
                if got is None or got.changes:
                    self.wake()
        finally:
            feed.unsubscribe(sub)
            if self._own_feed is not None:
                await self._own_feed.stop()
                self._own_feed = None

    async def _learn_next_due(self) -> None:
        """When the next pending reply comes due, so an idle worker sleeps until then."""
        try:
            when = await self.outbox.next_due()
        except Exception:
            self._next_due = None
            return
        ahead = (when - self.outbox.clock.now()).total_seconds() if when else 0.0
        self._next_due = time.monotonic() + ahead if ahead > 0 else None

    def _spawn(self, claim: Claim) -> None:
        self._inflight[claim.account_id] += 1
        task = asyncio.create_task(self._deliver(claim), name=f"deliver-{claim.message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot is free

    async def _refresh_shared(self) -> None:
        """Read the accounts other processes paused, or whose credentials were refused."""
        if self.unavailable is None or time.monotonic() - self._shared_at < UNAVAILABLE_EVERY:
            return
        self._shared_at = time.monotonic()
        self._shared = await self.unavailable()

    def _excluded(self) -> list[str]:
        now = time.monotonic()
        for account in [a for a, until in self._paused.items() if until <= now]:
            del self._paused[account]
        busy = [a for a, n in self._inflight.items() if n >= self.per_account]
        return sorted(set(self._paused) | set(busy) | self._shared)

    def _idle_timeout(self) -> float:
        timeout = self.poll_interval
        if self._paused:
            timeout = min(timeout, min(self._paused.values()) - time.monotonic())
        if self._next_due is not None:
            timeout = min(timeout, self._next_due - time.monotonic())
        if self._shared:  # an account held back by the database: look again soon
            timeout = min(timeout, UNAVAILABLE_EVERY)
        return max(timeout, 0.01)

    def _pause(self, account: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self._paused[account] = max(self._paused.get(account, 0.0), until)

    def paused_accounts(self) -> list[str]:
        """Accounts this worker is currently not claiming for (for /metrics and tests)."""
        now = time.monotonic()
        return sorted(a for a, until in self._paused.items() if until > now)

    # one send

    async def _deliver(self, claim: Claim) -> None:
        account = claim.account_id
        try:
            await self._attempt(claim)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the outbox write failed: the lease expires, it is retried
            log.warning("recording the delivery of reply %s failed: %s", claim.message_id,
                        type(exc).__name__)
        finally:
            self._inflight[account] -= 1
            if self._inflight[account] <= 0:
                del self._inflight[account]

    async def _attempt(self, claim: Claim) -> None:
        account = claim.account_id
        until = self._paused.get(account, 0.0) - time.monotonic()
        if until > 0:  # paused after this one was claimed: put it back, untried
            await self.outbox.defer(claim, self.outbox.clock.now() + timedelta(seconds=until))
            return
        try:
            connector = await self.connectors(account)
        except LookupError:
            log.warning("reply %s failed: account %s no longer exists", claim.message_id,
                        account)
            await self.outbox.mark_failed(claim, "account_removed", ACCOUNT_REMOVED)
            return
        except Exception as exc:
            log.warning("could not load account %s: %s", account, type(exc).__name__)
            await self._retry(claim, TransientError("The channel account could not be loaded",
                                                    code="account_unavailable"))
            return
        outbound = outbound_of(claim.doc)
        runtime = connector.runtime
        scope = connector.send_scope(outbound)
        waiting = await runtime.paused_for(scope)
        if waiting > 0:  # another process was told to slow down: put it back, untried
            if scope == "account":
                self._pause(account, waiting)
            await self.outbox.defer(claim, self.outbox.clock.now() + timedelta(seconds=waiting))
            return
        timeout = self._time_left(claim)
        if timeout <= 0:  # the claim waited too long to be sent safely: give it back, untried
            await self.outbox.defer(claim, self.outbox.clock.now())
            return
        try:
            async with asyncio.timeout(timeout):
                delivery = await connector.send(outbound)
        except RateLimited as exc:
            if exc.scope == "account":
                self._pause(account, exc.retry_after)
            await runtime.pause(exc.retry_after, exc.scope)
            await self._retry(claim, exc)
        except CredentialsRefused as exc:
            log.warning("account %s: the platform refused the credentials (%s); its replies "
                        "wait for new ones", account, exc.code)
            await runtime.report_health("needs_reauth", exc.human, code=exc.code)
            self._shared.add(account)
            await self.outbox.defer(claim, self.outbox.clock.now() + timedelta(seconds=1))
        except PermanentError as exc:
            log.warning("reply %s failed permanently on account %s: %s (%s)", claim.message_id,
                        account, exc.code, exc.human)
            await self.outbox.mark_failed(claim, exc.code, exc.human, exc.alternatives)
        except (TransientError, DeliveryError) as exc:
            self._failures[account] += 1
            self._pause(account, _account_pause(self._failures[account], self.outbox))
            await runtime.report_health("degraded", exc.human, code=exc.code)
            await self._retry(claim, exc)
        except TimeoutError:
            self._failures[account] += 1
            await self._retry(claim, TransientError(NO_ANSWER, code="timeout"))
        except Exception as exc:
            # the text of an arbitrary library exception may quote a URL with a token in it:
            # log the class name only
            log.warning("reply %s: unexpected %s from the %s connector", claim.message_id,
                        type(exc).__name__, claim.doc.get("platform"))
            await self._retry(claim, TransientError(UNEXPECTED, code="unexpected"))
        else:
            self._failures.pop(account, None)
            self.sent += 1
            await self.outbox.mark_sent(claim, delivery)
            await runtime.report_health("active")

    def _time_left(self, claim: Claim) -> float:
        """How long this send may take: `send_timeout`, and never closer than a fifth of the
        lease to its end — a batch's claims may wait for the rest of the round that took
        them, and a send that outlived its lease could be sent again by whoever takes the
        reply next."""
        lease_until = claim.doc["delivery"].get("lease_until")
        if lease_until is None:
            return self.send_timeout
        left = (lease_until - self.outbox.clock.now()).total_seconds() \
            - LEASE_MARGIN * self.outbox.settings.lease_seconds
        return min(self.send_timeout, left)

    async def _retry(self, claim: Claim, error: DeliveryError) -> None:
        state = await self.outbox.reschedule(claim, error)
        log.info("reply %s on account %s: %s (%s), now %s", claim.message_id,
                 claim.account_id, error.code, error.human, state)


def _account_pause(failures: int, outbox: Outbox) -> float:
    """Short, growing pause of an account after consecutive transient failures."""
    base = outbox.settings.backoff_base_seconds
    return float(min(_ACCOUNT_PAUSE_CAP, base * 2 ** (failures - 1)))
