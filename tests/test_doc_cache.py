"""Documents kept current from change events (inbox/doc_cache.py), checked against the real
server: after every kind of update the inbox makes, the copy equals what a read returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from inbox.conversation_docs import round_pipeline
from inbox.db import Database
from inbox.doc_cache import DocCache, apply_update
from inbox.paging import make_sk

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
Write = Callable[[Any], Awaitable[Any]]


def conversation(oid: ObjectId) -> dict[str, Any]:
    return {"_id": oid, "status": "open", "assignee_id": None, "labels": [], "unread": 1,
            "message_count": 1, "preview": "你好", "sk": make_sk(T0, oid), "first_sk": None,
            "last_message_at": T0, "thread_keys": ["100"], "raw": {"token": "SECRET"}}


async def test_every_update_the_inbox_makes_is_followed(db: Database) -> None:
    oid = ObjectId()
    coll = db.conversations
    later = datetime(2026, 12, 1, 8, 5, tzinfo=UTC)
    row = {"n": 2, "i": 2, "at": later, "sk": make_sk(later, oid), "f": None, "p": "还在吗"}
    writes: list[Write] = [
        lambda c: c.update_one({"_id": oid}, round_pipeline({str(oid): row}, "r1")),
        lambda c: c.update_one({"_id": oid}, {"$set": {"routing": {
            "team_id": None, "steps": [{"step": "routed"}]}, "priority": "high"},
            "$addToSet": {"labels": {"$each": ["vip", "退款"]}}}),
        lambda c: c.update_one({"_id": oid}, {"$push": {"routing.steps": {"step": "queued"}},
                                              "$set": {"routing.agent_id": "a1"}}),
        lambda c: c.update_one({"_id": oid}, {"$pull": {"labels": "vip"}}),
        lambda c: c.update_one({"_id": oid}, {"$unset": {"first_sk": ""},
                                              "$inc": {"unread": -2}}),
        lambda c: c.update_one({"_id": oid}, [{"$set": {"thread_keys": {
            "$slice": ["$thread_keys", 0]}}}]),  # an array cut short
        lambda c: c.update_one({"_id": oid}, {"$set": {"sla.first.due_at": later,
                                                        "labels.3": "padded"}}),
    ]
    cache = DocCache()
    async with await coll.watch() as stream:
        await coll.insert_one(conversation(oid))
        assert cache.follow(await stream.next()) is not None
        for write in writes:
            await write(coll)
            doc = cache.follow(await stream.next())
            assert doc == await coll.find_one({"_id": oid}, {"raw": 0})
    assert cache.applied == len(writes)
    await coll.delete_one({"_id": oid})


async def test_a_copy_read_after_later_updates_ends_the_same(db: Database) -> None:
    """The hub reads a document it has not seen when an update of it arrives; by then the
    document may hold the batch's later updates too. Applying those again changes nothing."""
    oid = ObjectId()
    coll = db.conversations
    async with await coll.watch() as stream:
        await coll.insert_one(conversation(oid))
        await stream.next()
        await coll.update_one({"_id": oid}, {"$set": {"preview": "一"}, "$inc": {"unread": 1}})
        await coll.update_one({"_id": oid}, {"$push": {"labels": "新"}})
        first, second = await stream.next(), await stream.next()
        cache = DocCache()
        assert cache.follow(first) is None  # not seen yet: read it, as the hub does
        cache.put("conversations", await coll.find_one({"_id": oid}) or {})
        assert cache.follow(second) == await coll.find_one({"_id": oid}, {"raw": 0})


def test_what_cannot_be_applied_is_dropped_and_read_again() -> None:
    cache = DocCache(size=2)
    cache.put("conversations", {"_id": 1, "title": "plain", "raw": {"x": 1}})
    change = {"ns": {"coll": "conversations"}, "documentKey": {"_id": 1},
              "operationType": "update",
              "updateDescription": {"updatedFields": {"title.zh": "不行"}}}
    assert apply_update({"title": "plain"}, change["updateDescription"]) is False
    assert cache.follow(change) is None and len(cache) == 0  # the next one is read
    for i in range(3):  # bounded: the least recently used goes
        cache.put("messages", {"_id": i})
    assert len(cache) == 2
    assert cache.put("messages", {"_id": 9, "raw": "payload", "credentials": "k"}) == {"_id": 9}


async def test_followers_at_different_points_share_nothing(db: Database) -> None:
    """One change event reaches every subscriber of the feed (the hub, the measures follower):
    a follower that has applied later updates must not change another's copy, or the event
    the other has yet to send on."""
    oid = ObjectId()
    coll = db.conversations
    async with await coll.watch() as stream:
        await coll.insert_one(conversation(oid) | {"routing": {"agent_id": None, "steps": []}})
        await coll.update_one({"_id": oid}, {"$set": {"labels.0": "vip",
                                                      "routing.agent_id": "a1"}})
        await coll.update_one({"_id": oid}, {"$set": {"routing.agent_id": "a2"}})
        insert, first, second = [await stream.next() for _ in range(3)]
    ahead, behind = DocCache(), DocCache()
    ahead.follow(insert)
    behind.follow(insert)
    ahead.follow(first)
    assert ahead.follow(second) == await coll.find_one({"_id": oid}, {"raw": 0})
    assert insert["fullDocument"]["labels"] == []
    assert insert["fullDocument"]["routing"] == {"agent_id": None, "steps": []}
    assert behind.get("conversations", oid)["routing"]["agent_id"] is None
    assert behind.follow(first)["routing"]["agent_id"] == "a1"
    assert ahead.get("conversations", oid)["routing"]["agent_id"] == "a2"
