"""The measures follower knows a batch's conversations from the change feed: a conversation it
saw created or changed costs no read, a change reaches the next message's counters, and one it
never saw is read once, then followed; a copy whose team or agent differs from its clock is read
(one read a reassignment), so an old copy never sets the clock back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from inbox.db import Database, Doc
from measures.service import Measures
from tests.helpers import following_measures
from tests.live import wait_for

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
async def measures(db: Database) -> AsyncIterator[Measures]:
    m = await following_measures(db, NOW)
    yield m
    await m.stop()


def _conversation(team: str) -> Doc:
    return {"_id": ObjectId(), "platform": "telegram", "account_id": "a", "status": "open",
            "assignee_id": None, "team_id": team, "created_at": NOW, "labels": [],
            "kind": "dm", "thread_key": str(ObjectId()), "sk": "1"}


async def _message(db: Database, conv: Doc) -> None:
    await db.messages.insert_one({"conversation_id": str(conv["_id"]), "direction": "in",
                                  "received_at": NOW, "created_at": NOW,
                                  "sk": str(ObjectId()), "text": "您好"})


async def _counted(db: Database, team: str, n: int) -> None:
    async def done() -> bool:
        docs = await db.report_counters.find({"part": "team"}).to_list()
        return sum(d["c"].get(team, {}).get("messages_in", 0) for d in docs) >= n
    await wait_for(done, timeout=15)


async def test_a_conversation_seen_created_costs_no_read_and_a_reassignment_one(
        db: Database, measures: Measures) -> None:
    conv = _conversation("t1")
    await db.conversations.insert_one(conv)
    await _message(db, conv)
    await _counted(db, "t1", 1)
    assert measures.conversations_read == 0
    await db.conversations.update_one({"_id": conv["_id"]}, {"$set": {"team_id": "t2"}})
    await _message(db, conv)
    await _counted(db, "t2", 1)
    # the clock still named t1: whether it is behind or the copy is, only a read can tell
    assert measures.conversations_read == 1
    await _message(db, conv)
    await _counted(db, "t2", 2)
    assert measures.conversations_read == 1
    assert measures.follower.conversations.get("conversations", conv["_id"])["team_id"] == "t2"


async def test_a_conversation_never_seen_is_read_once_then_followed(db: Database) -> None:
    old = _conversation("t1")
    await db.conversations.insert_one(old)  # before the follower: not in its feed
    m = await following_measures(db, NOW)
    try:
        await _message(db, old)
        await _counted(db, "t1", 1)
        assert m.conversations_read == 1
        await _message(db, old)
        await _counted(db, "t1", 2)
        assert m.conversations_read == 1
        await db.conversations.update_one({"_id": old["_id"]}, {"$set": {"team_id": "t3"}})
        await _message(db, old)
        await _counted(db, "t3", 1)
        assert m.conversations_read == 2  # the team change, as above
    finally:
        await m.stop()


async def test_a_copy_behind_its_clock_is_read_not_written_back(db: Database,
                                                                measures: Measures) -> None:
    """A clock moved by a change the feed has not brought yet (a reassignment on breach, a
    status change from another process) differs from the copy in team or agent: the copy is
    read again, and its old agent is not written back onto the clock."""
    conv = _conversation("t1")
    await db.conversations.insert_one(conv)
    await _message(db, conv)
    await _counted(db, "t1", 1)
    copies = measures.follower.conversations
    stale = dict(copies.get("conversations", conv["_id"]))
    await db.conversations.update_one({"_id": conv["_id"]}, {"$set": {"assignee_id": "a2"}})
    await db.sla_timers.update_one({"_id": str(conv["_id"])}, {"$set": {"agent_id": "a2"},
                                                               "$inc": {"v": 1}})
    async def followed() -> bool:
        return copies.get("conversations", conv["_id"])["assignee_id"] == "a2"
    await wait_for(followed)
    copies.put("conversations", stale)  # as if the feed had not brought the change yet
    await _message(db, conv)
    await _counted(db, "t1", 2)
    assert measures.conversations_read == 1
    timer = await db.sla_timers.find_one({"_id": str(conv["_id"])})
    assert timer is not None and timer["agent_id"] == "a2"
    assert copies.get("conversations", conv["_id"])["assignee_id"] == "a2"
