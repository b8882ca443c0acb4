"""Replying: compose preview and counter, send (queued in the outbox), retry, attachments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import Field

from connectors.base import AttachmentStream
from inbox.models import DeliveryError
from inbox.store import NotFound
from replies.compose import Draft, draft
from replies.outbox import NotRetryable
from web.api import _Body, _services, body_as
from web.auth import requires
from web.errors import ApiError, read_json
from web.views import message_json

routes = web.RouteTableDef()

_SAFE_INLINE = {"image/jpeg", "image/png", "image/gif", "image/webp"}
MARKER = "\u0000"


class ReplyCreate(_Body):
    text: str = Field(max_length=100_000)
    target: str = Field("thread", pattern=r"^(thread|dm)$")


def _platform_name(connector: Any) -> str:
    return str((connector.strings.get("en") or {}).get("name") or connector.platform)


@dataclass(frozen=True, slots=True)
class _Context:
    """What rendering a reply needs besides its text, read once per request."""

    connector: Any
    last_inbound: dict[str, Any] | None
    policy: Any


async def _context(request: web.Request, conv: dict[str, Any]) -> _Context:
    services = _services(request)
    connector = await services.channels.get(conv["account_id"])
    from web.api_names import policy_name  # the name policy gives the name, or refuses

    # two independent chains of reads run together: under load each read waits its turn at
    # the database. The policy's answer (a 422 refusal) comes first; a failed policy cancels
    # the other read.
    inbound = asyncio.ensure_future(services.store.last_inbound(str(conv["_id"]), conv))
    try:
        policy = await policy_name(request, conv)
        last_in = await inbound
    finally:
        if not inbound.done():
            inbound.cancel()
        elif not inbound.cancelled():
            inbound.exception()  # retrieved: raised above, or superseded by the policy's
    return _Context(connector, last_in, policy)


def _render(request: web.Request, conv: dict[str, Any], ctx: _Context, text: str,
            target: str = "thread") -> Draft:
    return draft(ctx.connector, conv, request["agent"], _services(request).settings.identity,
                 text, last_inbound=ctx.last_inbound, target=target, policy=ctx.policy)


async def _draft(request: web.Request, conv: dict[str, Any], text: str,
                 target: str = "thread") -> Draft:
    return _render(request, conv, await _context(request, conv), text, target)


def _too_long(connector: Any, d: Draft) -> ApiError:
    m = d.measure
    return ApiError(422, "too_long", f"text: the reply is {m.used} {m.unit} with the "
                    f"signature; {_platform_name(connector)} allows {m.limit} ({m.over} over)",
                    field="text", limit=m.limit, length=m.used, used=m.used, over=m.over,
                    unit=m.unit)


@routes.get("/api/conversations/{id}/compose")
@requires("agent")
async def compose(request: web.Request) -> web.Response:
    """What the customer will see around the agent's text, and how long it is in the
    channel's own units (the reply box's counter asks here as the agent types)."""
    services = _services(request)
    conv = await services.store.get_conversation(request.match_info["id"])
    text = request.query.get("text", "")
    if len(text) > 100_000:
        raise ApiError(400, "validation", "text: too long to preview", field="text")
    target = request.query.get("target", "thread")
    if target not in ("thread", "dm"):
        raise ApiError(400, "validation", "target: thread or dm", field="target")
    ctx = await _context(request, conv)  # read once for the frame and the full text
    connector = ctx.connector
    frame = _render(request, conv, ctx, MARKER, target)
    before, _, after = frame.rendered.text.partition(MARKER)
    full = _render(request, conv, ctx, text, target) if text else None
    m = full.measure if full else connector.measure(before + after, frame.render_context)
    agent = request["agent"]
    return web.json_response({
        "agent_name": agent["display_name"], "agent_title": agent.get("title"),
        "shown_name": frame.rendered.shown_name, "brand": services.settings.identity.brand,
        "platform": conv["platform"], "first_reply": frame.render_context.first_reply,
        "before": before, "after": after, "username": frame.rendered.username,
        "subject": frame.rendered.subject, "text": full.rendered.text if full else "",
        "used": m.used, "limit": m.limit, "unit": m.unit, "over": m.over, "fits": m.fits,
        # what the signature and greeting take, in the channel's units
        "overhead": connector.measure(before + after, frame.render_context).used,
        "text_limit": m.limit})


@routes.post("/api/conversations/{id}/messages")
@requires("agent")
async def send_reply(request: web.Request) -> web.Response:
    services = _services(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 128 and key.isprintable()):
        raise ApiError(400, "validation", "Idempotency-Key: 1 to 128 printable characters",
                       field="Idempotency-Key")
    body = await body_as(request, ReplyCreate)
    if not body.text.strip():
        raise ApiError(400, "validation", "text: the reply is empty", field="text")
    conv = await services.store.get_conversation(request.match_info["id"])
    connector = await services.channels.get(conv["account_id"])
    d = await _draft(request, conv, body.text, body.target)
    if not d.measure.fits:
        raise _too_long(connector, d)
    agent = request["agent"]
    doc, created = await services.outbox.enqueue(
        conv, agent_id=str(agent["_id"]), agent_name=agent["display_name"],
        agent_title=agent.get("title"), text=body.text, rendered=d.rendered,
        context=d.context, idempotency_key=key)
    response = web.json_response(message_json(doc), status=202)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@routes.post("/api/messages/{id}/retry")
@requires("agent")
async def retry_reply(request: web.Request) -> web.Response:
    """Queue a failed reply again; with `{"target": "dm"}` (one of the failure's
    `alternatives`), re-rendered and sent that way instead (X: "send as DM instead")."""
    services = _services(request)
    target = None
    if request.can_read_body:
        data = await read_json(request)
        if not isinstance(data, dict) or set(data) - {"target"}:
            raise ApiError(400, "validation", "the body may only name a target")
        target = data.get("target")
        if target is not None and target not in ("thread", "dm"):
            raise ApiError(400, "validation", "target: thread or dm", field="target")
    changes: dict[str, Any] = {}
    if target is not None:
        msg = await services.store.get_message(request.match_info["id"])
        error = (msg.get("delivery") or {}).get("error") or {}
        if target != msg.get("target", "thread") and target not in (error.get("alternatives")
                                                                   or []):
            raise ApiError(409, "not_offered", f"this reply cannot be sent as {target}")
        if str(msg.get("agent_id")) != str(request["agent"]["_id"]):
            raise ApiError(403, "forbidden", "only its author can send a reply another way")
        conv = await services.store.get_conversation(msg["conversation_id"])
        connector = await services.channels.get(conv["account_id"])
        d = await _draft(request, conv, msg.get("text") or "", target)
        if not d.measure.fits:
            raise _too_long(connector, d)
        changes = {"target": target, "rendered": d.rendered.as_doc(),
                   "rendered_text": d.rendered.text, "reply_to_author": d.context.reply_to_author,
                   "recipients": list(d.context.recipients)}
    try:
        doc = await services.outbox.retry(request.match_info["id"], changes=changes)
    except NotRetryable as exc:
        raise ApiError(409, "not_failed", f"only a failed reply can be retried (it is "
                       f"{exc.state})") from None
    return web.json_response(message_json(doc), status=202)


async def _stream(request: web.Request, stream: AttachmentStream, mime: str,
                  filename: str) -> web.StreamResponse:
    inline = mime in _SAFE_INLINE
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
    disposition = f'{"inline" if inline else "attachment"}; filename="{ascii_name}"'
    if ascii_name != filename:  # RFC 6266 / 5987: the real name, UTF-8, percent-encoded
        disposition += f"; filename*=UTF-8''{quote(filename, safe='')}"
    response = web.StreamResponse(headers={
        "Content-Type": mime if inline else "application/octet-stream",
        "Content-Disposition": disposition,
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=3600"})
    if stream.size is not None:
        response.content_length = stream.size
    await response.prepare(request)
    async for chunk in stream.chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


async def _blob_stream(services: Any, blob_id: str) -> AttachmentStream:
    info, chunks = await services.blobs.open(blob_id)

    async def relay() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield chunk

    return AttachmentStream(chunks=relay(), mime=info.mime, name=info.name, size=info.size)


@routes.get("/api/messages/{id}/attachments/{index}")
@requires("agent")
async def attachment(request: web.Request) -> web.StreamResponse:
    """The file behind an attachment: kept by Switchboard (an email part), or fetched from the
    platform with the channel's credentials kept here. Streamed, never held whole."""
    services = _services(request)
    msg = await services.store.get_message(request.match_info["id"])
    raw_index = request.match_info["index"]
    files = msg.get("attachments") or []
    if not raw_index.isdigit() or int(raw_index) >= len(files):
        raise NotFound(raw_index)
    meta = files[int(raw_index)]
    try:
        if meta.get("blob_id"):
            stream = await _blob_stream(services, str(meta["blob_id"]))
        elif meta.get("file_id"):
            connector = await services.channels.get(msg["account_id"])
            stream = await connector.fetch_attachment(meta)
        else:
            raise NotFound(raw_index)
    except DeliveryError as exc:
        raise ApiError(502, "cannot_fetch", exc.human) from None
    mime = meta.get("mime") or stream.mime or "application/octet-stream"
    filename = (meta.get("name") or stream.name or f"attachment-{raw_index}").replace('"', "")
    filename = "".join(ch for ch in filename if ch.isprintable() and ch not in "\r\n\\")
    return await _stream(request, stream, mime, filename)
