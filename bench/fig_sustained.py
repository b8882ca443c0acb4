"""Figure 5 — sustained: ingest and replies at 80 % of capacity for minutes, together.

Capacity first, measured the way the run then loads the server: ingest (the existing-
conversations workload of figure 1, closed loop at concurrency 64) and replies (8 posters,
closed loop) at the same time for `capacity_seconds`. Each counts only finished work: the
webhooks acknowledged, divided by the time until everything that follows ingest (summaries,
search entries, SLA clocks) had caught up with them; the replies the sandbox received, divided
by the time until the last arrived. (A capacity of ingest alone from a short closed loop counts
acknowledgements while the followers fall behind, and one of each alone adds up to more than
the one database core does: run together at 80 % of those, the server was overloaded from the
first minute.) Then both run open loop at 80 % of that capacity for `seconds`: webhooks at a
fixed rate, replies at a fixed rate. Each minute reports what was acknowledged and delivered in
it and its latencies (a reply's from its POST to the sandbox, and its POST alone); the rate is
held when every minute keeps up with the arrivals (a backlog that grows shows as a minute that
delivered less than arrived). After the run, `drained_after` says how long what follows ingest
took to catch up: a backlog the acknowledgements hid would show there.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import aiohttp

from bench.cluster import Cluster
from bench.fig_ingest import CHAT_BASE, Chats, _background_drained, _post, closed_loop
from bench.fig_replies import _post as post_reply
from bench.fig_replies import _received, ensure_conversations
from bench.stats import summary_ms

POSTERS = 8


async def joint_capacity(session: aiohttp.ClientSession, cluster: Cluster, gen: Chats,
                         existing: list[int], convs: list[str],
                         seconds: float) -> dict[str, Any]:
    """Ingest and replies in closed loops together; each rate counts finished work only."""
    markers: list[str] = []
    start = time.monotonic()

    async def poster(k: int) -> None:
        i = 0
        while time.monotonic() - start < seconds:
            marker = f"cap-{k}-{i}-{secrets.token_hex(3)}"
            if await post_reply(cluster, convs[(k + POSTERS * i) % len(convs)], marker,
                                f"第 {i} 条") == 202:
                markers.append(marker)
            i += 1

    ingest, *_ = await asyncio.gather(
        closed_loop(session, cluster, gen.workload_b(existing), 64, seconds=seconds),
        *(poster(k) for k in range(POSTERS)))
    drained = await _background_drained(cluster, sum(gen.sent.values()))
    followed = time.monotonic()
    last, delivered = start, 0
    for marker in markers:
        arrived = await _received(cluster, marker, 120)
        if arrived is not None:
            delivered += 1
            last = max(last, arrived)
    return {"seconds": seconds, "acked": ingest["acked"],
            "ack_only_per_s": ingest["updates_per_s"],
            "followers_caught_up_s": round(followed - start, 1), "drained_after": drained,
            "ingest_per_s": round(ingest["acked"] / (followed - start), 1),
            "replies_accepted": len(markers), "replies_delivered": delivered,
            "replies_per_s": round(delivered / max(last - start, 0.001), 1)}


async def run(cluster: Cluster, *, seconds: float = 600.0, chats: int = 1000,
              share: float = 0.8, capacity_seconds: float = 30.0) -> dict[str, Any]:
    gen = Chats()
    existing = [CHAT_BASE + 5_000_000 + i for i in range(chats)]
    out: dict[str, Any] = {"seconds": seconds, "share_of_capacity": share}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await closed_loop(session, cluster, [gen.to(c) for c in existing], 64)  # the chats
        await _background_drained(cluster, sum(gen.sent.values()))
        convs = await ensure_conversations(cluster, 40)
        cap = await joint_capacity(session, cluster, gen, existing, convs, capacity_seconds)
        out["capacity"] = cap
        ingest_rate = float(cap["ingest_per_s"]) * share
        reply_rate = float(cap["replies_per_s"]) * share
        minutes: list[dict[str, Any]] = []
        acks: list[tuple[float, float]] = []  # (when acked, latency)
        delivered: list[tuple[float, float]] = []
        accepted: list[tuple[float, float]] = []  # (when accepted, POST latency)
        errors: dict[str, int] = {}
        tasks: set[asyncio.Task[None]] = set()
        updates = gen.workload_b(existing)
        start = time.monotonic()

        async def one_webhook() -> None:
            status, took = await _post(session, cluster, next(updates))
            if status == 200:
                acks.append((time.monotonic(), took))
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

        async def one_reply(i: int) -> None:
            marker = f"sus-{i}-{secrets.token_hex(3)}"
            t0 = time.monotonic()
            status = await post_reply(cluster, convs[i % len(convs)], marker, f"持续 {i}")
            accepted.append((time.monotonic(), time.monotonic() - t0))
            if status != 202:
                errors[f"reply {status}"] = errors.get(f"reply {status}", 0) + 1
                return
            arrived = await _received(cluster, marker, 120)
            if arrived is not None:
                delivered.append((arrived, arrived - t0))

        async def schedule(rate: float, make: Any) -> None:
            i = 0
            while time.monotonic() - start < seconds:
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(make(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1

        await asyncio.gather(schedule(ingest_rate, lambda _i: one_webhook()),
                             schedule(reply_rate, one_reply))
        await asyncio.gather(*tasks)
        out["drained_after"] = await _background_drained(cluster, sum(gen.sent.values()))
        for minute in range(int(seconds // 60) or 1):
            lo, hi = start + minute * 60, start + (minute + 1) * 60
            in_acks = [lat for at, lat in acks if lo <= at < hi]
            in_replies = [lat for at, lat in delivered if lo <= at < hi]
            in_accepts = [lat for at, lat in accepted if lo <= at < hi]
            minutes.append({"minute": minute + 1,
                            "ingest_per_s": round(len(in_acks) / 60, 1),
                            "ingest_p99_ms": summary_ms(in_acks)["p99_ms"],
                            "replies_per_s": round(len(in_replies) / 60, 1),
                            "reply_p95_ms": summary_ms(in_replies)["p95_ms"],
                            "reply_accepted_p95_ms": summary_ms(in_accepts)["p95_ms"]})
        out.update({
            "ingest_target_per_s": round(ingest_rate, 1),
            "replies_target_per_s": round(reply_rate, 1), "minutes": minutes,
            "errors": errors,
            "held": all(m["ingest_per_s"] >= 0.95 * ingest_rate and
                        m["replies_per_s"] >= 0.9 * reply_rate for m in minutes),
        })
    return out
