"""Slack kit: `replay(operation, fixture)` for the contract test, plus what the Slack tests
share: a tiny recording runtime (the host's `AccountRuntime`, in memory, for unit tests),
accounts, a sandbox seeded with the fixtures' workspace (team T0ACME, app A0APP, bot U0BOT /
B0BOT), and for the end-to-end tests the `slack_e2e` fixture: that sandbox beside a real
listening Switchboard (tests/live.py) on the test database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.base import AccountContext, StoreResult
from connectors.slack.connector import SlackConnector
from connectors.slack.sandbox import SlackSandbox
from inbox.models import (
    ConversationId,
    InboundEvent,
    InboundMessage,
    MessageId,
    OutboundMessage,
    Rendered,
)
from tests.kits.replay import replaying
from tests.kits.webhooks import WebhookTarget
from tests.live import Live, live_server, wait_for

BOT_TOKEN = "xoxb-test-acme"
APP_TOKEN = "xapp-test-acme"
SIGNING_SECRET = "test-signing-secret"
INFO = {"team_id": "T0ACME", "bot_user_id": "U0BOT", "bot_id": "B0BOT", "app_id": "A0APP"}
ALL_SCOPES = ["chat:write", "chat:write.customize", "users:read", "files:read", "im:write"]


@dataclass
class RecordingRuntime:
    """Stores events in memory, deduplicated on external_id like the real store; can be told
    to fail or to be slow."""

    account_id: str = "acc-slack-1"
    sink_calls: list[list[InboundEvent]] = field(default_factory=list)
    stored: dict[str, InboundEvent] = field(default_factory=dict)
    updates: list[InboundEvent] = field(default_factory=list)
    fail_next: int = 0
    delay: float = 0.0
    cache: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    health: list[tuple[str, str | None]] = field(default_factory=list)
    cursors: dict[str, Any] = field(default_factory=dict)
    stored_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def sink(self, events: Sequence[InboundEvent]) -> list[StoreResult]:
        self.sink_calls.append(list(events))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("database unavailable")
        results = []
        for event in events:
            key = getattr(event, "external_id", None) or ""
            created = (isinstance(event, InboundMessage) and not event.is_edit
                       and key not in self.stored)
            if created:
                self.stored[key] = event
            else:
                self.updates.append(event)
            results.append(StoreResult(message_id=key, conversation_id=getattr(
                event, "thread_key", None), created=created))
        self.stored_event.set()
        return results

    async def wait_stored(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.stored) < count:
                self.stored_event.clear()
                await self.stored_event.wait()

    async def load_cursor(self, name: str = "default") -> Any:
        return self.cursors.get(name)

    async def save_cursor(self, value: Any, name: str = "default") -> None:
        self.cursors[name] = value

    async def report_health(self, state: str, error: str | None = None, *,
                            code: str | None = None) -> None:
        self.health.append((state, code))

    async def save_credentials(self, updates: Mapping[str, str]) -> None:
        return None

    async def pause(self, seconds: float, scope: str = "account") -> None:
        return None

    async def paused_for(self, scope: str = "account") -> float:
        return 0.0

    async def record_usage(self, counts: Mapping[str, int]) -> None:
        return None

    async def usage(self, month: str | None = None) -> dict[str, int]:
        return {}

    async def save_info(self, updates: Mapping[str, Any]) -> None:
        self.info.update(updates)

    async def cache_get(self, key: str) -> Any:
        return self.cache.get(key)

    async def cache_set(self, key: str, value: Any, ttl_seconds: float) -> None:
        self.cache[key] = value

    async def store_blob(self, data: bytes, *, name: str | None, mime: str | None) -> str:
        return f"blob-{len(data)}"

    async def now(self) -> datetime:
        return datetime.now(UTC)


def account(api_base_url: str | None, *, mode: str = "events",
            scopes: Sequence[str] | None = ALL_SCOPES, options: Mapping[str, Any] | None = None,
            with_info: bool = True, bot_token: str = BOT_TOKEN,
            webhook_url: str | None = None) -> AccountContext:
    info: dict[str, Any] = dict(INFO) if with_info else {}
    if scopes is not None and with_info:
        info["scopes"] = list(scopes)
    credentials = {"bot_token": SecretStr(bot_token),
                   "signing_secret": SecretStr(SIGNING_SECRET),
                   "app_token": SecretStr(APP_TOKEN)}
    return AccountContext(id="acc-slack-1", platform="slack", name="Acme",
                          credentials=credentials, api_base_url=api_base_url, mode=mode,
                          platform_id="T0ACME:A0APP" if with_info else None, info=info,
                          options=dict(options or {}), webhook_url=webhook_url)


def outbound(thread_key: str, text: str = "Hello", *, kind: str = "group",
             reply_to: str | None = None, rendered: Rendered | None = None,
             **extra: Any) -> OutboundMessage:
    return OutboundMessage(message_id=MessageId("m1"), conversation_id=ConversationId("c1"),
                           account_id="acc-slack-1", thread_key=thread_key,  # type: ignore[arg-type]
                           text=text, kind=kind, reply_to=reply_to,  # type: ignore[arg-type]
                           rendered=rendered or Rendered(text=text, shown_name="Zhang Kai"),
                           agent_name="Zhang Kai", **extra)


async def seeded_sandbox(**options: Any) -> SlackSandbox:
    """A started sandbox holding the fixtures' workspace, customers and channels."""
    sandbox = SlackSandbox(**options)
    await sandbox.start()
    sandbox.add_workspace("T0ACME", "Acme", bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET,
                          app_token=APP_TOKEN)
    sandbox.add_user("U0CUST", "lin.wei", real_name="Lin Wei", display_name="Lin",
                     locale="en-US")
    sandbox.add_user("U0CUST2", "wang.fang", real_name="王芳", display_name="王芳",
                     locale="zh-CN")
    sandbox.open_dm("U0CUST", "D0CUST01")
    sandbox.add_channel("C0SUPPORT", "support", members=["U0CUST", "U0CUST2"], shared=True)
    return sandbox


async def replay(operation: str, fixture: dict[str, Any]) -> Any:
    """Run `operation` ("send" or "check") against a server answering with `fixture`."""
    async with replaying(fixture) as server:
        runtime = RecordingRuntime()
        connector = SlackConnector(account(f"{server.base_url}/api/"), runtime)
        try:
            if operation == "send":
                return await connector.send(outbound("C0SUPPORT:1610261659.001400"))
            if operation == "check":
                return await connector.check()
            raise ValueError(f"unknown operation {operation!r}")
        finally:
            await connector.close()


# --------------------------------------------------------------------------- end to end


@dataclass
class SlackE2E:
    """A live Switchboard and the fake Slack it talks to (and that calls its webhooks)."""

    live: Live
    sandbox: SlackSandbox

    @property
    def db(self) -> Any:
        return self.live.services.db

    async def api(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.live.http.request(method, f"{self.live.url}{path}",
                                          headers=self.live.headers, **kw) as resp:
            body = await resp.json() if resp.content_type == "application/json" \
                else await resp.read()
            return resp.status, body

    async def add_account(self, mode: str = "events", *, name: str | None = None,
                          point_events: bool = True, expect: int = 201,
                          **fields: Any) -> dict[str, Any]:
        """POST /api/accounts; in events mode the sandbox then sends the workspace's events
        to the account's Events URL, as an admin would configure the Slack app."""
        credentials = {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                       **({"app_token": APP_TOKEN} if mode == "socket" else {}),
                       **fields.pop("credentials", {})}
        status, body = await self.api("POST", "/api/accounts", json={
            "platform": "slack", "name": name or f"Acme {mode}", "mode": mode,
            "api_base_url": fields.pop("api_base_url", self.sandbox.api_url),
            "credentials": credentials, **fields})
        assert status == expect, body
        if status == 201 and mode == "events" and point_events:
            self.sandbox.set_events_url(await self.events_url(body["id"]))
        return dict(body)

    async def events_url(self, account_id: str) -> str:
        doc = await self.live.services.accounts.get(account_id)
        url = self.live.services.channels.webhook_url(doc)
        assert url is not None
        return str(url)

    async def connector(self, account_id: str) -> SlackConnector:
        connector = await self.live.services.channels.get(account_id)
        assert isinstance(connector, SlackConnector)
        return connector

    async def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        status, body = await self.api("GET", f"/api/conversations/{conversation_id}/messages")
        assert status == 200, body
        return list(body["items"])

    async def reply(self, conversation_id: str, text: str) -> dict[str, Any]:
        status, body = await self.api("POST", f"/api/conversations/{conversation_id}/messages",
                                      json={"text": text})
        assert status == 202, body
        return dict(body)

    async def conversation(self, thread_key: str) -> dict[str, Any]:
        doc = await wait_for(lambda: self.db.conversations.find_one({"thread_key": thread_key}))
        return dict(doc)

    async def stored(self, count: int, timeout: float = 10.0, **flt: Any) -> list[Any]:
        async def enough() -> list[Any] | None:
            docs = await self.db.messages.find({"direction": "in", **flt}).to_list()
            return docs if len(docs) >= count else None

        docs = list(await wait_for(enough, timeout))
        await self.live.services.store.settle()  # their conversations follow the messages
        return docs


@pytest.fixture
async def slack_e2e(mongo_uri: str, db: Any, tmp_path: Path) -> AsyncIterator[SlackE2E]:
    """Slack's own timings (3 s to answer, three retries) with short gaps between retries."""
    sandbox = await seeded_sandbox(retry_delays=(0.05, 0.3, 0.3), socket_ack_timeout=1.0)
    try:
        async with live_server(mongo_uri, db.name, tmp_path) as live:
            yield SlackE2E(live, sandbox)
    finally:
        await sandbox.stop()


__all__ = ["RecordingRuntime", "SlackE2E", "account", "outbound", "replay", "seeded_sandbox",
           "slack_e2e"]


async def webhook_target(client: Any, admin_headers: dict[str, str],
                         stack: contextlib.AsyncExitStack) -> WebhookTarget:
    """An events-mode account; bodies signed with its signing secret as Slack signs them."""
    import time

    from connectors.slack.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    sandbox = await seeded_sandbox()
    stack.push_async_callback(sandbox.stop)
    resp = await client.post("/api/accounts", headers=admin_headers, json={
        "platform": "slack", "name": "fuzz slack", "mode": "events",
        "api_base_url": sandbox.api_url,
        "credentials": {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET}})
    assert resp.status == 201, await resp.text()
    account_id = (await resp.json())["id"]

    def signed(body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(SIGNING_SECRET, stamp, body),
                "Content-Type": "application/json"}

    return WebhookTarget(path=f"/webhooks/slack/{account_id}", account_id=account_id,
                         sign=signed)
