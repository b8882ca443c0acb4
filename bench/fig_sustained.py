"""Figure 5 — sustained: ingest and replies at 80 % of capacity for minutes, together.

Capacity first: ingest's (the existing-conversations workload of figure 1, closed loop at
concurrency 64) and replies' (posted as fast as 8 posters can, counted when the sandbox has
them). Then both run open loop at 80 % of their capacity for `seconds`: webhooks at a fixed
rate, replies at a fixed rate. Each minute reports what was acknowledged and delivered in it
and its latencies; the rate is held when every minute keeps up with the arrivals (a backlog
that grows shows as a minute that delivered less than arrived).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import aiohttp

from bench.cluster import Cluster
from bench.fig_ingest import CHAT_BASE, Chats, _post, closed_loop
from bench.fig_replies import _post as post_reply
from bench.fig_replies import _received, ensure_conversations
from bench.stats import summary_ms


async def reply_capacity(cluster: Cluster, convs: list[str], n: int = 120) -> float:
    markers = [f"cap-{i}-{secrets.token_hex(3)}" for i in range(n)]
    todo = iter(enumerate(markers))
    start = time.monotonic()

    async def poster() -> None:
        for i, marker in todo:
            await post_reply(cluster, convs[i % len(convs)], marker, f"第 {i} 条")

    await asyncio.gather(*(poster() for _ in range(8)))
    last = start
    for marker in markers:
        arrived = await _received(cluster, marker, 60)
        if arrived is not None:
            last = max(last, arrived)
    return n / max(last - start, 0.001)


async def run(cluster: Cluster, *, seconds: float = 600.0, chats: int = 1000,
              share: float = 0.8) -> dict[str, Any]:
    gen = Chats()
    existing = [CHAT_BASE + 5_000_000 + i for i in range(chats)]
    out: dict[str, Any] = {"seconds": seconds, "share_of_capacity": share}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await closed_loop(session, cluster, [gen.to(c) for c in existing], 64)  # the chats
        cap = await closed_loop(session, cluster, gen.workload_b(existing), 64, seconds=15)
        convs = await ensure_conversations(cluster, 40)
        reply_cap = await reply_capacity(cluster, convs)
        out["capacity"] = {"ingest_per_s": cap["updates_per_s"],
                           "replies_per_s": round(reply_cap, 1)}
        ingest_rate = float(cap["updates_per_s"]) * share
        reply_rate = reply_cap * share
        minutes: list[dict[str, Any]] = []
        acks: list[tuple[float, float]] = []  # (when acked, latency)
        delivered: list[tuple[float, float]] = []
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
        for minute in range(int(seconds // 60) or 1):
            lo, hi = start + minute * 60, start + (minute + 1) * 60
            in_acks = [lat for at, lat in acks if lo <= at < hi]
            in_replies = [lat for at, lat in delivered if lo <= at < hi]
            minutes.append({"minute": minute + 1,
                            "ingest_per_s": round(len(in_acks) / 60, 1),
                            "ingest_p99_ms": summary_ms(in_acks)["p99_ms"],
                            "replies_per_s": round(len(in_replies) / 60, 1),
                            "reply_p95_ms": summary_ms(in_replies)["p95_ms"]})
        out.update({
            "ingest_target_per_s": round(ingest_rate, 1),
            "replies_target_per_s": round(reply_rate, 1), "minutes": minutes,
            "errors": errors,
            "held": all(m["ingest_per_s"] >= 0.95 * ingest_rate and
                        m["replies_per_s"] >= 0.9 * reply_rate for m in minutes),
        })
    return out
