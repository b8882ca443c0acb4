"""Events API in: signed deliveries from the sandbox (with Slack's retries) through
handle_webhook and slack-bolt into a tiny recording runtime; refusals store nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.base import HttpRequest
from connectors.slack.connector import SlackConnector
from connectors.slack.sandbox import SlackSandbox
from connectors.slack.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from inbox.models import InboundMessage, MessageDeleted
from tests.kits.slack import (
    SIGNING_SECRET,
    RecordingRuntime,
    account,
    outbound,
    seeded_sandbox,
)

INBOUND = Path(__file__).parent / "fixtures" / "slack" / "inbound"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((INBOUND / f"{name}.json").read_text(encoding="utf-8"))


def signed(payload: Any, *, timestamp: int | None = None, secret: str = SIGNING_SECRET,
           body: bytes | None = None, **headers: str) -> HttpRequest:
    raw = body if body is not None else json.dumps(payload, ensure_ascii=False).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return HttpRequest(method="POST", path="/webhooks/slack/acc-slack-1", query={},
                       headers={TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, raw),
                                "Content-Type": "application/json", **headers}, body=raw)


class Host:
    """The part of the host this phase stands in for: one route to handle_webhook."""

    def __init__(self, connector: SlackConnector) -> None:
        self.connector = connector
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _route(self, request: web.Request) -> web.Response:
        answer = await self.connector.handle_webhook(HttpRequest(
            method=request.method, path=request.path, query=dict(request.query),
            headers=request.headers, body=await request.read(), remote=request.remote))
        return web.Response(status=answer.status, body=answer.body,
                            content_type=answer.content_type)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/webhooks/slack/{account_id}", self._route)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/webhooks/slack/acc-slack-1"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    sandbox = await seeded_sandbox(http_timeout=0.3, retry_delays=(0.0, 0.05, 0.05))
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def runtime() -> RecordingRuntime:
    return RecordingRuntime()


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., SlackConnector]]:
    made: list[SlackConnector] = []

    def build(runtime: RecordingRuntime, base: str | None = None, **kw: Any) -> SlackConnector:
        connector = SlackConnector(account(base, **kw.pop("account", {})), runtime, **kw)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        await connector.close()


@pytest.fixture
async def host(sandbox: SlackSandbox, runtime: RecordingRuntime,
               make: Callable[..., SlackConnector]) -> AsyncIterator[Host]:
    host = Host(make(runtime, sandbox.api_url))
    sandbox.set_events_url(await host.start())
    yield host
    await host.stop()


# --------------------------------------------------------------------------- through the sandbox


async def test_signed_event_is_stored(sandbox: SlackSandbox, host: Host,
                                      runtime: RecordingRuntime) -> None:
    payload = await sandbox.say("U0CUST", "D0CUST01", "你好，我的发票有问题", wait=True)
    (attempt,) = [a for a in sandbox.deliveries if a.event_id == payload["event_id"]]
    assert (attempt.status, attempt.retry_num) == (200, 0)
    (stored,) = runtime.stored.values()
    assert isinstance(stored, InboundMessage)
    assert stored.text == "你好，我的发票有问题" and stored.thread_key == "D0CUST01"


async def test_slow_store_is_retried_by_slack_and_stored_once(
        sandbox: SlackSandbox, host: Host, runtime: RecordingRuntime) -> None:
    runtime.delay = 0.5  # past the sandbox's 0.3 s timeout: Slack retries
    payload = await sandbox.say("U0CUST2", "C0SUPPORT", "Export fails at 99%", wait=True)
    attempts = [a for a in sandbox.deliveries if a.event_id == payload["event_id"]]
    assert [a.retry_num for a in attempts] == [0, 1, 2, 3]
    assert {a.reason for a in attempts} == {"http_timeout"}
    await runtime.wait_stored(1)
    external = f"C0SUPPORT:{payload['event']['ts']}"
    assert [e.external_id for call in runtime.sink_calls for e in call] == [external] * 4
    assert list(runtime.stored) == [external]


async def test_failed_store_answers_503_then_the_retry_stores(
        sandbox: SlackSandbox, host: Host, runtime: RecordingRuntime) -> None:
    runtime.fail_next = 1
    payload = await sandbox.say("U0CUST", "D0CUST01", "second try works", wait=True)
    attempts = [a for a in sandbox.deliveries if a.event_id == payload["event_id"]]
    assert [(a.retry_num, a.status, a.reason) for a in attempts] == [
        (0, 503, "http_error"), (1, 200, None)]
    assert len(runtime.stored) == 1


async def test_edit_and_delete_arrive(sandbox: SlackSandbox, host: Host,
                                      runtime: RecordingRuntime) -> None:
    payload = await sandbox.say("U0CUST", "D0CUST01", "order 123", wait=True)
    ts = payload["event"]["ts"]
    await sandbox.edit("D0CUST01", ts, "order 1234", wait=True)
    await sandbox.delete("D0CUST01", ts, wait=True)
    edit, deleted = runtime.updates
    assert isinstance(edit, InboundMessage) and edit.text == "order 1234" and edit.is_edit
    assert isinstance(deleted, MessageDeleted)
    assert edit.external_id == deleted.external_id == f"D0CUST01:{ts}"
    # nothing was read back from Slack: history and replies are 1 call a minute for most apps
    assert {m for m, _ in sandbox.state.calls} <= {"chat.postMessage", "users.info",
                                                    "apps.connections.open", "auth.test"}


async def test_own_reply_echo_is_not_stored(sandbox: SlackSandbox, host: Host,
                                            runtime: RecordingRuntime) -> None:
    await host.connector.send(outbound("D0CUST01", "On it!", kind="dm"))
    await sandbox.say("U0CUST", "D0CUST01", "thanks", wait=True)
    for _ in range(50):
        if len(sandbox.deliveries) >= 2:
            break
        await asyncio.sleep(0.02)
    assert all(a.status == 200 for a in sandbox.deliveries)
    assert [e.text for e in runtime.stored.values()] == ["thanks"]  # type: ignore[attr-defined]
    called = {m for m, _ in sandbox.state.calls}
    assert "chat.postMessage" in called
    assert not called & {"conversations.history", "conversations.replies"}


# --------------------------------------------------------------------------- refusals


async def test_bad_signature_stale_and_replayed_are_refused(
        runtime: RecordingRuntime, make: Callable[..., SlackConnector]) -> None:
    connector = make(runtime)
    payload = fixture("message__dm")
    now = int(time.time())
    forged = signed(payload, secret="not-the-secret")
    stale = signed(payload, timestamp=now - 301)
    captured = signed(payload, timestamp=now - 600)
    replayed = HttpRequest(method="POST", path=captured.path, query={}, body=captured.body,
                           headers={**captured.headers, TIMESTAMP_HEADER: str(now)})
    unsigned = HttpRequest(method="POST", path="/", query={}, headers={}, body=forged.body)
    for request in (forged, stale, replayed, unsigned):
        answer = await connector.handle_webhook(request)
        assert answer.status == 401
    assert runtime.sink_calls == []


async def test_the_clock_is_the_connectors(runtime: RecordingRuntime,
                                           make: Callable[..., SlackConnector]) -> None:
    request = signed(fixture("message__dm"), timestamp=1_700_000_000)
    late = make(runtime, clock=lambda: 1_700_000_301.0)
    assert (await late.handle_webhook(request)).status == 401
    in_time = make(runtime, clock=lambda: 1_700_000_299.0)
    assert (await in_time.handle_webhook(request)).status == 200
    assert len(runtime.stored) == 1


async def test_url_verification(runtime: RecordingRuntime,
                                make: Callable[..., SlackConnector]) -> None:
    connector = make(runtime)
    payload = {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
               "type": "url_verification"}
    answer = await connector.handle_webhook(signed(payload))
    assert answer.status == 200
    assert json.loads(answer.body) == {"challenge": payload["challenge"]}
    unsigned = signed(payload, secret="wrong")
    assert (await connector.handle_webhook(unsigned)).status == 401
    assert runtime.sink_calls == []


@pytest.mark.parametrize("name", sorted(p.stem for p in INBOUND.glob("*.json")
                                        if not p.stem.endswith(".expected")))
async def test_every_fixture_is_answered_200(runtime: RecordingRuntime,
                                             make: Callable[..., SlackConnector],
                                             name: str) -> None:
    connector = make(runtime)
    answer = await connector.handle_webhook(signed(fixture(name)))
    assert answer.status == 200
    expected = json.loads((INBOUND / f"{name}.expected.json").read_text(encoding="utf-8"))
    handed = [e for call in runtime.sink_calls for e in call]
    assert len(handed) == (0 if expected["type"] == "Ignored" else 1)


async def test_message_and_app_mention_twins_are_stored_once(
        runtime: RecordingRuntime, make: Callable[..., SlackConnector]) -> None:
    connector = make(runtime)
    for name in ("app_mention__channel", "message__app_mention_twin"):
        assert (await connector.handle_webhook(signed(fixture(name)))).status == 200
    assert len(runtime.sink_calls) == 2
    assert list(runtime.stored) == ["C0SUPPORT:1595926230.009600"]


async def test_redelivery_headers_are_processed_like_a_first_delivery(
        runtime: RecordingRuntime, make: Callable[..., SlackConnector]) -> None:
    connector = make(runtime)
    payload = fixture("message__dm")
    for retry in (None, "1", "2"):
        extra = {"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"} if retry \
            else {}
        assert (await connector.handle_webhook(signed(payload, **extra))).status == 200
    assert len(runtime.sink_calls) == 3 and len(runtime.stored) == 1


async def test_unreadable_but_signed_payload_is_answered_and_logged(
        runtime: RecordingRuntime, make: Callable[..., SlackConnector],
        caplog: pytest.LogCaptureFixture) -> None:
    connector = make(runtime)
    payload = fixture("message__dm")
    payload["event"]["ts"] = "yesterday"
    assert (await connector.handle_webhook(signed(payload))).status == 200
    assert runtime.sink_calls == []
    assert "unreadable event Ev0ACME00001" in caplog.text
    not_json = signed(None, body=b"{not json")
    assert (await connector.handle_webhook(not_json)).status == 400
    other = signed({"type": "app_rate_limited", "team_id": "T0ACME", "minute_rate_limited": 1})
    assert (await connector.handle_webhook(other)).status == 200
    get = HttpRequest(method="GET", path="/", query={}, headers={}, body=b"")
    assert (await connector.handle_webhook(get)).status == 405


async def test_dm_thread_roots_travel_in_the_reply_route(
        runtime: RecordingRuntime, make: Callable[..., SlackConnector]) -> None:
    """A DM's conversation key names no thread: the root goes with the stored message (the
    host hands it back when an agent answers), nothing is kept on the side."""
    connector = make(runtime)
    payload = fixture("message__dm_followup")
    payload["event"]["thread_ts"] = "1596183880.004200"
    await connector.handle_webhook(signed(payload))
    await connector.handle_webhook(signed(fixture("message__channel_thread_reply")))
    dm, channel = runtime.stored.values()
    assert isinstance(dm, InboundMessage) and isinstance(channel, InboundMessage)
    assert dm.reply_route == {"thread_ts": "1596183880.004200"}
    assert channel.reply_route is None  # a channel thread's key already names its root
    assert runtime.cache == {}
