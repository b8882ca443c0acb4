"""Figure 2 — inbox queries at growing sizes, through the Store (the same code the API calls).

The inbox is seeded with bulk inserts straight into a scratch database, in the shape ingest and
its summaries leave it (message documents with `sk`, conversation documents with `sk`,
`first_sk`, status and summary, the `meta` "inbox" floor), then grown in place to each size.
Each size keeps ten messages per conversation on average, with one large conversation holding 2%
of all messages; activity is spread over the last 90 days; 60% of conversations are open.

Measured per size, after three warm-up calls (the pager learns a window width per query shape,
as it would in a running server): p50/p95 of
- "open conversations, newest first, 50" (first page),
- "next page by cursor" (pages 2, 3, … scrolled in order),
- "latest 50 messages of one conversation" (the large one, and typical ones).
Every `find` the pager issues for one call of each query is captured with a command listener and
run again through `explain` (executionStats): the plan's index, keys and documents examined.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from bench.cluster import Cluster
from bench.stats import percentile, summary_ms
from inbox.db import Database, Doc, connect, ensure_indexes
from inbox.paging import make_sk
from inbox.store import Store

SPAN = timedelta(days=90)
PER_CONVERSATION = 10
BIG_SHARE = 0.02
STATUSES = ["open"] * 60 + ["pending"] * 15 + ["resolved"] * 25
MEASURE_SECONDS = 40  # what measuring one size takes, about
RAW_TEXT = "您好，我想问一下订单的发货时间，还有能不能开发票？谢谢！"


class Seeder:
    """Grows one inbox in place; remembers what it made so each size builds on the last."""

    def __init__(self, db: Database, seed: int = 2) -> None:
        self.db = db
        self.rng = random.Random(seed)
        self.account = str(ObjectId())
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.messages = 0
        self.conversations: list[Doc] = []
        self.big: Doc | None = None
        self.insert_seconds = 0.0
        self.seed_seconds = 0.0
        self.inserted = 0
        self._external = 0

    async def setup(self) -> None:
        await ensure_indexes(self.db)

    def _message(self, conv: Doc, ts: datetime) -> Doc:
        self._external += 1
        oid = ObjectId()
        chat = int(conv["thread_key"])
        text = f"{RAW_TEXT} #{self._external}"
        author = {"user_id": str(chat), "name": "客户", "handle": f"customer_{chat}",
                  "is_bot": False}
        return {
            "_id": oid, "sk": make_sk(ts, oid), "conversation_id": str(conv["_id"]),
            "account_id": self.account, "platform": "telegram",
            "external_id": f"{chat}:{self._external}", "direction": "in", "author": author,
            "text": text, "attachments": [], "reply_to": None, "forwarded_from": None,
            "platform_ts": ts, "received_at": ts, "edited": False, "edited_at": ts,
            "raw": {"update_id": self._external, "message": {
                "message_id": self._external, "date": int(ts.timestamp()), "text": text,
                "from": {"id": chat, "is_bot": False, "first_name": "客户"},
                "chat": {"id": chat, "type": "private", "first_name": "客户"}}},
        }

    def _conversation(self, n: int, last: datetime, first: datetime) -> Doc:
        oid = ObjectId()
        return {
            "_id": oid, "account_id": self.account, "thread_key": str(700_000_000 + n),
            "platform": "telegram", "kind": "dm", "contact_id": None, "title": None,
            "status": self.rng.choice(STATUSES), "assignee_id": None, "team": None,
            "labels": [], "created_at": first, "last_message_at": last,
            "sk": make_sk(last, oid), "first_sk": make_sk(first, oid), "preview": RAW_TEXT,
            "unread": 0, "message_count": 0, "first_response_at": None,
            "last_inbound_at": last,
        }

    async def _insert(self, coll: str, docs: list[Doc]) -> None:
        t0 = time.perf_counter()
        for i in range(0, len(docs), 1000):
            await self.db[coll].insert_many(docs[i:i + 1000], ordered=False)
        self.insert_seconds += time.perf_counter() - t0
        self.inserted += len(docs)

    @property
    def rate(self) -> float:
        """Documents per second seeded so far, wall time (messages and conversations)."""
        return self.inserted / self.seed_seconds if self.seed_seconds else 0.0

    async def grow_to(self, total: int) -> None:
        """Add conversations and messages until `total` messages are stored.

        Documents are made while the previous chunk is being inserted (one producer, one
        writer), so the database is never waiting on this process."""
        add = total - self.messages
        if add <= 0:
            return
        t0 = time.perf_counter()
        queue: asyncio.Queue[tuple[str, list[Doc]] | None] = asyncio.Queue(maxsize=2)

        async def writer() -> None:
            while (item := await queue.get()) is not None:
                await self._insert(*item)

        task = asyncio.create_task(writer())
        try:
            await self._produce(add, queue)
            await queue.put(None)
            await task
        finally:
            task.cancel()
        self.messages = total
        self.seed_seconds += time.perf_counter() - t0
        await self.db.meta.update_one({"_id": "inbox"}, {"$min": {
            "floor_sk": make_sk(self.now - SPAN - timedelta(days=1), ObjectId("0" * 24))}},
            upsert=True)

    async def _produce(self, add: int,
                       queue: asyncio.Queue[tuple[str, list[Doc]] | None]) -> None:
        if self.big is None:
            start = self.now - timedelta(seconds=1)
            self.big = self._conversation(0, start, self.now - SPAN)
            self.big["status"] = "open"
            await queue.put(("conversations", [self.big]))
            self.conversations.append(self.big)
        big_share = int(add * BIG_SHARE)
        chunk: list[Doc] = [self._message(self.big, self.now - SPAN * self.rng.random())
                            for _ in range(big_share)]
        self.big["message_count"] += big_share
        await self.db.conversations.update_one(
            {"_id": self.big["_id"]}, {"$set": {"message_count": self.big["message_count"]}})
        rest = add - big_share
        n_convs = max(1, rest // PER_CONVERSATION)
        base = len(self.conversations)
        made = 0
        convs: list[Doc] = []
        for i in range(n_convs):
            count = PER_CONVERSATION if i < n_convs - 1 else rest - made
            made += count
            stamps = sorted(self.now - SPAN * self.rng.random() for _ in range(count))
            conv = self._conversation(base + i, stamps[-1], stamps[0])
            conv["message_count"] = count
            convs.append(conv)
            chunk.extend(self._message(conv, t) for t in stamps)
            if len(chunk) >= 1000:
                await queue.put(("messages", chunk))
                chunk = []
            if len(convs) >= 1000:
                await queue.put(("conversations", convs))
                self.conversations.extend(convs)
                convs = []
        if chunk:
            await queue.put(("messages", chunk))
        if convs:
            await queue.put(("conversations", convs))
            self.conversations.extend(convs)


class FindRecorder(monitoring.CommandListener):
    """Keeps the `find` commands a call issues, to explain them afterwards."""

    def __init__(self) -> None:
        self.on = False
        self.finds: list[Doc] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on and event.command_name == "find":
            self.finds.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _plan_summary(plan: Doc) -> tuple[list[str], list[str]]:
    stages, indexes = [], []
    node: Doc | None = plan
    while node:
        stages.append(str(node.get("stage")))
        if node.get("indexName"):
            indexes.append(str(node["indexName"]))
        node = node.get("inputStage")
    return stages, indexes


async def explain_finds(db: Database, finds: list[Doc]) -> list[Doc]:
    out = []
    for cmd in finds:
        body = {k: v for k, v in cmd.items()
                if k in ("find", "filter", "sort", "limit", "projection", "hint")}
        res = await db.command("explain", body, verbosity="executionStats")
        stages, indexes = _plan_summary(res["queryPlanner"]["winningPlan"])
        stats = res.get("executionStats", {})
        out.append({"collection": body["find"], "filter": str(body.get("filter"))[:160],
                    "stages": stages, "index": indexes[0] if indexes else None,
                    "ixscan": "IXSCAN" in stages, "n_returned": stats.get("nReturned"),
                    "keys_examined": stats.get("totalKeysExamined"),
                    "docs_examined": stats.get("totalDocsExamined")})
    return out


def _summarise_plans(calls: list[list[Doc]]) -> Doc:
    """Per call: how many windowed finds, how many documents they examined, which plans."""
    docs = [sum(int(f["docs_examined"] or 0) for f in call) for call in calls]
    keys = [sum(int(f["keys_examined"] or 0) for f in call) for call in calls]
    finds = [len(call) for call in calls]
    flat = [f for call in calls for f in call]
    return {
        "all_ixscan": all(f["ixscan"] for f in flat) if flat else None,
        "indexes": sorted({str(f["index"]) for f in flat}),
        "stages": sorted({" < ".join(f["stages"]) for f in flat}),
        "finds_per_call": {"p50": percentile(finds, 50), "max": max(finds, default=None)},
        "docs_examined_per_call": {"p50": percentile(docs, 50), "p95": percentile(docs, 95),
                                   "max": max(docs, default=None)},
        "keys_examined_per_call": {"p50": percentile(keys, 50), "max": max(keys, default=None)},
        "example": calls[0] if calls else None,
    }


async def _timed(recorder: FindRecorder, db: Database, calls: int,
                 fn: Any) -> tuple[list[float], Doc]:
    """Time `calls` calls of `fn`, keeping the sorted finds each issued; then explain them."""
    latencies: list[float] = []
    captured: list[list[Doc]] = []
    for _ in range(calls):
        recorder.finds = []
        recorder.on = True
        t0 = time.perf_counter()
        await fn()
        latencies.append(time.perf_counter() - t0)
        recorder.on = False
        captured.append([f for f in recorder.finds if f.get("sort")])
    explained = [await explain_finds(db, finds) for finds in captured]
    return latencies, _summarise_plans(explained)


async def measure(store: Store, seeder: Seeder, recorder: FindRecorder, *,
                  calls: int) -> dict[str, Any]:
    rng = random.Random(3)
    assert seeder.big is not None
    big_id = str(seeder.big["_id"])
    typical = [str(c["_id"]) for c in rng.sample(seeder.conversations[1:],
                                                 min(calls, len(seeder.conversations) - 1))]
    for _ in range(3):  # warm-up: the pager learns this density, as a running server would
        await store.list_conversations(status="open", limit=50)
        await store.list_messages(big_id, limit=50)

    first_page, first_plans = await _timed(
        recorder, store.db, calls, lambda: store.list_conversations(status="open", limit=50))

    state: dict[str, Any] = {"cursor": None, "depth": 1}

    async def next_page() -> None:
        """Pages 2, 3, … 10 in order, then from the top again: an agent scrolling."""
        if state["cursor"] is None or state["depth"] >= 10:
            _, state["cursor"] = await store.list_conversations(status="open", limit=50)
            state["depth"] = 1
        docs, state["cursor"] = await store.list_conversations(
            status="open", limit=50, cursor=state["cursor"])
        state["depth"] += 1
        state["full"] = state.get("full", True) and len(docs) == 50

    # the page-1 reads that only fetch a cursor are not timed: the time is the page-n call
    next_latencies: list[float] = []
    next_captured: list[list[Doc]] = []
    for _ in range(calls):
        if state["cursor"] is None or state["depth"] >= 10:
            _, state["cursor"] = await store.list_conversations(status="open", limit=50)
            state["depth"] = 1
        lat, plans = await _timed(recorder, store.db, 1, next_page)
        next_latencies += lat
        next_captured.append(plans["example"] or [])
    next_plans = _summarise_plans(next_captured)

    big, big_plans = await _timed(recorder, store.db, calls,
                                  lambda: store.list_messages(big_id, limit=50))
    it = iter(typical)
    small, small_plans = await _timed(recorder, store.db, len(typical),
                                      lambda: store.list_messages(next(it), limit=50))
    return {
        "open_first_page": {**summary_ms(first_page), "plan": first_plans},
        "open_next_page": {**summary_ms(next_latencies), "pages": "2-10, in order",
                           "all_full": state.get("full", True), "plan": next_plans},
        "messages_latest_50_large": {**summary_ms(big), "plan": big_plans,
                                     "conversation_messages": seeder.big["message_count"]},
        "messages_latest_50_typical": {**summary_ms(small), "plan": small_plans},
    }


async def run(cluster: Cluster, *, sizes: list[int], budget_s: float,
              calls: int = 30) -> dict[str, Any]:
    """Seed and measure each size in turn; stop growing when the next would not fit."""
    recorder = FindRecorder()
    client: AsyncMongoClient[Doc] = connect(cluster.uri)
    client_listening: AsyncMongoClient[Doc] = AsyncMongoClient(
        cluster.uri, event_listeners=[recorder], tz_aware=True, uuidRepresentation="standard")
    name = f"{cluster.db_name}_inbox"
    cluster.extra_dbs.append(name)
    seeder = Seeder(client[name])
    store = Store(client_listening[name])
    await seeder.setup()
    started = time.monotonic()
    out: dict[str, Any] = {"method": "Store.list_conversations / Store.list_messages in the "
                           "load process (no HTTP)", "sizes": [], "skipped": []}
    try:
        for size in sizes:
            if size <= seeder.messages:
                continue
            # grow in steps while the budget lasts, keeping time to measure and to stop
            deadline = started + budget_s - MEASURE_SECONDS
            step = max(10_000, size // 20)
            t0 = time.monotonic()
            while seeder.messages < size:
                target = min(size, seeder.messages + step)
                if seeder.rate and time.monotonic() + (target - seeder.messages) * 1.1 \
                        / seeder.rate > deadline:
                    break
                await seeder.grow_to(target)
            seeded = time.monotonic() - t0
            if seeder.messages < size:
                needed = (size - seeder.messages) * 1.1 / seeder.rate if seeder.rate else 0
                reached = seeder.messages
                measured_before = out["sizes"][-1]["messages"] if out["sizes"] else 0
                worth = reached >= 2 * measured_before
                out["skipped"].append({
                    "messages": size, "reached": reached, "reason": (
                        f"seeding at the measured {seeder.rate:,.0f} docs/s, {size:,} messages "
                        f"would need ~{needed:,.0f} s more than the budget had"
                        + (f"; measured at {reached:,} (the largest that fit) instead"
                           if worth else ""))})
                if not worth:
                    break
            result = await measure(store, seeder, recorder, calls=calls)
            result.update({"messages": seeder.messages,
                           "conversations": len(seeder.conversations),
                           "seed_seconds": round(seeded, 1),
                           "seed_rate_docs_per_s": round(seeder.rate, 1),
                           "insert_many_rate_docs_per_s": round(
                               seeder.inserted / seeder.insert_seconds, 1)})
            out["sizes"].append(result)
            if seeder.messages < size:
                break
    finally:
        await client.close()
        await client_listening.close()
    return out
