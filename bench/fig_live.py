"""Figure 3 — live updates: webhook 200 → event on `/api/events`, with 100 SSE clients open.

100 clients (one aiohttp session, one connection each, API token) open the stream with the
default subscription (conversation and message events). Then webhooks are posted one at a time,
a little apart; for every client the arrival of the `message` event carrying that update's
`external_id` is stamped. Latency is arrival minus the moment the webhook's 200 was read (so an
event that beats the 200 counts as 0), and arrival minus the moment the request was sent.

The server's RSS is read from /proc/<pid>/status (VmRSS) of the `switchboard serve` process
before the clients connect, with them connected, and after the events; the embedded database is
its own process and is reported separately, not included.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from bench.cluster import Cluster, rss_kib
from bench.fig_ingest import SECRET_HEADER
from bench.stats import sse_events, summary_ms, telegram_update

CHAT_BASE = 660_000_000


async def _client(session: aiohttp.ClientSession, url: str, token: str, ready: asyncio.Event,
                  connected: list[int], arrivals: dict[str, list[float]],
                  counts: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with session.get(url, headers=headers) as resp:
        connected.append(1 if resp.status == 200 else 0)
        if len(connected) >= counts["clients"]:
            ready.set()
        if resp.status != 200:
            counts["refused"] = counts.get("refused", 0) + 1
            return
        async for event, data in sse_events(resp.content):
            if event == "message":
                ext = data.get("external_id")
                if ext is not None:
                    arrivals.setdefault(ext, []).append(time.monotonic())
            counts[f"{event}_events"] = counts.get(f"{event}_events", 0) + 1


async def run(cluster: Cluster, *, clients: int = 100, updates: int = 150,
              gap: float = 0.05) -> dict[str, Any]:
    pid = cluster.server_pid
    rss_before = rss_kib(pid)
    arrivals: dict[str, list[float]] = {}
    counts: dict[str, int] = {"clients": clients}
    connected: list[int] = []
    ready = asyncio.Event()
    url = f"{cluster.url}/api/events"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    tasks = [asyncio.create_task(_client(session, url, cluster.token, ready, connected,
                                         arrivals, counts)) for _ in range(clients)]
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        await asyncio.sleep(1.0)
        rss_connected = rss_kib(pid)
        sent: dict[str, tuple[float, float]] = {}
        hook = cluster.webhook_url
        headers = {SECRET_HEADER: cluster.webhook_secret, "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as poster:
            for i in range(updates):
                chat = CHAT_BASE + i % 50
                update = telegram_update(5_000_000 + i, chat, 1_000 + i, f"实时消息 {i}")
                t_send = time.monotonic()
                async with poster.post(hook, data=json.dumps(update).encode(),
                                       headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
                t_ok = time.monotonic()
                if ok:
                    sent[f"{chat}:{1_000 + i}"] = (t_send, t_ok)
                await asyncio.sleep(gap)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(  # noqa: ASYNC110 - counts kept by 100 tasks
                len(arrivals.get(k, [])) for k in sent) < len(sent) * sum(connected):
            await asyncio.sleep(0.1)
        rss_after = rss_kib(pid)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
    from_ok: list[float] = []
    from_send: list[float] = []
    missing = 0
    for ext, (t_send, t_ok) in sent.items():
        got = arrivals.get(ext, [])
        missing += max(sum(connected) - len(got), 0)
        for t in got:
            from_ok.append(max(t - t_ok, 0.0))
            from_send.append(t - t_send)
    db_pid = cluster.db_pid
    return {
        "clients": clients, "connected": sum(connected), "webhooks": len(sent),
        "deliveries_expected": len(sent) * sum(connected), "deliveries_missing": missing,
        "latency_from_200": summary_ms(from_ok), "latency_from_send": summary_ms(from_send),
        "events": {k: v for k, v in counts.items() if k.endswith("_events")},
        "server_rss_mib": {"before_clients": _mib(rss_before), "with_clients": _mib(rss_connected),
                           "after_events": _mib(rss_after)},
        "database_rss_mib": _mib(rss_kib(db_pid)) if db_pid else None,
        "rss_note": "VmRSS of the `switchboard serve` process only; the embedded database is a "
                    "separate process (database_rss_mib), not included",
    }


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)
