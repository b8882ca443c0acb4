"""Canned replies (the knowledge base of standard answers): the store, who may see and edit
each one, the reply box's search, and the filled text an agent inserts.

A team keeps tens to a few thousand standard answers, so the collection is read whole and
matched in Python with precomputed keys: folded text, pinyin and pinyin initials
(measures/text.py). No index: nothing here is queried by a field, and every write would pay
for one. Each process keeps the whole set and reloads it only when a counter in `meta`
(`canned_version`, moved by every change from any process) says it changed: one point read
per search instead of reading every reply per keystroke. Usage counts do not move it, so the
counts a process shows may lag until the next change or `MAX_AGE`.

Scopes: `personal` (its owner sees and edits it), `team` (the team's members and leads see it;
admins and the team's leads edit it), `everyone` (everyone sees it; admins edit it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from inbox.db import Database, Doc
from inbox.store import NotFound, oid
from measures.text import fold, has_han, pinyin_keys
from replies.identity import locale_candidates

SCOPES = ("personal", "team", "everyone")
PLACEHOLDERS = ("customer_name", "agent_name", "brand", "team")
SHORTCUT = re.compile(r"^[^\s/]{1,32}$")
MAX_AGE = 60.0  # seconds a process keeps its copy even when nothing changed (usage counts)
VERSION = "canned_version"
MAX_BODY = 5000
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


class Invalid(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class Forbidden(PermissionError):
    pass


# ---------------------------------------------------------------------- who may do what


@dataclass(frozen=True, slots=True)
class Viewer:
    """An agent as the canned replies see them: their id, whether admin, their teams."""

    agent_id: str
    admin: bool
    member_of: frozenset[str]
    lead_of: frozenset[str]

    @classmethod
    def of(cls, agent: Mapping[str, Any], teams: Iterable[Mapping[str, Any]]) -> Viewer:
        me = str(agent["_id"])
        member, lead = set(), set()
        for team in teams:
            tid = str(team["_id"])
            if me in (team.get("leads") or []):
                lead.add(tid)
                member.add(tid)
            elif me in (team.get("members") or []):
                member.add(tid)
        return cls(me, agent.get("role") == "admin", frozenset(member), frozenset(lead))

    def can_see(self, doc: Mapping[str, Any]) -> bool:
        scope = doc.get("scope")
        if scope == "personal":
            return doc.get("owner_id") == self.agent_id
        if scope == "team":
            return self.admin or doc.get("team_id") in self.member_of
        return True

    def can_edit(self, doc: Mapping[str, Any]) -> bool:
        scope = doc.get("scope")
        if scope == "personal":
            return doc.get("owner_id") == self.agent_id
        if scope == "team":
            return self.admin or doc.get("team_id") in self.lead_of
        return self.admin


# ---------------------------------------------------------------------- keys and matching


@dataclass(frozen=True, slots=True)
class Keys:
    shortcut: str
    title: str
    bodies: str
    title_pinyin: str
    title_initials: str
    text_initials: str  # title then bodies, for the loosest match


def keys_of(doc: Mapping[str, Any]) -> Keys:
    title = str(doc.get("title") or "")
    bodies = " ".join(str(v) for v in (doc.get("body") or {}).values())
    full, initials = pinyin_keys(title) if has_han(title) else (fold(title), "")
    body_initials = pinyin_keys(bodies[:400])[1] if has_han(bodies) else ""
    return Keys(shortcut=fold(str(doc.get("shortcut") or "")), title=fold(title),
                bodies=fold(bodies), title_pinyin=full.replace(" ", ""),
                title_initials=initials, text_initials=initials + body_initials)


def _subsequence_span(query: str, text: str) -> int | None:
    """The shortest span of `text` holding `query`'s letters in order, or None."""
    best: int | None = None
    start = text.find(query[0]) if query else -1
    while start != -1:
        pos = start
        for ch in query[1:]:
            pos = text.find(ch, pos + 1)
            if pos == -1:
                return best
        span = pos - start + 1
        best = span if best is None else min(best, span)
        start = text.find(query[0], start + 1)
    return best


def match_score(query: str, keys: Keys) -> float:
    """How well a folded query (what follows the `/`) names a canned reply; 0: not at all.

    In order: the shortcut itself, the title's pinyin initials or full pinyin (退货流程 is
    `thlc` and `tuihuoliucheng`), the title's text, the body's text; last, the letters in
    order among the initials of the title and the start of the body (so `/thk` finds a
    退货流程 whose body says 退款), scored by how tightly they sit."""
    if not query:
        return 1.0
    q = query.replace(" ", "")
    if keys.shortcut == q:
        return 100.0
    if keys.shortcut.startswith(q):
        return 90.0
    if keys.title_initials.startswith(q):
        return 85.0
    if keys.title_pinyin.startswith(q):
        return 80.0
    if keys.title.startswith(query):
        return 78.0
    if query in keys.title:
        return 70.0
    if q in keys.shortcut:
        return 65.0
    if keys.title_initials and q in keys.title_initials:
        return 60.0
    if keys.title_pinyin and q in keys.title_pinyin:
        return 55.0
    if query in keys.bodies:
        return 40.0
    if q.isascii() and q.isalpha() and keys.text_initials:
        span = _subsequence_span(q, keys.text_initials)
        if span is not None and span <= 4 * len(q):
            return 10.0 + 20.0 * len(q) / span
    return 0.0


# ---------------------------------------------------------------------- text for a conversation


def choose_body(body: Mapping[str, str], customer_locale: str | None,
                fallbacks: Sequence[str | None] = ()) -> tuple[str, str]:
    """(locale, text): the body in the customer's language, else a fallback's, else the
    first one written."""
    keys = [k for k, v in body.items() if v]
    for wanted in (customer_locale, *fallbacks):
        found = locale_candidates(wanted, keys)
        if found:
            return found[0], body[found[0]]
    if not keys:
        return "", ""
    return keys[0], body[keys[0]]


def fill(text: str, values: Mapping[str, str | None]) -> str:
    """The placeholders filled; an unknown one is left as written."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1)) or ""), text)


# ---------------------------------------------------------------------- the store


def _clean_body(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise Invalid("body", "an object: locale → text, with at least one text")
    out: dict[str, str] = {}
    for locale, text in value.items():
        if not isinstance(locale, str) or not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*",
                                                           locale):
            raise Invalid("body", f"not a locale tag: {locale!r}")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_BODY:
            raise Invalid(f"body.{locale}", f"1 to {MAX_BODY} characters")
        out[locale.replace("_", "-")] = text.strip()
    return out


def clean(body: Mapping[str, Any], current: Doc | None) -> Doc:
    """The stored fields of a new canned reply, or of the changes to `current`."""
    out: Doc = {}
    if "shortcut" in body or current is None:
        shortcut = fold(str(body.get("shortcut") or "")).lstrip("/")
        if not SHORTCUT.match(shortcut):
            raise Invalid("shortcut", "1 to 32 characters, no spaces or slashes")
        out["shortcut"] = shortcut
    if "title" in body or current is None:
        title = " ".join(str(body.get("title") or "").split())
        if not 1 <= len(title) <= 120:
            raise Invalid("title", "1 to 120 characters")
        out["title"] = title
    if "body" in body or current is None:
        out["body"] = _clean_body(body.get("body"))
    if "examples" in body:
        examples = body.get("examples") or []
        if not isinstance(examples, list) or len(examples) > 50 or not all(
                isinstance(e, str) and 0 < len(e.strip()) <= 300 for e in examples):
            raise Invalid("examples", "up to 50 questions of 1 to 300 characters")
        out["examples"] = [e.strip() for e in examples]
    if "scope" in body or current is None:
        scope = body.get("scope") or "personal"
        if scope not in SCOPES:
            raise Invalid("scope", "personal, team or everyone")
        out["scope"] = scope
    scope = out.get("scope") or (current or {}).get("scope")
    if "team_id" in body or "scope" in out:
        team_id = body.get("team_id") if "team_id" in body else (current or {}).get("team_id")
        if scope == "team" and not team_id:
            raise Invalid("team_id", "a team reply names its team")
        out["team_id"] = str(team_id) if scope == "team" else None
    return out


class CannedReplies:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: tuple[float, int, list[tuple[Doc, Keys]]] | None = None

    @property
    def coll(self) -> Any:
        return self.db.canned_replies

    async def _changed(self) -> None:
        self._cache = None
        await self.db.meta.update_one({"_id": VERSION}, {"$inc": {"n": 1}}, upsert=True)

    async def all(self) -> list[tuple[Doc, Keys]]:
        """Every canned reply with its search keys, reloaded when any process changed one."""
        version = int((await self.db.meta.find_one({"_id": VERSION}) or {}).get("n") or 0)
        if self._cache is not None and self._cache[1] == version and \
                time.monotonic() - self._cache[0] < MAX_AGE:
            return self._cache[2]
        docs = await self.coll.find({}).sort("_id", 1).to_list()
        entries = [(d, keys_of(d)) for d in docs]
        self._cache = (time.monotonic(), version, entries)
        return entries

    async def get(self, reply_id: str) -> Doc:
        doc = await self.coll.find_one({"_id": oid(reply_id)})
        if doc is None:
            raise NotFound(reply_id)
        return doc

    async def visible(self, viewer: Viewer) -> list[tuple[Doc, Keys]]:
        return [(d, k) for d, k in await self.all() if viewer.can_see(d)]

    async def search(self, viewer: Viewer, query: str, limit: int = 8) -> list[Doc]:
        """The visible canned replies that `query` names, best first (then the most used)."""
        q = fold(query).lstrip("/").strip()
        scored = [(match_score(q, k), d) for d, k in await self.visible(viewer)]
        hits = [(s, d) for s, d in scored if s > 0]
        hits.sort(key=lambda sd: (-sd[0], -int(sd[1].get("uses") or 0), sd[1]["title"]))
        return [d for _, d in hits[:limit]]

    async def create(self, viewer: Viewer, body: Mapping[str, Any]) -> Doc:
        fields = clean(body, None)
        now = datetime.now(UTC)
        doc: Doc = {"_id": ObjectId(), "examples": [], **fields, "owner_id": viewer.agent_id,
                    "uses": 0, "created_at": now, "updated_at": now}
        if not viewer.can_edit(doc):
            raise Forbidden("only admins and the team's leads add shared replies")
        await self.coll.insert_one(doc)
        await self._changed()
        return doc

    async def update(self, viewer: Viewer, reply_id: str, body: Mapping[str, Any]) -> Doc:
        current = await self.get(reply_id)
        if not viewer.can_see(current):
            raise NotFound(reply_id)
        if not viewer.can_edit(current):
            raise Forbidden("only admins and the team's leads change shared replies")
        changes = clean(body, current)
        if not changes:
            raise Invalid("body", "nothing to change")
        after = {**current, **changes}
        if not viewer.can_edit(after):
            raise Forbidden("you may not share a reply that widely")
        changes["updated_at"] = datetime.now(UTC)
        await self.coll.update_one({"_id": current["_id"]}, {"$set": changes})
        await self._changed()
        return {**after, **changes}

    async def delete(self, viewer: Viewer, reply_id: str) -> None:
        current = await self.get(reply_id)
        if not viewer.can_see(current):
            raise NotFound(reply_id)
        if not viewer.can_edit(current):
            raise Forbidden("only admins and the team's leads remove shared replies")
        await self.coll.delete_one({"_id": current["_id"]})
        await self._changed()

    async def used(self, reply_id: str) -> None:
        """One more use (an agent inserted it); `$inc`, never a recount."""
        await self.coll.update_one({"_id": oid(reply_id)}, {"$inc": {"uses": 1}})
        for doc, _ in (self._cache or (0, 0, []))[2]:  # this process's copy follows at once
            if str(doc["_id"]) == reply_id:
                doc["uses"] = int(doc.get("uses") or 0) + 1
