"""A new chat's conversation is created before its webhook is answered (inbox/summaries.py):
listed at once even behind a backlog of updates, never waited for past `LISTED_WITHIN`, and
never counted twice — not when it existed already, not when its creation fails, not beside a
repair."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from bson import ObjectId

from inbox import ingest as ingest_module
from inbox.db import Database
from inbox.store import Store
from tests.test_ingest import inbound


def _stall_creation(store: Store) -> asyncio.Event:
    """Creations wait for the returned event (a database slow to answer them)."""
    summaries = store.ingestor.summaries
    gate = asyncio.Event()
    create = summaries._create_missing

    async def stalled(*args: Any) -> None:
        await gate.wait()
        await create(*args)

    summaries._create_missing = stalled  # type: ignore[method-assign]
    return gate


async def _conversation(store: Store, conv_id: str) -> dict[str, Any] | None:
    return await store.db.conversations.find_one({"_id": ObjectId(conv_id)})


async def test_a_new_chat_is_listed_when_its_webhook_is_answered_behind_a_backlog(
        store: Store) -> None:
    old = [await store.ingest(inbound(1, thread=f"old-{i}", user=f"u{i}")) for i in range(3)]
    await store.settle()
    summaries = store.ingestor.summaries
    apply = summaries._apply_round

    async def slow(tag: str) -> None:  # a round of updates on a busy database
        await asyncio.sleep(0.5)
        await apply(tag)

    summaries._apply_round = slow  # type: ignore[method-assign]
    for i in range(3):
        await store.ingest(inbound(2, thread=f"old-{i}", user=f"u{i}"))
    new = await store.ingest(inbound(1, thread="new-chat", user="newcomer", text="你好"))
    conv = await _conversation(store, new.conversation_id)
    assert conv is not None and conv["message_count"] == 1 and conv["preview"] == "你好"
    assert await store.db.contacts.find_one({"_id": ObjectId(conv["contact_id"])}) is not None
    listed, _ = await store.list_conversations(status="open")
    assert new.conversation_id in [str(c["_id"]) for c in listed]
    assert summaries._pending or summaries._in_flight  # the updates are still behind
    assert (await _conversation(store, old[0].conversation_id) or {})["message_count"] == 1
    await store.settle()
    counts = [c["message_count"] async for c in store.db.conversations.find(
        {"thread_key": {"$regex": "^old-"}})]
    assert counts == [2, 2, 2]


async def test_a_stalled_creation_holds_the_answer_no_longer_than_listed_within(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "LISTED_WITHIN", 0.3)
    gate = _stall_creation(store)
    started = time.monotonic()
    first = await store.ingest(inbound(1, thread="slow", user="slow"))
    waited = time.monotonic() - started
    assert 0.25 <= waited < 1.5
    assert await _conversation(store, first.conversation_id) is None  # created behind it
    # the chat's next message, stored while its conversation is being created
    await store.ingest(inbound(2, thread="slow", user="slow", text="still there?"))
    assert first.conversation_id in store.ingestor.summaries._dirty()
    gate.set()
    await store.settle()
    conv = await _conversation(store, first.conversation_id)
    assert conv is not None and conv["message_count"] == 2 and conv["unread"] == 2
    assert conv["preview"] == "still there?"


async def test_a_conversation_that_existed_is_updated_not_created_again(db: Database) -> None:
    """A restarted process knows no conversation: its first message to one that exists finds
    it by the duplicate key and is counted by the update."""
    before = Store(db)
    await before.setup()
    first = await before.ingest(inbound(1))
    await before.settle()
    await before.close()
    after = Store(db)
    await after.setup()
    again = await after.ingest(inbound(2, text="after the restart"))
    assert again.conversation_id == first.conversation_id
    await after.settle()
    assert after.ingestor.summaries.created == 0
    assert await db.conversations.count_documents({}) == 1
    conv = await db.conversations.find_one({})
    assert conv is not None and conv["message_count"] == 2 and conv["unread"] == 2
    assert conv["preview"] == "after the restart"
    await after.close()


async def test_a_creation_that_fails_is_rebuilt_from_the_messages(store: Store) -> None:
    summaries = store.ingestor.summaries
    create = summaries._create_missing
    failures = 0

    async def fails_once_half_way(chunk: Any, tag: str) -> None:
        nonlocal failures
        await create(chunk, tag)  # the conversation is stored ...
        if not failures:
            failures += 1  # ... and then something fails before the round could tell
            raise ValueError("the database refused a write")

    summaries._create_missing = fails_once_half_way  # type: ignore[method-assign]
    result = await store.ingest(inbound(1, thread="fragile", user="fragile", text="hello"))
    await store.ingest(inbound(2, thread="fragile", user="fragile", text="anyone?"))
    await store.settle()
    while summaries._rebuilding:
        await asyncio.sleep(0.01)
    await store.settle()
    assert failures == 1
    conv = await _conversation(store, result.conversation_id)
    assert conv is not None and conv["message_count"] == 2 and conv["unread"] == 2
    assert conv["preview"] == "anyone?"


async def test_a_repair_waits_for_a_creation_in_flight(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both would count the same stored messages: a rebuild that created the conversation
    first would have the creation's insert taken for an existing one and counted again."""
    monkeypatch.setattr(ingest_module, "LISTED_WITHIN", 0.05)
    gate = _stall_creation(store)
    result = await store.ingest(inbound(1, thread="raced", user="raced"))
    summaries = store.ingestor.summaries
    assert result.conversation_id in summaries._creating
    repair = asyncio.create_task(summaries.rebuild(result.conversation_id))
    await asyncio.sleep(0.2)
    assert not repair.done() and await _conversation(store, result.conversation_id) is None
    gate.set()
    await repair
    await store.settle()
    conv = await _conversation(store, result.conversation_id)
    assert conv is not None and conv["message_count"] == 1 and conv["unread"] == 1
