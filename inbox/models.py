"""The normalised model shared by every connector and the store.

Connectors turn platform payloads into `InboundMessage` (or `Ignored`), and receive an
`OutboundMessage` to send. Nothing here knows a platform: the platform names are plain strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NewType

AccountId = NewType("AccountId", str)
ConversationId = NewType("ConversationId", str)
MessageId = NewType("MessageId", str)
AgentId = NewType("AgentId", str)

Platform = str
ConversationKind = Literal["dm", "group", "comment_thread", "mention"]
ConversationStatus = Literal["open", "pending", "snoozed", "resolved"]
DeliveryState = Literal["queued", "sending", "sent", "retry_wait", "failed"]

CONVERSATION_STATUSES: tuple[str, ...] = ("open", "pending", "snoozed", "resolved")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file or place attached to a message; the bytes stay on the platform."""

    type: str  # photo, document, voice, audio, video, video_note, animation, sticker, location
    file_id: str | None = None
    name: str | None = None
    size: int | None = None
    mime: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type}
        for key in ("file_id", "name", "size", "mime"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        if self.extra:
            doc["extra"] = dict(self.extra)
        return doc


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote an inbound message, as the platform names them."""

    user_id: str
    name: str
    handle: str | None = None
    is_bot: bool = False

    def as_doc(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "name": self.name, "handle": self.handle,
                "is_bot": self.is_bot}


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One customer message, normalised.

    `external_id` is unique per account and is what makes ingest idempotent; `thread_key`
    groups messages into a conversation (a Telegram chat, a Slack thread, an X reply tree).
    An edit carries the same `external_id` as the original with `edited_at` set.
    """

    account_id: AccountId
    platform: Platform
    external_id: str
    thread_key: str
    kind: ConversationKind
    author: Author
    text: str
    platform_ts: datetime
    attachments: tuple[Attachment, ...] = ()
    reply_to: str | None = None
    forwarded_from: str | None = None
    edited_at: datetime | None = None
    thread_title: str | None = None
    raw: dict[str, Any] | None = None

    @property
    def is_edit(self) -> bool:
        return self.edited_at is not None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A payload understood but deliberately not stored (service messages, own echoes...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class TextEntity:
    """A formatting span; offsets and lengths count UTF-16 code units, as Telegram does."""

    type: str  # bold, italic
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A rendered reply handed to a connector's `send`."""

    message_id: MessageId
    conversation_id: ConversationId
    account_id: AccountId
    thread_key: str
    text: str
    entities: tuple[TextEntity, ...] = ()
    reply_to: str | None = None  # external id of the customer message being answered
    agent_name: str = ""
    agent_title: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the platform said after accepting a reply."""

    external_id: str
    platform_ts: datetime | None = None


class DeliveryError(Exception):
    """Base of the typed errors a connector's `send` raises."""

    def __init__(self, message: str, *, code: str = "error") -> None:
        super().__init__(message)
        self.code = code
        self.human = message


class RateLimited(DeliveryError):
    def __init__(self, retry_after: float,
                 message: str = "The platform asked us to slow down.") -> None:
        super().__init__(message, code="rate_limited")
        self.retry_after = retry_after


class TransientError(DeliveryError):
    """A retry can help: network trouble, a 5xx, a timeout."""


class PermanentError(DeliveryError):
    """A retry cannot help: blocked by the user, chat gone, message rejected."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram entity offsets are counted in."""
    return len(text.encode("utf-16-le")) // 2
