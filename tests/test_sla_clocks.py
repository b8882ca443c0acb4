"""SLA clocks on a fake clock (nothing sleeps): targets counted in business hours across
China's National Day and a make-up Saturday, a pause while pending, two time zones; then the
clocks against the real database: breaches recorded on the conversation with the missed
target, the team lead notified, the hand-over, "breaching soonest", and the API's shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bson import ObjectId

from inbox.agents import Agents
from inbox.clock import FixedClock
from inbox.db import Database
from measures import sla
from measures.service import Measures
from measures.settings import CsatSettings, SlaSettings
from replies.settings import IdentitySettings
from teams.service import TeamWork
from teams.settings import TeamSettings

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
WORKDAYS = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
CN_HOURS = {"timezone": "Asia/Shanghai", "holidays": "CN", "weekly": WORKDAYS}
NY_HOURS = {"timezone": "America/New_York", "holidays": "US", "weekly": WORKDAYS}
POLICY = {"_id": ObjectId(), "name": "standard", "first_response_s": 3600,
          "next_response_s": 1800, "resolution_s": 8 * 3600, "business_hours": True}


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


def timer_at(opened: datetime, hours: Any = CN_HOURS, policy: Any = POLICY) -> dict[str, Any]:
    conv = {"_id": ObjectId(), "platform": "chat", "team_id": "t1"}
    timer = sla.new_timer(conv, policy, hours, opened)
    sla.schedule(timer)
    return timer


def test_business_hours_skip_the_night_and_the_weekend() -> None:
    t = timer_at(local(SHANGHAI, 2026, 9, 25 - 1, 17, 30))  # Thu 24 Sep, 17:30
    # 30 minutes on Thursday; Friday 25 Sep is the Mid-Autumn Festival; Monday 09:30
    assert t["due"]["first_response"] == local(SHANGHAI, 2026, 9, 28, 9, 30)
    # 8 business hours: 0.5 h Thursday, then Mon 09:00 + 7.5 h
    assert t["due"]["resolution"] == local(SHANGHAI, 2026, 9, 28, 16, 30)


def test_national_day_is_closed_and_the_makeup_saturday_opens() -> None:
    t = timer_at(local(SHANGHAI, 2026, 9, 30, 17, 30))  # Wed, the eve of 国庆节
    # 1 to 7 October closed (holidays, a Sunday, substituted days off): Thursday 8th 09:30
    assert t["due"]["first_response"] == local(SHANGHAI, 2026, 10, 8, 9, 30)
    t = timer_at(local(SHANGHAI, 2026, 10, 9, 17, 30))  # Fri 9 Oct
    # Saturday 10 October is a make-up working day (调休), with Monday's hours
    assert t["due"]["first_response"] == local(SHANGHAI, 2026, 10, 10, 9, 30)


def test_plain_elapsed_time_without_business_hours() -> None:
    policy = {**POLICY, "business_hours": False}
    opened = local(SHANGHAI, 2026, 10, 1, 23, 0)
    t = timer_at(opened, hours=None, policy=policy)
    assert t["due"]["first_response"] == opened + timedelta(hours=1)


def test_two_time_zones_same_moment_different_due_times() -> None:
    opened = datetime(2026, 11, 2, 22, 30, tzinfo=UTC)  # Tue 06:30 Shanghai, Mon 17:30 NY
    cn, ny = timer_at(opened, CN_HOURS), timer_at(opened, NY_HOURS)
    assert cn["due"]["first_response"] == local(SHANGHAI, 2026, 11, 3, 10, 0)
    assert ny["due"]["first_response"] == local(NEW_YORK, 2026, 11, 3, 9, 30)
    # New York leaves daylight saving on 1 November 2026: local hours, real seconds
    assert ny["due"]["first_response"].astimezone(UTC) == datetime(2026, 11, 3, 14, 30,
                                                                    tzinfo=UTC)


def test_pending_pauses_the_clock_and_keeps_what_was_left() -> None:
    t = timer_at(local(SHANGHAI, 2026, 11, 2, 9, 0))  # Monday
    sla.paused(t, local(SHANGHAI, 2026, 11, 2, 9, 20))
    sla.schedule(t)
    assert t["due_at"] is None and t["check_at"] is None
    assert t["left"]["first_response"] == 40 * 60
    # pending until the evening: the night is not business time, so 10 minutes go on Monday
    sla.resumed(t, local(SHANGHAI, 2026, 11, 2, 17, 50))
    sla.schedule(t)
    assert t["due"]["first_response"] == local(SHANGHAI, 2026, 11, 3, 9, 30)
    outcomes = sla.agent_replied(t, local(SHANGHAI, 2026, 11, 3, 9, 10))
    assert outcomes == [sla.Outcome("first_response", True, local(SHANGHAI, 2026, 11, 3, 9,
                                                                        10))]


def test_next_response_starts_at_the_customers_message_and_a_miss_counts_once() -> None:
    t = timer_at(local(SHANGHAI, 2026, 11, 2, 9, 0))
    sla.agent_replied(t, local(SHANGHAI, 2026, 11, 2, 9, 5))
    assert t["due"]["next_response"] is None
    sla.customer_wrote(t, local(SHANGHAI, 2026, 11, 2, 10, 0))
    assert t["due"]["next_response"] == local(SHANGHAI, 2026, 11, 2, 10, 30)
    outcomes, actions = sla.check(t, local(SHANGHAI, 2026, 11, 2, 10, 31), notify_after=0,
                                  reassign_after=600)
    assert outcomes == [sla.Outcome("next_response", False,
                                    local(SHANGHAI, 2026, 11, 2, 10, 30))]
    assert [a.kind for a in actions] == ["notify"]
    assert t["breaches"][0]["target"] == "next_response"
    # the late answer is not counted a second time
    assert sla.agent_replied(t, local(SHANGHAI, 2026, 11, 2, 11, 0)) == []


def test_choose_policy_most_specific_first() -> None:
    general = {"_id": 1, "applies_to": {}}
    team = {"_id": 2, "applies_to": {"team_id": "t1"}}
    vip = {"_id": 3, "applies_to": {"team_id": "t1", "labels": ["VIP"]}}
    urgent = {"_id": 4, "applies_to": {"priority": "urgent"}}
    policies = [general, team, vip, urgent]
    assert sla.choose_policy(policies, {"team_id": "t2"}) is general
    assert sla.choose_policy(policies, {"team_id": "t1"}) is team
    assert sla.choose_policy(policies, {"team_id": "t1", "labels": ["VIP"]}) is vip
    assert sla.choose_policy(policies, {"team_id": "t2", "priority": "urgent"}) is urgent
    assert sla.choose_policy([vip], {"team_id": "t2"}) is None


# ---------------------------------------------------------------------- against the database

T0 = local(SHANGHAI, 2026, 11, 2, 9, 0).astimezone(UTC)  # Monday 09:00 in Shanghai


async def _setup(db: Database) -> tuple[Measures, FixedClock, dict[str, str]]:
    clock = FixedClock(T0)
    work = TeamWork(db, TeamSettings(routing=False, search_indexing=False), "Acme", clock)
    await work.setup()
    ids = {}
    for login in ("lead", "ann", "bo"):
        doc = await Agents(db).create(login, display_name=login.title(), password="x" * 10)
        await db.agents.update_one({"_id": doc["_id"]}, {"$set": {"availability": "online"}})
        ids[login] = str(doc["_id"])
    team = await work.store.create_team({"name": "After-sales", "members": [ids["ann"],
                                                                            ids["bo"]],
                                         "business_hours": CN_HOURS})
    await db.teams.update_one({"_id": team["_id"]}, {"$set": {"leads": [ids["lead"]]}})
    ids["team"] = str(team["_id"])
    await db.sla_policies.insert_one({**POLICY, "applies_to": {"team_id": ids["team"]},
                                      "created_at": T0})
    measures = Measures(db, clock, SlaSettings(follow=False, notify_after_s=0,
                                               reassign_after_s=600),
                        CsatSettings(), IdentitySettings(), teams=work, routing=False)
    measures.open_wait = 0
    await measures.setup()
    return measures, clock, ids


async def _conversation(db: Database, ids: dict[str, str], n: int,
                        at: datetime) -> dict[str, Any]:
    conv = {"_id": ObjectId(), "platform": "chat", "account_id": "a1", "status": "open",
            "team_id": ids["team"], "assignee_id": ids["ann"], "created_at": at,
            "sk": f"{n:04d}", "labels": [], "kind": "dm", "thread_key": f"t{n}"}
    await db.conversations.insert_one(conv)
    await db.agent_load.update_one({"_id": ids["ann"]}, {"$inc": {"open": 1}}, upsert=True)
    return conv


def _message(conv: dict[str, Any], direction: str, at: datetime, **extra: Any,
             ) -> dict[str, Any]:
    return {"_id": ObjectId(), "conversation_id": str(conv["_id"]), "direction": direction,
            "received_at": at, "created_at": at, "sk": at.isoformat(), "text": "hi", **extra}


async def test_breaches_notify_the_lead_and_hand_over(db: Database) -> None:
    measures, clock, ids = await _setup(db)
    late = await _conversation(db, ids, 1, T0)
    quick = await _conversation(db, ids, 2, T0 + timedelta(minutes=10))
    await measures.handle_messages([_message(late, "in", T0),
                                    _message(quick, "in", T0 + timedelta(minutes=10))])
    sla_of = await measures.sla_of([str(late["_id"]), str(quick["_id"])])
    assert sla_of[str(late["_id"])]["first_response_due_at"] == "2026-11-02T02:00:00Z"
    assert sla_of[str(late["_id"])]["state"] == "ok"

    # breaching soonest: the earliest due first, an indexed range on sla_timers
    order = [t["_id"] for t in await measures.clocks.soonest(limit=10)]
    assert order == [str(late["_id"]), str(quick["_id"])]

    clock.current = T0 + timedelta(minutes=50)
    assert (await measures.sla_of([str(late["_id"])]))[str(late["_id"])]["state"] == "amber"
    await measures.handle_messages([_message(quick, "out", clock.current,
                                             agent_id=ids["ann"])])
    clock.current = T0 + timedelta(minutes=61)
    assert await measures.check() == 1
    conv = await db.conversations.find_one({"_id": late["_id"]})
    assert conv is not None
    assert [b["target"] for b in conv["sla_breaches"]] == ["first_response"]
    body = (await measures.sla_of([str(late["_id"])]))[str(late["_id"])]
    assert body["state"] == "red" and body["breaches"][0]["due_at"] == "2026-11-02T02:00:00Z"
    notes = await db.notifications.find({"agent_id": ids["lead"]}).to_list()
    assert [(n["kind"], n["target"], n["conversation_id"]) for n in notes] == [
        ("sla_breach", "first_response", str(late["_id"]))]

    # ten minutes past the breach it goes to the other member of the team
    clock.current = T0 + timedelta(minutes=71)
    await measures.check()
    conv = await db.conversations.find_one({"_id": late["_id"]})
    assert conv is not None and conv["assignee_id"] == ids["bo"]
    assert await measures.check() == 0  # nothing more to do until a target falls due

    # pending stops the clock (out of breaching soonest); resolving ends it
    await db.conversations.update_one({"_id": quick["_id"]}, {"$set": {"status": "pending"}})
    await measures.status_changed(str(quick["_id"]), "open", {**quick, "status": "pending"},
                                  None)
    assert [t["_id"] for t in await measures.clocks.soonest(limit=10)] == [str(late["_id"])]
    await measures.status_changed(str(late["_id"]), "open", {**late, "status": "resolved"},
                                  None)
    assert await measures.clocks.soonest(limit=10) == []
    buckets = await db.report_counters.find({"part": "all"}).to_list()
    # quick: met; late: first response missed, resolution met
    assert sum(b["c"]["all"].get("sla_n", 0) for b in buckets) == 3
    assert sum(b["c"]["all"].get("sla_hit", 0) for b in buckets) == 2
