"""The fake Slack's Socket Mode endpoint: a local websocket per app connection.

As https://docs.slack.dev/apis/events-api/using-socket-mode/ describes: the client opens the
URL `apps.connections.open` gave it, Slack greets with `hello`, pushes each event as an
`events_api` envelope `{envelope_id, payload, type, accepts_response_payload, retry_attempt,
retry_reason}` and expects `{"envelope_id": ...}` back. An envelope that is not acknowledged
in time is sent again with `retry_attempt` raised (reason `timeout`), up to three retries.
Websocket pings are answered by aiohttp itself (autoping), which is what slack-sdk's
`sdk-ping-pong:` liveness check needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)


@dataclass
class Envelope:
    id: str
    app_id: str
    payload: dict[str, Any]
    attempts: list[int] = field(default_factory=list)  # retry_attempt of each send
    acked: bool = False
    kind: str = "events_api"  # or "interactive" (a button press)

    def frame(self, retry_attempt: int) -> str:
        return json.dumps({
            "envelope_id": self.id, "payload": self.payload, "type": self.kind,
            "accepts_response_payload": False, "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else ""})


class SocketHub:
    def __init__(self, *, ack_timeout: float = 3.0, max_retries: int = 3) -> None:
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.connections: dict[str, list[web.WebSocketResponse]] = {}
        self.envelopes: dict[str, Envelope] = {}
        self.acks: list[str] = []
        self.tickets: set[str] = set()
        self._queued: list[Envelope] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    def connected(self, app_id: str) -> bool:
        return any(not ws.closed for ws in self.connections.get(app_id, []))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        app_id = request.query.get("app_id", "")
        if ticket not in self.tickets:
            return web.Response(status=401, text="invalid ticket")
        self.tickets.discard(ticket)  # one connection per URL, as Slack's are
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.setdefault(app_id, []).append(ws)
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": len(self.connections[app_id]),
            "debug_info": {"host": "applink-sandbox", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": app_id}}))
        for envelope in [e for e in self._queued if e.app_id == app_id]:
            self._queued.remove(envelope)
            await self._send(envelope)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(msg.data)
        finally:
            self.connections[app_id].remove(ws)
        return ws

    def _on_text(self, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            log.warning("socket sandbox: not JSON from the client: %.80r", data)
            return
        envelope = self.envelopes.get(frame.get("envelope_id", "")) if isinstance(
            frame, dict) else None
        if envelope is not None and not envelope.acked:
            envelope.acked = True
            self.acks.append(envelope.id)
            self._changed.set()

    async def push(self, app_id: str, payload: dict[str, Any], *,
                   kind: str = "events_api") -> Envelope:
        envelope = Envelope(id=str(uuid.uuid4()), app_id=app_id, payload=payload, kind=kind)
        self.envelopes[envelope.id] = envelope
        if self.connected(app_id):
            await self._send(envelope)
        else:
            self._queued.append(envelope)
        return envelope

    async def _send(self, envelope: Envelope) -> None:
        live = [ws for ws in self.connections.get(envelope.app_id, []) if not ws.closed]
        if not live:
            self._queued.append(envelope)
            return
        attempt = len(envelope.attempts)
        envelope.attempts.append(attempt)
        try:
            await live[0].send_str(envelope.frame(attempt))
        except ConnectionError:
            log.info("socket sandbox: connection lost while sending %s", envelope.id)
        task = asyncio.create_task(self._redeliver_later(envelope))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _redeliver_later(self, envelope: Envelope) -> None:
        await asyncio.sleep(self.ack_timeout)
        if envelope.acked:
            return
        if len(envelope.attempts) > self.max_retries:
            log.info("socket sandbox: envelope %s given up after %d retries", envelope.id,
                     self.max_retries)
            return
        await self._send(envelope)

    async def wait_for_acks(self, count: int, timeout: float = 5.0) -> list[str]:
        async with asyncio.timeout(timeout):
            while len(self.acks) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.acks)

    async def disconnect(self, app_id: str, reason: str = "refresh_requested") -> None:
        """Slack's `disconnect` frame, then close (https://docs.slack.dev/apis/events-api/using-socket-mode/#disconnect)."""
        for ws in list(self.connections.get(app_id, [])):
            with contextlib.suppress(ConnectionError):
                await ws.send_str(json.dumps({"type": "disconnect", "reason": reason,
                                              "debug_info": {"host": "applink-sandbox"}}))
            await ws.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for sockets in self.connections.values():
            for ws in list(sockets):
                await ws.close()
