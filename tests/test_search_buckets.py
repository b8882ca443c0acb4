"""Message search entries in buckets: how they are grouped, that paging finds every entry once
and in order across bucket edges and copies, and that edits and catch-ups rewrite copies
rather than add them."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from inbox.db import Database, Doc
from inbox.paging import encode_cursor, make_sk, sk_micros
from inbox.store import Store
from teams import db as team_db
from teams import search_buckets
from teams.search import Indexer, Query, Search, message_entry
from teams.search_buckets import SIZE, SPAN_US, make_buckets, rewrite, write_buckets
from tests.helpers import inbound

PHRASES = ["您好", "我的订单", "还没有发货", "退款", "发票抬头", "谢谢", "refund please", "SF12345"]


def _message(at: datetime, text: str) -> Doc:
    oid = ObjectId()
    return {"_id": oid, "sk": make_sk(at, oid), "conversation_id": "c", "direction": "in",
            "text": text, "platform_ts": at}


def _entry(at: datetime, text: str) -> Doc:
    entry = message_entry(_message(at, text))
    assert entry is not None
    return entry


async def _entries_of(db: Database, oid: ObjectId) -> list[Doc]:
    buckets = await db.search_index.find({"e._id": oid}).to_list()
    return [e for b in buckets for e in b["e"] if e["_id"] == oid]


def test_a_bucket_holds_at_most_its_size_its_span_and_its_terms() -> None:
    now = datetime.now(UTC)
    close = [_entry(now + timedelta(milliseconds=10 * i), "您好，我的订单")
             for i in range(2 * SIZE + 6)]
    assert [b["n"] for b in make_buckets(close)] == [SIZE, SIZE, 6]
    spread = [_entry(now + timedelta(seconds=2 * i), "退款") for i in range(10)]
    for bucket in make_buckets(spread):
        keys = [sk_micros(e["sk"]) for e in bucket["e"]]
        assert max(keys) - min(keys) <= SPAN_US
        assert bucket["lo"] == bucket["e"][0]["sk"] and bucket["sk"] == bucket["e"][-1]["sk"]
    wordy = [_entry(now, " ".join(f"w{i}x{j}" for j in range(300))) for i in range(8)]
    buckets = make_buckets(wordy)
    assert len(buckets) == 3 and all(len(b["t"]) <= search_buckets.TERMS for b in buckets)
    one = make_buckets(close[:3])[0]
    assert set(one["t"]) == {t for e in close[:3] for t in e["t"]}


async def test_pages_find_every_entry_once_and_in_order(db: Database) -> None:
    await team_db.ensure_indexes(db)
    rng = random.Random(11)
    now = datetime.now(UTC)
    entries = []
    for burst in range(12):  # bursts of traffic hours apart, each spread over seconds
        start = now - timedelta(hours=burst * 7)
        for _ in range(rng.randint(5, 80)):
            at = start + timedelta(milliseconds=rng.randint(0, 20_000))
            entries.append(_entry(at, "，".join(rng.sample(PHRASES, 3))))
    docs = make_buckets(entries)
    copies = make_buckets(rng.sample(entries, 25))  # what a replay after a crash writes again
    await db.search_index.insert_many(docs + copies)
    assert any(b["n"] > 1 for b in docs)
    for q in ("您好", "订单 退款", "sf12345"):
        query = Query.parse(q)
        expected = [e["_id"] for e in sorted(entries, key=lambda e: e["sk"], reverse=True)
                    if query.accepts(e["t"])]
        search = Search(db, budget=300)  # small: pages end early, cursors carry on
        got: list[ObjectId] = []
        hits, cursor = await search.page(q, limit=7)
        got += [h["_id"] for h in hits]
        for _ in range(1000):
            if not cursor:
                break
            hits, cursor = await search.page(q, limit=7, cursor=cursor)
            got += [h["_id"] for h in hits]
        assert got == expected, q


async def test_an_edit_rewrites_every_copy(db: Database) -> None:
    await team_db.ensure_indexes(db)
    now = datetime.now(UTC)
    a, b, c = (_message(now + timedelta(seconds=2 * i), t)  # `a` not the bucket's oldest
               for i, t in enumerate(["谢谢", "发票抬头写错了", "我的订单"]))
    a, b = b, a
    first = make_buckets([message_entry(a), message_entry(b)])
    again = make_buckets([message_entry(a)])
    old_layout = message_entry(c)  # a document of its own, as before buckets
    await db.search_index.insert_many([*first, *again, old_layout])
    a2 = {**a, "text": "发票地址写错了"}
    c2 = {**c, "text": "我的订单到了"}
    await rewrite(db, [(a2, message_entry(a2))])  # alone: its bucket is found by `lo`
    await rewrite(db, [(b, None), (c2, message_entry(c2))])
    copies = await _entries_of(db, a["_id"])
    assert len(copies) == 2 and all(e["snippet"] == "发票地址写错了" for e in copies)
    for bucket in await db.search_index.find({"e._id": a["_id"]}).to_list():
        assert "抬头" not in bucket["t"] and "地址" in bucket["t"]
    assert await _entries_of(db, b["_id"]) == []  # nothing left to find: gone
    assert await db.search_index.find_one({"_id": c["_id"]}) is None
    assert [e["snippet"] for e in await _entries_of(db, c["_id"])] == ["我的订单到了"]
    hits, _ = await Search(db).page("地址")
    assert [h["_id"] for h in hits] == [a["_id"]]


async def test_a_catch_up_replaces_what_it_finds_indexed(db: Database) -> None:
    await team_db.ensure_indexes(db)
    now = datetime.now(UTC)
    messages = [_message(now + timedelta(milliseconds=i), "您好，退款") for i in range(40)]
    await write_buckets(db, [e for m in messages[:30] if (e := message_entry(m))])
    old = _message(now, "发票抬头写错了")  # indexed in the older layout, then edited
    await db.search_index.insert_one(message_entry(old))
    emptied = messages[3]
    await Indexer(db).write([*messages, {**old, "text": "发票地址写错了"},
                             {**emptied, "text": "🙂"}], again=True)
    for m in messages:
        assert len(await _entries_of(db, m["_id"])) == (0 if m is emptied else 1)
    assert await db.search_index.find_one({"_id": old["_id"]}) is None
    assert [h["_id"] for h in (await Search(db).page("抬头"))[0]] == []
    assert [h["_id"] for h in (await Search(db).page("地址"))[0]] == [old["_id"]]


async def test_a_rewrite_that_lost_a_race_is_applied_to_the_fresh_bucket(db: Database) -> None:
    await team_db.ensure_indexes(db)
    now = datetime.now(UTC)
    a, b = _message(now, "退款"), _message(now, "发票")
    await write_buckets(db, [e for m in (a, b) if (e := message_entry(m))])
    stale = await db.search_index.find_one({"e._id": a["_id"]})
    assert stale is not None
    b2 = {**b, "text": "发票地址"}
    await rewrite(db, [(b2, message_entry(b2))])  # another writer, in between
    a2 = {**a, "text": "退款到账"}
    await search_buckets._rewrite_bucket(db, stale, {a["_id"]: message_entry(a2)})
    bucket = await db.search_index.find_one({"_id": stale["_id"]})
    assert bucket is not None and bucket["v"] == 2
    assert sorted(e["snippet"] for e in bucket["e"]) == ["发票地址", "退款到账"]


async def test_a_replay_from_the_saved_token_is_not_indexed_twice(
        store: Store, db: Database) -> None:
    """An indexer that wrote entries and stopped before saving its token (a crash): the next
    holder replays those changes from the saved token and replaces, not adds."""
    await team_db.ensure_indexes(db)
    one = Indexer(db)
    await one.start()
    await asyncio.wait_for(one.holding.wait(), 10)
    saved = None
    for _ in range(100):  # the first idle renewal saves a token
        saved = ((await db.meta.find_one({"_id": "search"})) or {}).get("token")
        if saved:
            break
        await asyncio.sleep(0.1)
    assert saved
    results = [await store.ingest(inbound(i, text=f"发票抬头写错了 {i}")) for i in range(3)]
    ids = [ObjectId(r.message_id) for r in results]
    for _ in range(100):
        if all([await _entries_of(db, oid) for oid in ids]):
            break
        await asyncio.sleep(0.1)
    await one.stop()
    await db.meta.update_one({"_id": "search"}, {"$set": {"token": saved,
                                                          "lease_until": datetime.now(UTC)}})
    two = Indexer(db)
    await two.start()
    try:
        for _ in range(100):
            if two.indexed >= 3:
                break
            await asyncio.sleep(0.1)
        assert two.indexed >= 3
        assert [len(await _entries_of(db, oid)) for oid in ids] == [1, 1, 1]
    finally:
        await two.stop()


async def test_window_edges_on_whole_seconds_skip_and_repeat_nothing(db: Database) -> None:
    """Entries a second apart, cursors on whole seconds, budgets small and large: every page
    boundary falls on an entry's microsecond somewhere."""
    await team_db.ensure_indexes(db)
    top = datetime(2026, 1, 1, tzinfo=UTC)
    entries = [_entry(top - timedelta(seconds=s), "您好") for s in range(1800)]
    rng = random.Random(3)
    await db.search_index.insert_many(make_buckets(entries)
                                      + make_buckets(rng.sample(entries, 200)))
    expected = [e["_id"] for e in sorted(entries, key=lambda e: e["sk"], reverse=True)]
    start = encode_cursor(make_sk(top + timedelta(seconds=1), ObjectId("0" * 24)))
    for budget, limit in ((10, 2000), (300, 250), (2000, 7)):
        search = Search(db, budget=budget)
        got: list[ObjectId] = []
        cursor: str | None = start
        for _ in range(2000):
            if not cursor:
                break
            hits, cursor = await search.page("您好", limit=limit, cursor=cursor)
            got += [h["_id"] for h in hits]
        assert got == expected, (budget, limit)
