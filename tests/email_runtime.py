"""A test-only `AccountRuntime` for the email connector: records what the connector does.

`sink` behaves like the host's store where it matters here: an event whose external id it
already holds is not stored again (the unique index on (account, external_id)), and the
answer says so (`created=False`). Cursors, blobs, health and saved credentials are kept in
memory for the test to inspect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from connectors.base import AccountContext, AccountState, StoreResult
from inbox.models import DeliveryReport, InboundEvent, InboundMessage


@dataclass
class RecordingRuntime:
    account: AccountContext
    sink_calls: list[list[InboundEvent]] = field(default_factory=list)
    stored: dict[str, InboundEvent] = field(default_factory=dict)
    cursors: dict[str, Any] = field(default_factory=dict)
    cursor_saves: list[tuple[str, Any, int]] = field(default_factory=list)  # (name, value, #stored)
    blobs: dict[str, tuple[bytes, str | None, str | None]] = field(default_factory=dict)
    health: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    saved_credentials: list[dict[str, str]] = field(default_factory=list)
    fail_sink: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def account_id(self) -> str:
        return self.account.id

    @property
    def messages(self) -> list[InboundMessage]:
        return [e for e in self.stored.values() if isinstance(e, InboundMessage)]

    @property
    def reports(self) -> list[DeliveryReport]:
        return [e for e in self.stored.values() if isinstance(e, DeliveryReport)]

    async def sink(self, events: Sequence[InboundEvent]) -> list[StoreResult]:
        if self.fail_sink:
            self.fail_sink -= 1
            raise RuntimeError("the store is down")
        self.sink_calls.append(list(events))
        results = []
        for event in events:
            key = (event.outbound_external_id if isinstance(event, DeliveryReport)
                   else getattr(event, "external_id", None)) or uuid.uuid4().hex
            created = key not in self.stored
            if created:
                self.stored[key] = event
            results.append(StoreResult(key, None, created))
        async with self._changed:
            self._changed.notify_all()
        return results

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[InboundEvent]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.stored) >= count),
                                   timeout)
        return list(self.stored.values())

    async def load_cursor(self, name: str = "default") -> Any:
        return self.cursors.get(name)

    async def save_cursor(self, value: Any, name: str = "default") -> None:
        self.cursors[name] = value
        self.cursor_saves.append((name, value, len(self.stored)))

    async def report_health(self, state: AccountState, error: str | None = None, *,
                            code: str | None = None) -> None:
        self.health.append((state, error, code))

    async def save_credentials(self, updates: Mapping[str, str]) -> None:
        self.saved_credentials.append(dict(updates))
        creds = dict(self.account.credentials)
        creds.update({k: SecretStr(v) for k, v in updates.items()})
        self.account = dataclasses.replace(self.account, credentials=creds)

    async def pause(self, seconds: float, scope: str = "account") -> None:
        return None

    async def paused_for(self, scope: str = "account") -> float:
        return 0.0

    async def record_usage(self, counts: Mapping[str, int]) -> None:
        return None

    async def usage(self, month: str | None = None) -> dict[str, int]:
        return {}

    async def save_info(self, updates: Mapping[str, Any]) -> None:
        return None

    async def cache_get(self, key: str) -> Any:
        return None

    async def cache_set(self, key: str, value: Any, ttl_seconds: float) -> None:
        return None

    async def store_blob(self, data: bytes, *, name: str | None, mime: str | None) -> str:
        blob_id = f"blob-{len(self.blobs) + 1}"
        self.blobs[blob_id] = (data, name, mime)
        return blob_id

    async def now(self) -> datetime:
        return datetime.now(UTC)


def email_account(options: Mapping[str, Any], *, username: str = "support@acme.example",
                  password: str | None = None, account_id: str = "acc-email-1",
                  **credentials: str) -> AccountContext:
    creds = {"username": SecretStr(username)}
    if password is not None:
        creds["password"] = SecretStr(password)
    creds.update({k: SecretStr(v) for k, v in credentials.items()})
    return AccountContext(id=account_id, platform="email", name="support", credentials=creds,
                          mode="imap", options=dict(options))
