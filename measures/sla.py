"""SLA clocks: a policy's first-response, next-response and resolution targets for one
conversation, counted in its team's business hours (measures/hours.py, holidays included),
paused while the conversation is pending (waiting on the customer).

A clock is one `sla_timers` document (see measures/db.py). Its events are pure functions of
the document (`opened`, `customer_wrote`, `agent_replied`, `paused`, `resumed`, `resolved`,
`reopened`, `check`), each returning the target outcomes it decided: a target is *hit* when it
is met by its due time and *missed* at its due time otherwise, counted once. `SlaClocks` reads
a clock, applies an event and writes it back by compare-and-set on a version (`v`), so the API
(status changes) and the follower (messages) can both move one clock without a transaction.

Due times are absolute moments. While a clock is paused its running targets keep the business
seconds they had left (`left`) and have no due time; resuming lays those seconds out again
from the moment it resumes. A breached target keeps its due time (it stays first in "breaching
soonest") until it is met or the conversation is resolved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING

from inbox.clock import Clock
from inbox.db import Database, Doc, find_in
from inbox.doc_cache import copy_tree
from measures.hours import Hours, add_business, business_seconds

TARGETS = ("first_response", "next_response", "resolution")
SECONDS = {"first_response": "first_response_s", "next_response": "next_response_s",
           "resolution": "resolution_s"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A target met (`hit`) or missed, decided at `at`."""

    target: str
    hit: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Action:
    """Something the checker is to do for a breached conversation: "notify" or "reassign"."""

    kind: str
    target: str


# ---------------------------------------------------------------------- policies


def choose_policy(policies: Sequence[Mapping[str, Any]],
                  conv: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The policy for a conversation: among those whose every condition holds (team, any of
    the labels, priority; an absent condition holds always), the most specific, then the
    oldest."""
    labels = set(conv.get("labels") or [])
    best: tuple[int, int] | None = None
    chosen = None
    for order, policy in enumerate(policies):
        cond = policy.get("applies_to") or {}
        score = 0
        if cond.get("team_id"):
            if cond["team_id"] != conv.get("team_id"):
                continue
            score += 1
        if cond.get("labels"):
            if not labels & set(cond["labels"]):
                continue
            score += 1
        if cond.get("priority"):
            if cond["priority"] != (conv.get("priority") or "normal"):
                continue
            score += 1
        if best is None or (-score, order) < best:
            best, chosen = (-score, order), policy
    return chosen


def policy_hours(policy: Mapping[str, Any], team: Mapping[str, Any] | None) -> Hours:
    """The hours a policy counts in: its own document, the team's (`true`), or none."""
    setting = policy.get("business_hours")
    if isinstance(setting, Mapping):
        return dict(setting)
    if setting and team:
        return team.get("business_hours") or None
    return None


# ---------------------------------------------------------------------- the clock, pure


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def new_timer(conv: Mapping[str, Any], policy: Mapping[str, Any] | None, hours: Hours,
              at: datetime) -> Doc:
    targets = {t: int(policy[SECONDS[t]]) for t in TARGETS
               if policy and policy.get(SECONDS[t])} if policy else {}
    timer: Doc = {
        "_id": str(conv["_id"]), "v": 0, "policy_id": str(policy["_id"]) if policy else None,
        "team_id": conv.get("team_id"), "agent_id": conv.get("assignee_id"),
        "channel": conv.get("platform"), "opened_at": at, "status": "open",
        "hours": dict(hours) if hours else None, "targets": targets,
        "due": {t: None for t in TARGETS}, "left": {}, "breached": [], "breaches": [],
        "responded": False, "paused_at": None, "notify_at": None, "reassign_at": None,
        "resolved_at": None, "reopened": 0,
    }
    _start(timer, "first_response", at)
    _start(timer, "resolution", at)
    return timer


def _start(timer: Doc, target: str, at: datetime) -> None:
    seconds = timer["targets"].get(target)
    if seconds is None:
        return
    timer["due"][target] = add_business(timer.get("hours"), at, seconds)
    timer["breached"] = [b for b in timer["breached"] if b != target]


def _end(timer: Doc, target: str, at: datetime) -> list[Outcome]:
    """A target met at `at` (or abandoned, when `at` is None): its outcome unless the checker
    already counted its miss."""
    due = _aware(timer["due"].get(target))
    timer["due"][target] = None
    timer["left"].pop(target, None)
    breached = target in timer["breached"]
    timer["breached"] = [b for b in timer["breached"] if b != target]
    if due is None or breached:
        return []
    return [Outcome(target, at <= due, at if at <= due else due)]


def customer_wrote(timer: Doc, at: datetime) -> list[Outcome]:
    out: list[Outcome] = []
    if timer["status"] == "resolved":
        out += reopened(timer, at)
    elif timer["status"] == "pending":
        resumed(timer, at)
    if timer["responded"] and timer["due"].get("next_response") is None \
            and "next_response" not in timer["left"]:
        _start(timer, "next_response", at)
    return out


def agent_replied(timer: Doc, at: datetime) -> list[Outcome]:
    out: list[Outcome] = []
    for target in ("first_response", "next_response"):
        if timer["due"].get(target) is not None or target in timer["left"]:
            if target in timer["left"]:  # answered while paused: met
                timer["due"][target] = at
            out += _end(timer, target, at)
    timer["responded"] = True
    return out


def paused(timer: Doc, at: datetime) -> None:
    if timer["status"] != "open":
        return
    timer["status"], timer["paused_at"] = "pending", at
    for target, due in list(timer["due"].items()):
        if due is not None and target not in timer["breached"]:
            timer["left"][target] = business_seconds(timer.get("hours"), at, _aware(due))
            timer["due"][target] = None


def resumed(timer: Doc, at: datetime) -> None:
    if timer["status"] != "pending":
        return
    timer["status"], timer["paused_at"] = "open", None
    for target, left in list(timer["left"].items()):
        timer["due"][target] = add_business(timer.get("hours"), at, max(float(left), 0.0))
    timer["left"] = {}


def resolved(timer: Doc, at: datetime) -> list[Outcome]:
    if timer["status"] == "resolved":
        return []
    if timer["status"] == "pending":
        resumed(timer, at)
    out = _end(timer, "resolution", at)
    for target in ("first_response", "next_response"):
        timer["due"][target] = None  # abandoned: the customer no longer waits for an answer
        timer["breached"] = [b for b in timer["breached"] if b != target]
    timer["left"] = {}
    timer["status"], timer["resolved_at"] = "resolved", at
    return out


def reopened(timer: Doc, at: datetime) -> list[Outcome]:
    if timer["status"] != "resolved":
        return []
    timer["status"], timer["resolved_at"] = "open", None
    timer["reopened"] = int(timer.get("reopened") or 0) + 1
    _start(timer, "resolution", at)
    return []


def check(timer: Doc, now: datetime, *, notify_after: float, reassign_after: float,
          ) -> tuple[list[Outcome], list[Action]]:
    """Breach every running target past its due time (a miss, counted at its due time), and
    the lead's notification and the hand-over once their thresholds have passed."""
    outcomes: list[Outcome] = []
    actions: list[Action] = []
    if timer["status"] != "open":
        return outcomes, actions
    for target in TARGETS:
        due = _aware(timer["due"].get(target))
        if due is None or due > now or target in timer["breached"]:
            continue
        timer["breached"].append(target)
        timer["breaches"].append({"target": target, "due_at": due, "at": now})
        outcomes.append(Outcome(target, False, due))
        if timer.get("notify_at") is None:
            timer["notify_at"] = due + timedelta(seconds=notify_after)
        if reassign_after and timer.get("reassign_at") is None:
            timer["reassign_at"] = due + timedelta(seconds=reassign_after)
    last = timer["breaches"][-1]["target"] if timer["breaches"] else ""
    notify_at = _aware(timer.get("notify_at"))
    if notify_at is not None and notify_at <= now and not timer.get("notified"):
        timer["notified"] = True
        actions.append(Action("notify", last))
    reassign_at = _aware(timer.get("reassign_at"))
    if reassign_at is not None and reassign_at <= now and not timer.get("reassigned"):
        timer["reassigned"] = True
        actions.append(Action("reassign", last))
    return outcomes, actions


def schedule(timer: Doc) -> None:
    """`due_at` and `check_at` from the clock's state (both absent unless it runs)."""
    running = timer["status"] == "open"
    dues = [_aware(d) for d in timer["due"].values() if d is not None]
    timer["due_at"] = min(dues) if running and dues else None
    waiting = [_aware(d) for t, d in timer["due"].items()
               if d is not None and t not in timer["breached"]]
    if not timer.get("notified") and timer.get("notify_at"):
        waiting.append(_aware(timer["notify_at"]))
    if not timer.get("reassigned") and timer.get("reassign_at"):
        waiting.append(_aware(timer["reassign_at"]))
    timer["check_at"] = min(waiting) if running and waiting else None


def state_of(timer: Mapping[str, Any], now: datetime, amber_share: float) -> str:
    """"ok", "amber" (less than `amber_share` of the target left), "red" (breached) or
    "paused" / "done"."""
    if timer.get("status") == "pending":
        return "paused"
    due_at = _aware(timer.get("due_at"))
    if due_at is None:
        return "done"
    if due_at <= now or timer.get("breached"):
        return "red"
    for target, due in (timer.get("due") or {}).items():
        seconds = (timer.get("targets") or {}).get(target)
        if due is None or not seconds:
            continue
        if business_seconds(timer.get("hours"), now, _aware(due)) < amber_share * seconds:
            return "amber"
    return "ok"


def _iso(value: Any) -> str | None:
    value = _aware(value)
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else None


def sla_json(timer: Mapping[str, Any] | None, now: datetime,
             amber_share: float) -> dict[str, Any] | None:
    """The conversation's `sla`: each target's due time, the breaches (the target missed, when
    it was due, when it was seen), and for the inbox the earliest due time and its colour."""
    if timer is None or not timer.get("policy_id"):
        return None
    due = timer.get("due") or {}
    return {"first_response_due_at": _iso(due.get("first_response")),
            "next_response_due_at": _iso(due.get("next_response")),
            "resolution_due_at": _iso(due.get("resolution")),
            "breaches": [{"target": b.get("target"), "due_at": _iso(b.get("due_at")),
                          "at": _iso(b.get("at"))} for b in timer.get("breaches") or []],
            "policy_id": timer.get("policy_id"), "due_at": _iso(timer.get("due_at")),
            "state": state_of(timer, now, amber_share)}


# ---------------------------------------------------------------------- the clocks, stored

Event = Callable[[Doc], list[Outcome] | None]


class SlaClocks:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def policies(self) -> list[Doc]:
        return await self.db.sla_policies.find({}).sort("created_at", ASCENDING).to_list()

    async def get(self, conv_id: str) -> Doc | None:
        return await self.db.sla_timers.find_one({"_id": conv_id})

    async def many(self, conv_ids: Sequence[str]) -> dict[str, Doc]:
        if not conv_ids:
            return {}
        return {d["_id"]: d for d in await find_in(self.db.sla_timers, conv_ids)}

    async def create(self, timer: Doc) -> bool:
        """Insert a new clock; False when the conversation has one already."""
        from pymongo.errors import DuplicateKeyError

        schedule(timer)
        try:
            await self.db.sla_timers.insert_one(timer)
        except DuplicateKeyError:
            return False
        return True

    async def create_many(self, timers: Sequence[Doc]) -> set[str]:
        """Insert new clocks in one write; the ids inserted (the others had one already)."""
        from pymongo.errors import BulkWriteError

        if not timers:
            return set()
        for timer in timers:
            schedule(timer)
        wanted = [str(t["_id"]) for t in timers]
        try:
            await self.db.sla_timers.insert_many(list(timers), ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            taken = {int(e["index"]) for e in errors}
            return {w for i, w in enumerate(wanted) if i not in taken}
        return set(wanted)

    async def apply(self, conv_id: str, event: Event, fields: Mapping[str, Any] | None = None,
                    *, current: Doc | None = None,
                    refresh: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
                    ) -> tuple[Doc | None, list[Outcome]]:
        """Apply `event` to a clock by compare-and-set; (None, []) when it has none. `current`
        is the clock as the caller just read it (one read fewer; a stale one loses the
        compare-and-set and is read again); it is left as it is: the event works on a copy,
        which is returned (written, or unchanged). `refresh`: where `fields` come from again
        once a compare-and-set is lost (fields as old as a stale `current` would set the
        newer clock's team or agent back)."""
        for attempt in range(20):
            if attempt and refresh is not None:
                fields = await refresh()
            before, current = (current, None) if current is not None else (
                await self.get(conv_id), None)
            if before is None:
                return None, []
            version = before.get("v", 0)
            timer = copy_tree(before)
            outcomes = event(timer) or []
            timer.update(fields or {})
            schedule(timer)
            if timer == before:
                return timer, outcomes  # nothing changed: no write
            timer["v"] = version + 1
            result = await self.db.sla_timers.replace_one({"_id": conv_id, "v": version}, timer)
            if result.modified_count == 1:
                return timer, outcomes
        raise RuntimeError(f"sla: the clock of {conv_id} kept changing")

    async def due(self, now: datetime, limit: int = 200) -> list[Doc]:
        """Clocks with something to do by `now`."""
        return await self.db.sla_timers.find(
            {"check_at": {"$gte": EPOCH, "$lte": now}},
            hint=[("check_at", ASCENDING)]).limit(limit).to_list()

    async def soonest(self, *, limit: int, after: tuple[datetime, str] | None = None,
                      ) -> list[Doc]:
        """Running clocks by due time, soonest (most overdue) first, after a keyset cursor.

        The embedded server reads every document a filter matches before it sorts, so the
        index is read in windows that widen from the cursor until they hold a page, like the
        inbox pager (inbox/paging.py): each window costs about what it returns."""
        lo = after[0] if after else EPOCH
        width = timedelta(hours=1)
        found: list[Doc] = []
        while len(found) < limit and lo < FAR:
            hi = FAR if width >= FAR - lo else lo + width
            docs = await self.db.sla_timers.find(
                {"due_at": {"$gte": lo, "$lt": hi}},
                {"_id": 1, "due_at": 1}, hint=[("due_at", ASCENDING), ("_id", ASCENDING)],
            ).to_list()
            docs.sort(key=lambda d: (_aware(d["due_at"]), d["_id"]))
            for doc in docs:
                key = (_aware(doc["due_at"]), doc["_id"])
                if after is None or key > after:
                    found.append(doc)
            lo, width = hi, width * 4
            if hi >= FAR:
                break
        return found[:limit]
