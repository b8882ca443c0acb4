"""Live updates for browsers and API clients: `GET /api/events`, Server-Sent Events.

The events come from the process's one `EventHub` (web/event_hub.py: a single change stream
fanned out to every client, resumable by `Last-Event-ID`). Here: the HTTP side — who may listen,
which events they want, heartbeats, and ending the stream when the session does.
"""

from __future__ import annotations

import re

from aiohttp import web

from web.auth import SESSION_COOKIE, requires
from web.event_hub import CLOSE, PING, TYPES, EventHub, decode_id, encode_id, frame

__all__ = ["EventHub", "decode_id", "encode_id", "events", "hub_of", "setup"]


def hub_of(app: web.Application) -> EventHub:
    services = app["services"]
    if services.events is None:
        services.events = EventHub(services.db, feed=services.changes)
    hub: EventHub = services.events
    return hub


@requires("agent")
async def events(request: web.Request) -> web.StreamResponse:
    """`GET /api/events?types=conversation,message&conversation=<id>&since=<id>`."""
    hub = hub_of(request.app)
    q = request.query
    wanted = frozenset(t for t in (q.get("types") or ",".join(TYPES)).split(",") if t in TYPES)
    since = request.headers.get("Last-Event-ID") or q.get("since") or None
    conversation_id = q.get("conversation") or None
    if conversation_id is not None and not re.fullmatch(r"[0-9a-f]{24}", conversation_id):
        return web.json_response({"error": {"code": "validation",
                                             "message": "conversation: not an id"}}, status=400)
    sub = await hub.subscribe(types=wanted or frozenset(TYPES),
                              conversation_id=conversation_id, since=since)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        while True:
            chunks = [await sub.queue.get()]
            while len(chunks) < 256 and not sub.queue.empty():  # one write for a burst
                chunks.append(sub.queue.get_nowait())
            closing = CLOSE in chunks
            if closing:
                chunks = chunks[:chunks.index(CLOSE)]
            if PING in chunks:
                chunks = [c for c in chunks if c != PING]
                if not await _still_allowed(request):
                    await response.write(b"".join(chunks) + frame("logout", {}))
                    break
                chunks.append(b": ping\n\n")
            if chunks:
                await response.write(b"".join(chunks))
            if closing:
                break
    except ConnectionResetError:
        pass
    finally:
        hub.unsubscribe(sub)
    return response


async def _still_allowed(request: web.Request) -> bool:
    """A deactivated agent or an ended session loses its open stream at the next heartbeat."""
    agents = request.app["services"].agents
    if request["via"] == "session":
        return await agents.session(request.cookies.get(SESSION_COOKIE, "")) is not None
    header = request.headers.get("Authorization", "")
    return await agents.agent_for_token(header[7:].strip()) is not None


async def _on_shutdown(app: web.Application) -> None:
    services = app["services"]
    if services.events is not None:
        services.events.close_clients()


def setup(app: web.Application) -> None:
    app.router.add_get("/api/events", events)
    app.on_shutdown.append(_on_shutdown)
