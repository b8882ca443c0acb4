"""Figure 4 — replies: `POST /api/conversations/{id}/messages` → the sandbox Telegram has it.

Each reply's text carries a marker `[bench:<id>]`; the sandbox process stamps the CLOCK_MONOTONIC
time a `sendMessage` carrying it arrived (comparable with `time.monotonic()` here: same machine).

- Idle: replies one at a time, each waited for; latency = sandbox arrival − POST start.
- Sustained: the sandbox answers 429 (retry_after 1 s) to 10% of `sendMessage` calls at random;
  `replies` POSTs go out from `concurrency` loops over `conversations` conversations. Rate =
  replies / (last arrival − first POST). Exactly once is checked both ways: every marker
  arrived exactly once at the sandbox, and every reply is `sent` in the database with the
  platform's message id.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from bench.cluster import BOT_TOKEN, Cluster
from bench.fig_ingest import SECRET_HEADER
from bench.stats import summary_ms, telegram_update

CHAT_BASE = 770_000_000


async def ensure_conversations(cluster: Cluster, n: int) -> list[str]:
    """`n` Telegram conversations with one customer message each (via the webhook)."""
    assert cluster.http is not None
    headers = {SECRET_HEADER: cluster.webhook_secret}
    for i in range(n):
        update = telegram_update(8_000_000 + i, CHAT_BASE + i, 1, "请问可以帮我看一下吗？")
        async with cluster.http.post(cluster.webhook_url, json=update, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"webhook: {resp.status} {await resp.text()}")
    wanted = {"account_id": cluster.account_id,
              "thread_key": {"$in": [str(CHAT_BASE + i) for i in range(n)]}}
    deadline = time.monotonic() + 30  # conversations are created behind the acknowledgement
    while await cluster.db.conversations.count_documents(wanted) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("the conversations were not created in 30 s")
        await asyncio.sleep(0.05)
    docs = await cluster.db.conversations.find(wanted, {"_id": 1}).to_list()
    return [str(d["_id"]) for d in docs]


async def _post(cluster: Cluster, conv_id: str, marker: str, text: str) -> int:
    assert cluster.http is not None
    async with cluster.http.post(f"{cluster.url}/api/conversations/{conv_id}/messages",
                                 json={"text": f"{text} [bench:{marker}]"},
                                 headers={"Idempotency-Key": marker}) as resp:
        await resp.read()
        return resp.status


async def _received(cluster: Cluster, marker: str, timeout: float) -> float | None:
    assert cluster.http is not None
    async with cluster.http.get(f"{cluster.sandbox_url}/_sandbox/bench/received",
                                params={"marker": marker, "timeout": str(timeout)}) as resp:
        if resp.status != 200:
            return None
        return float((await resp.json())["result"]["received_mono"])


async def idle(cluster: Cluster, conversations: list[str], n: int) -> dict[str, Any]:
    latencies: list[float] = []
    lost = 0
    for i in range(n):
        marker = f"idle-{secrets.token_hex(6)}"
        t0 = time.monotonic()
        status = await _post(cluster, conversations[i % len(conversations)], marker,
                             "您好，我们已经为您查询，订单明天发货。")
        if status != 202:
            raise RuntimeError(f"reply POST answered {status}")
        arrived = await _received(cluster, marker, 10)
        if arrived is None:
            lost += 1
            continue
        latencies.append(arrived - t0)
        await asyncio.sleep(0.05)
    return {"replies": n, "not_received_in_10s": lost, **summary_ms(latencies)}


async def sustained(cluster: Cluster, conversations: list[str], *, replies: int,
                    concurrency: int, rate_limited: float = 0.1,
                    timeout: float = 120) -> dict[str, Any]:
    await cluster.sandbox_call("POST", "/_sandbox/bench/rate_limit",
                               {"rate": rate_limited, "retry_after": 1})
    markers = [f"load-{i}-{secrets.token_hex(4)}" for i in range(replies)]
    todo = iter(enumerate(markers))
    posted: list[float] = []
    refused: dict[int, int] = {}

    async def poster() -> None:
        for i, marker in todo:
            status = await _post(cluster, conversations[i % len(conversations)], marker,
                                 f"第 {i} 条回复")
            if status == 202:
                posted.append(time.monotonic())
            else:
                refused[status] = refused.get(status, 0) + 1

    start = time.monotonic()
    await asyncio.gather(*(poster() for _ in range(concurrency)))
    posted_in = time.monotonic() - start
    arrivals: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = await cluster.sandbox_call("GET", "/_sandbox/bench/counts")
        if all(m in counts for m in markers):
            break
        await asyncio.sleep(0.25)
    for marker in markers:
        t = await _received(cluster, marker, 0.01)
        if t is not None:
            arrivals[marker] = t
    await cluster.sandbox_call("POST", "/_sandbox/bench/rate_limit", {"rate": 0})
    counts = await cluster.sandbox_call("GET", "/_sandbox/bench/counts")
    stats = await cluster.sandbox_call("GET", f"/_sandbox/bench/stats?token={BOT_TOKEN}")
    db_states: dict[str, int] = {}
    with_platform_id = 0
    async for doc in cluster.db.messages.find(
            {"direction": "out", "idempotency_key": {"$in": markers}},
            {"delivery": 1, "external_id": 1}):
        state = (doc.get("delivery") or {}).get("state", "?")
        db_states[state] = db_states.get(state, 0) + 1
        with_platform_id += bool(doc.get("external_id"))
    done_at = max(arrivals.values()) if arrivals else None
    delivered = len(arrivals)
    return {
        "replies": replies, "concurrency": concurrency, "conversations": len(conversations),
        "rate_limited_share": rate_limited, "answered_429": stats.get("limited"),
        "posts_per_s": round(len(posted) / posted_in, 1), "refused": refused,
        "delivered": delivered,
        "replies_per_s": round(delivered / (done_at - start), 1) if done_at else None,
        "seconds_to_last_delivery": round(done_at - start, 2) if done_at else None,
        "sandbox_duplicates": sum(1 for m in markers if counts.get(m, 0) > 1),
        "sandbox_missing": sum(1 for m in markers if counts.get(m, 0) == 0),
        "db_states": db_states, "db_with_platform_id": with_platform_id,
        "exactly_once": all(counts.get(m, 0) == 1 for m in markers)
        and db_states.get("sent", 0) == replies and with_platform_id == replies,
    }


async def other_process(cluster: Cluster, conversations: list[str], n: int) -> dict[str, Any]:
    """Replies accepted by a process without a delivery worker, sent by another process's
    worker: how soon the other process notices (a change stream on the outbox, not a poll)."""
    await cluster.restart_server(**{"SWITCHBOARD_DELIVERY__WORKERS": "0"})
    sender = await cluster.start_joined({"SWITCHBOARD_DELIVERY__WORKERS": "1"})
    try:
        await asyncio.sleep(1.0)  # the joined worker's change stream is open
        result = await idle(cluster, conversations, n)
    finally:
        await asyncio.to_thread(sender.stop)
        await cluster.restart_server()
    return result


async def run(cluster: Cluster, *, idle_n: int = 40, replies: int = 300,
              concurrency: int = 8, conversations: int = 40) -> dict[str, Any]:
    convs = await ensure_conversations(cluster, conversations)
    out = {"idle": await idle(cluster, convs, idle_n)}
    out["accepted_by_one_process_sent_by_another"] = await other_process(cluster, convs,
                                                                          idle_n)
    # the same load without any 429 first: what the delivery path does on its own
    out["sustained_no_429"] = await sustained(cluster, convs, replies=replies,
                                              concurrency=concurrency, rate_limited=0.0)
    out["sustained_10pct_429"] = await sustained(cluster, convs, replies=replies,
                                                 concurrency=concurrency)
    return out
