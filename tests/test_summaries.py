"""Summaries behind the acknowledgement: coalesced, idempotent, repaired after a crash."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from inbox.db import Database
from inbox.store import Store
from tests.test_ingest import inbound


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def hang(*_: Any) -> None:
    await asyncio.Event().wait()


async def test_concurrent_messages_of_one_conversation_coalesce(store: Store) -> None:
    await asyncio.gather(*[store.ingest(inbound(n)) for n in range(30)])
    await store.settle()
    conv = await store.db.conversations.find_one({})
    assert conv is not None and conv["message_count"] == 30 and conv["unread"] == 30
    assert conv["preview"] == "message 29"
    assert store.ingestor.summaries.rounds < 30


async def test_a_retried_round_is_applied_once(store: Store) -> None:
    await store.ingest(inbound(1))
    await store.settle()
    summaries = store.ingestor.summaries
    summaries._apply_round = hang  # type: ignore[method-assign]  # the next round stays ours
    await store.ingest(inbound(2))
    summaries._task.cancel()  # type: ignore[union-attr]
    del summaries._apply_round
    for _ in range(2):  # the first write's answer was lost: the same statement again
        await summaries._apply_round("retry-tag")
    conv = await store.db.conversations.find_one({})
    assert conv is not None and conv["message_count"] == 2 and conv["unread"] == 2


async def test_summaries_of_a_crashed_process_are_repaired_from_the_messages(
        db: Database) -> None:
    crashed = Store(db)
    await crashed.setup()
    first = await crashed.ingest(inbound(1))
    await crashed.settle()
    summaries = crashed.ingestor.summaries
    summaries._apply_round = hang  # type: ignore[method-assign]  # it dies before the summary
    for n in (2, 3, 4):
        await crashed.ingest(inbound(n, text=f"later {n}"))
    summaries._task.cancel()  # type: ignore[union-attr]
    summaries._background.cancel()  # type: ignore[union-attr]
    stale = await db.conversations.find_one({})
    assert stale is not None and stale["message_count"] == 1
    await db.meta.update_one({"_id": f"ingestor:{summaries.owner}"},
                             {"$set": {"pid": dead_pid()}})

    restarted = Store(db)
    await restarted.setup()  # repairs before it would take traffic
    conv = await restarted.get_conversation(first.conversation_id)
    assert conv["message_count"] == 4 and conv["unread"] == 4
    assert conv["preview"] == "later 4" and conv["status"] == "open"
    assert await db.meta.count_documents({"_id": f"ingestor:{summaries.owner}"}) == 0
    await restarted.close()


async def test_a_busy_conversation_is_marked_once_and_still_repaired(db: Database) -> None:
    """A conversation summarised a moment ago stays listed (`recent`), so its next batch
    needs no write before the insert; if the process dies right after storing that batch,
    the next one rebuilds it all the same."""
    crashed = Store(db)
    await crashed.setup()
    first = await crashed.ingest(inbound(1))
    await crashed.settle()
    summaries = crashed.ingestor.summaries
    await summaries._heartbeat()
    hb_id = f"ingestor:{summaries.owner}"
    hb = await db.meta.find_one({"_id": hb_id})
    assert hb is not None and hb["dirty"] == [] and hb["recent"] == [first.conversation_id]
    summaries._apply_round = hang  # type: ignore[method-assign]  # it dies before the summary
    await crashed.ingest(inbound(2, text="the last words"))
    hb = await db.meta.find_one({"_id": hb_id})
    assert hb is not None and hb["dirty"] == []  # nothing was written before that insert
    summaries._task.cancel()  # type: ignore[union-attr]
    summaries._background.cancel()  # type: ignore[union-attr]
    await db.meta.update_one({"_id": hb_id}, {"$set": {"pid": dead_pid()}})

    restarted = Store(db)
    await restarted.setup()
    conv: dict[str, Any] = {}
    for _ in range(100):
        conv = await restarted.get_conversation(first.conversation_id)
        if conv["message_count"] == 2:
            break
        await asyncio.sleep(0.05)
    assert conv["message_count"] == 2 and conv["preview"] == "the last words"
    for _ in range(100):
        if await db.meta.count_documents({"_id": hb_id}) == 0:
            break
        await asyncio.sleep(0.05)
    assert await db.meta.count_documents({"_id": hb_id}) == 0
    await restarted.close()


async def test_a_new_conversation_is_marked_by_an_insert_and_repaired_from_it(
        db: Database) -> None:
    """A conversation not listed in the heartbeat is marked in `summary_marks` before its
    batch is inserted (an insert: the heartbeat itself is only rewritten every second); the
    heartbeat drops the marks it has taken in, and a process that died with only a mark
    naming a conversation has it created all the same."""
    crashed = Store(db)
    await crashed.setup()
    first = await crashed.ingest(inbound(1))
    await crashed.settle()
    summaries = crashed.ingestor.summaries
    hb_id = f"ingestor:{summaries.owner}"
    await summaries._heartbeat()
    assert await db.summary_marks.count_documents({}) == 0
    hb = await db.meta.find_one({"_id": hb_id})
    assert hb is not None and first.conversation_id in hb["recent"]

    # it dies before the conversation is created (answered after LISTED_WITHIN all the same)
    summaries._create_missing = hang  # type: ignore[method-assign]
    new = await crashed.ingest(inbound(2, thread="200", user="200", text="a new chat"))
    marks = await db.summary_marks.find({}).to_list()
    assert [m["ids"] for m in marks] == [[new.conversation_id]]
    assert marks[0]["_id"].startswith(f"{hb_id}#")
    hb = await db.meta.find_one({"_id": hb_id})
    assert hb is not None and new.conversation_id not in hb["dirty"]
    for task in [*summaries._checks, summaries._background]:
        task.cancel()  # type: ignore[union-attr]
    assert await db.conversations.count_documents({"_id": {"$ne": None}}) == 1
    await db.meta.update_one({"_id": hb_id}, {"$set": {"pid": dead_pid()}})

    restarted = Store(db)
    await restarted.setup()  # the marked conversation is rebuilt before traffic
    conv = await restarted.get_conversation(new.conversation_id)
    assert conv["message_count"] == 1 and conv["preview"] == "a new chat"
    assert await db.summary_marks.count_documents({}) == 0
    await restarted.close()


async def test_marks_taken_in_by_the_heartbeat_are_dropped(store: Store) -> None:
    await store.ingest(inbound(1))
    await store.settle()
    summaries = store.ingestor.summaries
    await summaries._heartbeat()
    for n in range(2, 6):
        await store.ingest(inbound(n, thread=str(300 + n), user=str(300 + n)))
    assert await store.db.summary_marks.count_documents({}) >= 1
    await store.settle()
    await summaries._heartbeat()
    assert await store.db.summary_marks.count_documents({}) == 0
    hb = await store.db.meta.find_one({"_id": f"ingestor:{summaries.owner}"})
    assert hb is not None and len(hb["recent"]) == 5


async def test_repair_counts_unread_from_when_it_was_read(db: Database) -> None:
    crashed = Store(db)
    await crashed.setup()
    first = await crashed.ingest(inbound(1))
    await crashed.settle()
    await crashed.update_conversation(first.conversation_id, {"status": "resolved"})
    await crashed.mark_read(first.conversation_id)
    summaries = crashed.ingestor.summaries
    summaries._apply_round = hang  # type: ignore[method-assign]
    await crashed.ingest(inbound(2))
    summaries._task.cancel()  # type: ignore[union-attr]
    summaries._background.cancel()  # type: ignore[union-attr]
    await db.meta.update_one({"_id": f"ingestor:{summaries.owner}"},
                             {"$set": {"pid": dead_pid()}})
    restarted = Store(db)
    await restarted.setup()
    conv = await restarted.get_conversation(first.conversation_id)
    assert conv["message_count"] == 2 and conv["unread"] == 1 and conv["status"] == "open"


async def test_a_live_process_is_left_alone(db: Database) -> None:
    live = Store(db)
    await live.setup()
    await live.ingest(inbound(1))
    other = Store(db)
    await other.setup()
    assert other.ingestor.summaries.repaired == 0
    await live.settle()
    conv = await db.conversations.find_one({})
    assert conv is not None and conv["message_count"] == 1


async def test_a_round_that_fails_for_good_is_recounted(store: Store) -> None:
    await store.ingest(inbound(1))
    await store.settle()

    async def broken(*_: Any) -> None:
        raise ValueError("the database refused the update")

    store.ingestor.summaries._apply_round = broken  # type: ignore[method-assign]
    await store.ingest(inbound(2, text="still counted"))
    await store.settle()
    conv = await store.db.conversations.find_one({})
    assert conv is not None and conv["message_count"] == 2 and conv["unread"] == 2
    assert conv["preview"] == "still counted"
