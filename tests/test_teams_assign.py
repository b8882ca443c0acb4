"""Fair assignment inside a team, caps, the queue and overflow with a fake clock (nothing
sleeps), returning customers, reassignment when an agent goes away, the router's claims and
sweep. Against the real embedded database, without the web layer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from inbox.agents import Agents
from inbox.clock import FixedClock
from inbox.db import Database
from inbox.store import Store
from teams.service import TeamWork
from teams.settings import TeamSettings
from tests.helpers import inbound, keep_expiring

T0 = datetime(2026, 9, 22, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Shanghai


@pytest.fixture
async def work(db: Database) -> TeamWork:
    w = TeamWork(db, TeamSettings(routing=False, search_indexing=False), "Acme",
                 FixedClock(T0))
    await w.setup()
    await keep_expiring(db, "route_claims")
    return w


async def agent(db: Database, login: str, *, online: bool = True,
                max_open: int | None = None) -> str:
    doc = await Agents(db).create(login, display_name=login.title(), password="x" * 10)
    await db.agents.update_one({"_id": doc["_id"]}, {"$set": {
        "availability": "online" if online else "offline", "max_open": max_open}})
    return str(doc["_id"])


async def conversation(store: Store, n: int, text: str = "你好", user: str | None = None,
                       ) -> dict[str, Any]:
    result = await store.ingest(inbound(n, thread=f"t{n}", user=user or f"u{n}", text=text))
    await store.settle()
    doc = await store.db.conversations.find_one({"_id": ObjectId(result.conversation_id)})
    assert doc is not None
    return doc


async def route(work: TeamWork, store: Store, n: int, **kw: Any) -> dict[str, Any]:
    conv = await conversation(store, n, **kw)
    await work.router.handle([conv])
    found = await store.db.conversations.find_one({"_id": conv["_id"]})
    assert found is not None
    return found


async def test_lowest_load_first_then_who_waited_longest(store: Store, work: TeamWork) -> None:
    a, b, c = [await agent(store.db, n, max_open=m) for n, m in (("ann", 4), ("bo", 2),
                                                                  ("cy", 4))]
    away = await agent(store.db, "dee", online=False)
    team = await work.store.create_team({"name": "售后", "members": [a, b, c, away]})
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "all", "conditions": {}, "actions": {"team_id": str(team["_id"])}},
        platforms=["telegram"]))
    got = []
    for n in range(6):
        work.assigner.clock.advance(1)  # type: ignore[attr-defined]
        got.append((await route(work, store, n))["assignee_id"])
    # loads 0/4, 0/2, 0/4 → ann, bo, cy (ties by wait); then 1/4 1/2 1/4 → ann, cy; then
    # 2/4 1/2 2/4 → bo (0.5 ties, bo waited longest); the away agent never
    assert got == [a, b, c, a, c, b]
    loads = {d["_id"]: d["open"] async for d in store.db.agent_load.find({})}
    assert loads == {a: 2, b: 2, c: 2}
    conv = await store.db.conversations.find_one({"assignee_id": a})
    assert conv and conv["team_id"] == str(team["_id"]) and conv["routing"]["rule_id"]
    assert [s["step"] for s in conv["routing"]["steps"]] == ["routed", "assigned"]


async def test_full_team_queues_then_a_freed_slot_serves_the_queue_in_order(
        store: Store, work: TeamWork) -> None:
    a = await agent(store.db, "ann", max_open=1)
    team = await work.store.create_team({"name": "售前", "members": [a]})
    tid = str(team["_id"])
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "all", "actions": {"team_id": tid}}, platforms=[]))
    first = await route(work, store, 1)
    assert first["assignee_id"] == a
    waiting = []
    for n in (2, 3, 4):
        work.assigner.clock.advance(5)  # type: ignore[attr-defined]
        conv = await route(work, store, n)
        assert conv["assignee_id"] is None and conv["queued_since"] is not None
        waiting.append(str(conv["_id"]))
    assert await work.assigner.positions(waiting) == {w: i + 1 for i, w in enumerate(waiting)}
    # a VIP's conversation jumps the queue by priority
    await store.db.team_queue.update_one({"_id": waiting[2]}, {"$set": {"rank": 3}})
    assert [e["_id"] for e in await work.assigner.queue(tid)] == [waiting[2], *waiting[:2]]
    # resolving frees the slot: the head of the queue is assigned at once
    await work.assigner.set_status(str(first["_id"]), "resolved", {"status": "resolved"})
    served = await store.db.conversations.find_one({"_id": ObjectId(waiting[2])})
    assert served and served["assignee_id"] == a and served["queued_since"] is None
    assert served["routing"]["steps"][-1]["why"] == "from_queue"
    assert (await store.db.agent_load.find_one({"_id": a}))["open"] == 1
    # a higher cap serves the next one
    await store.db.agents.update_one({"_id": ObjectId(a)}, {"$set": {"max_open": 2}})
    await work.assigner.cap_changed(a)
    assert [e["_id"] for e in await work.assigner.queue(tid)] == [waiting[1]]


async def test_overflow_to_the_fallback_team_after_the_wait(store: Store,
                                                            work: TeamWork) -> None:
    busy = await agent(store.db, "ann", max_open=0)
    spare = await agent(store.db, "bo", online=False)
    fallback = await work.store.create_team({"name": "技术支持", "members": [spare]})
    team = await work.store.create_team({"name": "售后", "members": [busy],
                                         "fallback_team_id": str(fallback["_id"]),
                                         "overflow_after_s": 120})
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "all", "actions": {"team_id": str(team["_id"])}}, platforms=[]))
    conv = await route(work, store, 1)
    assert conv["queued_since"] is not None
    clock: FixedClock = work.assigner.clock  # type: ignore[assignment]
    clock.advance(119)
    assert await work.assigner.tick() == {"overflowed": 0, "served": 0}
    clock.advance(1)
    assert (await work.assigner.tick())["overflowed"] == 1
    moved = await store.db.conversations.find_one({"_id": conv["_id"]})
    assert moved and moved["team_id"] == str(fallback["_id"]) and moved["assignee_id"] is None
    assert moved["routing"]["steps"][-1]["step"] == "overflowed"
    # the fallback's agent comes online: served from the fallback queue
    await store.db.agents.update_one({"_id": ObjectId(spare)},
                                     {"$set": {"availability": "online"}})
    await work.assigner.availability_changed(spare, "online", "offline")
    done = await store.db.conversations.find_one({"_id": conv["_id"]})
    assert done and done["assignee_id"] == spare
    assert await store.db.team_queue.count_documents({}) == 0


async def test_a_returning_customer_goes_to_the_agent_who_served_them(
        store: Store, work: TeamWork) -> None:
    a, b = await agent(store.db, "ann"), await agent(store.db, "bo")
    team = await work.store.create_team({"name": "售后", "members": [a, b]})
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "all", "actions": {"team_id": str(team["_id"])}}, platforms=[]))
    first = await route(work, store, 1, user="loyal")
    await work.assigner.set_assignee(str(first["_id"]), b, by=b)  # bo took it over
    await work.assigner.set_status(str(first["_id"]), "resolved", {"status": "resolved"})
    other = await route(work, store, 2, user="someone")
    assert other["assignee_id"] == a  # lowest load
    # the same customer in a new conversation (another thread): back to bo
    again = await route(work, store, 3, user="loyal")
    assert again["assignee_id"] == b and again["routing"]["returning"] is True
    # unless bo is away
    await store.db.agents.update_one({"_id": ObjectId(b)}, {"$set": {"availability": "away"}})
    third = await route(work, store, 4, user="loyal")
    assert third["assignee_id"] == a and third["routing"]["returning"] is False


async def test_going_away_hands_back_only_where_the_team_asks(store: Store,
                                                              work: TeamWork) -> None:
    a, b = await agent(store.db, "ann"), await agent(store.db, "bo", online=False)
    keeps = await work.store.create_team({"name": "A", "members": [a, b]})
    hands = await work.store.create_team({"name": "B", "members": [a, b],
                                          "reassign_on_away": True})
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "refund", "conditions": {"keywords": ["退款"]},
         "actions": {"team_id": str(hands["_id"])}}, platforms=[]))
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "rest", "position": 100, "actions": {"team_id": str(keeps["_id"])}},
        platforms=[]))
    kept = await route(work, store, 1, text="你好")
    moved = await route(work, store, 2, text="我要退款")
    assert kept["assignee_id"] == a and moved["assignee_id"] == a
    await store.db.agents.update_one({"_id": ObjectId(b)}, {"$set": {"availability": "online"}})
    await store.db.agents.update_one({"_id": ObjectId(a)}, {"$set": {"availability": "away"}})
    assert await work.assigner.availability_changed(a, "away", "online") == 1
    after = {str(d["_id"]): d["assignee_id"] async for d in store.db.conversations.find({})}
    assert after == {str(kept["_id"]): a, str(moved["_id"]): b}
    loads = {d["_id"]: d["open"] async for d in store.db.agent_load.find({})}
    assert loads == {a: 1, b: 1}


async def test_claims_route_once_and_the_sweep_takes_over_a_dead_claim(
        store: Store, work: TeamWork, db: Database) -> None:
    a = await agent(db, "ann")
    team = await work.store.create_team({"name": "售后", "members": [a]})
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "all", "actions": {"team_id": str(team["_id"])}}, platforms=[]))
    other = TeamWork(db, TeamSettings(routing=False, search_indexing=False), "Acme",
                     work.assigner.clock)
    conv = await conversation(store, 1)
    await work.router.handle([conv])
    await other.router.handle([conv])
    assert (work.router.routed, other.router.routed, other.router.skipped) == (1, 0, 1)
    # a claim left by a process that died before routing
    stuck = await conversation(store, 2)
    await db.route_claims.insert_one({"_id": str(stuck["_id"]), "owner": "dead",
                                      "at": T0.replace(year=2020)})
    await work.router.handle([stuck])
    assert (await db.conversations.find_one({"_id": stuck["_id"]})).get("routing") is None
    assert await other.router.sweep(T0.replace(year=2020)) >= 1
    routed = await db.conversations.find_one({"_id": stuck["_id"]})
    assert routed and routed["assignee_id"] == a
    assert (await db.agent_load.find_one({"_id": a}))["open"] == 2


async def test_reconcile_counts_what_the_ingest_reopened(store: Store, work: TeamWork) -> None:
    a = await agent(store.db, "ann", max_open=1)
    team = await work.store.create_team({"name": "售后", "members": [a]})
    await work.store.create_rule(await work.store.clean_rule(
        {"name": "all", "actions": {"team_id": str(team["_id"])}}, platforms=[]))
    conv = await route(work, store, 1)
    await work.assigner.set_status(str(conv["_id"]), "resolved", {"status": "resolved"})
    assert (await store.db.agent_load.find_one({"_id": a}))["open"] == 0
    await store.ingest(inbound(2, thread="t1", user="u1", text="还在吗"))  # reopens it
    await store.settle()
    assert (await store.db.conversations.find_one({"_id": conv["_id"]}))["status"] == "open"
    assert await work.assigner.load.reconcile(a, work.assigner.clock.now()) == 1
    queued = await route(work, store, 3)
    assert queued["assignee_id"] is None  # the cap holds


async def test_a_burst_is_routed_together_with_each_outcome_as_alone(
        store: Store, work: TeamWork) -> None:
    """One batch of new conversations: those somebody can take are assigned one by one under
    the caps; those nobody can take now are recorded (and queued, in arrival order, when they
    have a team) together, each with its own decision and contact history."""
    ann = await agent(store.db, "ann", max_open=2)
    bo = await agent(store.db, "bo", online=False)
    refunds = await work.store.create_team({"name": "售后", "members": [ann]})
    invoices = await work.store.create_team({"name": "财务", "members": [bo]})
    for name, word, team in (("refund", "退款", refunds), ("invoice", "发票", invoices)):
        await work.store.create_rule(await work.store.clean_rule(
            {"name": name, "conditions": {"keywords": [word]},
             "actions": {"team_id": str(team["_id"]), "labels": [name]}}, platforms=[]))
    texts = ["我要退款", "发票抬头", "你好", "退款进度", "发票税号", "退款三", "在吗"]
    convs = [await conversation(store, n, text) for n, text in enumerate(texts)]
    await work.router.handle(convs)
    got = {str(c["_id"]): c for c in await store.db.conversations.find({}).to_list()}
    by_text = {t: got[str(c["_id"])] for t, c in zip(texts, convs, strict=True)}

    assert [by_text[t]["assignee_id"] for t in ("我要退款", "退款进度")] == [ann, ann]
    third = by_text["退款三"]  # ann is full: it waits for her
    assert third["assignee_id"] is None and third["queued_since"] is not None
    assert [s["step"] for s in third["routing"]["steps"]] == ["routed", "queued"]
    waiting = [str(by_text[t]["_id"]) for t in ("发票抬头", "发票税号")]
    assert await work.assigner.positions(waiting) == {waiting[0]: 1, waiting[1]: 2}
    for t in ("发票抬头", "发票税号"):
        conv = by_text[t]
        assert conv["team_id"] == str(invoices["_id"]) and conv["labels"] == ["invoice"]
        assert [s["step"] for s in conv["routing"]["steps"]] == ["routed", "queued"]
    for t in ("你好", "在吗"):
        conv = by_text[t]
        assert conv["team_id"] is None and conv["queued_since"] is None
        assert [s["step"] for s in conv["routing"]["steps"]] == ["routed"]
    assert work.router.routed == len(texts)
    history = {d["_id"]: d.get("agent_id") async for d in store.db.contact_history.find({})}
    assert history == {str(c["_id"]): c["assignee_id"] for c in got.values()}

    # routed again (a sweep, another process): nothing changes, nothing is counted
    await work.router.handle(convs, sweeping=True)
    assert work.router.routed == len(texts)
    assert (await store.db.agent_load.find_one({"_id": ann}))["open"] == 2
