"""The JSON shapes of the API. Credentials and hashes never appear in any of them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from inbox.db import Doc


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def routing_json(routing: Any) -> dict[str, Any] | None:
    """The recorded routing decision: which rule, which team, which agent, why, and the steps
    since (queued, assigned, overflowed, handed over)."""
    if not isinstance(routing, dict):
        return None
    from teams.rules import reason_text

    return {"rule_id": routing.get("rule_id"), "rule_name": routing.get("rule_name"),
            "team_id": routing.get("team_id"), "agent_id": routing.get("agent_id"),
            "labels": [str(x) for x in routing.get("labels") or []],
            "priority": routing.get("priority"), "returning": bool(routing.get("returning")),
            "matched": dict(routing.get("matched") or {}), "reason": reason_text(routing),
            "at": iso(routing.get("at")),
            "steps": [{"step": str(s.get("step")), "at": iso(s.get("at")),
                       "team_id": s.get("team_id"), "agent_id": s.get("agent_id"),
                       "why": s.get("why")} for s in routing.get("steps") or []
                      if isinstance(s, dict)]}


def conversation_json(doc: Doc, contact: Doc | None,
                      queue_position: int | None = None) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]), "platform": doc["platform"], "account_id": doc["account_id"],
        "kind": doc["kind"], "status": doc["status"], "assignee_id": doc.get("assignee_id"),
        "title": doc.get("title"),
        "contact": {"id": str(contact["_id"]), "name": contact.get("name"),
                    "handle": contact.get("handle"), "avatar_url": contact.get("avatar_url"),
                    "locale": contact.get("locale")} if contact else None,
        "last_message_at": iso(doc.get("last_message_at")), "preview": doc.get("preview", ""),
        "unread": int(doc.get("unread", 0)), "customer_locale": doc.get("customer_locale"),
        "team_id": doc.get("team_id"), "labels": [str(x) for x in doc.get("labels") or []],
        "priority": doc.get("priority") or "normal", "queue_position": queue_position,
        "routing": routing_json(doc.get("routing")),
        "sla": None, "csat": csat_json(doc.get("csat")),
    }


def csat_json(csat: Any) -> dict[str, Any] | None:
    if not isinstance(csat, dict):
        return None
    return {"score": csat.get("score"), "comment": csat.get("comment"),
            "agent_id": csat.get("agent_id"), "team_id": csat.get("team_id"),
            "at": iso(csat.get("at"))}


def message_json(doc: Doc) -> dict[str, Any]:
    delivery = doc.get("delivery")
    author = doc.get("author") or {}
    return {
        "id": str(doc["_id"]), "conversation_id": doc["conversation_id"],
        "direction": doc["direction"], "text": doc.get("text", ""),
        "rendered_text": doc.get("rendered_text"),
        "author": {"name": author.get("name") or doc.get("agent_name"),
                   "handle": author.get("handle"), "avatar_url": author.get("avatar_url"),
                   "locale": author.get("locale")},
        "agent_id": doc.get("agent_id"), "agent_name": doc.get("agent_name"),
        "external_id": doc.get("external_id"), "reply_to": doc.get("reply_to"),
        "forwarded_from": doc.get("forwarded_from"),
        "platform_ts": iso(doc.get("platform_ts")), "edited": bool(doc.get("edited")),
        "edited_at": iso(doc.get("edited_at")) if doc.get("edited") else None,
        "attachments": [
            {k: a.get(k) for k in ("type", "name", "size", "mime")} | {
                "url": f"/api/messages/{doc['_id']}/attachments/{i}"
                if a.get("file_id") or a.get("blob_id") else None,
                "inline": bool(a.get("inline")), "extra": a.get("extra") or {}}
            for i, a in enumerate(doc.get("attachments") or [])],
        "delivery": _delivery(delivery) if delivery else None,
        "deleted_at": iso(doc.get("deleted_at")),
        "reactions": [{"user_id": r.get("user_id"), "reaction": r.get("reaction")}
                      for r in doc.get("reactions") or [] if isinstance(r, dict)],
        "html": _with_attachment_urls(doc.get("html"), str(doc["_id"])),
        "full_text": doc.get("full_text"),
        "automatic": doc.get("automatic"),
        "shown_name": (doc.get("rendered") or {}).get("shown_name") or (
            doc.get("agent_name") if doc.get("direction") == "out" else None),
    }


_ATTACHMENT_REF = re.compile(r"""(["'])attachment:(\d{1,4})\1""")


def _with_attachment_urls(html: str | None, message_id: str) -> str | None:
    """An email's inline images name their part (`attachment:<n>`, see connectors/email):
    here they become the authenticated attachment route."""
    if not html:
        return html
    return _ATTACHMENT_REF.sub(
        lambda m: f"{m.group(1)}/api/messages/{message_id}/attachments/{m.group(2)}"
                  f"{m.group(1)}", html)


def _delivery(delivery: Doc) -> dict[str, Any]:
    error = delivery.get("error")
    # the other ways to send a failed reply (e.g. "dm") are stored with its error
    alternatives = delivery.get("alternatives") or (
        error.get("alternatives") if isinstance(error, dict) else None) or []
    return {"state": delivery.get("state"), "attempts": delivery.get("attempts", 0),
            "error": error, "possibly_duplicated": bool(delivery.get("possibly_duplicated")),
            "alternatives": [str(a) for a in alternatives]}


_INFO_HIDDEN = ("token", "secret", "password")


def account_json(doc: Doc, webhook_url: str | None, *,
                 notices: Sequence[Mapping[str, Any]] | None = None,
                 usage: Mapping[str, int] | None = None) -> dict[str, Any]:
    """An account without its credentials or webhook secret. `notices` ({key, level, text})
    and `usage` (this month's counters) come from the connector and the runtime, not the
    document, so the caller passes them."""
    return {
        "id": str(doc["_id"]), "platform": doc["platform"], "name": doc["name"],
        "mode": doc.get("mode"), "api_base_url": doc.get("api_base_url"),
        "platform_id": doc.get("platform_id"), "username": doc.get("username"),
        "display_name": doc.get("display_name"), "status": doc.get("status") or "active",
        "webhook_url": webhook_url,
        "last_inbound_at": iso(doc.get("last_inbound_at")),
        "last_error": last_error_json(doc.get("last_error")),
        "created_at": iso(doc.get("created_at")),
        "notices": [{"key": str(n.get("key") or ""), "level": n.get("level") or "info",
                     "text": str(n.get("text") or ""), "values": dict(n.get("values") or {})}
                    for n in notices or ()],
        "options": dict(doc.get("options") or {}), "status_at": iso(doc.get("status_at")),
        "info": {k: v for k, v in (doc.get("info") or {}).items()
                 if not any(word in k.lower() for word in _INFO_HIDDEN)},
        "usage": {str(k): int(v) for k, v in (usage or {}).items()},
    }


def last_error_json(error: Any) -> dict[str, Any] | None:
    """{code, message, at}: accounts stored before errors had codes kept a sentence only."""
    if not error:
        return None
    if isinstance(error, Mapping):
        at = error.get("at")
        return {"code": error.get("code"), "message": str(error.get("message") or ""),
                "at": iso(at) if isinstance(at, datetime) else at}
    return {"code": None, "message": str(error), "at": None}


def agent_json(doc: Doc) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]), "login": doc["login"], "display_name": doc["display_name"],
        "title": doc.get("title"), "role": doc["role"], "active": bool(doc.get("active")),
        "timezone": doc.get("timezone"), "locale": doc.get("locale"),
        "availability": doc.get("availability") or "offline", "max_open": doc.get("max_open"),
        "name_parts": {k: v for k, v in (doc.get("name_parts") or {}).items() if v},
    }


def token_json(doc: Doc) -> dict[str, Any]:
    """An API token as listed: never the token (only its hash is stored anyway)."""
    return {"id": str(doc["_id"]), "name": doc.get("name", ""),
            "created_at": doc["created_at"].isoformat()}


def audit_json(doc: Doc) -> dict[str, Any]:
    return {"id": str(doc["_id"]), "at": doc["at"].isoformat(), "actor": doc.get("actor"),
            "action": doc["action"], "target": doc.get("target"), "address": doc.get("address"),
            "details": doc.get("details") or {}}
