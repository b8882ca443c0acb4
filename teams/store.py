"""Teams (skill groups), routing rules and labels: small collections, read whole and cached
for a moment (every process routes, and reads them for each new conversation)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from inbox.db import Database, Doc
from inbox.store import NotFound, oid
from teams import hours
from teams.rules import RuleError, clean_actions, clean_conditions

CACHE_SECONDS = 2.0
AVAILABILITY = ("online", "away", "offline")
LABEL_NAME = re.compile(r"^[^\s,][^,]{0,39}$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class Invalid(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _cap(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise Invalid(name, "a whole number from 0 to 1000, or null")
    return value


class TeamStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, Any]] = {}

    def _forget(self) -> None:
        self._cache.clear()

    async def _cached(self, key: str, load: Any) -> Any:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = await load()
        self._cache[key] = (time.monotonic(), value)
        return value

    # ------------------------------------------------------------------ teams

    async def teams(self) -> dict[str, Doc]:
        async def load() -> dict[str, Doc]:
            return {str(d["_id"]): d async for d in self.db.teams.find({})}
        result: dict[str, Doc] = await self._cached("teams", load)
        return result

    async def team(self, team_id: str) -> Doc:
        doc = await self.db.teams.find_one({"_id": oid(team_id)})
        if doc is None:
            raise NotFound(team_id)
        return doc

    async def _clean_team(self, body: Mapping[str, Any], current: Doc | None) -> Doc:
        out: Doc = {}
        if "names" in body or "name" in body or current is None:
            names = dict(body.get("names") or (current or {}).get("names") or {})
            if body.get("name"):
                names.setdefault("default", body["name"])
            names = {str(k): str(v).strip() for k, v in names.items() if str(v).strip()}
            name = (body.get("name") or "").strip() or next(iter(names.values()), "")
            if not name:
                raise Invalid("name", "a team needs a name")
            names.pop("default", None)
            out["name"], out["names"] = name[:64], names
        if "title" in body:
            out["title"] = (body.get("title") or "").strip()[:64] or None
        if "members" in body:
            members = [str(m) for m in body.get("members") or []]
            known = {str(a["_id"]) async for a in self.db.agents.find(
                {"_id": {"$in": [oid(m) for m in members]}}, {"_id": 1})}
            missing = [m for m in members if m not in known]
            if missing:
                raise Invalid("members", f"no such agent: {missing[0]}")
            out["members"] = list(dict.fromkeys(members))
        if "leads" in body:  # who leads the team: edits its shared canned replies
            leads = [str(m) for m in body.get("leads") or []]
            known = {str(a["_id"]) async for a in self.db.agents.find(
                {"_id": {"$in": [oid(m) for m in leads]}}, {"_id": 1})}
            missing = [m for m in leads if m not in known]
            if missing:
                raise Invalid("leads", f"no such agent: {missing[0]}")
            out["leads"] = list(dict.fromkeys(leads))
        if "business_hours" in body:
            try:
                out["business_hours"] = hours.validate(body.get("business_hours"))
            except hours.HoursError as exc:
                raise Invalid("business_hours", str(exc)) from None
        if "fallback_team_id" in body:
            fallback = body.get("fallback_team_id") or None
            if fallback is not None:
                if current is not None and str(current["_id"]) == fallback:
                    raise Invalid("fallback_team_id", "a team cannot overflow to itself")
                await self.team(fallback)
            out["fallback_team_id"] = fallback
        if "overflow_after_s" in body:
            value = body.get("overflow_after_s")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not 0 <= value <= 7 * 86400):
                raise Invalid("overflow_after_s", "seconds from 0 to 604800, or null")
            out["overflow_after_s"] = value
        if "max_open" in body:
            out["max_open"] = _cap(body.get("max_open"), "max_open")
        if "member_caps" in body:
            caps = body.get("member_caps") or {}
            if not isinstance(caps, Mapping):
                raise Invalid("member_caps", "an object: agent id → cap")
            out["member_caps"] = {str(k): _cap(v, f"member_caps.{k}") for k, v in caps.items()
                                  if v is not None}
        if "reassign_on_away" in body:
            out["reassign_on_away"] = bool(body.get("reassign_on_away"))
        return out

    async def create_team(self, body: Mapping[str, Any]) -> Doc:
        doc: Doc = {"_id": ObjectId(), "title": None, "members": [], "leads": [],
                    "business_hours": None,
                    "fallback_team_id": None, "overflow_after_s": None, "max_open": None,
                    "member_caps": {}, "reassign_on_away": False,
                    "created_at": datetime.now(UTC)}
        doc.update(await self._clean_team(body, None))
        await self.db.teams.insert_one(doc)
        self._forget()
        return doc

    async def update_team(self, team_id: str, body: Mapping[str, Any]) -> Doc:
        current = await self.team(team_id)
        changes = await self._clean_team(body, current)
        if not changes:
            raise Invalid("body", "nothing to change")
        doc = await self.db.teams.find_one_and_update(
            {"_id": current["_id"]}, {"$set": changes}, return_document=ReturnDocument.AFTER)
        self._forget()
        if doc is None:
            raise NotFound(team_id)
        return doc

    async def delete_team(self, team_id: str) -> None:
        result = await self.db.teams.delete_one({"_id": oid(team_id)})
        if result.deleted_count == 0:
            raise NotFound(team_id)
        await self.db.teams.update_many({"fallback_team_id": team_id},
                                        {"$set": {"fallback_team_id": None}})
        self._forget()

    async def teams_of(self, agent_id: str) -> list[Doc]:
        return [t for t in (await self.teams()).values() if agent_id in (t.get("members") or [])]

    # ------------------------------------------------------------------ rules

    async def rules(self) -> list[Doc]:
        async def load() -> list[Doc]:
            return await self.db.routing_rules.find({}).sort(
                [("position", 1), ("_id", 1)]).to_list()
        result: list[Doc] = await self._cached("rules", load)
        return result

    async def rule(self, rule_id: str) -> Doc:
        doc = await self.db.routing_rules.find_one({"_id": oid(rule_id)})
        if doc is None:
            raise NotFound(rule_id)
        return doc

    async def clean_rule(self, body: Mapping[str, Any], *, platforms: Sequence[str],
                         partial: bool = False) -> Doc:
        out: Doc = {}
        try:
            if "name" in body or not partial:
                name = str(body.get("name") or "").strip()
                if not name:
                    raise RuleError("name", "a rule needs a name")
                out["name"] = name[:80]
            if "position" in body or not partial:
                position = body.get("position")
                if position is None:
                    last = await self.db.routing_rules.find_one({}, sort=[("position", -1)])
                    position = (int(last["position"]) + 10) if last else 10
                if isinstance(position, bool) or not isinstance(position, int):
                    raise RuleError("position", "a whole number")
                out["position"] = position
            if "conditions" in body or not partial:
                out["conditions"] = clean_conditions(body.get("conditions"), platforms=platforms)
            if "actions" in body or not partial:
                out["actions"] = clean_actions(body.get("actions"))
        except RuleError as exc:
            raise Invalid(exc.field, str(exc).split(": ", 1)[1]) from None
        team = (out.get("actions") or {}).get("team_id")
        if team:
            try:
                await self.team(team)
            except NotFound:
                raise Invalid("actions.team_id", "no such team") from None
        return out

    async def create_rule(self, clean: Doc) -> Doc:
        doc = {"_id": ObjectId(), **clean, "created_at": datetime.now(UTC)}
        await self.db.routing_rules.insert_one(doc)
        self._forget()
        return doc

    async def update_rule(self, rule_id: str, clean: Doc) -> Doc:
        doc = await self.db.routing_rules.find_one_and_update(
            {"_id": oid(rule_id)}, {"$set": clean}, return_document=ReturnDocument.AFTER)
        self._forget()
        if doc is None:
            raise NotFound(rule_id)
        return doc

    async def delete_rule(self, rule_id: str) -> None:
        result = await self.db.routing_rules.delete_one({"_id": oid(rule_id)})
        self._forget()
        if result.deleted_count == 0:
            raise NotFound(rule_id)

    # ------------------------------------------------------------------ labels

    async def labels(self) -> list[Doc]:
        async def load() -> list[Doc]:
            return await self.db.labels.find({}).sort("_id", 1).to_list()
        result: list[Doc] = await self._cached("labels", load)
        return result

    async def save_label(self, name: str, color: str | None, *, create: bool) -> Doc:
        name = (name or "").strip()
        if not LABEL_NAME.match(name):
            raise Invalid("name", "1 to 40 characters, no commas")
        color = color or "#6b7280"
        if not COLOR.match(color):
            raise Invalid("color", "a colour like #e11d48")
        if create:
            if await self.db.labels.find_one({"_id": name}):
                raise Invalid("name", "this label exists already")
            doc = {"_id": name, "color": color, "created_at": datetime.now(UTC)}
            await self.db.labels.insert_one(doc)
        else:
            found = await self.db.labels.find_one_and_update(
                {"_id": name}, {"$set": {"color": color}}, return_document=ReturnDocument.AFTER)
            if found is None:
                raise NotFound(name)
            doc = found
        self._forget()
        return doc

    async def delete_label(self, name: str) -> None:
        result = await self.db.labels.delete_one({"_id": name})
        self._forget()
        if result.deleted_count == 0:
            raise NotFound(name)

    async def check_labels(self, names: Sequence[str], field_name: str = "labels") -> list[str]:
        known = {d["_id"] for d in await self.labels()}
        out = list(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))
        unknown = [n for n in out if n not in known]
        if unknown:
            raise Invalid(field_name, f"no such label: {unknown[0]}")
        return out
