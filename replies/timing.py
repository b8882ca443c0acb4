"""Time for the outbox: the database's clock (inbox.clock) and the retry back-off.

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

from inbox.clock import Clock, DbClock, FixedClock

__all__ = ["Clock", "DbClock", "FixedClock", "backoff_delay"]

log = logging.getLogger(__name__)


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
