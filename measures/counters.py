"""Pre-aggregated report counters: per UTC hour, one `report_counters` document for each way a
report groups them (`part`: "all" for per day, "channel", "team", "agent"), `$inc`-ed behind
ingest by the follower and the status hooks.

A document's `c` maps a key (the channel, the team's or agent's id, "all"; `none` when a
conversation has no team or agent) to its counters: plain counts (`opened`, `resolved`,
`reopened`, `messages_in`, `messages_out`, `sla_hit`, `sla_n`, `csat_sum`, `csat_n`, `surveys`)
and two exact histograms of whole seconds (`fr.<s>`: first-response times, `res.<s>`:
resolution times). A histogram keyed by the second gives the same percentile as the raw
values, and stays small (an hour of one grouping's conversations).

Why hourly documents and not aggregation over the messages: the embedded server reads every
document a filter matches, so a report over 1M messages would read 1M messages; here a month's
report reads 720 small documents through one index range. Why one document per (hour,
grouping) and not per (hour, team, agent, channel): a month at 1M messages was then ~50,000
documents to read; one document per hour holding every grouping was 720, but ~9 KB each, and
the embedded server reads whole documents whatever the projection (0.9 s for a month,
measured): split by grouping, a report reads only the grouping it shows. A grouping other than
the day also has one document per whole UTC day (`part` "agent:day"): a report per agent needs
hours only at the two ends of its period, where local midnight cuts a UTC day, and reads whole
days in between (90 days per agent: ~130 documents instead of 2,160). Updates are what cost
on that server (~500/s even batched), so the increments of one batch of events are merged in
memory (`Tally`) and written as one `bulk_write` of upserts: seven, for the current hour.
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
DIMENSIONS = {"channel": "channel", "team": "team_id", "agent": "agent_id"}
NONE = "none"  # the key of "no team" / "no agent"
DAILY = ":day"  # the part of a grouping's whole-UTC-day documents ("agent:day")


def hour_of(at: datetime) -> datetime:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_id(hour: datetime) -> str:
    return f"{hour:%Y%m%d%H}"


def safe_key(value: Any) -> str:
    """A dimension's value as a field name: no dots, no leading `$`."""
    text = str(value) if value else NONE
    return text.replace(".", "_").replace("$", "_") or NONE


class Tally:
    """Increments gathered in memory, written by `flush` as one upsert per (hour, part)."""

    def __init__(self) -> None:
        self.hours: dict[str, datetime] = {}
        self._ids: dict[datetime, tuple[str, str]] = {}  # an hour → its and its day's ids
        self.incs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def _paths(self, at: datetime, dims: Mapping[str, Any]) -> list[tuple[str, str]]:
        hour = hour_of(at)
        ids = self._ids.get(hour)
        if ids is None:  # formatting the ids was a few % of the follower's time, per message
            day = hour.replace(hour=0)
            ids = self._ids[hour] = (hour_id(hour), hour_id(day))
            self.hours[ids[0]], self.hours[ids[1]] = hour, day
        key, day_key = ids
        paths = [(f"{key}|all", "c.all")]
        for name, field in DIMENSIONS.items():
            prefix = f"c.{safe_key(dims.get(field))}"
            paths += [(f"{key}|{name}", prefix), (f"{day_key}|{name}{DAILY}", prefix)]
        return paths

    def add(self, at: datetime, dims: Mapping[str, Any], **counts: int) -> None:
        for name, n in counts.items():
            if name not in COUNTS:
                raise ValueError(f"not a counter: {name}")
            for doc_id, prefix in self._paths(at, dims):
                self.incs[doc_id][f"{prefix}.{name}"] += n

    def observe(self, at: datetime, dims: Mapping[str, Any], histogram: str,
                seconds: float) -> None:
        if histogram not in HISTOGRAMS:
            raise ValueError(f"not a histogram: {histogram}")
        for doc_id, prefix in self._paths(at, dims):
            self.incs[doc_id][f"{prefix}.{histogram}.{max(int(seconds), 0)}"] += 1

    def __bool__(self) -> bool:
        return bool(self.incs)

    def _fixed(self, doc_id: str) -> dict[str, Any]:
        key, _, part = doc_id.partition("|")
        return {"hour": self.hours[key], "part": part}

    def updates(self) -> list[UpdateOne]:
        return [UpdateOne({"_id": doc_id}, {"$setOnInsert": self._fixed(doc_id),
                                            "$inc": dict(incs)}, upsert=True)
                for doc_id, incs in self.incs.items() if incs]

    def documents(self) -> list[dict[str, Any]]:
        """The documents `flush` would leave in an empty collection (for seeding)."""
        out = []
        for doc_id, incs in self.incs.items():
            doc: dict[str, Any] = {"_id": doc_id, **self._fixed(doc_id)}
            for path, n in incs.items():
                node = doc
                *parents, leaf = path.split(".")
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = n
            out.append(doc)
        return out

    async def flush(self, db: Database) -> int:
        ops = self.updates()
        if ops:
            await db.report_counters.bulk_write(ops, ordered=False)
        self.hours.clear()
        self._ids.clear()
        self.incs.clear()
        return len(ops)
