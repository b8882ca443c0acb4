"""A fake Slack for tests, the demo and benchmarks: Web API, Socket Mode, Events API pushes.

slack-sdk and slack-bolt talk to it unchanged::

    sandbox = SlackSandbox()
    await sandbox.start()
    sandbox.add_workspace("T0ACME", "Acme", bot_token="xoxb-test", signing_secret="s3cret",
                          app_token="xapp-test")
    client = AsyncWebClient(token="xoxb-test", base_url=sandbox.api_url)

- Web API under `/api/<method>` (see `sandbox_api`), answering as Slack does: HTTP 200 with
  `ok: false` for errors, 429 + `Retry-After` for rate limits, `x-oauth-scopes` on every answer.
- Files under `/files-pri/<team>-<file>/download/<name>`, only with the bot token as Bearer;
  without it Slack answers a sign-in page (HTTP 200, HTML), and so does this.
- Socket Mode at `/link/` (see `sandbox_socket`), the URL `apps.connections.open` hands out.
- Customer activity (`say`, `edit`, `delete`, `react`) becomes Events API payloads, pushed to
  the app's socket when one is connected, else POSTed, signed, to the workspace's events URL
  with Slack's retries (`X-Slack-Retry-Num`, `X-Slack-Retry-Reason`; delays configurable).
- Everything is reachable over HTTP under `/_sandbox/` for a separate process (the demo).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web

from connectors.slack import sandbox_api
from connectors.slack.sandbox_socket import SocketHub
from connectors.slack.sandbox_state import (
    Channel,
    Failure,
    Posted,
    SandboxFile,
    SlackState,
    User,
    Workspace,
)
from connectors.slack.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

log = logging.getLogger(__name__)
SLACK_RETRY_DELAYS = (0.0, 60.0, 300.0)  # "at once, after a minute, after five minutes"
_LOGIN_PAGE = "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>"


@dataclass
class Attempt:
    """One HTTP delivery of an event to an app's Request URL."""

    url: str
    event_id: str
    retry_num: int
    status: int | None
    reason: str | None  # why it counts as failed: http_timeout, http_error, connection_failed
    duration: float


class SlackSandbox:
    def __init__(self, *, http_timeout: float = 3.0,
                 retry_delays: Sequence[float] = SLACK_RETRY_DELAYS,
                 socket_ack_timeout: float = 3.0, echo_own_messages: bool = True,
                 latency: float = 0.0) -> None:
        self.http_timeout = http_timeout
        self.retry_delays = tuple(retry_delays)
        self.echo_own_messages = echo_own_messages
        self.latency = latency
        self.state = SlackState()
        self.hub = SocketHub(ack_timeout=socket_ack_timeout)
        self.deliveries: list[Attempt] = []
        self.undelivered: list[dict[str, Any]] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._posted = asyncio.Event()

    @property
    def api_url(self) -> str:
        """What an account's `api_base_url` is set to (Slack's is https://slack.com/api/)."""
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024**2)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)
        app.router.add_get("/files-pri/{team_file}/{name}", self._download)
        app.router.add_get("/link/", self.hub.handle)
        app.router.add_get("/link", self.hub.handle)
        from connectors.slack.sandbox_control import add_control_routes

        add_control_routes(app, self)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{bound}"
        self._session = aiohttp.ClientSession()
        return self.base_url

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.hub.close()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ set-up

    def add_workspace(self, team_id: str = "T0ACME", team_name: str = "Acme", *,
                      bot_token: str, signing_secret: str, app_token: str | None = None,
                      scopes: Sequence[str] | None = None, domain: str | None = None,
                      **ids: str) -> Workspace:
        """`ids`: bot_user_id, bot_id, app_id, bot_name (defaults U0BOT, B0BOT, A0APP)."""
        ws = Workspace(team_id=team_id, team_name=team_name,
                       domain=domain or team_name.lower().replace(" ", "-"),
                       bot_token=bot_token, signing_secret=signing_secret,
                       app_token=app_token, **ids)
        if scopes is not None:
            ws.scopes = list(scopes)
        self.state.workspaces[team_id] = ws
        return ws

    def workspace(self, team_id: str | None = None) -> Workspace:
        if team_id is None:
            return next(iter(self.state.workspaces.values()))
        return self.state.workspaces[team_id]

    def add_user(self, user_id: str, name: str, *, team_id: str | None = None,
                 real_name: str = "", display_name: str = "", locale: str = "en-US",
                 image_72: str | None = None) -> User:
        user = User(id=user_id, team_id=self.workspace(team_id).team_id, name=name,
                    real_name=real_name, display_name=display_name, locale=locale,
                    image_72=image_72)
        self.state.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str, *, kind: str = "channel",
                    members: Sequence[str] = (), team_id: str | None = None,
                    bot_is_member: bool = True, shared: bool = False) -> Channel:
        ws = self.workspace(team_id)
        channel = Channel(id=channel_id, team_id=ws.team_id, name=name, kind=kind,
                          members=set(members) | ({ws.bot_user_id} if bot_is_member else set()),
                          shared=shared)
        if kind == "im" and members:
            channel.user = members[0]
        self.state.channels[channel_id] = channel
        return channel

    def open_dm(self, user_id: str, channel_id: str | None = None) -> Channel:
        for channel in self.state.channels.values():
            if channel.kind == "im" and channel.user == user_id:
                return channel
        return self.add_channel(channel_id or self.state.new_id("D"), user_id, kind="im",
                                members=[user_id])

    def add_file(self, user_id: str, name: str, mime: str, data: bytes) -> SandboxFile:
        user = self.state.users[user_id]
        file = SandboxFile(id=self.state.new_id("F"), team_id=user.team_id, name=name,
                           mime=mime, data=data, user=user_id)
        self.state.files[file.id] = file
        return file

    def set_events_url(self, url: str | None, team_id: str | None = None) -> None:
        self.workspace(team_id).events_url = url

    def fail(self, method: str, *, status: int = 200, error: str | None = None,
             retry_after: float | None = None, times: int = 1, drop: bool = False) -> None:
        """The next `times` calls of `method` ("*": any Web API method, "files": a file
        download) fail: `error` as Slack's `ok: false`
        code (HTTP 200), 429 + Retry-After for `ratelimited`, an HTML 5xx page for
        status >= 500, or a dropped connection."""
        if error in ("ratelimited", "rate_limited") and status == 200:
            status = 429
        self.state.failures.append(Failure(method=method, status=status, error=error,
                                           retry_after=retry_after, times=times, drop=drop))

    # ------------------------------------------------------------------ records

    def sent(self, channel: str | None = None) -> list[Posted]:
        return [p for p in self.state.posted if channel is None or p.channel == channel]

    async def wait_for_sent(self, count: int, timeout: float = 5.0) -> list[Posted]:
        async with asyncio.timeout(timeout):
            while len(self.state.posted) < count:
                self._posted.clear()
                await self._posted.wait()
        return list(self.state.posted)

    async def wait_for_acks(self, count: int, timeout: float = 5.0) -> list[str]:
        return await self.hub.wait_for_acks(count, timeout)

    # ------------------------------------------------------------------ customer activity

    async def say(self, user_id: str, channel_id: str, text: str, *,
                  thread_ts: str | None = None, files: Sequence[SandboxFile] = (),
                  wait: bool = False) -> dict[str, Any]:
        """A customer posts: returns the Events API payload, delivered as Slack would."""
        channel = self.state.channels[channel_id]
        ws = self.workspace(channel.team_id)
        payload = self.state.message_event(ws, user_id, channel, text, thread_ts=thread_ts,
                                           files=list(files), base_url=self.base_url)
        self.messages[(channel_id, payload["event"]["ts"])] = payload["event"]
        await self.deliver(payload, wait=wait)
        return payload

    async def edit(self, channel_id: str, ts: str, text: str, *,
                   wait: bool = False) -> dict[str, Any]:
        channel = self.state.channels[channel_id]
        original = self.messages[(channel_id, ts)]
        payload = self.state.edit_event(self.workspace(channel.team_id), channel, original, text)
        original["text"] = text
        await self.deliver(payload, wait=wait)
        return payload

    async def delete(self, channel_id: str, ts: str, *, wait: bool = False) -> dict[str, Any]:
        channel = self.state.channels[channel_id]
        original = self.messages.pop((channel_id, ts))
        payload = self.state.delete_event(self.workspace(channel.team_id), channel, original)
        await self.deliver(payload, wait=wait)
        return payload

    async def react(self, user_id: str, channel_id: str, ts: str, reaction: str, *,
                    added: bool = True, wait: bool = False) -> dict[str, Any]:
        channel = self.state.channels[channel_id]
        payload = self.state.reaction_event(self.workspace(channel.team_id), user_id, channel,
                                            ts, reaction, added)
        await self.deliver(payload, wait=wait)
        return payload

    async def press(self, user_id: str, channel_id: str, ts: str, action_id: str) -> dict[str, Any]:
        """A customer presses a Block Kit button of one of the app's messages: a
        `block_actions` payload, to the app's socket (an `interactive` envelope) or POSTed,
        signed and form-encoded, to its Request URL (the events URL here)."""
        posted = next((p for p in self.state.posted if p.channel == channel_id and p.ts == ts),
                      None)
        if posted is None:
            raise ValueError("no such message")
        blocks = posted.params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        button = next((e for b in blocks if b.get("type") == "actions"
                       for e in b.get("elements", []) if e.get("action_id") == action_id), None)
        if button is None:
            raise ValueError("that message has no such button")
        channel = self.state.channels[channel_id]
        ws = self.workspace(channel.team_id)
        message: dict[str, Any] = {"type": "message", "user": ws.bot_user_id, "ts": ts,
                                   "text": posted.text, "blocks": blocks}
        if posted.thread_ts:
            message["thread_ts"] = posted.thread_ts
        payload = {
            "type": "block_actions", "team": {"id": ws.team_id, "domain": ws.domain},
            "user": {"id": user_id, "team_id": ws.team_id}, "api_app_id": ws.app_id,
            "token": "verification-token-unused", "trigger_id": f"{int(time.time())}.1.x",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel_id,
                          "is_ephemeral": False, **({"thread_ts": posted.thread_ts}
                                                    if posted.thread_ts else {})},
            "channel": {"id": channel_id, "name": channel.name}, "message": message,
            "actions": [{"type": "button", "action_id": action_id,
                         "block_id": "b", "text": button.get("text"),
                         "value": button.get("value"), "action_ts": self.state.next_ts()}]}
        if self.hub.connected(ws.app_id) or (ws.app_token and not ws.events_url):
            await self.hub.push(ws.app_id, payload, kind="interactive")
        elif ws.events_url:
            assert self._session is not None, "start() the sandbox first"
            body = urlencode({"payload": json.dumps(payload, ensure_ascii=False)}).encode()
            timestamp = str(int(time.time()))
            async with self._session.post(ws.events_url, data=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    TIMESTAMP_HEADER: timestamp,
                    SIGNATURE_HEADER: sign(ws.signing_secret, timestamp, body)}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise ValueError(f"the app answered {resp.status}")
        return payload

    async def deliver(self, payload: dict[str, Any], *, wait: bool = False) -> None:
        """To the app's socket if one is connected, else to its events URL, else kept in
        `undelivered` (a workspace whose app is not reachable yet)."""
        ws = self.state.workspaces[payload["team_id"]]
        if self.hub.connected(ws.app_id) or (ws.app_token and not ws.events_url):
            await self.hub.push(ws.app_id, payload)
        elif ws.events_url:
            job = self.post_event(ws.events_url, payload, signing_secret=ws.signing_secret)
            if wait:
                await job
            else:
                self._spawn(job)
        else:
            self.undelivered.append(payload)

    async def post_event(self, url: str, payload: dict[str, Any], *, signing_secret: str,
                         retry_delays: Sequence[float] | None = None,
                         timeout: float | None = None) -> list[Attempt]:
        """POST a signed event like Slack: the first attempt, then up to three retries while
        the answer is not a 2xx within the timeout (https://docs.slack.dev/apis/events-api/#retries)."""
        assert self._session is not None, "start() the sandbox first"
        delays = self.retry_delays if retry_delays is None else tuple(retry_delays)
        body = json.dumps(payload, ensure_ascii=False).encode()
        attempts: list[Attempt] = []
        reason: str | None = None
        for retry_num in range(len(delays) + 1):
            if retry_num:
                await asyncio.sleep(delays[retry_num - 1])
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                       SIGNATURE_HEADER: sign(signing_secret, timestamp, body),
                       "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
            if retry_num:
                headers.update({"X-Slack-Retry-Num": str(retry_num),
                                "X-Slack-Retry-Reason": reason or "unknown_error"})
            started = time.monotonic()
            status: int | None = None
            try:
                async with self._session.post(
                        url, data=body, headers=headers,
                        timeout=aiohttp.ClientTimeout(total=timeout or self.http_timeout)
                ) as resp:
                    await resp.read()
                    status = resp.status
                reason = None if 200 <= status < 300 else "http_error"
            except TimeoutError:
                reason = "http_timeout"
            except aiohttp.ClientError:
                reason = "connection_failed"
            attempt = Attempt(url=url, event_id=str(payload.get("event_id")),
                              retry_num=retry_num, status=status, reason=reason,
                              duration=time.monotonic() - started)
            attempts.append(attempt)
            self.deliveries.append(attempt)
            if reason is None:
                break
        return attempts

    # ------------------------------------------------------------------ HTTP handlers

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                params.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else params.pop("token", None)
        if self.latency:
            await asyncio.sleep(self.latency)
        peek = next((f for f in self.state.failures if f.method in (method, "*")), None)
        if peek is not None and peek.drop:
            self.state.take_failure(method)
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        status, headers, body = sandbox_api.call(self.state, method, token, params,
                                                 self.base_url)
        if isinstance(body, dict) and body.get("ok"):
            self._after(method, token, body)
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers,
                                content_type="text/html")
        return web.json_response(body, status=status, headers=headers)

    def _after(self, method: str, token: str | None, body: dict[str, Any]) -> None:
        if method == "apps.connections.open":
            ticket = parse_qs(urlsplit(body["url"]).query)["ticket"][0]
            self.hub.tickets.add(ticket)
        elif method == "chat.postMessage":
            self._posted.set()
            ws = self.state.workspace_for(token)
            if self.echo_own_messages and ws is not None:
                self._spawn(self.deliver(self.state.own_echo(ws, self.state.posted[-1])))

    async def _download(self, request: web.Request) -> web.StreamResponse:
        failure = self.state.take_failure("files")
        if failure is not None:
            status, headers, body = failure.answer()
            if isinstance(body, str):
                return web.Response(status=status, text=body, headers=headers,
                                    content_type="text/html")
            return web.json_response(body, status=status, headers=headers)
        team_file = request.match_info["team_file"]
        file = self.state.files.get(team_file.split("-", 1)[-1])
        ws = self.state.workspaces.get(team_file.split("-", 1)[0])
        auth = request.headers.get("Authorization", "")
        if file is None or ws is None or auth != f"Bearer {ws.bot_token}":
            return web.Response(text=_LOGIN_PAGE, content_type="text/html")
        return web.Response(body=file.data, headers={
            "Content-Type": file.mime,
            "Content-Disposition": f'attachment; filename="{file.name}"'})

    # ------------------------------------------------------------------ for the control routes

    def snapshot(self) -> dict[str, Any]:
        return {"sent": [p.as_doc() for p in self.state.posted],
                "deliveries": [asdict(a) for a in self.deliveries],
                "acks": list(self.hub.acks), "undelivered": len(self.undelivered)}

    def add_file_b64(self, user_id: str, name: str, mime: str, data_b64: str) -> SandboxFile:
        return self.add_file(user_id, name, mime, base64.b64decode(data_b64))
