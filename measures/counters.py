"""Pre-aggregated report counters: one `report_counters` document per UTC hour, `$inc`-ed
behind ingest by the follower and the status hooks.

An hour's document holds the same counters four times, once per way a report groups them:
`all` (per day), `channel.<name>`, `team.<id>` and `agent.<id>` (`none` when a conversation
has no team or agent). Each holds plain counts (`opened`, `resolved`, `reopened`,
`messages_in`, `messages_out`, `sla_hit`, `sla_n`, `csat_sum`, `csat_n`, `surveys`) and two
exact histograms of whole seconds (`fr.<s>`: first-response times, `res.<s>`: resolution
times): a histogram keyed by the second gives the same percentile as the raw values, and stays
small (an hour of one team's conversations).

Why hourly documents and not aggregation over the messages: the embedded server reads every
document a filter matches, so a report over 1M messages would read 1M messages; here a month's
report reads 720 documents through one index range, whichever way it groups, and only the part
it groups by (a projection). Why one document per hour and not one per (hour, team, agent,
channel): that is what the first version did, and a month at 1M messages was ~50,000 bucket
documents to read, several seconds on the embedded server. Updates are what cost on that server
(~500/s even batched), so the increments of one batch of events are merged per hour in memory
(`Tally`) and written as one `bulk_write` of upserts: mostly one, for the current hour.
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
    """Increments gathered in memory, written by `flush` as one upsert per hour."""

    def __init__(self) -> None:
        self.hours: dict[str, datetime] = {}
        self.incs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def _paths(self, at: datetime, dims: Mapping[str, Any]) -> tuple[str, list[str]]:
        hour = hour_of(at)
        key = hour_id(hour)
        self.hours[key] = hour
        return key, ["all", *(f"{name}.{safe_key(dims.get(field))}"
                              for name, field in DIMENSIONS.items())]

    def add(self, at: datetime, dims: Mapping[str, Any], **counts: int) -> None:
        key, prefixes = self._paths(at, dims)
        for name, n in counts.items():
            if name not in COUNTS:
                raise ValueError(f"not a counter: {name}")
            for prefix in prefixes:
                self.incs[key][f"{prefix}.{name}"] += n

    def observe(self, at: datetime, dims: Mapping[str, Any], histogram: str,
                seconds: float) -> None:
        if histogram not in HISTOGRAMS:
            raise ValueError(f"not a histogram: {histogram}")
        key, prefixes = self._paths(at, dims)
        for prefix in prefixes:
            self.incs[key][f"{prefix}.{histogram}.{max(int(seconds), 0)}"] += 1

    def __bool__(self) -> bool:
        return bool(self.incs)

    def updates(self) -> list[UpdateOne]:
        return [UpdateOne({"_id": key}, {"$setOnInsert": {"hour": self.hours[key]},
                                         "$inc": dict(incs)}, upsert=True)
                for key, incs in self.incs.items() if incs]

    def documents(self) -> list[dict[str, Any]]:
        """The documents `flush` would leave in an empty collection (for seeding)."""
        out = []
        for key, incs in self.incs.items():
            doc: dict[str, Any] = {"_id": key, "hour": self.hours[key]}
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
        self.incs.clear()
        return len(ops)
