"""Replying: compose preview, send (queued in the outbox), retry, and the attachment proxy."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from connectors.registry import CONNECTORS
from inbox.models import DeliveryError, utf16_len
from inbox.store import NotFound
from replies.identity import Rendered, render
from replies.outbox import NotRetryable, is_first_reply
from web.api import _Body, _services, body_as
from web.auth import requires
from web.errors import ApiError
from web.views import message_json

routes = web.RouteTableDef()

_SAFE_INLINE = {"image/jpeg", "image/png", "image/gif", "image/webp"}


class ReplyCreate(_Body):
    text: str = Field(max_length=100_000)


def _render_for(services: Any, conv: dict[str, Any], agent: dict[str, Any],
                text: str) -> tuple[Rendered, bool]:
    agent_id = str(agent["_id"])
    first = is_first_reply(conv, agent_id)
    rendered = render(conv["platform"], text, agent_name=agent["display_name"],
                      agent_title=agent.get("title"), identity=services.settings.identity,
                      first_reply=first, locale=None)
    return rendered, first


def _limit_of(platform: str) -> int:
    cls = CONNECTORS.get(platform)
    if cls is None:
        raise ApiError(422, "unknown_platform", f"no connector for platform '{platform}'")
    return int(cls.text_limit)


@routes.get("/api/conversations/{id}/compose")
@requires("agent")
async def compose(request: web.Request) -> web.Response:
    """What the customer will see around the agent's text, for the reply box."""
    services = _services(request)
    conv = await services.store.get_conversation(request.match_info["id"])
    agent = request["agent"]
    marker = "\u0000"
    rendered, first = _render_for(services, conv, agent, marker)
    before, _, after = rendered.text.partition(marker)
    return web.json_response({
        "agent_name": agent["display_name"], "agent_title": agent.get("title"),
        "brand": services.settings.identity.brand, "platform": conv["platform"],
        "text_limit": _limit_of(conv["platform"]), "first_reply": first,
        "before": before, "after": after, "overhead": utf16_len(before) + utf16_len(after),
        "username": rendered.username})


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
    limit = _limit_of(conv["platform"])
    agent = request["agent"]
    rendered, _ = _render_for(services, conv, agent, body.text)
    length = utf16_len(rendered.text)
    if length > limit:
        raise ApiError(422, "too_long", f"text: the reply is {length} characters with the "
                       f"signature; {conv['platform']} allows {limit}", field="text",
                       limit=limit, length=length)
    last_in = await services.store.last_inbound(str(conv["_id"]))
    doc, created = await services.outbox.enqueue(
        conv, agent_id=str(agent["_id"]), agent_name=agent["display_name"],
        agent_title=agent.get("title"), text=body.text, rendered=rendered,
        reply_to=last_in.get("external_id") if last_in else None, idempotency_key=key)
    response = web.json_response(message_json(doc), status=202)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@routes.post("/api/messages/{id}/retry")
@requires("agent")
async def retry_reply(request: web.Request) -> web.Response:
    services = _services(request)
    try:
        doc = await services.outbox.retry(request.match_info["id"])
    except NotRetryable as exc:
        raise ApiError(409, "not_failed", f"only a failed reply can be retried (it is "
                       f"{exc.state})") from None
    return web.json_response(message_json(doc), status=202)


@routes.get("/api/messages/{id}/attachments/{index}")
@requires("agent")
async def attachment(request: web.Request) -> web.Response:
    """The file behind an attachment, fetched with the channel's credentials kept here."""
    services = _services(request)
    msg = await services.store.get_message(request.match_info["id"])
    raw_index = request.match_info["index"]
    files = msg.get("attachments") or []
    if not raw_index.isdigit() or int(raw_index) >= len(files):
        raise NotFound(raw_index)
    meta = files[int(raw_index)]
    if not meta.get("file_id"):
        raise NotFound(raw_index)
    connector = await services.channels.get(msg["account_id"])
    try:
        data, name = await connector.fetch_file(meta["file_id"])  # type: ignore[attr-defined]
    except DeliveryError as exc:
        raise ApiError(502, "cannot_fetch", exc.human) from None
    mime = meta.get("mime") or "application/octet-stream"
    inline = mime in _SAFE_INLINE
    filename = (meta.get("name") or name or f"attachment-{raw_index}").replace('"', "")
    return web.Response(body=data, content_type=mime if inline else "application/octet-stream",
                        headers={
                            "Content-Disposition": f'{"inline" if inline else "attachment"}; '
                                                   f'filename="{filename}"',
                            "Content-Security-Policy": "sandbox; default-src 'none'",
                            "Cache-Control": "private, max-age=3600"})
