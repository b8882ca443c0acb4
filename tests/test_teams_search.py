"""Search terms (Chinese bigrams, words, prefixes, labels), the windowed reads with a budget,
and the indexer: inserts and edits behind ingest, catch-up after a lost resume token, one
holder of the lease at a time."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from inbox.db import Database
from inbox.paging import make_sk
from inbox.store import Store
from teams import db as team_db
from teams.search import Indexer, Query, Search, conversation_entry, message_entry, terms
from teams.search_buckets import make_buckets
from tests.helpers import inbound


def test_terms_bigrams_words_and_normalisation() -> None:
    assert terms("我的订单还没到") == ["我的", "的订", "订单", "单还", "还没", "没到"]
    assert terms("ＳＦ１２３ Refund!") == ["sf123", "refund"]  # NFKC, case-folded
    assert terms("单") == ["单"]
    assert terms("退款refund吗") == ["退款", "refund", "吗"]
    assert len(terms("字" * 10 + "".join(chr(0x4E00 + i) for i in range(1000)))) == 400


def test_queries_choose_a_rare_driver_and_check_every_term() -> None:
    q = Query.parse("您好 SF1234567")
    assert q.driver() == ("sf1234567", "p:sf1234567")
    assert Query.parse("的确 发票").driver() == ("发票",)  # 的 is among the commonest
    assert Query.parse("label:VIP").groups == (("label:vip",),)
    assert q.accepts(["您好", "sf1234567"]) and not q.accepts(["您好"])
    assert Query.parse("xiao").accepts(["p:xiao"])  # a handle's prefix


def test_conversation_entries_hold_names_handles_and_labels() -> None:
    conv = {"_id": ObjectId(), "labels": ["退款"], "created_at": datetime.now(UTC)}
    entry = conversation_entry(conv, {"name": "王小明", "handle": "xiaoming",
                                      "identities": [{"handle": "wxm_88"}], "labels": ["VIP"]})
    assert {"王小", "小明", "xiaoming", "p:xia", "p:wxm", "label:vip", "label:退款"} <= set(
        entry["t"])


async def test_windows_find_old_and_new_hits_and_a_budget_bounds_common_terms(
        db: Database) -> None:
    await team_db.ensure_indexes(db)
    now = datetime.now(UTC)
    docs = []
    for i in range(300):
        oid = ObjectId()
        text = "您好，请问" + ("，单号 SF777" if i in (5, 299) else "")
        docs.append(message_entry({"_id": oid, "sk": make_sk(now - timedelta(hours=i * 3), oid),
                                   "conversation_id": "c", "text": text}))
    # one entry in the layout before buckets (a document of its own), still found
    await db.search_index.insert_many([docs[299], *make_buckets(docs[:299])])
    search = Search(db)
    hits, cursor = await search.page("sf777", limit=20)
    assert [h["_id"] for h in hits] == [docs[5]["_id"], docs[299]["_id"]] and cursor is None
    first, cursor = await search.page("您好", limit=20)
    assert len(first) == 20 and cursor
    second, _ = await search.page("您好", limit=20, cursor=cursor)
    assert second[0]["sk"] < first[-1]["sk"]
    tight = Search(db, budget=50)
    few, more = await tight.page("您好 不在", limit=20)  # common driver, nothing matches
    assert few == [] and more is not None and tight.last_examined >= 50


async def test_the_indexer_follows_inserts_and_edits_and_catches_up(
        store: Store, db: Database) -> None:
    await team_db.ensure_indexes(db)
    one, two = Indexer(db), Indexer(db)
    await one.start()
    await asyncio.wait_for(one.holding.wait(), 10)
    await two.start()
    result = await store.ingest(inbound(1, text="发票抬头写错了"))

    async def indexed(term: str) -> bool:
        return await db.search_index.find_one({"t": term}) is not None

    for _ in range(200):
        if await indexed("抬头"):
            break
        await asyncio.sleep(0.05)
    assert await indexed("抬头") and not two.holding.is_set()
    edited = inbound(1, text="发票地址写错了")
    await store.ingest(dataclasses.replace(edited, edited_at=datetime.now(UTC)))
    for _ in range(200):
        if await indexed("地址"):
            break
        await asyncio.sleep(0.05)
    oid = ObjectId(result.message_id)
    buckets = await db.search_index.find({"e._id": oid}).to_list()
    entry = [e for b in buckets for e in b["e"] if e["_id"] == oid]
    assert len(buckets) == 1 and len(entry) == 1
    assert entry[0]["snippet"] == "发票地址写错了" and "抬头" not in entry[0]["t"]
    assert "抬头" not in buckets[0]["t"]  # the union is rebuilt too
    await one.stop()
    await two.stop()
    # a lost token: the next holder reads what was stored since the watermark
    await db.meta.update_one({"_id": "search"}, {"$set": {"token": None,
                                                          "lease_until": datetime.now(UTC)}})
    await store.ingest(inbound(2, text="快递到哪里了"))
    await store.settle()  # its conversation, made behind the acknowledgement, is how it is found
    three = Indexer(db)
    assert await three.catch_up(datetime.now(UTC) - timedelta(minutes=1)) >= 2
    assert await indexed("快递")
