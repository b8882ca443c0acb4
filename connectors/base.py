"""The contract every platform connector implements (see DESIGN.md, "Connector contract")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from inbox.models import Delivery, InboundMessage, OutboundMessage

Sink = Callable[[InboundMessage], Awaitable[Any]]
"""Where a connector hands a normalised message; returns once the message is durably stored."""


@dataclass(frozen=True, slots=True)
class CredentialField:
    name: str
    label: str
    secret: bool = True
    required: bool = True
    pattern: str | None = None
    help: str = ""


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What `check()` learned about the account from the platform itself."""

    platform_id: str  # the platform's own id for the account: a second add of it is refused
    username: str | None = None
    display_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status: int
    body: Mapping[str, Any] = field(default_factory=dict)


class ConnectError(Exception):
    """`check()` failed; `code` is `invalid_auth`, `cannot_connect` or `unknown`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Connector(Protocol):
    platform: ClassVar[str]
    text_limit: ClassVar[int]
    credential_fields: ClassVar[tuple[CredentialField, ...]]
    modes: ClassVar[tuple[str, ...]]

    async def check(self) -> AccountInfo: ...

    async def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, outbound: OutboundMessage) -> Delivery: ...


@dataclass(frozen=True, slots=True)
class AccountContext:
    """What a connector is built from: one stored channel account, credentials decrypted."""

    id: str
    platform: str
    name: str
    credentials: Mapping[str, str]  # values are `inbox.secrets.Secret`: repr is '***'
    api_base_url: str | None = None
    mode: str = "webhook"
    webhook_secret: str | None = None
    webhook_url: str | None = None
    platform_id: str | None = None
    cursor: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)
