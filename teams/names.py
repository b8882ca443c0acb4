"""The name policy (进线名称): how each agent's customer-facing name is built, per team and per
customer group, and the record of every name a policy produced.

A policy: `{"team_id" | null, "group" | null, "kind": "template" | "role", "template":
"{surname}客服", "role_name": "客服专员", "show_title": bool, "shared": bool, "max_length"}`.
For a conversation the most specific policy applies: team and group, then team, then group,
then the default (`_id` "default", `{name}` — the display name an admin set, as before).
Placeholders: {name} {surname} {given_name} {english_name} {title} (the agent's) {team_title}
{team} {brand}.

`agent_names` records each (agent, brand, name) a policy produced, with the policies that
produce it and when an admin last reviewed it. Its unique `unique_key` (brand + name, or with
the agent's id for `shared` policies) is what keeps two agents from showing customers the same
name under one brand unless an admin allowed it. A reply is sent only under a recorded name
(`resolve`); a name no policy produces any more is removed. Every change is audited by the
caller (the web layer, which knows who asked).
"""

from __future__ import annotations

import hashlib
import string
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from inbox.db import Database, Doc
from inbox.store import NotFound, oid
from teams.store import Invalid, TeamStore

PLACEHOLDERS = ("name", "surname", "given_name", "english_name", "title", "team_title", "team",
                "brand")
PARTS = ("surname", "given_name", "english_name")
KINDS = ("template", "role")
DEFAULT_ID = "default"
DEFAULT_POLICY: Doc = {"_id": DEFAULT_ID, "team_id": None, "group": None, "kind": "template",
                       "template": "{name}", "role_name": None, "show_title": True,
                       "shared": True, "max_length": 32}

# (name, agent) → problems in words; the web layer checks each connected channel
Validator = Callable[[str, Mapping[str, Any]], Awaitable[list[str]]]


@dataclass
class Produced:
    agent_id: str
    login: str
    name: str | None
    problems: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """What saving a policy (or an agent, or a team) would do to the recorded names."""

    produced: list[Produced] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not any(p.problems for p in self.produced)

    def problems(self) -> list[dict[str, Any]]:
        out = [{"agent_id": p.agent_id, "login": p.login, "name": p.name, "problem": problem}
               for p in self.produced for problem in p.problems]
        return out + self.conflicts


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]


def fill(policy: Mapping[str, Any], agent: Mapping[str, Any], team: Mapping[str, Any] | None,
         brand: str, locale: str | None = None) -> tuple[str | None, str | None]:
    """(name, missing part): the name the policy gives this agent, or the part it lacks."""
    if policy.get("kind") == "role":
        return str(policy.get("role_name") or "").strip() or None, None
    parts = agent.get("name_parts") or {}
    team_names = (team or {}).get("names") or {}
    values = {"name": agent.get("display_name") or "", "title": agent.get("title") or "",
              "team_title": (team or {}).get("title") or "",
              "team": team_names.get(locale or "") or (team or {}).get("name") or "",
              "brand": brand, **{p: str(parts.get(p) or "") for p in PARTS}}
    template = str(policy.get("template") or "{name}")
    for name in _fields(template):
        if not values.get(name):
            return None, name
    return " ".join(template.format(**values).split()), None


def name_problems(name: str, max_length: int | None) -> list[str]:
    """What any channel refuses: control characters, line breaks, an empty or long name."""
    out = []
    if not name.strip():
        out.append("the name is empty")
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        out.append("the name holds control characters or line breaks")
    if max_length and len(name) > max_length:
        out.append(f"the name is {len(name)} characters; the policy allows {max_length}")
    return out


def _key(agent_id: str, brand: str, name: str) -> str:
    return hashlib.sha256(f"{agent_id}\0{brand}\0{name}".encode()).hexdigest()[:24]


class NamePolicies:
    def __init__(self, db: Database, teams: TeamStore, brand: str) -> None:
        self.db = db
        self.teams = teams
        self.brand = brand

    # ------------------------------------------------------------------ policies

    async def list(self) -> list[Doc]:  # type: ignore[valid-type]
        docs = await self.db.name_policies.find({}).sort("created_at", 1).to_list()
        if not any(d["_id"] == DEFAULT_ID for d in docs):
            docs.insert(0, dict(DEFAULT_POLICY))
        return docs

    async def get(self, policy_id: str) -> Doc:
        if policy_id == DEFAULT_ID:
            return await self.db.name_policies.find_one({"_id": DEFAULT_ID}) or dict(
                DEFAULT_POLICY)
        doc = await self.db.name_policies.find_one({"_id": policy_id})
        if doc is None:
            raise NotFound(policy_id)
        return doc

    async def clean(self, body: Mapping[str, Any], current: Doc | None) -> Doc:
        base: Doc = dict(current or {"team_id": None, "group": None, "kind": "template",
                                     "template": None, "role_name": None, "show_title": False,
                                     "shared": None, "max_length": 32})
        for key in ("team_id", "group", "kind", "template", "role_name", "show_title",
                    "shared", "max_length"):
            if key in body:
                base[key] = body[key]
        if base["kind"] not in KINDS:
            raise Invalid("kind", "template or role")
        if current is not None and current["_id"] == DEFAULT_ID and (
                base.get("team_id") or base.get("group")):
            raise Invalid("team_id", "the default policy applies to every team and group")
        if base.get("team_id"):
            try:
                await self.teams.team(str(base["team_id"]))
            except NotFound:
                raise Invalid("team_id", "no such team") from None
        if base.get("group"):
            await self.teams.check_labels([str(base["group"])], "group")
        if base["kind"] == "template":
            template = str(base.get("template") or "").strip()
            if not template:
                raise Invalid("template", "a template such as {surname}客服")
            try:
                parsed = list(string.Formatter().parse(template))
            except ValueError:
                raise Invalid("template", "unbalanced braces") from None
            if any(spec or conv for _, f, spec, conv in parsed if f is not None):
                raise Invalid("template", "placeholders take no format: {surname}, not "
                                          "{surname:>9}")
            unknown = [f for _, f, _, _ in parsed if f is not None and f not in PLACEHOLDERS]
            if unknown:
                raise Invalid("template", f"unknown placeholder {{{unknown[0]}}}; use "
                                          + " ".join(f"{{{p}}}" for p in PLACEHOLDERS))
            base["template"], base["role_name"] = template, None
        else:
            role = str(base.get("role_name") or "").strip()
            if not role:
                raise Invalid("role_name", "a role name such as 客服专员")
            base["role_name"], base["template"] = role, None
        if base.get("shared") is None:
            base["shared"] = base["kind"] == "role"
        base["shared"], base["show_title"] = bool(base["shared"]), bool(base.get("show_title"))
        length = base.get("max_length")
        if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                                   or not 1 <= length <= 128):
            raise Invalid("max_length", "from 1 to 128, or null")
        clash = await self.db.name_policies.find_one(
            {"team_id": base.get("team_id"), "group": base.get("group"),
             "_id": {"$ne": (current or {}).get("_id", "")}})
        if clash is not None or (not base.get("team_id") and not base.get("group") and (
                current is None or current["_id"] != DEFAULT_ID)):
            raise Invalid("team_id", "a policy for this team and group exists already")
        return base

    # ------------------------------------------------------------------ choosing

    def choose(self, policies: Sequence[Doc], team_id: str | None,
               groups: Sequence[str]) -> Doc:
        best, score = None, -1
        for p in policies:
            if p.get("team_id") not in (None, team_id) or (
                    p.get("group") and p["group"] not in groups):
                continue
            s = (2 if p.get("team_id") else 0) + (1 if p.get("group") else 0)
            if s > score:
                best, score = p, s
        return best or dict(DEFAULT_POLICY)

    async def in_scope(self, policy: Mapping[str, Any]) -> list[Doc]:
        flt: Doc = {"active": True}
        if policy.get("team_id"):
            team = (await self.teams.teams()).get(policy["team_id"]) or {}
            flt["_id"] = {"$in": [oid(m) for m in team.get("members") or []]}
        return await self.db.agents.find(flt).sort("login", 1).to_list()

    # ------------------------------------------------------------------ planning and recording

    async def plan(self, policy: Mapping[str, Any], validate: Validator | None = None,
                   agents: Sequence[Doc] | None = None) -> Plan:
        team = (await self.teams.teams()).get(policy.get("team_id") or "")
        plan = Plan()
        agents = list(agents) if agents is not None else await self.in_scope(policy)
        names: dict[str, str] = {}
        for agent in agents:
            aid = str(agent["_id"])
            name, missing = fill(policy, agent, team, self.brand)
            item = Produced(aid, agent.get("login", ""), name)
            if name is None:
                item.problems.append(f"the agent's profile has no {missing}")
            else:
                item.problems += name_problems(name, policy.get("max_length"))
                if validate is not None and not item.problems:
                    item.problems += await validate(name, agent)
                if not policy.get("shared"):
                    other = names.get(name)
                    if other is not None and other != aid:
                        plan.conflicts.append({"agent_id": aid, "login": item.login,
                                               "name": name, "problem": "shown by another "
                                               "agent of this policy", "other_agent_id": other})
                    names[name] = aid
            plan.produced.append(item)
        if not policy.get("shared"):
            for name, aid in names.items():
                taken = await self.db.agent_names.find_one(
                    {"unique_key": f"{self.brand}\0{name}"})
                if taken is not None and taken["agent_id"] != aid:
                    plan.conflicts.append({"agent_id": aid, "name": name,
                                           "problem": "shown by another agent under this brand",
                                           "other_agent_id": taken["agent_id"]})
        return plan

    async def record(self, policy: Mapping[str, Any], plan: Plan, now: datetime,
                     agents: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Make `agent_names` what the plan says for this policy (only for `agents` when
        given); returns the changes ({action, agent_id, name}) for the audit log."""
        pid = str(policy["_id"])
        changes: list[dict[str, Any]] = []
        wanted: dict[str, str] = {}
        for item in plan.produced:
            if item.name and not item.problems:
                key = _key(item.agent_id, self.brand, item.name)
                wanted[key] = item.agent_id
                unique = f"{self.brand}\0{item.name}" + (
                    f"\0{item.agent_id}" if policy.get("shared") else "")
                existing = await self.db.agent_names.find_one({"_id": key})
                if existing is None:
                    try:
                        await self.db.agent_names.insert_one({
                            "_id": key, "agent_id": item.agent_id, "brand": self.brand,
                            "name": item.name, "policies": [pid], "unique_key": unique,
                            "created_at": now, "reviewed_at": now, "reviewed_by": None})
                        changes.append({"action": "add", "agent_id": item.agent_id,
                                        "name": item.name, "policy_id": pid})
                    except DuplicateKeyError:
                        # the same agent's name recorded a moment ago by a concurrent
                        # request (same `_id`) is this one; any other holder is not
                        existing = await self.db.agent_names.find_one({"_id": key})
                        if existing is None:
                            raise Invalid("name", f"{item.name} is shown by another agent "
                                                  f"under this brand") from None
                if existing is not None and pid not in existing.get("policies", []):
                    await self.db.agent_names.update_one(
                        {"_id": key}, {"$addToSet": {"policies": pid}})
        flt: Doc = {"policies": pid}
        if agents is not None:
            flt["agent_id"] = {"$in": list(agents)}
        async for doc in self.db.agent_names.find(flt):
            if doc["_id"] in wanted:
                continue
            left = [p for p in doc.get("policies", []) if p != pid]
            if left:
                await self.db.agent_names.update_one({"_id": doc["_id"]},
                                                     {"$set": {"policies": left}})
            else:
                await self.db.agent_names.delete_one({"_id": doc["_id"]})
                changes.append({"action": "remove", "agent_id": doc["agent_id"],
                                "name": doc["name"], "policy_id": pid})
        return changes

    async def save(self, policy_id: str | None, body: Mapping[str, Any],
                   validate: Validator | None, *, dry_run: bool = False,
                   ) -> tuple[Doc, Plan, list[dict[str, Any]]]:
        current = await self.get(policy_id) if policy_id else None
        clean = await self.clean(body, current)
        now = datetime.now(UTC)
        doc: Doc = {**clean, "_id": (current or {}).get("_id") or str(ObjectId()),
                    "updated_at": now, "created_at": (current or {}).get("created_at") or now}
        plan = await self.plan(doc, validate)
        if dry_run or not plan.ok:
            return doc, plan, []
        await self.db.name_policies.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        changes = await self.record(doc, plan, now)
        return doc, plan, changes

    async def delete(self, policy_id: str) -> list[dict[str, Any]]:
        if policy_id == DEFAULT_ID:
            raise Invalid("id", "the default policy cannot be deleted, only changed")
        policy = await self.get(policy_id)
        await self.db.name_policies.delete_one({"_id": policy_id})
        return await self.record(policy, Plan(), datetime.now(UTC))

    async def resync_agent(self, agent: Doc, validate: Validator | None, *,
                           dry_run: bool = False) -> tuple[Plan, list[dict[str, Any]]]:
        """After an agent's profile or teams changed: every policy that covers them."""
        total = Plan()
        changes: list[dict[str, Any]] = []
        aid = str(agent["_id"])
        for policy in await self.list():
            if policy.get("team_id"):
                team = (await self.teams.teams()).get(policy["team_id"]) or {}
                covered = aid in (team.get("members") or [])
            else:
                covered = True
            plan = await self.plan(policy, validate, [agent] if covered and agent.get(
                "active", True) else [])
            total.produced += plan.produced
            total.conflicts += plan.conflicts
            if not dry_run and plan.ok:
                changes += await self.record(policy, plan, datetime.now(UTC), [aid])
        return total, changes

    # ------------------------------------------------------------------ at send time

    async def resolve(self, agent: Doc, team_id: str | None, groups: Sequence[str],
                      validate: Validator | None = None) -> tuple[Doc, str, Doc | None]:
        """(policy, name, team) for an agent answering a conversation of `team_id` whose
        customer is in `groups`; Invalid when the policy gives no recorded name."""
        policy = self.choose(await self.list(), team_id, groups)
        team = (await self.teams.teams()).get(policy.get("team_id") or team_id or "")
        name, missing = fill(policy, agent, team, self.brand)
        if name is None:
            raise Invalid("name", f"the name policy needs the agent's {missing}; an admin must "
                                  f"fill it in")
        key = _key(str(agent["_id"]), self.brand, name)
        record = await self.db.agent_names.find_one({"_id": key, "policies": str(
            policy["_id"])})
        if record is None:  # an agent or policy older than its record: make it now
            plan = await self.plan(policy, validate, [agent])
            if not plan.ok:
                raise Invalid("name", f"the name “{name}” cannot be used: "
                                      + "; ".join(p["problem"] for p in plan.problems()))
            await self.record(policy, plan, datetime.now(UTC), [str(agent["_id"])])
        return policy, name, team

    # ------------------------------------------------------------------ review

    async def names(self, *, unreviewed_days: int | None = None) -> list[Doc]:
        flt: Doc = {}
        if unreviewed_days is not None:
            flt["reviewed_at"] = {"$lt": datetime.now(UTC) - timedelta(days=unreviewed_days)}
        return await self.db.agent_names.find(flt).sort("reviewed_at", 1).to_list()

    async def review(self, name_id: str, by: str) -> Doc:
        now = datetime.now(UTC)
        result = await self.db.agent_names.update_one(
            {"_id": name_id}, {"$set": {"reviewed_at": now, "reviewed_by": by}})
        if result.matched_count == 0:
            raise NotFound(name_id)
        return await self.db.agent_names.find_one({"_id": name_id}) or {}
