"""The contract every platform connector implements (see DESIGN.md, "Connector contract").

A connector is a class registered in `connectors/registry.py`; the host (Switchboard) builds one
instance per channel account with the account's context and an `AccountRuntime`, and never
names a platform itself. What a platform supplies:

- declarations (class attributes): `platform`, `modes`, `credential_fields`, `option_fields`,
  `ack_deadline`, `app_webhook`, `strings` (its UI text in every language);
- inbound HTTP: `handle_webhook(request)` for `/webhooks/<platform>/<account_id>` (any method),
  and, with `app_webhook`, the class method `route_app_webhook(request, directory)` for the
  app-level `/webhooks/<platform>` that resolves the account from the payload;
- lifecycle: `check()`, `on_create()`, `on_delete()`;
- long-lived inbound: `inbound(mode)` returns a `PollingSource` or a `SessionSource` that the
  host runs in `connectors.hosting` (lease, cursor, backoff, health), or None;
- outbound: `render`, `measure`, `send`, `fetch_attachment`;
- account notices for the admin (`notices`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from connectors.declarations import (
    AccountContext,
    AccountInfo,
    ConnectError,
    CredentialField,
    Notice,
    OptionField,
)
from inbox.models import (
    AgentIdentity,
    Author,
    Delivery,
    Ignored,
    InboundEvent,
    Measure,
    OutboundMessage,
    RenderContext,
    Rendered,
)

AccountState = Literal["active", "degraded", "needs_reauth", "error"]
ACCOUNT_STATES: tuple[str, ...] = ("active", "degraded", "needs_reauth", "error")


# declarations (credentials, options, what check() learned, notices, the account's context)
# live in connectors/declarations.py and are part of this contract
__all__ = ["ACCOUNT_STATES", "OK", "AccountContext", "AccountDirectory", "AccountInfo",
           "AccountRuntime", "AccountState", "AttachmentStream", "Batch", "ConnectError",
           "Connector", "ConnectorBase", "ConnectorFactory", "CredentialField", "HttpRequest",
           "HttpResponse", "InboundSource", "Normaliser", "Notice", "OptionField",
           "PollingSource", "SessionSource", "StoreResult", "chunks_of"]


# ----------------------------------------------------------------------------- inbound HTTP


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A webhook request as the connector sees it: nothing parsed, nothing trusted."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    remote: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, status: int, value: Any, **headers: str) -> HttpResponse:
        return cls(status, json.dumps(value, ensure_ascii=False).encode(), "application/json",
                   headers)

    @classmethod
    def of_text(cls, status: int, text: str, content_type: str = "text/plain",
                **headers: str) -> HttpResponse:
        return cls(status, text.encode(), content_type, headers)

    @classmethod
    def error(cls, status: int, code: str, message: str) -> HttpResponse:
        return cls.of_json(status, {"error": {"code": code, "message": message}})


OK = HttpResponse.of_json(200, {"ok": True})


# ----------------------------------------------------------------------------- the host's side


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What the sink did with one event."""

    message_id: str | None
    conversation_id: str | None
    created: bool  # False: already stored (a redelivery), or an edit / delete / reaction


class AccountRuntime(Protocol):
    """What the host gives a connector for one account. Every method persists in the
    database, so it holds across restarts and processes."""

    @property
    def account_id(self) -> str: ...

    async def sink(self, events: Sequence[InboundEvent]) -> list[StoreResult]:
        """Store events; returns once they are durable (acknowledge the platform after)."""
        ...

    async def load_cursor(self, name: str = "default") -> Any: ...

    async def save_cursor(self, value: Any, name: str = "default") -> None:
        """Persist a cursor (an offset, a since_id, a UID): call it only after `sink`."""
        ...

    async def report_health(self, state: AccountState, error: str | None = None, *,
                            code: str | None = None) -> None:
        """`active` clears the last error; the others say what is wrong, in words."""
        ...

    async def save_credentials(self, updates: Mapping[str, str]) -> None:
        """Persist refreshed credentials (an OAuth token), sealed like the originals."""
        ...

    async def pause(self, seconds: float, scope: str = "account") -> None:
        """Record a rate-limit pause, shared by every process."""
        ...

    async def paused_for(self, scope: str = "account") -> float:
        """Seconds left of a pause of `scope` (or of the whole account); 0 when none."""
        ...

    async def record_usage(self, counts: Mapping[str, int]) -> None:
        """Add to this month's usage counters (billable reads, posts)."""
        ...

    async def usage(self, month: str | None = None) -> dict[str, int]:
        """This month's (or `month`'s, "2026-12") usage counters."""
        ...

    async def save_info(self, updates: Mapping[str, Any]) -> None:
        """Merge facts about the account into its stored `info` (granted scopes, ids)."""
        ...

    async def cache_get(self, key: str) -> Any: ...

    async def cache_set(self, key: str, value: Any, ttl_seconds: float) -> None:
        """A small shared cache for lookups a platform limits (user profiles)."""
        ...

    async def store_blob(self, data: bytes, *, name: str | None,
                         mime: str | None) -> str:
        """Keep bytes that the platform will not keep for us (an email part); returns its id
        for `Attachment.blob_id`."""
        ...

    async def now(self) -> datetime:
        """The database's clock (shared by processes)."""
        ...


class AccountDirectory(Protocol):
    """For app-level webhooks: the accounts of one platform, to resolve one from a payload."""

    async def connectors(self) -> list[Connector]: ...

    async def by_platform_id(self, platform_id: str) -> Connector | None: ...


# ----------------------------------------------------------------------------- long-lived inbound


@dataclass(frozen=True, slots=True)
class Batch:
    """One round of a polling source: events to store, then the cursors to save, then wait."""

    events: Sequence[InboundEvent] = ()
    cursors: Mapping[str, Any] = field(default_factory=dict)
    wait_seconds: float = 0.0  # before the next round (0: at once, e.g. a long poll)
    usage: Mapping[str, int] = field(default_factory=dict)
    note: str | None = None  # shown with the account's health, e.g. "slowed for the budget"


class PollingSource(Protocol):
    """"Fetch the next batch": the host loop owns the lease, stores the batch, then saves its
    cursors, backs off on errors and reports health."""

    name: str

    async def fetch(self, runtime: AccountRuntime) -> Batch: ...


class SessionSource(Protocol):
    """"Run the session" (a websocket, IMAP IDLE): returns or raises when the session ends; the
    host restarts it with backoff while it holds the lease. `ready` is called once connected."""

    name: str

    async def run(self, runtime: AccountRuntime, ready: Callable[[], Awaitable[None]]) -> None:
        ...


InboundSource = PollingSource | SessionSource


# ----------------------------------------------------------------------------- attachments


@dataclass(slots=True)
class AttachmentStream:
    """A file's bytes, streamed from the platform with the account's credentials kept here."""

    chunks: AsyncIterator[bytes]
    mime: str | None = None
    name: str | None = None
    size: int | None = None


# ----------------------------------------------------------------------------- parsing


class Normaliser(Protocol):
    """A connector's pure parsing module (`connectors/<platform>/normalise.py`): no I/O.

    `HANDLERS` is its dispatch table (discriminator → handler); `dispatch_key` names the entry a
    payload goes to (None: an event we do not know, which `normalise` answers `Ignored`). Only a
    payload that cannot be read raises (`ValueError`). The contract test requires a fixture
    with a golden output for every entry of `HANDLERS`."""

    HANDLERS: Mapping[str, Any]

    def dispatch_key(self, payload: Any) -> str | None: ...

    def normalise(self, payload: Any, account: AccountContext,
                  ) -> InboundEvent | Ignored | Sequence[InboundEvent]: ...


# ----------------------------------------------------------------------------- the connector


@runtime_checkable
class Connector(Protocol):
    platform: ClassVar[str]
    modes: ClassVar[tuple[str, ...]]
    webhook_modes: ClassVar[tuple[str, ...]]  # modes in which the platform calls our URL
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    option_fields: ClassVar[tuple[OptionField, ...]]
    ack_deadline: ClassVar[float]  # seconds the platform waits for a webhook's answer
    app_webhook: ClassVar[bool]  # whether /webhooks/<platform> (app-level) exists
    strings: ClassVar[Mapping[str, Mapping[str, str]]]  # locale → key → text
    normaliser: ClassVar[Normaliser]
    secret_patterns: ClassVar[tuple[str, ...]]  # regexes of its token shapes, masked in logs

    account: AccountContext
    runtime: AccountRuntime

    async def check(self) -> AccountInfo: ...

    async def on_create(self) -> None: ...

    async def on_delete(self) -> None: ...

    async def handle_webhook(self, request: HttpRequest) -> HttpResponse: ...

    def inbound(self) -> InboundSource | None: ...

    def render(self, identity: AgentIdentity, text: str, context: RenderContext) -> Rendered:
        ...

    def measure(self, text: str, context: RenderContext) -> Measure: ...

    async def send(self, outbound: OutboundMessage) -> Delivery: ...

    async def fetch_attachment(self, attachment: Mapping[str, Any]) -> AttachmentStream: ...

    async def enrich_author(self, author: Author) -> Author | None:
        """A fuller profile of a message's author (name, avatar, locale) when the payload
        carried only an id; the host calls it after storing, off the acknowledgement path.
        None: nothing to add."""
        ...

    def notices(self, snapshot: Mapping[str, Any]) -> list[Notice]:
        """Lines for the admin; `snapshot` is the account as stored now: `info`, `options`,
        `mode`, `status`, `usage` (this month's counters), `inbound_note`."""
        ...

    def send_scope(self, outbound: OutboundMessage) -> str:
        """Which rate-limit scope a send uses ("account" unless the platform limits per
        method): a paused scope holds the reply back untried."""
        ...

    async def close(self) -> None: ...


ConnectorFactory = Callable[[AccountContext, AccountRuntime], Connector]


class ConnectorBase:
    """Defaults for the optional parts of the contract; a connector subclasses it."""

    modes: ClassVar[tuple[str, ...]] = ("webhook",)
    webhook_modes: ClassVar[tuple[str, ...]] = ("webhook",)
    option_fields: ClassVar[tuple[OptionField, ...]] = ()
    ack_deadline: ClassVar[float] = 10.0
    app_webhook: ClassVar[bool] = False
    strings: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    secret_patterns: ClassVar[tuple[str, ...]] = ()  # shapes of its tokens, masked in logs
    # whether `render` turns `RenderContext.buttons` into the platform's own buttons (and
    # `send` sends them); without, the host appends `RenderContext.buttons_text` instead and
    # reads the customer's answer from their next message
    native_buttons: ClassVar[bool] = False

    def __init__(self, account: AccountContext, runtime: AccountRuntime) -> None:
        self.account = account
        self.runtime = runtime

    def __repr__(self) -> str:
        return f"{type(self).__name__}(account={self.account.id!r})"

    @classmethod
    async def route_app_webhook(cls, request: HttpRequest,
                                directory: AccountDirectory) -> HttpResponse | Connector:
        """Answer an app-level request (a CRC check) or name the account it is for; the host
        then calls that connector's `handle_webhook`."""
        return HttpResponse.error(404, "not_found", "this platform has no app-level webhook")

    async def on_create(self) -> None:
        return None

    async def on_delete(self) -> None:
        return None

    async def handle_webhook(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.error(404, "not_found", "this account takes no webhooks")

    def inbound(self) -> InboundSource | None:
        return None

    async def fetch_attachment(self, attachment: Mapping[str, Any]) -> AttachmentStream:
        from inbox.models import PermanentError

        raise PermanentError("This channel keeps no files.", code="no_file")

    async def enrich_author(self, author: Author) -> Author | None:
        return None

    def notices(self, snapshot: Mapping[str, Any]) -> list[Notice]:
        return []

    def send_scope(self, outbound: OutboundMessage) -> str:
        return "account"

    async def close(self) -> None:
        return None

    def option(self, name: str) -> Any:
        """An account option, or its declared default."""
        if name in self.account.options:
            return self.account.options[name]
        for opt in self.option_fields:
            if opt.name == name:
                return opt.default
        raise KeyError(name)


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """Bytes already in memory, as a stream (for `AttachmentStream`)."""
    for start in range(0, len(data), size):
        yield data[start:start + size]
