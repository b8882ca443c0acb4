"""Figure 6 — GET /api/reports over the counters of 1M messages, through `switchboard serve`.

The counters (`report_counters`: one document per UTC hour and grouping, see
measures/counters.py) are seeded straight into the served database, built by the same code the
follower uses (`measures.counters.Tally`) from synthetic conversations, and inserted with
`insert_many`: playing 1M messages through the real follower would take longer than the whole
benchmark budget (the embedded server takes ~1,000–2,000 writes/s), and what a report reads is
the buckets, whichever way they were written. The data set: `messages` ÷ 8 conversations over
90 days, 3 teams of 10 agents on 3 channels, each with its messages in and out, a first
response (lognormal, median ~4 min), most resolved (median ~2 h), a tenth reopened, a third
surveyed and most of those answered, SLA outcomes.

Measured over HTTP with the admin's token, `calls` times each after a warm-up: the last 30 days
per day (what the reports page asks for), the last 90 days per agent, and the 30 days as CSV;
p50/p95/max and the number of bucket documents the report read. Target: under a second.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import BulkWriteError

from bench.cluster import Cluster
from bench.stats import summary_ms
from measures import db as measures_db
from measures.counters import Tally

SPAN_DAYS = 90
PER_CONVERSATION = 8
TEAMS = [f"team-{t}" for t in range(3)]
AGENTS = {team: [f"{team}-agent-{a}" for a in range(10)] for team in TEAMS}
CHANNELS = ("telegram", "slack", "email")


def seed_tally(messages: int, now: datetime, seed: int = 6) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    for _ in range(max(1, messages // PER_CONVERSATION)):
        team = rng.choice(TEAMS)
        dims = {"team_id": team, "agent_id": rng.choice(AGENTS[team]),
                "channel": rng.choice(CHANNELS)}
        opened = now - timedelta(seconds=rng.random() * SPAN_DAYS * 86400)
        tally.add(opened, dims, opened=1, messages_in=PER_CONVERSATION // 2)
        first = opened + timedelta(seconds=int(rng.lognormvariate(5.5, 1.0)))
        tally.add(first, dims, messages_out=PER_CONVERSATION // 2, sla_n=1,
                  sla_hit=int((first - opened).total_seconds() <= 900))
        tally.observe(first, dims, "fr", (first - opened).total_seconds())
        if rng.random() < 0.85:
            resolved = first + timedelta(seconds=int(rng.lognormvariate(8.8, 1.0)))
            tally.add(resolved, dims, resolved=1, sla_n=1,
                      sla_hit=int((resolved - opened).total_seconds() <= 8 * 3600))
            tally.observe(resolved, dims, "res", (resolved - opened).total_seconds())
            if rng.random() < 0.1:
                tally.add(resolved + timedelta(hours=3), dims, reopened=1)
            elif rng.random() < 0.33:
                tally.add(resolved, dims, surveys=1)
                if rng.random() < 0.7:
                    tally.add(resolved, dims, csat_n=1, csat_sum=rng.randint(1, 5))
    return tally


async def _time(cluster: Cluster, path: str, calls: int) -> dict[str, Any]:
    assert cluster.http is not None
    async with cluster.http.get(cluster.url + path) as resp:  # warm-up
        assert resp.status == 200, await resp.text()
        await resp.read()
    times = []
    rows = 0
    for _ in range(calls):
        t0 = time.perf_counter()
        async with cluster.http.get(cluster.url + path) as resp:
            body = await resp.read()
            assert resp.status == 200, body[:200]
        times.append(time.perf_counter() - t0)
        rows = body.count(b'"key"') or body.count(b"\n") - 1
    return {**summary_ms(times), "path": path, "rows": rows}


async def run(cluster: Cluster, *, messages: int, calls: int = 10) -> dict[str, Any]:
    db = cluster.db
    await measures_db.ensure_indexes(db)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    t0 = time.perf_counter()
    docs = seed_tally(messages, now).documents()
    built = time.perf_counter() - t0
    await db.report_counters.delete_many({})
    t0 = time.perf_counter()
    for i in range(0, len(docs), 1000):
        chunk = docs[i:i + 1000]
        try:
            await db.report_counters.insert_many(chunk, ordered=False)
        except BulkWriteError as exc:  # this hour's buckets, written by the running follower
            errors = exc.details.get("writeErrors", [])  # since the delete: the seed's win
            if any(e.get("code") != 11000 for e in errors):
                raise
            for e in errors:
                doc = chunk[int(e["index"])]
                await db.report_counters.replace_one({"_id": doc["_id"]}, doc, upsert=True)
    inserted = time.perf_counter() - t0
    today = now.date()
    month = f"from={today - timedelta(days=29)}&to={today}"
    quarter = f"from={today - timedelta(days=SPAN_DAYS - 1)}&to={today}"
    out: dict[str, Any] = {
        "method": "GET /api/reports over HTTP (admin token) against switchboard serve; "
                  "counters seeded with measures.counters.Tally + insert_many",
        "messages": messages, "conversations": max(1, messages // PER_CONVERSATION),
        "bucket_documents": len(docs), "seed_seconds": round(built + inserted, 1),
        "month_by_day_documents": await db.report_counters.count_documents(
            {"part": "all", "hour": {"$gte": now - timedelta(days=30)}}),
    }
    out["month_by_day"] = await _time(cluster, f"/api/reports?{month}&group_by=day&tz=Asia/"
                                               "Shanghai", calls)
    out["quarter_by_agent"] = await _time(cluster, f"/api/reports?{quarter}&group_by=agent"
                                                   "&tz=UTC", calls)
    out["month_csv"] = await _time(cluster, f"/api/reports?{month}&group_by=team&format=csv"
                                            "&tz=Asia/Shanghai", calls)
    print(f"  reports: {len(docs):,} buckets for {messages:,} messages measured", flush=True)
    return out


def table_rows(f: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    labels = (("month_by_day", "30 days per day (Asia/Shanghai)"),
              ("quarter_by_agent", "90 days per agent"), ("month_csv", "30 days per team, CSV"))
    for key, label in labels:
        s = f[key]
        rows.append(("6 reports", f"{label}, {f['messages']:,} messages' counters "
                     f"({f['bucket_documents']:,} documents)",
                     f"p50/p95/max {s['p50_ms']:.0f}/{s['p95_ms']:.0f}/{s['max_ms']:.0f} ms",
                     "< 1 s" + (" — met" if s["p95_ms"] < 1000 else " — missed")))
    return rows


if __name__ == "__main__":  # pragma: no cover
    async def _main() -> None:
        async with Cluster() as cluster:
            print(await run(cluster, messages=20_000, calls=3))

    asyncio.run(_main())
