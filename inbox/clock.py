"""The database's clock, for leases shared between processes.

Leases (outbox claims, poller ownership) are compared by every process that touches them, so
they must be read from one clock: the database's (`hello.localTime`), sampled now and then and
advanced in between with this process's monotonic clock. Machines' wall clocks never mix.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from inbox.db import Database

RESAMPLE_SECONDS = 60.0


class DbClock:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._base: datetime | None = None
        self._mono = 0.0

    async def now(self) -> datetime:
        mono = time.monotonic()
        if self._base is None or mono - self._mono > RESAMPLE_SECONDS:
            hello = await self.db.client.admin.command("hello")
            local = hello.get("localTime")
            if isinstance(local, datetime):
                self._base = local if local.tzinfo else local.replace(tzinfo=UTC)
            else:
                self._base = datetime.now(UTC)
            self._mono = time.monotonic()
            return self._base
        return self._base + timedelta(seconds=mono - self._mono)
