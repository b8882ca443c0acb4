"""The measures follower knows a batch's SLA clocks from the change feed: a clock it started or
moved costs no read for the next messages, a clock moved elsewhere reaches it through the feed,
an older change never sets a copy back, and a copy behind the database loses its
compare-and-set and is read, so nothing it holds is written over a newer clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from inbox.clock import FixedClock
from inbox.db import Database, Doc
from inbox.doc_cache import DocCache
from measures import sla
from measures.service import Measures
from measures.timer_copies import TimerCopies
from tests.helpers import following_measures
from tests.live import wait_for

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
POLICY = {"_id": ObjectId(), "name": "plain", "first_response_s": 3600,
          "next_response_s": 1800, "resolution_s": 8 * 3600, "business_hours": False,
          "created_at": NOW}


@pytest.fixture
async def measures(db: Database) -> AsyncIterator[Measures]:
    await db.sla_policies.insert_one(POLICY)
    m = await following_measures(db, NOW)
    yield m
    await m.stop()


async def _conversation(db: Database, assignee: str | None = None) -> Doc:
    conv = {"_id": ObjectId(), "platform": "telegram", "account_id": "a", "status": "open",
            "assignee_id": assignee, "team_id": None, "created_at": NOW, "labels": [],
            "kind": "dm", "thread_key": str(ObjectId()), "sk": "1"}
    await db.conversations.insert_one(conv)
    return conv


async def _message(db: Database, conv: Doc, direction: str, at: datetime) -> None:
    await db.messages.insert_one({"conversation_id": str(conv["_id"]), "direction": direction,
                                  "received_at": at, "created_at": at, "agent_id": "agent-1",
                                  "sk": f"{at.timestamp():.6f}-{ObjectId()}", "text": "您好"})


async def _counted(db: Database, field: str, n: int) -> None:
    async def done() -> bool:
        docs = await db.report_counters.find({"part": "all"}).to_list()
        return sum(d["c"].get("all", {}).get(field, 0) for d in docs) >= n
    await wait_for(done, timeout=15)


async def _timer(db: Database, conv: Doc) -> Doc:
    timer = await db.sla_timers.find_one({"_id": str(conv["_id"])})
    assert timer is not None
    return timer


async def test_a_clock_started_here_costs_no_read_for_the_next_messages(
        db: Database, measures: Measures) -> None:
    conv = await _conversation(db)
    await _message(db, conv, "in", NOW)
    await _counted(db, "messages_in", 1)
    assert measures.timers_read == 1  # none yet: looked for once, then started
    await _message(db, conv, "in", NOW + timedelta(minutes=1))
    await _counted(db, "messages_in", 2)
    await _message(db, conv, "out", NOW + timedelta(minutes=2))
    await _counted(db, "messages_out", 1)
    assert measures.timers_read == 1
    timer = await _timer(db, conv)
    assert timer["responded"] and timer["due"]["first_response"] is None
    kept = measures.follower.timers.get(str(conv["_id"]))
    assert kept is not None and kept["v"] == timer["v"] and kept["responded"]


async def test_a_clock_moved_elsewhere_reaches_the_next_message_through_the_feed(
        db: Database, measures: Measures) -> None:
    """Another process pauses the clock (the conversation set pending): the follower's copy
    follows, so the customer's next message resumes the clock without a read."""
    conv = await _conversation(db)
    await _message(db, conv, "in", NOW)
    await _counted(db, "messages_in", 1)
    elsewhere = sla.SlaClocks(db, FixedClock(NOW))
    paused, _ = await elsewhere.apply(str(conv["_id"]),
                                      lambda t: sla.paused(t, NOW + timedelta(minutes=5)))
    assert paused is not None and paused["status"] == "pending"
    copies = measures.follower.timers

    async def followed() -> bool:
        kept = copies.get(str(conv["_id"]))
        return kept is not None and kept["status"] == "pending"
    await wait_for(followed)
    await _message(db, conv, "in", NOW + timedelta(minutes=10))
    await _counted(db, "messages_in", 2)
    timer = await _timer(db, conv)
    assert timer["status"] == "open" and timer["v"] == paused["v"] + 1
    assert measures.timers_read == 1


async def test_a_copy_behind_the_database_is_read_not_written_over_it(
        db: Database, measures: Measures) -> None:
    """A clock paused elsewhere whose change the feed has not brought yet: the agent's reply,
    worked out on the older copy, loses its compare-and-set and is applied to the clock read
    again — the pause stays, the first response is met once."""
    conv = await _conversation(db)
    await _message(db, conv, "in", NOW)
    await _counted(db, "messages_in", 1)
    copies = measures.follower.timers
    stale = copies.get(str(conv["_id"]))
    assert stale is not None and stale["status"] == "open"
    elsewhere = sla.SlaClocks(db, FixedClock(NOW))
    paused, _ = await elsewhere.apply(str(conv["_id"]),
                                      lambda t: sla.paused(t, NOW + timedelta(minutes=5)))
    assert paused is not None

    async def followed() -> bool:
        kept = copies.get(str(conv["_id"]))
        return kept is not None and kept["status"] == "pending"
    await wait_for(followed)
    copies.clear()
    copies.keep(stale)  # as if the feed had not brought the pause yet
    await _message(db, conv, "out", NOW + timedelta(minutes=10))
    await _counted(db, "messages_out", 1)
    timer = await _timer(db, conv)
    assert timer["status"] == "pending" and timer["v"] == paused["v"] + 1
    assert timer["responded"] and "first_response" not in timer["left"]
    await _counted(db, "sla_n", 1)
    docs = await db.report_counters.find({"part": "all"}).to_list()
    assert sum(d["c"]["all"].get("sla_hit", 0) for d in docs) == 1
    assert sum(d["c"]["all"].get("sla_n", 0) for d in docs) == 1


async def test_a_lost_compare_and_set_takes_the_team_and_agent_afresh(db: Database) -> None:
    """A reassignment (on breach, or by an agent) moved the conversation and then its clock,
    and the feed has brought neither: the clock's copy and the conversation's copy agree on the
    old agent, the customer's message starts the next-response target on the copy and loses
    its compare-and-set; the retry takes the agent from the conversation as it now is, not
    from the old copy."""
    await db.sla_policies.insert_one(POLICY)
    m = await following_measures(db, NOW, follow=False)
    conv = await _conversation(db, assignee="A")
    known, timers = DocCache(16), TimerCopies(16)

    def message(direction: str, minutes: int) -> Doc:
        at = NOW + timedelta(minutes=minutes)
        return {"_id": ObjectId(), "conversation_id": str(conv["_id"]), "direction": direction,
                "received_at": at, "created_at": at, "agent_id": "A", "text": "您好",
                "sk": f"{at.timestamp():.6f}"}

    await m.handle_messages([message("in", 0)], known=known, timer_copies=timers)
    await m.handle_messages([message("out", 1)], known=known, timer_copies=timers)
    await db.conversations.update_one({"_id": conv["_id"]}, {"$set": {"assignee_id": "B"}})
    moved, _ = await sla.SlaClocks(db, FixedClock(NOW)).apply(str(conv["_id"]), lambda t: None,
                                                    {"agent_id": "B"})
    assert moved is not None
    await m.handle_messages([message("in", 2)], known=known, timer_copies=timers)
    timer = await _timer(db, conv)
    assert timer["v"] == moved["v"] + 1 and timer["due"]["next_response"] is not None
    assert timer["agent_id"] == "B"


def test_an_older_change_does_not_set_a_copy_back_and_an_update_drops_it() -> None:
    """What the follower keeps: the newest version it saw, never the feed's shared event."""
    copies = TimerCopies(16)
    copies.keep({"_id": "c1", "v": 3, "status": "pending"})
    copies.follow({"operationType": "replace", "documentKey": {"_id": "c1"},
                   "fullDocument": {"_id": "c1", "v": 2, "status": "open"}})
    assert copies.get("c1") == {"_id": "c1", "v": 3, "status": "pending"}
    copies.follow({"operationType": "replace", "documentKey": {"_id": "c1"},
                   "fullDocument": {"_id": "c1", "v": 4, "status": "open"}})
    event = {"operationType": "replace", "documentKey": {"_id": "c1"},
             "fullDocument": {"_id": "c1", "v": 5, "status": "open", "due": {"a": 1}}}
    copies.follow(event)
    event["fullDocument"]["due"]["a"] = 2  # the event is every subscriber's: not kept as is
    assert (copies.get("c1") or {})["due"] == {"a": 1}
    copies.follow({"operationType": "update", "documentKey": {"_id": "c1"},
                   "updateDescription": {"updatedFields": {"status": "pending"}}})
    assert copies.get("c1") is None
    copies.keep({"_id": "c2", "v": 0})
    copies.follow({"operationType": "delete", "documentKey": {"_id": "c2"}})
    assert copies.get("c2") is None and len(copies) == 0
