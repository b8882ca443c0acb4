"""Acknowledgements first (inbox/priority.py): while this process has an insert batch in flight,
the search indexer and the measures follower hold their writes back, each for at most its
bound, so a saturated ingest delays them but never starves them. The insert "in flight" is
held by hand here, as a saturated ingest would hold it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from inbox.db import Database, Doc
from inbox.paging import make_sk
from inbox.priority import AckWindow
from measures import follower as follower_module
from measures.service import Measures
from teams import db as team_db
from teams import search
from teams.search import Indexer
from tests.helpers import following_measures
from tests.live import wait_for


async def test_a_wait_ends_with_the_insert_or_at_its_bound() -> None:
    acks = AckWindow()
    started = time.monotonic()
    await acks.wait_idle(5)
    assert time.monotonic() - started < 0.05 and acks.waited == 0  # nothing in flight

    acks.writing(True)
    waiter = asyncio.create_task(acks.wait_idle(5))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    acks.writing(False)
    await asyncio.wait_for(waiter, 1)

    acks.writing(True)
    started = time.monotonic()
    await acks.wait_idle(0.2)
    assert 0.2 <= time.monotonic() - started < 1.0
    await acks.wait_idle(0)  # a follower already past its bound does not wait
    assert acks.waited == 2


async def _until(check: Callable[[], bool], timeout: float = 10) -> None:
    async def holds() -> bool:
        return check()
    await wait_for(holds, timeout=timeout)


def _message(text: str) -> Doc:
    oid, at = ObjectId(), datetime.now(UTC)
    return {"_id": oid, "sk": make_sk(at, oid), "conversation_id": "c", "direction": "in",
            "text": text, "platform_ts": at, "received_at": at, "created_at": at}


@pytest.fixture
async def indexer(db: Database) -> AsyncIterator[Indexer]:
    await team_db.ensure_indexes(db)
    idx = Indexer(db)
    idx.acks = AckWindow()
    await idx.start()
    await asyncio.wait_for(idx.holding.wait(), 10)
    await asyncio.sleep(search.CATCH_UP_SETTLE + 0.2)  # past its first catch-up
    yield idx
    await idx.stop()


async def test_the_indexer_writes_once_the_insert_is_done(db: Database,
                                                          indexer: Indexer) -> None:
    assert indexer.acks is not None
    indexer.acks.writing(True)
    await db.messages.insert_one(_message("发票抬头写错了"))
    await asyncio.sleep(search.COALESCE + 0.5)
    assert indexer.indexed == 0  # gathered, and held back behind the insert
    indexer.acks.writing(False)
    await _until(lambda: indexer.indexed == 1)


async def test_the_indexer_is_held_back_for_its_bound_at_most(db: Database,
                                                              indexer: Indexer) -> None:
    assert indexer.acks is not None
    indexer.acks.writing(True)  # and never done: a saturated ingest
    started = time.monotonic()
    await db.messages.insert_one(_message("退款什么时候到账"))
    await _until(lambda: indexer.indexed == 1, timeout=15)
    assert time.monotonic() - started >= search.FOUND_WITHIN - 0.2
    assert indexer.acks.waited >= 1


@pytest.fixture
async def measures(db: Database) -> AsyncIterator[Measures]:
    m = await following_measures(db, datetime.now(UTC))
    m.follower.acks = AckWindow()
    yield m
    await m.stop()


async def _messages_in(db: Database) -> int:
    docs = await db.report_counters.find({"part": "all"}).to_list()
    return sum(d["c"].get("all", {}).get("messages_in", 0) for d in docs)


async def test_the_measures_follower_yields_to_the_insert_for_its_bound(
        db: Database, measures: Measures) -> None:
    acks = measures.follower.acks
    conv = {"_id": ObjectId(), "platform": "telegram", "account_id": "a", "status": "open",
            "assignee_id": None, "team_id": None, "created_at": datetime.now(UTC),
            "labels": [], "kind": "dm", "thread_key": "t", "sk": "1"}
    await db.conversations.insert_one(conv)
    acks.writing(True)
    await db.messages.insert_one({**_message("在吗"), "conversation_id": str(conv["_id"])})
    await _until(lambda: acks.waited >= 1)
    held_at = time.monotonic()
    assert await _messages_in(db) == 0
    await wait_for(lambda: _counted(db, 1), timeout=10)
    assert time.monotonic() - held_at >= follower_module.YIELD - 0.2

    await db.messages.insert_one({**_message("人呢"), "conversation_id": str(conv["_id"])})
    await _until(lambda: acks.waited >= 2)
    acks.writing(False)  # the insert is done: the batch is handled at once
    released = time.monotonic()
    await wait_for(lambda: _counted(db, 2), timeout=10)
    assert time.monotonic() - released < follower_module.YIELD


async def _counted(db: Database, n: int) -> bool | None:
    return await _messages_in(db) >= n or None
