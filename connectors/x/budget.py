"""What an X account costs this month, and how often it may poll to stay inside a budget. Pure.

Since 2026-02-06 X sells API access per use (https://docs.x.com/x-api/getting-started/pricing):
reads are charged per resource returned (an empty answer costs nothing), writes per request,
and a resource read twice in one UTC day is charged once. The defaults are that page's rates
("Posts: Read $0.005", "DM Event: Read $0.010", "Content: Create $0.015", "Content: Create
(with URL) $0.200", "DM Interaction: Create $0.015" as of 2026-12); each is also an
account option (`PRICE_OPTIONS`, e.g. `price_dm_read_usd`), so a team whose contract or whose
month's rates differ sets its own without a release.

The usage counters (kept per month by the host, `AccountRuntime.record_usage`):
`post_reads`, `dm_reads` (billable resources returned), `posts`, `posts_with_url` (X bills a
post with a URL at a far higher rate), `dms` (writes), and `polls` (rounds, not billed: they
give the cost of one round).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_PRICES: dict[str, float] = {
    "post_reads": 0.005,
    "dm_reads": 0.010,
    "posts": 0.015,
    "posts_with_url": 0.200,
    "dms": 0.015,
}
PRICE_OPTIONS: dict[str, str] = {  # account option → usage counter it prices
    "price_post_read_usd": "post_reads",
    "price_dm_read_usd": "dm_reads",
    "price_post_usd": "posts",
    "price_post_with_url_usd": "posts_with_url",
    "price_dm_usd": "dms",
}
READ_KEYS = ("post_reads", "dm_reads")
WRITE_KEYS = ("posts", "posts_with_url", "dms")
MAX_WAIT_S = 6 * 3600.0  # a spent budget polls four times a day, so the inbox is never blind


def prices(overrides: object = None) -> dict[str, float]:
    table = dict(DEFAULT_PRICES)
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            if key in table and isinstance(value, int | float) and not isinstance(value, bool) \
                    and value >= 0:
                table[key] = float(value)
    return table


def prices_of(options: Mapping[str, object]) -> dict[str, float]:
    """The price table of an account: its `price_*_usd` options over the defaults."""
    return prices({key: options[name] for name, key in PRICE_OPTIONS.items()
                   if options.get(name) is not None})


def spend(usage: Mapping[str, int], table: Mapping[str, float], keys: tuple[str, ...] | None
          = None) -> float:
    return sum(table.get(k, 0.0) * max(0, int(usage.get(k, 0)))
               for k in (keys if keys is not None else tuple(table)))


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    now = now.astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(now.year, now.month)[1]
    end = start.replace(day=days, hour=23, minute=59, second=59, microsecond=999999)
    return start, end


def month_key(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class Pace:
    """The poll interval for the budget and the figures behind it."""

    wait_s: float
    spent_usd: float
    projected_usd: float
    stretched: bool
    exhausted: bool = False


def pace(*, base_s: float, budget_usd: float | None, usage: Mapping[str, int],
         table: Mapping[str, float], now: datetime, default_round_usd: float) -> Pace:
    """The interval that keeps the month's projected spend inside `budget_usd`.

    Writes (replies) do not depend on how often we poll: their rate so far is carried forward
    to the month's end. Reads are what polling buys, so they are counted per round (the
    month's reads / polls, or `default_round_usd` before the first poll) — conservative, as a
    part of them is traffic that a slower poll reads all the same. The budget left after the
    carried-forward writes buys a number of rounds, spread over the time left in the month.
    """
    start, end = month_bounds(now)
    elapsed = max(1.0, (now - start).total_seconds())
    left = max(0.0, (end - now).total_seconds())
    spent = spend(usage, table)
    writes = spend(usage, table, WRITE_KEYS)
    reads = spend(usage, table, READ_KEYS)
    polls = max(0, int(usage.get("polls", 0)))
    round_usd = reads / polls if polls and reads > 0 else default_round_usd
    at_base = spent + writes / elapsed * left + round_usd * left / max(base_s, 1.0)
    if budget_usd is None:
        return Pace(base_s, spent, at_base, stretched=False)
    room = budget_usd - spent - writes / elapsed * left
    if room <= 0:
        return Pace(MAX_WAIT_S, spent, spent + writes / elapsed * left, stretched=True,
                    exhausted=True)
    if round_usd <= 0:
        return Pace(base_s, spent, at_base, stretched=False)
    rounds = room / round_usd
    needed = left / rounds if rounds > 0 else MAX_WAIT_S
    wait = min(MAX_WAIT_S, max(base_s, math.ceil(needed)))
    projected = spent + writes / elapsed * left + round_usd * left / wait
    return Pace(wait, spent, projected, stretched=wait > base_s)
