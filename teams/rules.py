"""Routing rules: ordered conditions on a new conversation, and what to do with it.

A rule: `{"name", "position", "conditions": {"platform", "account_id", "kind", "language",
"keywords": [...], "in_business_hours", "labels": [...]}, "actions": {"team_id", "labels":
[...], "priority"}}`; every condition optional, all given ones must hold (keywords: any of
them; labels: the customer has any of them). Rules are tried by `position`; the first that
matches decides. Pure functions here; `teams.store` keeps them.

Keywords match inside text without spaces (Chinese): the first message and the keyword are
NFKC-normalised and case-folded, then a keyword matches anywhere in the text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}
CONDITIONS = ("platform", "account_id", "kind", "language", "keywords", "in_business_hours",
              "labels")
ACTIONS = ("team_id", "labels", "priority")
KINDS = ("dm", "group", "comment_thread", "mention")


class RuleError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def fold(text: str) -> str:
    """What keywords and text are compared as: NFKC (full-width → half-width), case-folded,
    runs of white space as one space."""
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


@dataclass(frozen=True, slots=True)
class Sample:
    """What a rule looks at: the new conversation and its first message."""

    platform: str | None = None
    account_id: str | None = None
    kind: str | None = None
    language: str | None = None
    text: str = ""
    labels: tuple[str, ...] = ()


@dataclass(slots=True)
class Decision:
    rule_id: str | None = None
    rule_name: str | None = None
    team_id: str | None = None
    labels: list[str] = field(default_factory=list)
    priority: str | None = None
    matched: dict[str, Any] = field(default_factory=dict)

    def as_doc(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "rule_name": self.rule_name, "team_id": self.team_id,
                "labels": list(self.labels), "priority": self.priority,
                "matched": dict(self.matched)}


def _strings(value: Any, name: str, *, max_items: int = 50, max_len: int = 100) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(name, "a list of strings")
    out = []
    for v in value:
        v = v.strip()
        if not v:
            continue
        if len(v) > max_len:
            raise RuleError(name, f"each at most {max_len} characters")
        if v not in out:
            out.append(v)
    if len(out) > max_items:
        raise RuleError(name, f"at most {max_items}")
    return out


def _opt_str(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 100:
        raise RuleError(name, "a string of at most 100 characters, or null")
    return value.strip() or None


def clean_conditions(raw: Any, *, platforms: Sequence[str] = ()) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RuleError("conditions", "an object")
    unknown = set(raw) - set(CONDITIONS)
    if unknown:
        raise RuleError(f"conditions.{sorted(unknown)[0]}", "unknown condition")
    out: dict[str, Any] = {}
    for key in ("platform", "account_id", "kind", "language"):
        value = _opt_str(raw.get(key), f"conditions.{key}")
        if value is not None:
            out[key] = value
    if "platform" in out and platforms and out["platform"] not in platforms:
        raise RuleError("conditions.platform", f"one of {', '.join(platforms)}")
    if "kind" in out and out["kind"] not in KINDS:
        raise RuleError("conditions.kind", f"one of {', '.join(KINDS)}")
    keywords = _strings(raw.get("keywords"), "conditions.keywords", max_items=200)
    if keywords:
        out["keywords"] = keywords
    labels = _strings(raw.get("labels"), "conditions.labels")
    if labels:
        out["labels"] = labels
    hours = raw.get("in_business_hours")
    if hours is not None:
        if not isinstance(hours, bool):
            raise RuleError("conditions.in_business_hours", "true, false or null")
        out["in_business_hours"] = hours
    return out


def clean_actions(raw: Any) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RuleError("actions", "an object")
    unknown = set(raw) - set(ACTIONS)
    if unknown:
        raise RuleError(f"actions.{sorted(unknown)[0]}", "unknown action")
    out: dict[str, Any] = {"team_id": _opt_str(raw.get("team_id"), "actions.team_id"),
                           "labels": _strings(raw.get("labels"), "actions.labels"),
                           "priority": raw.get("priority")}
    if out["priority"] is not None and out["priority"] not in PRIORITIES:
        raise RuleError("actions.priority", f"one of {', '.join(PRIORITIES)}")
    if not out["team_id"] and not out["labels"] and not out["priority"]:
        raise RuleError("actions", "a rule must do something: team_id, labels or priority")
    return out


def _language_matches(wanted: str, have: str | None) -> bool:
    if not have:
        return False
    w, h = wanted.replace("_", "-").lower(), have.replace("_", "-").lower()
    return h == w or h.startswith(w + "-")


HoursCheck = Callable[[str | None], bool]


def matches(rule: Mapping[str, Any], sample: Sample, in_hours: HoursCheck,
            ) -> dict[str, Any] | None:
    """What made the rule match (condition → the value that matched), or None."""
    cond = rule.get("conditions") or {}
    why: dict[str, Any] = {}
    for key in ("platform", "account_id", "kind"):
        if key in cond:
            if getattr(sample, key) != cond[key]:
                return None
            why[key] = cond[key]
    if "language" in cond:
        if not _language_matches(cond["language"], sample.language):
            return None
        why["language"] = sample.language
    if cond.get("keywords"):
        text = fold(sample.text)
        hit = next((k for k in cond["keywords"] if fold(k) and fold(k) in text), None)
        if hit is None:
            return None
        why["keywords"] = hit
    if cond.get("labels"):
        have = set(sample.labels)
        hit = next((label for label in cond["labels"] if label in have), None)
        if hit is None:
            return None
        why["labels"] = hit
    if "in_business_hours" in cond:
        team = (rule.get("actions") or {}).get("team_id")
        if in_hours(team) != cond["in_business_hours"]:
            return None
        why["in_business_hours"] = cond["in_business_hours"]
    return why


def decide(rules: Sequence[Mapping[str, Any]], sample: Sample, in_hours: HoursCheck,
           ) -> Decision:
    """The first matching rule's decision (rules in `position` order), or an empty one."""
    for rule in sorted(rules, key=lambda r: (r.get("position", 0), str(r.get("_id")))):
        why = matches(rule, sample, in_hours)
        if why is None:
            continue
        actions = rule.get("actions") or {}
        return Decision(rule_id=str(rule["_id"]), rule_name=rule.get("name"),
                        team_id=actions.get("team_id"), labels=list(actions.get("labels") or []),
                        priority=actions.get("priority"), matched=why)
    return Decision()


def reason_text(decision: Mapping[str, Any]) -> str:
    """The decision in English words (the UI says it in the agent's language)."""
    if not decision.get("rule_id"):
        return "no rule matched"
    parts = []
    for key, value in (decision.get("matched") or {}).items():
        if key == "keywords":
            parts.append(f"keyword “{value}” in the first message")
        elif key == "labels":
            parts.append(f"the customer is labelled {value}")
        elif key == "in_business_hours":
            parts.append("within business hours" if value else "outside business hours")
        else:
            parts.append(f"{key} is {value}")
    head = f"rule “{decision.get('rule_name') or decision.get('rule_id')}”"
    return head + (": " + "; ".join(parts) if parts else ": matches every conversation")


def now_in_hours(teams: Mapping[str, Mapping[str, Any]], at: datetime,
                 is_open: Callable[[Any, datetime], bool]) -> HoursCheck:
    def check(team_id: str | None) -> bool:
        team = teams.get(team_id or "")
        return True if team is None else is_open(team.get("business_hours"), at)

    return check
