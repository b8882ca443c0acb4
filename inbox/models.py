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
    file_id: str | None = None  # the connector's own reference, handed back to fetch_attachment
    name: str | None = None
    size: int | None = None
    mime: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    blob_id: str | None = None  # bytes kept by Switchboard itself (inbox.blobs), not the platform
    inline: bool = False  # shown inside the message body (an email's cid: image)

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type}
        if self.inline:
            doc["inline"] = True
        for key in ("file_id", "name", "size", "mime", "blob_id"):
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
    locale: str | None = None  # a BCP 47 tag as the platform gives it: "zh-hans", "en-US"
    avatar_url: str | None = None

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"user_id": self.user_id, "name": self.name,
                               "handle": self.handle, "is_bot": self.is_bot}
        if self.locale:
            doc["locale"] = self.locale
        if self.avatar_url:
            doc["avatar_url"] = self.avatar_url
        return doc


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One customer message, normalised.

    `external_id` is unique per account and is what makes ingest idempotent; `thread_key`
    groups messages into a conversation (a Telegram chat, a Slack thread, an X reply tree).
    `thread_aliases` are further keys of the same thread (an email's References, the posts an
    X reply answers): the message joins the conversation that already holds any of its keys,
    and the conversation learns the ones it did not hold yet.
    An edit carries the same `external_id` as the original with `edited_at` set.
    `html` (sanitised, for display) and `full_text` (with quoted history and signature, when
    `text` is the folded version) are for channels that have them, email.
    `reply_route` is the connector's own data on how to answer this message (a Slack DM's
    thread root); it comes back as `OutboundMessage.reply_route` when an agent answers it.
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
    thread_aliases: tuple[str, ...] = ()
    html: str | None = None
    full_text: str | None = None
    reply_route: dict[str, Any] | None = None  # the connector's own: how to answer this one

    @property
    def is_edit(self) -> bool:
        return self.edited_at is not None

    @property
    def thread_keys(self) -> tuple[str, ...]:
        return (self.thread_key, *(k for k in self.thread_aliases if k != self.thread_key))


@dataclass(frozen=True, slots=True)
class MessageDeleted:
    """The customer deleted a message: it is marked deleted, its text kept for the record."""

    account_id: AccountId
    platform: Platform
    external_id: str
    deleted_at: datetime
    raw: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ReactionChanged:
    """Someone added or removed a reaction on a message (optional per platform)."""

    account_id: AccountId
    platform: Platform
    external_id: str  # the message reacted to
    user_id: str
    reaction: str
    added: bool
    at: datetime
    raw: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The platform reports after the fact that one of our replies failed (an email bounce)."""

    account_id: AccountId
    platform: Platform
    outbound_external_id: str  # the platform id our send returned
    reason: str  # in words, as the platform gave it
    code: str = "bounced"
    at: datetime | None = None
    message_id: str | None = None  # our own id of the reply, when the connector can tell it
    # (an email connector that put it into the Message-ID it generated)


@dataclass(frozen=True, slots=True)
class Interaction:
    """A customer pressed a button we sent (a survey score) or answered it in words."""

    account_id: AccountId
    platform: Platform
    thread_key: str
    user_id: str
    action: str  # what the button was for, e.g. "csat"
    value: str
    at: datetime
    external_id: str | None = None  # the platform's id of the press, for idempotency
    raw: dict[str, Any] | None = None


InboundEvent = InboundMessage | MessageDeleted | ReactionChanged | DeliveryReport | Interaction
"""Everything a connector hands to the sink."""


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
class AgentIdentity:
    """Who a reply is from, as the customer is to see it ("进线名称").

    `name` is the exact name the policy produced for this agent; `signature` is the operator's
    template (a connector may use its own, e.g. X's short suffix); `greeting` is already chosen
    for the customer's locale and filled in, or None."""

    name: str
    title: str | None = None
    brand: str = ""
    signature: str = "— {name} · {brand}"
    greeting: str | None = None
    avatar_url: str | None = None
    team: str | None = None

    @property
    def initials(self) -> str:
        """"ZK" for "Zhang Kai", "张" for "张客服": what a short signature suffix shows."""
        words = [w for w in self.name.replace("·", " ").split() if w]
        if not words:
            return ""
        if all(w.isascii() for w in words):
            return "".join(w[0].upper() for w in words[:3])
        return words[0][0]


@dataclass(frozen=True, slots=True)
class Button:
    """One choice the customer can press under a message (a survey's 1–5).

    `action` says what the button is for ("csat"), `value` what pressing it answers; a
    connector that renders buttons natively (Telegram's inline keyboard, Slack's Block Kit)
    sends `action` and `value` back in its `Interaction`. Both are short ASCII: Telegram allows
    64 bytes of callback data in all, `action:value`."""

    action: str
    value: str
    label: str

    @property
    def data(self) -> str:
        return f"{self.action}:{self.value}"


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a connector may need to know about the conversation to render a reply.

    `buttons` are choices to offer under the reply (`Button`): a connector with
    `native_buttons` renders them as the platform's own and returns them in
    `Rendered.buttons`; for one without, the host appends `buttons_text` (e.g. "Reply with a
    number from 1 to 5") to the reply's text and passes no buttons."""

    kind: ConversationKind = "dm"
    first_reply: bool = False
    customer_locale: str | None = None
    subject: str | None = None  # the conversation's title (an email's subject)
    target: str = "thread"  # "thread": where the customer wrote; "dm": privately instead
    buttons: tuple[Button, ...] = ()
    buttons_text: str | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """What the customer will see: the text, its formatting, the sender name if settable, and
    whatever else the platform takes (`extra`: buttons, blocks), as stored with the reply."""

    text: str
    entities: tuple[TextEntity, ...] = ()
    username: str | None = None  # platforms that let a bot post under another name (Slack)
    icon_url: str | None = None
    subject: str | None = None
    html: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    shown_name: str = ""  # the exact name the customer sees, recorded on the reply
    buttons: tuple[Button, ...] = ()  # rendered natively by the connector at send time

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"text": self.text, "entities": [
            {"type": e.type, "offset": e.offset, "length": e.length} for e in self.entities]}
        for key in ("username", "icon_url", "subject", "html"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        if self.extra:
            doc["extra"] = dict(self.extra)
        if self.buttons:
            doc["buttons"] = [{"action": b.action, "value": b.value, "label": b.label}
                              for b in self.buttons]
        doc["shown_name"] = self.shown_name
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Rendered:
        return cls(text=str(doc.get("text") or ""), entities=tuple(
            TextEntity(str(e["type"]), int(e["offset"]), int(e["length"]))
            for e in doc.get("entities") or ()), username=doc.get("username"),
            icon_url=doc.get("icon_url"), subject=doc.get("subject"), html=doc.get("html"),
            extra=dict(doc.get("extra") or {}), shown_name=str(doc.get("shown_name") or ""),
            buttons=tuple(Button(str(b["action"]), str(b["value"]), str(b.get("label") or ""))
                          for b in doc.get("buttons") or () if isinstance(b, dict)))


@dataclass(frozen=True, slots=True)
class Measure:
    """A text's length in the platform's own unit, against what the platform allows."""

    used: int
    limit: int
    unit: str = "characters"  # "utf16", "weighted", "characters"

    @property
    def over(self) -> int:
        return max(0, self.used - self.limit)

    @property
    def fits(self) -> bool:
        return self.used <= self.limit


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A rendered reply handed to a connector's `send`, with what it needs of its conversation.

    `reply_to` is the external id of the customer message being answered and `reply_to_author`
    its author's platform user id (an X DM goes to them; an email to their address).
    `target` "dm" sends privately instead of into a public thread (X's "send as DM")."""

    message_id: MessageId
    conversation_id: ConversationId
    account_id: AccountId
    thread_key: str
    text: str
    entities: tuple[TextEntity, ...] = ()
    reply_to: str | None = None
    agent_name: str = ""
    agent_title: str | None = None
    kind: ConversationKind = "dm"
    reply_to_author: str | None = None
    thread_aliases: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    subject: str | None = None
    references: tuple[str, ...] = ()
    target: str = "thread"
    rendered: Rendered | None = None
    reply_route: dict[str, Any] | None = None

    @property
    def username(self) -> str | None:
        return self.rendered.username if self.rendered else None

    @property
    def buttons(self) -> tuple[Button, ...]:
        """The choices to render under the reply (only for a connector with native buttons)."""
        return self.rendered.buttons if self.rendered else ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the platform said after accepting a reply."""

    external_id: str
    platform_ts: datetime | None = None
    thread_alias: str | None = None  # a key the customer's answer will name (an email's
    # Message-ID): the conversation learns it, so a reply that names only it still joins


class DeliveryError(Exception):
    """Base of the typed errors a connector's `send` raises."""

    def __init__(self, message: str, *, code: str = "error") -> None:
        super().__init__(message)
        self.code = code
        self.human = message


class RateLimited(DeliveryError):
    """Wait `retry_after` seconds; `scope` is what is limited: the whole account, or one method
    of it where the platform counts per method (e.g. "dm_events")."""

    def __init__(self, retry_after: float,
                 message: str = "The platform asked us to slow down.", *,
                 scope: str = "account") -> None:
        super().__init__(message, code="rate_limited")
        self.retry_after = retry_after
        self.scope = scope


class TransientError(DeliveryError):
    """A retry can help: network trouble, a 5xx, a timeout."""


class PermanentError(DeliveryError):
    """A retry cannot help: blocked by the user, chat gone, message rejected.

    `alternatives` names other ways the agent may try from the UI (e.g. "dm")."""

    def __init__(self, message: str, *, code: str = "error",
                 alternatives: tuple[str, ...] = ()) -> None:
        super().__init__(message, code=code)
        self.alternatives = alternatives


class CredentialsRefused(PermanentError):
    """The platform refused the account's credentials: the account needs new ones, and its
    replies wait for them instead of burning attempts."""

    def __init__(self, message: str = "The platform refused the account's credentials.", *,
                 code: str = "credentials_refused") -> None:
        super().__init__(message, code=code)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit Telegram entity offsets are counted in."""
    return len(text.encode("utf-16-le")) // 2
