"""Automatic assignment inside a team, the team's queue, overflow, and the hand-made moves.

Inside a team the conversation goes to the available (`online`) member with the lowest load
(open conversations ÷ cap); ties go to who waited longest since their last assignment. A
returning customer goes to the agent who served them last when that agent is online and
under cap. When every member is full (or none is online) the conversation waits in the team's
queue (`team_queue`, served by priority, then by who waited longest) and is assigned the moment
a slot frees up: `drain` runs when an agent resolves or hands over a conversation, comes online
or gets a higher cap, and on every `tick`. After the team's `overflow_after_s` a waiting
conversation moves to the fallback team's queue (`tick` with the injected clock: tests move a
fake clock, nothing sleeps).

Every step is a conditional update, so any number of processes can run this at once: a slot is
taken under the cap (teams.load), the conversation's assignee is set by compare-and-set, a queue
entry is served under a short lease. Each decision is recorded on the conversation (`routing`,
with `steps`: which rule, which team, which agent, why).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from inbox.clock import Clock
from inbox.conversation_docs import insert_ignoring_duplicates
from inbox.db import Database, Doc, find_in
from inbox.store import NotFound, oid
from teams.load import COUNTED, Load
from teams.rules import PRIORITY_RANK
from teams.store import TeamStore

log = logging.getLogger(__name__)

DEFAULT_CAP = 10
LEASE = timedelta(seconds=15)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cap_of(agent: Mapping[str, Any], team: Mapping[str, Any] | None, default: int) -> int:
    """The cap for `agent` in `team`: the team's cap for that member, the agent's own, the
    team's default, the server's default."""
    aid = str(agent["_id"])
    for value in ((team or {}).get("member_caps") or {}).get(aid), agent.get("max_open"), \
            (team or {}).get("max_open"):
        if value is not None:
            return int(value)
    return default


def recorded(decision: Mapping[str, Any], team_id: str | None, now: datetime) -> Doc:
    """What recording `decision` with nobody assigned sets on a conversation (queued when
    `team_id` names a team that exists)."""
    steps: list[Doc] = [{"at": now, "step": "routed", "team_id": decision.get("team_id"),
                         "rule_id": decision.get("rule_id")}]
    if team_id is not None:
        steps.append({"at": now, "step": "queued", "team_id": team_id})
    return {"team_id": decision.get("team_id"), "priority": decision.get("priority") or "normal",
            "routing": {**decision, "at": now, "agent_id": None, "returning": False,
                        "steps": steps},
            "queued_since": now if team_id is not None else None}


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return EPOCH
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Assigner:
    def __init__(self, db: Database, teams: TeamStore, clock: Clock, *,
                 default_cap: int = DEFAULT_CAP) -> None:
        self.db = db
        self.teams = teams
        self.clock = clock
        self.load = Load(db)
        self.default_cap = default_cap
        self._draining: dict[str, asyncio.Lock] = {}
        self.assigned = 0
        self.queued = 0

    # ------------------------------------------------------------------ who can take one

    async def _agents(self, ids: Sequence[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        return {str(a["_id"]): a async for a in self.db.agents.find(
            {"_id": {"$in": [oid(i) for i in ids]}, "active": True},
            {"availability": 1, "max_open": 1, "display_name": 1})}

    async def candidates(self, team: Doc | None, preferred: str | None = None,
                         ) -> list[tuple[str, int]]:
        """(agent, cap) in the order to try: the returning customer's agent first, then by
        load ratio and the longest wait."""
        members = list((team or {}).get("members") or [])
        agents = await self._online([*([preferred] if preferred else []), *members])
        return self._ranked(team, preferred, agents, await self.load.of(list(agents)))

    async def _online(self, ids: Sequence[str]) -> dict[str, Doc]:
        return {k: a for k, a in (await self._agents(list(dict.fromkeys(ids)))).items()
                if a.get("availability") == "online"}

    def _ranked(self, team: Doc | None, preferred: str | None, agents: Mapping[str, Doc],
                loads: Mapping[str, Doc]) -> list[tuple[str, int]]:
        members = list((team or {}).get("members") or [])
        out: list[tuple[float, datetime, str, int]] = []
        first: list[tuple[str, int]] = []
        for aid in dict.fromkeys([*([preferred] if preferred else []), *members]):
            agent = agents.get(aid)
            if agent is None:
                continue
            cap = cap_of(agent, team if aid in members else None, self.default_cap)
            open_ = int(loads.get(aid, {}).get("open", 0))
            if cap <= 0 or open_ >= cap:
                continue
            if aid == preferred:
                first.append((aid, cap))
                continue
            last = _aware(loads.get(aid, {}).get("last_assigned_at"))
            out.append((open_ / cap, last, aid, cap))
        out.sort(key=lambda row: (row[0], row[1], row[2]))
        return first + [(aid, cap) for _, _, aid, cap in out]

    async def last_agent(self, contact_id: str | None, conversation_id: str) -> str | None:
        """The agent who served this contact last, on any channel."""
        found = await self.last_agents([{"_id": conversation_id, "contact_id": contact_id}])
        return found.get(conversation_id)

    async def last_agents(self, convs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """`last_agent` of each conversation (by id) whose contact has one, read together:
        among the contact's ten newest other conversations, the newest with an agent."""
        contacts = {str(c["contact_id"]) for c in convs if c.get("contact_id")}
        if not contacts:
            return {}
        history: dict[str, list[Doc]] = {}
        for row in await find_in(self.db.contact_history, contacts, None,
                                 {"agent_id": 1, "contact_id": 1, "created_at": 1},
                                 field="contact_id"):
            history.setdefault(str(row["contact_id"]), []).append(row)
        for rows in history.values():
            rows.sort(key=lambda r: _aware(r.get("created_at")), reverse=True)
        out: dict[str, str] = {}
        for conv in convs:
            conv_id = str(conv["_id"])
            for row in history.get(str(conv.get("contact_id") or ""), [])[:10]:
                if row["_id"] != conv_id and row.get("agent_id"):
                    out[conv_id] = str(row["agent_id"])
                    break
        return out

    # ------------------------------------------------------------------ routing a new one

    async def route(self, conv: Doc, decision: Mapping[str, Any]) -> str:
        """Record the routing decision on a new conversation and assign or queue it, in one
        compare-and-set on the conversation. Returns "assigned", "queued", "recorded" (no
        team, nobody free) or "taken" (already routed by someone else)."""
        return await self._route(conv, decision,
                                 await self.last_agent(conv.get("contact_id"), str(conv["_id"])))

    async def _route(self, conv: Doc, decision: Mapping[str, Any], preferred: str | None,
                     ) -> str:
        conv_id = str(conv["_id"])
        now = self.clock.now()
        team_id = decision.get("team_id")
        team = (await self.teams.teams()).get(team_id) if team_id else None
        routing: Doc = {**decision, "at": now, "agent_id": None, "returning": False,
                        "steps": [{"at": now, "step": "routed", "team_id": team_id,
                                   "rule_id": decision.get("rule_id")}]}
        base: Doc = {"team_id": team_id, "priority": decision.get("priority") or "normal"}
        labels = list(decision.get("labels") or [])
        flt: Doc = {"_id": oid(conv_id), "routing": {"$exists": False}}
        for agent_id, cap in await self.candidates(team, preferred):
            if not await self.load.reserve(agent_id, conv_id, cap, now):
                continue
            step = {"at": now, "step": "assigned", "agent_id": agent_id, "team_id": team_id,
                    "why": "returning" if agent_id == preferred else "lowest_load"}
            got = {**routing, "agent_id": agent_id, "returning": agent_id == preferred,
                   "steps": [*routing["steps"], step]}
            result = await self.db.conversations.update_one(
                {**flt, "assignee_id": None},
                {"$set": {**base, "routing": got, "assignee_id": agent_id, "assigned_at": now,
                          "queued_since": None},
                 "$addToSet": {"labels": {"$each": labels}}})
            if result.modified_count == 1:
                await self.load.confirm(agent_id, conv_id)
                await self._history(conv, agent_id)
                self.assigned += 1
                return "assigned"
            await self.load.undo(agent_id, conv_id)
            break  # someone else routed or took it: record what we can below
        if team is not None:
            routing["steps"].append({"at": now, "step": "queued", "team_id": team_id})
        result = await self.db.conversations.update_one(
            flt, {"$set": {**base, "routing": routing,
                           "queued_since": now if team is not None else None},
                  "$addToSet": {"labels": {"$each": labels}}})
        if result.modified_count == 0:
            return "taken"
        await self._history(conv, None)
        if team is None:
            return "recorded"
        current = await self.db.conversations.find_one({"_id": oid(conv_id)},
                                                       {"assignee_id": 1})
        if current and current.get("assignee_id"):
            await self.db.conversations.update_one({"_id": oid(conv_id)},
                                                   {"$set": {"queued_since": None}})
            return "recorded"  # taken by hand meanwhile
        await self.enqueue(conv_id, team, base["priority"], now)
        self.queued += 1
        await self.drain(team_id)
        return "queued"

    async def route_many(self, items: Sequence[tuple[Doc, Mapping[str, Any]]]) -> list[str]:
        """`route` for a batch of new conversations, outcome by outcome. Who could take each
        one is read once for the batch; a conversation somebody can take goes through `route`
        (each assignment takes a slot under its agent's cap, one at a time). The others (no
        team and no returning agent online, or a team whose members are all away or full)
        are recorded, and queued when they have a team, with one write per distinct decision
        instead of five commands each: a burst of new chats is routed at the pace it arrives.
        An agent who comes online meanwhile is not missed: a queued conversation is served
        by the `drain` that follows, and on every tick."""
        if not items:
            return []
        teams = await self.teams.teams()
        preferred = await self.last_agents([conv for conv, _ in items])
        wanted = set(preferred.values())
        for _, decision in items:
            wanted.update((teams.get(decision.get("team_id") or "") or {}).get("members") or [])
        agents = await self._online(sorted(wanted))
        loads = await self.load.of(list(agents))
        outcomes = [""] * len(items)
        groups: dict[str, list[int]] = {}
        for i, (conv, decision) in enumerate(items):
            team = teams.get(decision.get("team_id") or "")
            returning = preferred.get(str(conv["_id"]))
            if self._ranked(team, returning, agents, loads):
                outcomes[i] = await self._route(conv, decision, returning)
            else:
                key = json.dumps(decision, sort_keys=True, default=str)
                groups.setdefault(key, []).append(i)
        for indexes in groups.values():
            decision = items[indexes[0]][1]
            team = teams.get(decision.get("team_id") or "")
            got = await self._record_many([items[i][0] for i in indexes], decision, team)
            for i in indexes:
                outcomes[i] = got[str(items[i][0]["_id"])]
        return outcomes

    async def _record_many(self, convs: list[Doc], decision: Mapping[str, Any],
                           team: Doc | None) -> dict[str, str]:
        """Record one decision on conversations nobody can take now (and queue them when it
        names a team); "taken" for those routed meanwhile by someone else."""
        now = self.clock.now()
        team_id = str(team["_id"]) if team is not None else None
        fields = recorded(decision, team_id, now)
        priority = fields["priority"]
        ids = [str(c["_id"]) for c in convs]
        result = await self.db.conversations.update_many(
            {"_id": {"$in": [oid(i) for i in ids]}, "routing": {"$exists": False}},
            {"$set": fields,
             "$addToSet": {"labels": {"$each": list(decision.get("labels") or [])}}})
        mine = set(ids)
        if result.modified_count != len(ids):  # some were routed meanwhile: which are ours
            mine = {str(d["_id"]) for d in await find_in(
                self.db.conversations, [oid(i) for i in ids], {"routing.at": now}, {"_id": 1})}
        outcomes = {i: "taken" for i in ids}
        ours = [c for c in convs if str(c["_id"]) in mine]
        await self.history_many(ours)
        if team is None:
            outcomes.update((str(c["_id"]), "recorded") for c in ours)
            return outcomes
        taken_by_hand = {str(d["_id"]) for d in await find_in(
            self.db.conversations, [oid(i) for i in mine], {"assignee_id": {"$ne": None}},
            {"_id": 1})}
        if taken_by_hand:
            await self.db.conversations.update_many(
                {"_id": {"$in": [oid(i) for i in taken_by_hand]}}, {"$set": {"queued_since": None}})
        for n, conv in enumerate(ours):
            conv_id = str(conv["_id"])
            if conv_id in taken_by_hand:
                outcomes[conv_id] = "recorded"
                continue
            # in arrival order, as if routed one by one (the queue's ties go by id)
            await self.enqueue(conv_id, team, priority, now + timedelta(milliseconds=n))
            self.queued += 1
            outcomes[conv_id] = "queued"
        if len(taken_by_hand) < len(ours):
            await self.drain(team_id)
        return outcomes

    async def history_many(self, convs: Sequence[Mapping[str, Any]]) -> None:
        """Contact history entries of conversations recorded without an agent."""
        docs = [{"_id": str(c["_id"]), "contact_id": str(c["contact_id"]),
                 "created_at": c.get("created_at") or self.clock.now(),
                 "platform": c.get("platform"), "account_id": c.get("account_id"),
                 "agent_id": None} for c in convs if c.get("contact_id")]
        await insert_ignoring_duplicates(self.db.contact_history, docs)

    async def _history(self, conv: Mapping[str, Any], agent_id: str | None) -> None:
        if not conv.get("contact_id"):
            return
        doc = {"_id": str(conv["_id"]), "contact_id": str(conv["contact_id"]),
               "created_at": conv.get("created_at") or self.clock.now(),
               "platform": conv.get("platform"), "account_id": conv.get("account_id"),
               "agent_id": agent_id}
        try:
            await self.db.contact_history.insert_one(doc)
        except DuplicateKeyError:
            if agent_id:
                await self.db.contact_history.update_one({"_id": doc["_id"]},
                                                         {"$set": {"agent_id": agent_id}})

    async def served_by(self, conversation_id: str, agent_id: str) -> None:
        await self.db.contact_history.update_one({"_id": conversation_id},
                                                 {"$set": {"agent_id": agent_id}})

    # ------------------------------------------------------------------ the queue

    async def enqueue(self, conv_id: str, team: Mapping[str, Any], priority: str,
                      since: datetime, visited: Sequence[str] = ()) -> None:
        wait = team.get("overflow_after_s")
        overflow_at = since + timedelta(seconds=float(wait)) if (
            wait is not None and team.get("fallback_team_id")) else None
        entry = {"team_id": str(team["_id"]), "rank": PRIORITY_RANK.get(priority, 1),
                 "since": since, "overflow_at": overflow_at, "lease_until": EPOCH,
                 "visited": [*visited, str(team["_id"])]}
        await self.db.team_queue.update_one({"_id": conv_id}, {"$set": entry}, upsert=True)

    async def queue(self, team_id: str) -> list[Doc]:
        """A team's queue in serving order (small: a page of waiting customers)."""
        return await self.db.team_queue.find({"team_id": team_id}).sort(
            [("rank", -1), ("since", 1), ("_id", 1)]).to_list()

    async def positions(self, conv_ids: Sequence[str]) -> dict[str, int]:
        """1-based queue positions of those of these conversations that wait."""
        entries = await self.db.team_queue.find({"_id": {"$in": list(conv_ids)}},
                                                {"team_id": 1}).to_list()
        out: dict[str, int] = {}
        for team_id in {e["team_id"] for e in entries}:
            for i, entry in enumerate(await self.queue(team_id)):
                if entry["_id"] in conv_ids:
                    out[entry["_id"]] = i + 1
        return out

    async def drain(self, team_id: str | None) -> int:
        """Assign waiting conversations of `team_id` while its members have free slots."""
        if not team_id:
            return 0
        lock = self._draining.setdefault(team_id, asyncio.Lock())
        if lock.locked():
            return 0  # a drain of this team is running in this process already
        served = 0
        async with lock:
            while True:
                team = (await self.teams.teams()).get(team_id)
                if team is None:
                    return served
                candidates = await self.candidates(team)
                if not candidates:
                    return served
                now = self.clock.now()
                entry = await self._lease_next(team_id, now)
                if entry is None:
                    return served
                outcome = await self._serve(entry, team, candidates, now)
                if outcome == "full":
                    await self.db.team_queue.update_one(
                        {"_id": entry["_id"], "lease_until": entry["lease"]},
                        {"$set": {"lease_until": EPOCH}})
                    return served
                served += outcome == "assigned"

    async def _lease_next(self, team_id: str, now: datetime) -> Doc | None:
        async for entry in self.db.team_queue.find({"team_id": team_id}).sort(
                [("rank", -1), ("since", 1), ("_id", 1)]).limit(8):
            if _aware(entry.get("lease_until")) > now:
                continue
            lease = now + LEASE
            result = await self.db.team_queue.update_one(
                {"_id": entry["_id"], "team_id": team_id,
                 "lease_until": entry.get("lease_until")},
                {"$set": {"lease_until": lease}})
            if result.modified_count == 1:
                return {**entry, "lease": lease}
        return None

    async def _serve(self, entry: Doc, team: Doc, candidates: list[tuple[str, int]],
                     now: datetime) -> str:
        conv_id = entry["_id"]
        conv = await self.db.conversations.find_one(
            {"_id": oid(conv_id)}, {"assignee_id": 1, "status": 1, "contact_id": 1})
        if conv is None or conv.get("assignee_id") or conv.get("status") == "resolved":
            await self.db.team_queue.delete_one({"_id": conv_id})
            return "gone"
        for agent_id, cap in candidates:
            if not await self.load.reserve(agent_id, conv_id, cap, now):
                continue
            step = {"at": now, "step": "assigned", "agent_id": agent_id,
                    "team_id": str(team["_id"]), "why": "from_queue"}
            result = await self.db.conversations.update_one(
                {"_id": oid(conv_id), "assignee_id": None},
                {"$set": {"assignee_id": agent_id, "assigned_at": now, "queued_since": None,
                          "routing.agent_id": agent_id}, "$push": {"routing.steps": step}})
            if result.modified_count == 1:
                await self.load.confirm(agent_id, conv_id)
                await self.db.team_queue.delete_one({"_id": conv_id})
                await self.served_by(conv_id, agent_id)
                self.assigned += 1
                return "assigned"
            await self.load.undo(agent_id, conv_id)
            await self.db.team_queue.delete_one({"_id": conv_id})
            return "gone"
        return "full"

    async def tick(self) -> dict[str, int]:
        """Overflow what waited too long, then serve every queue that may have room. Called
        every second or so by the router (and by tests after moving the clock)."""
        now = self.clock.now()
        moved = 0
        async for entry in self.db.team_queue.find(
                {"overflow_at": {"$gte": EPOCH, "$lte": now}}).sort("overflow_at", 1).limit(64):
            moved += await self._overflow(entry, now)
        served = 0
        for team_id in await self.db.team_queue.distinct("team_id"):
            served += await self.drain(team_id)
        return {"overflowed": moved, "served": served}

    async def _overflow(self, entry: Doc, now: datetime) -> int:
        team = (await self.teams.teams()).get(entry["team_id"])
        fallback_id = (team or {}).get("fallback_team_id")
        fallback = (await self.teams.teams()).get(fallback_id or "")
        if fallback is None or fallback_id in (entry.get("visited") or []):
            await self.db.team_queue.update_one({"_id": entry["_id"]},
                                                {"$set": {"overflow_at": None}})
            return 0
        wait = fallback.get("overflow_after_s")
        overflow_at = now + timedelta(seconds=float(wait)) if (
            wait is not None and fallback.get("fallback_team_id")) else None
        result = await self.db.team_queue.update_one(
            {"_id": entry["_id"], "team_id": entry["team_id"],
             "overflow_at": entry["overflow_at"], "lease_until": {"$lte": now}},
            {"$set": {"team_id": fallback_id, "overflow_at": overflow_at},
             "$push": {"visited": fallback_id}})
        if result.modified_count == 0:
            return 0
        step = {"at": now, "step": "overflowed", "from_team_id": entry["team_id"],
                "team_id": fallback_id}
        await self.db.conversations.update_one(
            {"_id": oid(entry["_id"]), "assignee_id": None},
            {"$set": {"team_id": fallback_id}, "$push": {"routing.steps": step}})
        return 1

    # ------------------------------------------------------------------ by hand

    async def set_assignee(self, conv_id: str, agent_id: str | None, *, by: str | None = None,
                           ) -> Doc:
        """An agent takes a conversation, hands it over, or an admin unassigns it: never
        capped, always counted."""
        now = self.clock.now()
        while True:
            conv = await self.db.conversations.find_one({"_id": oid(conv_id)})
            if conv is None:
                raise NotFound(conv_id)
            old = conv.get("assignee_id")
            if old == agent_id:
                return conv
            step = {"at": now, "step": "taken" if agent_id and agent_id == by else
                    ("handed_over" if agent_id else "unassigned"), "agent_id": agent_id,
                    "by": by}
            result = await self.db.conversations.update_one(
                {"_id": conv["_id"], "assignee_id": old, "status": conv.get("status")},
                {"$set": {"assignee_id": agent_id, "assigned_at": now if agent_id else None,
                          "queued_since": None}, "$push": {"routing.steps": step}})
            if result.modified_count == 1:
                break
        counted = conv.get("status") in COUNTED
        if agent_id:
            await self.db.team_queue.delete_one({"_id": conv_id})
            await self.served_by(conv_id, agent_id)
        if counted and agent_id:
            await self.load.add(agent_id, now)
        if counted and old:
            await self.load.release(old)
            await self._drain_teams_of(old)
        if not agent_id and conv.get("team_id") and counted:
            team = (await self.teams.teams()).get(conv["team_id"])
            if team is not None:
                await self.enqueue(conv_id, team, conv.get("priority") or "normal", now)
                await self.db.conversations.update_one({"_id": conv["_id"]},
                                                       {"$set": {"queued_since": now}})
                await self.drain(conv["team_id"])
        return await self.db.conversations.find_one({"_id": conv["_id"]}) or conv

    async def set_status(self, conv_id: str, status: str, changes: Mapping[str, Any]) -> Doc:
        """Resolve, reopen, snooze: the counter of the assignee follows."""
        while True:
            conv = await self.db.conversations.find_one({"_id": oid(conv_id)},
                                                        {"status": 1, "assignee_id": 1})
            if conv is None:
                raise NotFound(conv_id)
            result = await self.db.conversations.update_one(
                {"_id": conv["_id"], "status": conv.get("status"),
                 "assignee_id": conv.get("assignee_id")}, {"$set": dict(changes)})
            if result.modified_count == 1 or conv.get("status") == status:
                break
        agent = conv.get("assignee_id")
        was, now_counted = conv.get("status") in COUNTED, status in COUNTED
        if agent and was and not now_counted:
            await self.load.release(agent)
            await self._drain_teams_of(agent)
        elif agent and now_counted and not was:
            await self.load.add(agent)
        if status == "resolved":
            await self.db.team_queue.delete_one({"_id": conv_id})
        return await self.db.conversations.find_one({"_id": conv["_id"]}) or conv

    async def move_to_team(self, conv_id: str, team_id: str, *, by: str | None = None) -> Doc:
        """An admin moves a conversation to a team: unassigned there, and routed inside it."""
        team = await self.teams.team(team_id)
        now = self.clock.now()
        conv = await self.db.conversations.find_one({"_id": oid(conv_id)})
        if conv is None:
            raise NotFound(conv_id)
        step = {"at": now, "step": "moved", "team_id": team_id, "by": by}
        await self.db.conversations.update_one(
            {"_id": conv["_id"]}, {"$set": {"team_id": team_id}, "$push": {"routing.steps": step}})
        if conv.get("assignee_id"):
            conv = await self.set_assignee(conv_id, None, by=by)
        elif conv.get("status") in COUNTED:
            await self.enqueue(conv_id, team, conv.get("priority") or "normal", now)
            await self.db.conversations.update_one({"_id": conv["_id"]},
                                                   {"$set": {"queued_since": now}})
            await self.drain(team_id)
        del team
        return await self.db.conversations.find_one({"_id": conv["_id"]}) or conv

    async def _drain_teams_of(self, agent_id: str) -> None:
        for team in await self.teams.teams_of(agent_id):
            await self.drain(str(team["_id"]))

    # ------------------------------------------------------------------ availability

    async def availability_changed(self, agent_id: str, availability: str,
                                   previous: str | None) -> int:
        """Online: serve the agent's queues. Away/offline: hand their open conversations back
        to the teams that asked for it (`reassign_on_away`). Returns how many moved."""
        if availability == "online":
            await self.load.reconcile(agent_id, self.clock.now())
            await self._drain_teams_of(agent_id)
            return 0
        if previous != "online":
            return 0
        teams = {str(t["_id"]) for t in await self.teams.teams_of(agent_id)
                 if t.get("reassign_on_away")}
        if not teams:
            return 0
        moved = 0
        async for conv in self.db.conversations.find(
                {"assignee_id": agent_id, "status": {"$in": ["open", "pending"]}},
                {"team_id": 1}):
            if conv.get("team_id") in teams:
                await self.set_assignee(str(conv["_id"]), None, by="availability")
                moved += 1
        return moved

    async def cap_changed(self, agent_id: str | None = None) -> None:
        teams = await self.teams.teams_of(agent_id) if agent_id else \
            list((await self.teams.teams()).values())
        for team in teams:
            await self.drain(str(team["_id"]))

    async def reconcile_all(self) -> None:
        now = self.clock.now()
        async for doc in self.db.agent_load.find({}, {"_id": 1}):
            await self.load.reconcile(doc["_id"], now)


def new_id() -> str:
    return str(ObjectId())
