"""Time for the outbox: one clock every process agrees on, and the retry back-off.

Leases only work if every worker process reads "now" from the same clock: a host whose clock
runs 40 s fast would treat every other process's 30 s lease as expired and send twice. So every
delivery time (`due_at`, `lease_until`, `sent_at`...) is on the **database's clock**. The
server's clock is read with `hello` (`localTime`, millisecond precision) and kept as an offset
from this process's clock; the error is about half a round trip (a few ms here), far below a
lease. `DbClock.sync` runs when a worker starts and every few minutes after.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from inbox.db import Database

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sync(self, db: Database) -> None: ...


class DbClock:
    """The database server's clock, read at each sync and advanced with `time.monotonic()`.

    Leases are compared across processes, so they must come from one clock; and a step of this
    host's wall clock (NTP, a VM resume) between syncs must not move them, so between syncs the
    time advances monotonically from the last reading instead of following the wall clock.
    """

    def __init__(self) -> None:
        self._base: datetime | None = None
        self._mono = 0.0
        self.synced = False

    @property
    def offset(self) -> timedelta:
        """How far the database's clock is from this host's wall clock (for diagnostics)."""
        return self.now() - datetime.now(UTC) if self.synced else timedelta(0)

    def now(self) -> datetime:
        if self._base is None:
            return datetime.now(UTC)
        return self._base + timedelta(seconds=time.monotonic() - self._mono)

    async def sync(self, db: Database) -> None:
        """Read the server's clock; on failure keep the last reading (at first: the host's)."""
        try:
            t0 = time.monotonic()
            reply = await db.client.admin.command("hello")
            rtt = time.monotonic() - t0
        except Exception as exc:  # a failed sync must not stop deliveries
            log.warning("could not read the database clock: %s", type(exc).__name__)
            return
        server = reply.get("localTime")
        if not isinstance(server, datetime):
            log.warning("database has no localTime in hello; using this host's clock")
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=UTC)
        self._base, self._mono = server, t0 + rtt / 2
        self.synced = True


class FixedClock:
    """A clock that moves only when told to; for tests and benchmarks."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    async def sync(self, db: Database) -> None:
        return None


def backoff_delay(attempts: int, *, base: float, cap: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Seconds until the next attempt after `attempts` failed ones.

    Exponential with full jitter (uniform in [0, min(cap, base * 2^(attempts-1))]), so a burst
    of failures does not come back as a burst; but never sooner than the platform's
    `retry_after`, even when that exceeds the cap — asking again early only extends a ban.
    See https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/.
    """
    exp = min(cap, base * 2 ** max(attempts - 1, 0))
    jittered = (rng or random).uniform(0, exp)  # jitter, not cryptography
    return max(jittered, retry_after or 0.0)
