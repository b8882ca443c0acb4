"""The JSON shapes of the API. Credentials and hashes never appear in any of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from inbox.db import Doc


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def conversation_json(doc: Doc, contact: Doc | None) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]), "platform": doc["platform"], "account_id": doc["account_id"],
        "kind": doc["kind"], "status": doc["status"], "assignee_id": doc.get("assignee_id"),
        "title": doc.get("title"),
        "contact": {"id": str(contact["_id"]), "name": contact.get("name"),
                    "handle": contact.get("handle")} if contact else None,
        "last_message_at": iso(doc.get("last_message_at")), "preview": doc.get("preview", ""),
        "unread": int(doc.get("unread", 0)),
    }


def message_json(doc: Doc) -> dict[str, Any]:
    delivery = doc.get("delivery")
    author = doc.get("author") or {}
    return {
        "id": str(doc["_id"]), "conversation_id": doc["conversation_id"],
        "direction": doc["direction"], "text": doc.get("text", ""),
        "rendered_text": doc.get("rendered_text"),
        "author": {"name": author.get("name") or doc.get("agent_name"),
                   "handle": author.get("handle")},
        "agent_id": doc.get("agent_id"), "agent_name": doc.get("agent_name"),
        "external_id": doc.get("external_id"), "reply_to": doc.get("reply_to"),
        "forwarded_from": doc.get("forwarded_from"),
        "platform_ts": iso(doc.get("platform_ts")), "edited": bool(doc.get("edited")),
        "attachments": [
            {k: a.get(k) for k in ("type", "name", "size", "mime")} | {
                "url": f"/api/messages/{doc['_id']}/attachments/{i}" if a.get("file_id")
                else None, "extra": a.get("extra") or {}}
            for i, a in enumerate(doc.get("attachments") or [])],
        "delivery": {"state": delivery.get("state"), "attempts": delivery.get("attempts", 0),
                     "error": delivery.get("error"),
                     "possibly_duplicated": bool(delivery.get("possibly_duplicated"))}
        if delivery else None,
    }


def account_json(doc: Doc, webhook_url: str | None) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]), "platform": doc["platform"], "name": doc["name"],
        "mode": doc.get("mode"), "api_base_url": doc.get("api_base_url"),
        "platform_id": doc.get("platform_id"), "username": doc.get("username"),
        "display_name": doc.get("display_name"), "status": doc.get("status", "active"),
        "webhook_url": webhook_url if doc.get("mode") == "webhook" else None,
        "last_inbound_at": iso(doc.get("last_inbound_at")), "last_error": doc.get("last_error"),
        "created_at": iso(doc.get("created_at")),
    }


def agent_json(doc: Doc) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]), "login": doc["login"], "display_name": doc["display_name"],
        "title": doc.get("title"), "role": doc["role"], "active": bool(doc.get("active")),
        "timezone": doc.get("timezone"), "locale": doc.get("locale"),
    }
