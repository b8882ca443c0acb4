"""X kit: `replay(operation, fixture)` for the contract test, plus the small test-only world
the X unit tests share (a recording `AccountRuntime` with a fake clock, a sandbox with one
app), and `x_live` for the end-to-end tests through the real host (tests/test_x_e2e_*.py)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.base import AccountContext, StoreResult
from connectors.x.connector import XConnector
from connectors.x.sandbox import XSandbox
from inbox.models import (
    AccountId,
    ConversationId,
    InboundEvent,
    InboundMessage,
    MessageId,
    OutboundMessage,
)
from tests.kits.replay import replaying
from tests.kits.webhooks import WebhookTarget

CONSUMER_KEY = "sandbox-consumer-key-1"
CONSUMER_SECRET = "sandbox-consumer-secret-1"
OUR_ID = "1111111111111111111"
OUR_HANDLE = "ExampleUser"


def credentials(n: int = 1) -> dict[str, SecretStr]:
    return {"consumer_key": SecretStr(f"sandbox-consumer-key-{n}"),
            "consumer_secret": SecretStr(f"sandbox-consumer-secret-{n}"),
            "access_token": SecretStr(f"{n}-access-token-abcdef"),
            "access_token_secret": SecretStr(f"access-token-secret-{n}")}


def account(base_url: str | None, *, account_id: str = "acc-x-1", platform_id: str = OUR_ID,
            mode: str = "polling", options: Mapping[str, Any] | None = None, app: int = 1,
            username: str = OUR_HANDLE, app_webhook_url: str | None = None) -> AccountContext:
    return AccountContext(id=account_id, platform="x", name=account_id,
                          credentials=credentials(app), api_base_url=base_url, mode=mode,
                          platform_id=platform_id, info={"username": username},
                          options=dict(options or {}), app_webhook_url=app_webhook_url)


@dataclass
class FakeRuntime:
    """An `AccountRuntime` that keeps everything in memory and runs on a settable clock."""

    account_id: str = "acc-x-1"
    clock: datetime = field(default_factory=lambda: datetime(2026, 12, 10, 12, 0, tzinfo=UTC))
    stored: list[InboundEvent] = field(default_factory=list)
    cursors: dict[str, Any] = field(default_factory=dict)
    pauses: dict[str, float] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    info: dict[str, Any] = field(default_factory=dict)

    def advance(self, seconds: float) -> None:
        self.clock += timedelta(seconds=seconds)

    def timestamp(self) -> float:
        return self.clock.timestamp()

    async def sink(self, events: Sequence[InboundEvent]) -> list[StoreResult]:
        out = []
        for event in events:
            key = getattr(event, "external_id", None)
            known = any(getattr(e, "external_id", None) == key for e in self.stored)
            edit = isinstance(event, InboundMessage) and event.is_edit
            self.stored.append(event)
            out.append(StoreResult(key, None, created=not known and not edit))
        return out

    async def load_cursor(self, name: str = "default") -> Any:
        return self.cursors.get(name)

    async def save_cursor(self, value: Any, name: str = "default") -> None:
        self.cursors[name] = value

    async def report_health(self, state: str, error: str | None = None, *,
                            code: str | None = None) -> None:
        return None

    async def save_credentials(self, updates: Mapping[str, str]) -> None:
        return None

    async def pause(self, seconds: float, scope: str = "account") -> None:
        self.pauses[scope] = self.timestamp() + seconds

    async def paused_for(self, scope: str = "account") -> float:
        return max(0.0, self.pauses.get(scope, 0.0) - self.timestamp())

    async def record_usage(self, counts: Mapping[str, int]) -> None:
        self.counts.update(counts)

    async def usage(self, month: str | None = None) -> dict[str, int]:
        return dict(self.counts)

    async def save_info(self, updates: Mapping[str, Any]) -> None:
        self.info.update(updates)

    async def cache_get(self, key: str) -> Any:
        return None

    async def cache_set(self, key: str, value: Any, ttl_seconds: float) -> None:
        return None

    async def store_blob(self, data: bytes, *, name: str | None, mime: str | None) -> str:
        return "blob"

    async def now(self) -> datetime:
        return self.clock

    async def run_round(self, source: Any) -> Any:
        """What the host loop does with one batch: store, then save the cursors."""
        batch = await source.fetch(self)
        await self.sink(list(batch.events))
        for name, value in batch.cursors.items():
            await self.save_cursor(value, name)
        await self.record_usage(batch.usage)
        return batch


def sandbox_account(sandbox: XSandbox, n: int = 1, *, username: str = OUR_HANDLE,
                    user_id: str | None = OUR_ID) -> str:
    creds = credentials(n)
    if creds["consumer_key"].get_secret_value() not in sandbox.apps:
        sandbox.add_app(creds["consumer_key"].get_secret_value(),
                        creds["consumer_secret"].get_secret_value())
    return sandbox.add_account(creds["consumer_key"].get_secret_value(),
                               creds["access_token"].get_secret_value(),
                               creds["access_token_secret"].get_secret_value(),
                               username=username, name=f"{username} (brand)", user_id=user_id)


def outbound(text: str, *, kind: str = "mention", reply_to: str | None = "2080765813578191303",
             reply_to_author: str | None = "2222222222222222222", target: str = "thread",
             thread_key: str = "2080765813578191303") -> OutboundMessage:
    return OutboundMessage(message_id=MessageId("m1"), conversation_id=ConversationId("c1"),
                           account_id=AccountId("acc-x-1"), thread_key=thread_key, text=text,
                           reply_to=reply_to, kind=kind,  # type: ignore[arg-type]
                           reply_to_author=reply_to_author, target=target)


async def replay(operation: str, fixture: dict[str, Any]) -> Any:
    """Run `check` or `send` against a server that answers with `fixture`."""
    async with replaying(fixture) as server:
        connector = XConnector(account(server.base_url), FakeRuntime())
        try:
            if operation == "check":
                return await connector.check()
            if operation == "send":
                kind = (fixture.get("kit") or {}).get("kind", "mention")
                return await connector.send(outbound("Sorry about that ^ZK", kind=kind))
            raise ValueError(f"unknown operation {operation!r}")
        finally:
            await connector.close()


# --------------------------------------------------------------------------- end to end
# A real listening Switchboard (tests/live.py) and the X sandbox, on real time: the tests in
# tests/test_x_e2e_*.py create accounts through the API and let the host's own hosting loop,
# outbox worker and webhook routes do the rest.

CUSTOMER_ID = "2222222222222222222"
# X's per-15-minute limits, raised so a test can poll every second without waiting minutes
# for the DM window (the real limits are exercised in tests/test_x_polling.py).
E2E_LIMITS = {"dm_events": 900, "mentions": 900}


@dataclass
class XLive:
    live: Any
    sandbox: XSandbox
    customer: str
    skew: float = 0.0  # seconds the sandbox's clock runs ahead of the real one

    @property
    def db(self) -> Any:
        return self.live.services.db

    async def api(self, method: str, path: str, *, expect: int | None = None,
                  **kwargs: Any) -> Any:
        resp = await self.live.http.request(method, f"{self.live.url}{path}",
                                            headers=self.live.headers, **kwargs)
        body = await resp.json() if resp.content_type == "application/json" else None
        if expect is not None:
            assert resp.status == expect, (resp.status, body)
        return body

    def account_body(self, n: int = 1, *, mode: str = "polling", name: str | None = None,
                     options: Mapping[str, Any] | None = None,
                     base_url: str | None = None) -> dict[str, Any]:
        return {"platform": "x", "name": name or f"X {n} {mode}", "mode": mode,
                "api_base_url": base_url or self.sandbox.base_url,
                "credentials": {k: v.get_secret_value() for k, v in credentials(n).items()},
                "options": {"poll_interval_s": 1, **(options or {})}}

    async def add_account(self, n: int = 1, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = await self.api("POST", "/api/accounts", expect=201,
                                              json=self.account_body(n, **kwargs))
        return body

    async def account_doc(self, account_id: str) -> dict[str, Any]:
        from bson import ObjectId

        doc: dict[str, Any] = await self.db.accounts.find_one({"_id": ObjectId(account_id)})
        return doc

    async def inbound(self, **flt: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.db.messages.find(
            {"direction": "in", **flt}).to_list()
        return found

    async def wait_inbound(self, n: int, timeout: float = 10.0, **flt: Any,
                           ) -> list[dict[str, Any]]:
        from tests.live import wait_for

        async def enough() -> list[dict[str, Any]] | None:
            found = await self.inbound(**flt)
            return found if len(found) >= n else None

        found: list[dict[str, Any]] = await wait_for(enough, timeout)
        from bson import ObjectId

        # conversations are made behind the acknowledgement (inbox/summaries.py): a message
        # can be stored before its batch's summaries are even scheduled, so wait for them
        wanted = list({ObjectId(m["conversation_id"]) for m in found})

        async def made() -> bool:
            return await self.db.conversations.count_documents(
                {"_id": {"$in": wanted}}) == len(wanted)

        await wait_for(made, timeout)
        return found

    async def reply(self, conversation_id: str, text: str, *, expect: int = 202,
                    target: str = "thread") -> dict[str, Any]:
        body: dict[str, Any] = await self.api(
            "POST", f"/api/conversations/{conversation_id}/messages", expect=expect,
            json={"text": text, "target": target})
        return body

    async def delivery(self, message_id: str, state: str, timeout: float = 10.0,
                       ) -> dict[str, Any]:
        from bson import ObjectId

        from tests.live import wait_for

        doc: dict[str, Any] = await wait_for(lambda: self.db.messages.find_one(
            {"_id": ObjectId(message_id), "delivery.state": state}), timeout)
        return doc


def _skewed(world: list[XLive]) -> float:
    import time

    return time.time() + (world[0].skew if world else 0.0)


@pytest.fixture(name="x_live")
async def x_live_fixture(mongo_uri: str, db: Any, tmp_path: Any) -> AsyncIterator[XLive]:
    """A listening Switchboard on the test database and the X sandbox with one app, its brand
    account (OUR_ID) and a customer. A test module imports `x_live_fixture` to use `x_live`."""
    from tests.live import live_server

    holder: list[XLive] = []
    sandbox = XSandbox(limits=E2E_LIMITS, clock=lambda: _skewed(holder))
    await sandbox.start()
    sandbox_account(sandbox)
    customer = sandbox.add_user("li_na", "李娜", user_id=CUSTOMER_ID)
    try:
        async with live_server(mongo_uri, db.name, tmp_path) as live:
            holder.append(XLive(live, sandbox, customer))
            yield holder[0]
    finally:
        await sandbox.stop()


async def webhook_target(client: Any, admin_headers: dict[str, str],
                         stack: contextlib.AsyncExitStack) -> WebhookTarget:
    """An activity-mode account; bodies signed with its consumer secret as X signs them. The
    account is added in polling mode and switched over in the database: registering the
    webhook needs X's CRC call to reach a public URL, which the in-process test client has
    not."""
    from connectors.x import activity

    sandbox = XSandbox()
    await sandbox.start()
    stack.push_async_callback(sandbox.stop)
    sandbox_account(sandbox)
    resp = await client.post("/api/accounts", headers=admin_headers, json={
        "platform": "x", "name": "fuzz x", "mode": "polling", "api_base_url": sandbox.base_url,
        "credentials": {k: v.get_secret_value() for k, v in credentials().items()}})
    assert resp.status == 201, await resp.text()
    account_id = (await resp.json())["id"]
    services = client.app["services"]
    await services.hosting.stop(account_id)
    await services.accounts.update(account_id, {"mode": "activity"})
    services.channels._connectors.pop(account_id, None)
    secret = CONSUMER_SECRET
    return WebhookTarget(path="/webhooks/x", account_id=account_id, sign=lambda body: {
        activity.SIGNATURE_HEADER: activity.sign(secret, body),
        "Content-Type": "application/json"})
