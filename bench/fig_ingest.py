"""Figure 1 — ingest: Telegram webhooks end to end vs the database's raw insert_one rate.

Each request is a new customer message in one of `chats` private chats, posted to
`/webhooks/telegram/{account}` with the secret header, as Telegram would; its latency is the time
to the 200 (which Switchboard only sends once the message is durably stored). The chats are
created by a warm-up round first, so the measured rounds add messages to existing conversations.

The baseline inserts the very documents ingest writes (`inbox.ingest.message_doc` of the same
normalised updates) with `insert_one`, from one async client, into a scratch database on the same
server with the same indexes: once one at a time and once 64 at a time. The ratio uses the higher
of the two, so it is never flattered.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from itertools import count
from typing import Any

import aiohttp
from bson import ObjectId

from bench.cluster import BOT_ID, Cluster
from bench.stats import summary_ms, telegram_update
from connectors.telegram.normalise import normalise
from inbox.db import ensure_indexes
from inbox.ingest import message_doc
from inbox.models import AccountId, InboundMessage

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHAT_BASE = 880_000_000


class Updates:
    """Unique updates spread round-robin over `chats` chats."""

    def __init__(self, chats: int, start_update: int = 1) -> None:
        self.chats = chats
        self._update_ids = count(start_update)
        self._next_chat = count()
        self._message_ids = [0] * chats

    def next(self) -> dict[str, Any]:
        i = next(self._next_chat) % self.chats
        self._message_ids[i] += 1
        mid = self._message_ids[i]
        return telegram_update(next(self._update_ids), CHAT_BASE + i, mid,
                               f"您好，我的订单 #{CHAT_BASE + i}-{mid} 还没有到，可以帮我查一下吗？")


async def _closed_loop(session: aiohttp.ClientSession, cluster: Cluster, updates: Updates,
                       concurrency: int, *, seconds: float | None = None,
                       total: int | None = None) -> dict[str, Any]:
    url = cluster.webhook_url
    headers = {SECRET_HEADER: cluster.webhook_secret, "Content-Type": "application/json"}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = count()
    loop_start = time.monotonic()
    deadline = loop_start + seconds if seconds is not None else None

    async def worker() -> None:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if total is not None and next(sent) >= total:
                return
            body = json.dumps(updates.next(), ensure_ascii=False).encode()
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - loop_start
    return {"concurrency": concurrency, "acked": len(latencies), "seconds": round(elapsed, 2),
            "updates_per_s": round(len(latencies) / elapsed, 1), **summary_ms(latencies),
            "errors": errors}


def _docs(n: int, chats: int, start: int) -> list[dict[str, Any]]:
    """`n` message documents exactly as ingest stores them, for the baseline."""
    updates = Updates(chats, start_update=start)
    conv_ids = [str(ObjectId()) for _ in range(chats)]
    account = AccountId(str(ObjectId()))
    out = []
    for i in range(n):
        update = updates.next()
        msg = normalise(update, account, str(BOT_ID))
        assert isinstance(msg, InboundMessage)
        out.append(message_doc(msg, ObjectId(), conv_ids[i % chats], datetime.now(UTC)))
    return out


async def baseline(cluster: Cluster, *, seconds: float, chats: int) -> dict[str, Any]:
    """The raw insert_one rate of ingest's own message documents, from one async client."""
    db = cluster.database("baseline")
    await ensure_indexes(db)
    docs = _docs(int(seconds * 1500) + 500, chats, 10_000_000)
    it = iter(docs)
    latencies: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        t0 = time.perf_counter()
        await db.messages.insert_one(next(it))
        latencies.append(time.perf_counter() - t0)
    seq_elapsed = time.monotonic() - start
    sequential = {"concurrency": 1, "inserted": len(latencies),
                  "docs_per_s": round(len(latencies) / seq_elapsed, 1), **summary_ms(latencies)}
    latencies_c: list[float] = []
    start = time.monotonic()

    async def worker() -> None:
        for doc in it:
            if time.monotonic() - start >= seconds:
                return
            t0 = time.perf_counter()
            await db.messages.insert_one(doc)
            latencies_c.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(64)))
    c_elapsed = time.monotonic() - start
    concurrent = {"concurrency": 64, "inserted": len(latencies_c),
                  "docs_per_s": round(len(latencies_c) / c_elapsed, 1),
                  **summary_ms(latencies_c)}
    best = max(sequential["docs_per_s"], concurrent["docs_per_s"])
    return {"insert_one_c1": sequential, "insert_one_c64": concurrent, "docs_per_s": best}


async def summaries_settled(cluster: Cluster, expected: int, timeout: float) -> float | None:
    """Seconds until every conversation summary counts all `expected` messages (None: never)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        cursor = await cluster.db.conversations.aggregate([
            {"$group": {"_id": None, "n": {"$sum": "$message_count"}}}])
        got = await cursor.to_list()
        if got and got[0]["n"] >= expected:
            return round(time.monotonic() - start, 2)
        await asyncio.sleep(0.05)
    return None


async def run(cluster: Cluster, *, levels: tuple[int, ...] = (1, 16, 64), seconds: float = 12.0,
              chats: int = 1000, baseline_seconds: float = 8.0) -> dict[str, Any]:
    updates = Updates(chats)
    out: dict[str, Any] = {"chats": chats, "seconds_per_level": seconds}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = await _closed_loop(session, cluster, updates, min(32, chats), total=chats)
        out["warmup_new_conversations"] = warm
        out["baseline"] = await baseline(cluster, seconds=baseline_seconds, chats=chats)
        stored = warm["acked"]
        rounds = []
        for c in levels:
            result = await _closed_loop(session, cluster, updates, c, seconds=seconds)
            stored += result["acked"]
            result["summaries_settled_s"] = await summaries_settled(cluster, stored, 60)
            result["ratio_to_baseline"] = round(
                result["updates_per_s"] / out["baseline"]["docs_per_s"], 2)
            rounds.append(result)
        out["levels"] = rounds
    stored_in_db = await cluster.db.messages.count_documents({"direction": "in"})
    out["messages_in_db"] = stored_in_db
    out["messages_acked"] = stored
    return out
