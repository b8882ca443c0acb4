"""Pre-aggregated report counters: one `report_counters` document per UTC hour and (team,
agent, channel), `$inc`-ed behind ingest by the follower and the status hooks.

A bucket holds plain counts (`opened`, `resolved`, `reopened`, `messages_in`,
`messages_out`, `sla_hit`, `sla_n`, `csat_sum`, `csat_n`, `surveys`) and two exact
histograms of whole seconds (`fr.<s>`: first-response times, `res.<s>`: resolution times).
A histogram keyed by the second is exact (a percentile read from it is the percentile of the
raw values) and stays small: a bucket holds an hour of one team's agent on one channel.

Why buckets and not aggregation over the messages: the embedded server reads every document
a filter matches, so a report over 1M messages would read 1M messages; an hour bucket per
(team, agent, channel) turns a month's report into a few thousand small documents read
through one index range. Updates are what cost on that server (~500/s even batched), so the
increments of one batch of events are merged per bucket in memory (`Tally`) and written as
one `bulk_write` of upserts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne

from inbox.db import Database

COUNTS = ("opened", "resolved", "reopened", "messages_in", "messages_out", "sla_hit", "sla_n",
          "csat_sum", "csat_n", "surveys")
HISTOGRAMS = ("fr", "res")
NONE = "none"  # the key of "no team" / "no agent"


def hour_of(at: datetime) -> datetime:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def bucket_id(hour: datetime, team: str | None, agent: str | None, channel: str | None) -> str:
    return f"{hour:%Y%m%d%H}|{team or NONE}|{agent or NONE}|{channel or NONE}"


class Tally:
    """Increments gathered in memory, written by `flush` as one upsert per bucket."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, Any]] = {}
        self.incs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, at: datetime, dims: Mapping[str, Any], **counts: int) -> None:
        key = self._key(at, dims)
        for name, n in counts.items():
            if name not in COUNTS:
                raise ValueError(f"not a counter: {name}")
            self.incs[key][name] += n

    def observe(self, at: datetime, dims: Mapping[str, Any], histogram: str,
                seconds: float) -> None:
        if histogram not in HISTOGRAMS:
            raise ValueError(f"not a histogram: {histogram}")
        key = self._key(at, dims)
        self.incs[key][f"{histogram}.{max(int(seconds), 0)}"] += 1

    def _key(self, at: datetime, dims: Mapping[str, Any]) -> str:
        hour = hour_of(at)
        team, agent, channel = dims.get("team_id"), dims.get("agent_id"), dims.get("channel")
        key = bucket_id(hour, team, agent, channel)
        if key not in self.buckets:
            self.buckets[key] = {"hour": hour, "team": team or NONE, "agent": agent or NONE,
                                 "channel": channel or NONE}
        return key

    def __bool__(self) -> bool:
        return bool(self.incs)

    def updates(self) -> list[UpdateOne]:
        return [UpdateOne({"_id": key}, {"$setOnInsert": self.buckets[key],
                                         "$inc": dict(incs)}, upsert=True)
                for key, incs in self.incs.items() if incs]

    async def flush(self, db: Database) -> int:
        ops = self.updates()
        if ops:
            await db.report_counters.bulk_write(ops, ordered=False)
        self.buckets.clear()
        self.incs.clear()
        return len(ops)
