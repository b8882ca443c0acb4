"""The Slack sandbox itself: control routes over HTTP, signed pushes with Slack's retry
headers, the Socket Mode endpoint (hello, pings, acks, redelivery), the demo workspace."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from connectors.slack.connector import SlackConnector
from connectors.slack.sandbox import SlackSandbox
from connectors.slack.sandbox_demo import SCRIPT, play_demo
from connectors.slack.signing import verify
from tests.kits.slack import APP_TOKEN, SIGNING_SECRET, RecordingRuntime, seeded_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    sandbox = await seeded_sandbox(socket_ack_timeout=0.1, retry_delays=(0.0, 0.01, 0.01))
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Receiver:
    """An app's Request URL that records what Slack sent and answers `statuses` in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/events", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/events"  # type: ignore[union-attr]


async def control(http: aiohttp.ClientSession, sandbox: SlackSandbox, path: str,
                  body: dict[str, Any] | None = None) -> Any:
    method = http.get if body is None else http.post
    async with method(f"{sandbox.base_url}/_sandbox/{path}", json=body) as resp:
        assert resp.status == 200, await resp.text()
        data = await resp.json()
    assert data["ok"] is True
    return data["result"]


async def test_signed_push_with_slacks_retry_headers(sandbox: SlackSandbox,
                                                     http: aiohttp.ClientSession) -> None:
    receiver = Receiver([500, 503])
    url = await receiver.start()
    try:
        await control(http, sandbox, "events_url", {"url": url})
        sandbox.workspace().app_token = None  # an Events API app: no socket to prefer
        payload = await control(http, sandbox, "say", {"user": "U0CUST", "channel": "D0CUST01",
                                                       "text": "hello"})
        for _ in range(100):
            if len(receiver.requests) == 3:
                break
            await asyncio.sleep(0.02)
        retries = [h.get("X-Slack-Retry-Num") for h, _ in receiver.requests]
        assert retries == [None, "1", "2"]
        assert receiver.requests[1][0]["X-Slack-Retry-Reason"] == "http_error"
        for headers, body in receiver.requests:
            verify(SIGNING_SECRET, headers, body, time.time())
            assert json.loads(body) == payload
        state = await control(http, sandbox, "state")
        assert [d["status"] for d in state["deliveries"]] == [500, 503, 200]
    finally:
        assert receiver.runner is not None
        await receiver.runner.cleanup()


async def test_control_routes_drive_the_web_api(sandbox: SlackSandbox,
                                                http: aiohttp.ClientSession) -> None:
    await control(http, sandbox, "users", {"user_id": "U0NEW", "name": "chen", "locale": "zh-CN"})
    await control(http, sandbox, "channels", {"channel_id": "C0NEW", "name": "vip",
                                              "members": ["U0NEW"]})
    await control(http, sandbox, "fail", {"method": "chat.postMessage", "error": "ratelimited",
                                          "retry_after": 3})
    headers = {"Authorization": "Bearer xoxb-test-acme"}
    async with http.post(f"{sandbox.api_url}chat.postMessage", headers=headers,
                         json={"channel": "C0NEW", "text": "hi"}) as resp:
        assert (resp.status, resp.headers["Retry-After"]) == (429, "3")
        assert await resp.json() == {"ok": False, "error": "ratelimited"}
    async with http.post(f"{sandbox.api_url}chat.postMessage", headers=headers,
                         json={"channel": "C0NEW", "text": "hi"}) as resp:
        assert (await resp.json())["ok"] is True
        assert "chat:write" in resp.headers["x-oauth-scopes"]
    state = await control(http, sandbox, "state")
    assert [(p["channel"], p["text"]) for p in state["sent"]] == [("C0NEW", "hi")]
    async with http.get(f"{sandbox.api_url}users.info?user=U0NEW&include_locale=true",
                        headers=headers) as resp:
        assert (await resp.json())["user"]["locale"] == "zh-CN"
    async with http.get(f"{sandbox.api_url}conversations.info?channel=C0NEW",
                        headers=headers) as resp:
        channel = (await resp.json())["channel"]
        assert channel["is_member"] and channel["is_channel"]
    async with http.post(f"{sandbox.api_url}auth.test") as resp:
        assert (await resp.json())["error"] == "not_authed"


async def test_socket_endpoint_hello_pings_and_redelivery(sandbox: SlackSandbox,
                                                          http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sandbox.api_url}apps.connections.open",
                         headers={"Authorization": f"Bearer {APP_TOKEN}"}) as resp:
        url = (await resp.json())["url"]
    async with http.post(f"{sandbox.api_url}apps.connections.open",
                         headers={"Authorization": "Bearer xoxb-test-acme"}) as resp:
        assert (await resp.json())["error"] == "not_allowed_token_type"
    async with http.ws_connect(url, autoping=False) as ws:
        hello = await ws.receive_json()
        assert hello["type"] == "hello" and hello["connection_info"]["app_id"] == "A0APP"
        await ws.ping(b"sdk-ping-pong:1")
        pong = await ws.receive()
        assert (pong.type, pong.data) == (WSMsgType.PONG, b"sdk-ping-pong:1")
        await sandbox.say("U0CUST", "D0CUST01", "never acked")
        frames = [await ws.receive_json() for _ in range(4)]
        assert [f["retry_attempt"] for f in frames] == [0, 1, 2, 3]
        assert [f["retry_reason"] for f in frames] == ["", "timeout", "timeout", "timeout"]
        assert len({f["envelope_id"] for f in frames}) == 1
        assert frames[0]["type"] == "events_api"
        assert frames[0]["payload"]["event"]["text"] == "never acked"
        await sandbox.say("U0CUST", "D0CUST01", "acked")
        frame = await ws.receive_json()
        await ws.send_json({"envelope_id": frame["envelope_id"]})
        assert await sandbox.wait_for_acks(1) == [frame["envelope_id"]]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # one connection per URL
        await http.ws_connect(url)
    assert refused.value.status == 401


async def test_demo_workspace_over_http(sandbox: SlackSandbox,
                                        http: aiohttp.ClientSession) -> None:
    settings = await control(http, sandbox, "demo", {})
    assert settings["api_base_url"] == sandbox.api_url
    from tests.kits.slack import account

    demo = account(sandbox.api_url, with_info=False,
                   bot_token=settings["credentials"]["bot_token"])
    connector = SlackConnector(demo, RecordingRuntime())
    try:
        info = await connector.check()
        assert info.platform_id == "T0DEMO:A0DEMOAPP"
    finally:
        await connector.close()
    sent = await play_demo(sandbox, delay=0)
    assert len(sent) == len(SCRIPT)
    assert any("订单" in p["event"]["text"] for p in sent)
    threaded = [p for p in sent if p["event"].get("thread_ts")]
    assert threaded and all(p["event"]["channel"] == "C0DEMOSHARED" for p in threaded)
    assert len(sandbox.hub.envelopes) == len(SCRIPT)  # queued for the demo app's socket
