"""A reply's documents: what its send needs of the conversation (`ReplyContext`), the
connector's view of a stored reply (`outbound_of`), and the ids that make a retried request
find the first one."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from inbox.models import (
    AccountId,
    ConversationId,
    MessageId,
    OutboundMessage,
    Rendered,
    TextEntity,
)


def is_first_reply(conversation: Mapping[str, Any], agent_id: str) -> bool:
    """Whether `agent_id` has not replied in this conversation yet (greeting decision)."""
    return agent_id not in (conversation.get("responders") or [])


def outbound_of(doc: Mapping[str, Any]) -> OutboundMessage:
    """The connector's view of a stored reply: exactly what was rendered, and the context of
    its conversation recorded when it was queued."""
    rendered = Rendered.from_doc(doc["rendered"]) if doc.get("rendered") else Rendered(
        text=doc["rendered_text"], entities=tuple(
            TextEntity(e["type"], int(e["offset"]), int(e["length"]))
            for e in doc.get("entities") or ()), username=doc.get("username"))
    return OutboundMessage(
        message_id=MessageId(str(doc["_id"])),
        conversation_id=ConversationId(str(doc["conversation_id"])),
        account_id=AccountId(str(doc["account_id"])), thread_key=str(doc["thread_key"]),
        text=rendered.text, entities=rendered.entities,
        reply_to=doc.get("reply_to"), agent_name=doc.get("agent_name") or "",
        agent_title=doc.get("agent_title"), kind=doc.get("kind") or "dm",
        reply_to_author=doc.get("reply_to_author"),
        thread_aliases=tuple(doc.get("thread_aliases") or ()),
        recipients=tuple(doc.get("recipients") or ()), subject=rendered.subject or
        doc.get("subject"), references=tuple(doc.get("references") or ()),
        target=doc.get("target") or "thread", rendered=rendered,
        reply_route=doc.get("reply_route"))


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What the connector will need of the conversation when it sends (recorded at enqueue,
    so a retry days later sends to the same place)."""

    reply_to: str | None = None
    reply_to_author: str | None = None
    target: str = "thread"
    recipients: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    reply_route: dict[str, Any] | None = None


def keyed_id(conversation_id: str, key: str) -> ObjectId:
    """The same `_id` for the same (conversation, idempotency key), so a retried request finds
    the first one by `_id`: reads never used the `$type`-partial unique index (measured)."""
    return ObjectId(hashlib.sha256(f"{conversation_id}\0{key}".encode()).digest()[:12])
