"""The database's clock: the one clock every process agrees on, for leases and delivery times.

Leases (outbox claims, inbound sessions, rate-limit pauses) are compared by every process that
touches them, so they must come from one clock: a host whose clock runs 40 s fast would treat
every other process's 30 s lease as expired. The server's clock is read with `hello`
(`localTime`, millisecond precision) and kept as an offset; between readings time advances with
this process's monotonic clock, so a step of the host's wall clock (NTP, a VM resume) moves
nothing. The error is about half a round trip (a few ms here), far below any lease.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from inbox.db import Database

log = logging.getLogger(__name__)

RESAMPLE_SECONDS = 300.0


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sync(self, db: Database | None = None) -> None: ...

    async def fresh(self) -> datetime: ...


class DbClock:
    def __init__(self, db: Database | None = None) -> None:
        self.db = db
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

    async def sync(self, db: Database | None = None) -> None:
        """Read the server's clock; on failure keep the last reading (at first: the host's)."""
        db = db if db is not None else self.db
        if db is None:
            return
        self.db = db
        try:
            t0 = time.monotonic()
            reply = await db.client.admin.command("hello")
            rtt = time.monotonic() - t0
        except Exception as exc:  # a failed sync must not stop anything that reads the time
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

    async def fresh(self) -> datetime:
        """`now()`, reading the server again first when the last reading is old."""
        if not self.synced or time.monotonic() - self._mono > RESAMPLE_SECONDS:
            await self.sync()
        return self.now()


class FixedClock:
    """A clock that moves only when told to; for tests and benchmarks."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    async def sync(self, db: Database | None = None) -> None:
        return None

    async def fresh(self) -> datetime:
        return self.current
