"""A new customer whose rules name no team is routed as their conversation is created: the
decision is inserted with it (no claim, no update after it), and the rest of routing (contact
history, search entries, observers) follows in the creating process, after a restart, or from
whoever repairs the summaries of a process that died. A rule naming a team, or a customer seen
before, still goes through the router's claim. Against the real embedded database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from inbox import summaries
from inbox.agents import Agents
from inbox.clock import FixedClock
from inbox.db import Database
from inbox.store import Store
from teams.service import TeamWork
from teams.settings import TeamSettings
from tests.helpers import inbound, keep_expiring

T0 = datetime(2026, 9, 22, 2, 0, tzinfo=UTC)


class Observer:
    """What team work's observers are told (measures/auto.py is the real one)."""

    def __init__(self) -> None:
        self.routed_: list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]] = []

    async def routed(self, conv: Any, contact: Any, decision: Any) -> None:
        self.routed_.append((conv, contact, decision))

    async def status_changed(self, conv: Any, status: str) -> None:
        return None


def team_work(db: Database, store: Store) -> TeamWork:
    return TeamWork(db, TeamSettings(routing=True, search_indexing=False), "Acme",
                    FixedClock(T0), summaries=store.ingestor.summaries)


@pytest.fixture
async def work(db: Database, store: Store) -> AsyncIterator[TeamWork]:
    w = team_work(db, store)
    await w.start()
    await keep_expiring(db, "route_claims")
    yield w
    await w.stop()


async def until(check: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def new_chat(store: Store, n: int, text: str, user: str) -> dict[str, Any]:
    result = await store.ingest(inbound(n, thread=f"t{n}", user=user, text=text,
                                        name=f"客户{user}"))
    await store.settle()
    doc = await store.db.conversations.find_one({"_id": ObjectId(result.conversation_id)})
    assert doc is not None
    return doc


async def test_a_new_customer_without_a_team_is_routed_with_the_insert(
        store: Store, db: Database, work: TeamWork) -> None:
    seen = Observer()
    work.observers.append(seen)
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "invoices", "conditions": {"keywords": ["发票"]},
         "actions": {"labels": ["invoice"], "priority": "high"}}, platforms=[]))
    async with await db.conversations.watch() as stream:
        conv = await new_chat(store, 1, "请开发票", "u1")
        events = []
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                async for change in stream:
                    events.append(change)
    assert [e["operationType"] for e in events] == ["insert"]  # nothing written after it
    inserted = events[0]["fullDocument"]
    assert inserted["routing"]["by"] == "creation"
    assert inserted["routing"]["rule_name"] == "invoices"
    assert [s["step"] for s in inserted["routing"]["steps"]] == ["routed"]
    assert (inserted["team_id"], inserted["priority"], inserted["labels"]) == (
        None, "high", ["invoice"])
    assert inserted["queued_since"] is None and inserted["assignee_id"] is None
    assert conv["routing"] == inserted["routing"]

    async def finished() -> bool:
        return await db.contact_history.count_documents({}) == 1 and len(seen.routed_) == 1

    await until(finished)
    history = await db.contact_history.find_one({"_id": str(conv["_id"])})
    assert history and history["agent_id"] is None
    assert history["contact_id"] == conv["contact_id"]
    assert await db.route_claims.count_documents({}) == 0
    entry = await db.search_index.find_one({"_id": f"c:{conv['_id']}"})
    assert entry is not None and "客户u1" in str(entry)
    routed_conv, contact, decision = seen.routed_[0]
    assert routed_conv["_id"] == conv["_id"] and contact and contact["name"] == "客户u1"
    assert decision["labels"] == ["invoice"] and decision["team_id"] is None
    assert "steps" not in decision
    assert (work.router.routed, work.router.routed_at_creation) == (1, 1)
    assert work.router.unfinished() == set()


async def test_a_team_rule_or_a_returning_customer_goes_through_the_claim(
        store: Store, db: Database, work: TeamWork) -> None:
    ann = str((await Agents(db).create("ann", display_name="Ann", password="x" * 10))["_id"])
    await db.agents.update_one({"_id": ObjectId(ann)}, {"$set": {"availability": "online"}})
    team = await work.store.create_team({"name": "售后", "members": [ann]})
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "refunds", "conditions": {"keywords": ["退款"]},
         "actions": {"team_id": str(team["_id"])}}, platforms=[]))
    first = await new_chat(store, 1, "我要退款", "loyal")
    assert "routing" not in first

    async def assigned(conv_id: Any) -> bool:
        doc = await db.conversations.find_one({"_id": conv_id})
        return bool(doc and doc.get("assignee_id"))

    await until(lambda: assigned(first["_id"]))
    # the same customer again, with a message no rule names a team for: they have an agent
    # to return to, so the router decides, and gives it back to her
    again = await new_chat(store, 2, "你好", "loyal")
    assert "routing" not in again
    await until(lambda: assigned(again["_id"]))
    doc = await db.conversations.find_one({"_id": again["_id"]})
    assert doc and doc["assignee_id"] == ann and doc["routing"]["returning"] is True
    assert "by" not in doc["routing"]
    assert await db.route_claims.count_documents({}) == 2
    assert work.router.routed_at_creation == 0


async def test_a_process_that_stops_before_finishing_is_repaired_from_its_heartbeat(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # conversations summarised a moment ago are listed anyway (`recent`, for STICKY
    # seconds): with none of that, only their being unfinished keeps them listed
    monkeypatch.setattr(summaries, "STICKY", 0.0)
    one = Store(db)
    crashed = team_work(db, one)  # its router never runs: nothing is finished
    await one.setup()
    convs = [await new_chat(one, n, "在吗", f"u{n}") for n in range(3)]
    ids = {str(c["_id"]) for c in convs}
    assert all(c["routing"]["by"] == "creation" for c in convs)
    assert crashed.router.unfinished() == ids
    assert await db.contact_history.count_documents({}) == 0
    # closing with work unfinished keeps the heartbeat, listing them, for a repair
    await one.close()
    heartbeat = await db.meta.find_one({"_id": f"ingestor:{one.ingestor.summaries.owner}"})
    assert heartbeat is not None and ids <= set(heartbeat["recent"])
    await db.meta.update_one({"_id": heartbeat["_id"]}, {"$set": {  # 30 s on, it is dead
        "alive_at": datetime.now(UTC) - timedelta(minutes=1)}})
    two = Store(db)
    alive = team_work(db, two)
    await two.setup()  # repairs what stopped processes left (their `recent` behind the start)

    async def finished() -> bool:
        return await db.contact_history.count_documents({}) == 3

    await until(finished)
    assert alive.router.routed_at_creation == 3
    assert await db.search_index.count_documents(
        {"_id": {"$in": [f"c:{c['_id']}" for c in convs]}}) == 3

    async def dropped() -> bool:
        return await db.meta.find_one({"_id": heartbeat["_id"]}) is None

    await until(dropped)
    await alive.router.recovered(sorted(ids))  # a second repair of them finds nothing to do
    assert alive.router.routed_at_creation == 3
    await two.close()


async def test_stopping_finishes_what_was_created_and_routes_nothing_more(
        store: Store, db: Database) -> None:
    work = team_work(db, store)  # never started: only `stop` can finish
    conv = await new_chat(store, 1, "在吗", "u1")
    assert conv["routing"]["by"] == "creation" and work.router.unfinished()
    await work.stop()
    assert await db.contact_history.find_one({"_id": str(conv["_id"])}) is not None
    assert work.router.unfinished() == set()
    later = await new_chat(store, 2, "在吗", "u2")
    assert "routing" not in later  # a stopped router decides nothing at creation


async def test_one_listed_only_as_dirty_when_its_process_died_is_finished_too(
        store: Store, db: Database) -> None:
    """A process that dies within a second of storing a new chat's first message lists it
    only as dirty (its last heartbeat came before the round): the repair rebuilds it before
    the start, and the hooks still see it behind the start."""
    team_work(db, store)  # routes at creation; never finishes
    conv = await new_chat(store, 1, "在吗", "u1")
    await db.meta.insert_one({"_id": "ingestor:dead", "kind": "ingestor", "host": "elsewhere",
                              "pid": 1, "dirty": [str(conv["_id"])], "recent": [],
                              "alive_at": datetime.now(UTC) - timedelta(minutes=5)})
    other = Store(db)
    alive = team_work(db, other)
    await other.setup()

    async def finished() -> bool:
        return await db.contact_history.find_one({"_id": str(conv["_id"])}) is not None

    await until(finished)
    assert other.ingestor.summaries.repaired >= 1 and alive.router.routed_at_creation == 1

    async def dropped() -> bool:
        return await db.meta.find_one({"_id": "ingestor:dead"}) is None

    await until(dropped)
    await other.close()
