"""Search and the failed-replies view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from inbox.paging import BadCursor
from teams.db import FAILED_INDEX
from web.api_base import _conversation_page, _limit, _services
from web.auth import requires
from web.errors import ApiError
from web.views import iso, message_json

routes = web.RouteTableDef()


# ---------------------------------------------------------------------- search


@routes.get("/api/search")
@requires("agent")
async def search(request: web.Request) -> web.Response:
    """Conversations (customer name, handle, `label:VIP`) and messages (text, Chinese without
    spaces included), newest first."""
    services = _services(request)
    q = request.query.get("q", "").strip()
    if not q or len(q) > 200:
        raise ApiError(400, "validation", "q: 1 to 200 characters", field="q")
    limit = _limit(request, 20)
    try:
        hits, cursor = await services.teams.search.page(
            q, limit=limit, cursor=request.query.get("cursor") or None)
    except BadCursor as exc:
        raise ApiError(400, "validation", f"cursor: {exc}", field="cursor") from None
    conv_ids = list(dict.fromkeys(h["conversation_id"] for h in hits))
    docs = await services.db.conversations.find(
        {"_id": {"$in": [ObjectId(c) for c in conv_ids if ObjectId.is_valid(c)]}}).to_list()
    convs = {c["id"]: c for c in await _conversation_page(request, docs)}
    items = [{"type": h["kind"], "conversation": convs.get(h["conversation_id"]),
              "message_id": str(h["_id"]) if h["kind"] == "message" else None,
              "snippet": h.get("snippet") or "", "direction": h.get("direction"),
              "author": h.get("author"), "at": iso(h.get("at"))} for h in hits]
    return web.json_response({"items": items, "next_cursor": cursor})


# ---------------------------------------------------------------------- failed replies


async def failed_page(services: Any, *, limit: int, cursor: str | None,
                      ) -> tuple[list[dict[str, Any]], str | None]:
    flt: dict[str, Any] = {"delivery.state": "failed"}
    if cursor:
        try:
            at_raw, _, mid = cursor.partition("~")
            at = datetime.fromisoformat(at_raw)
            flt["$or"] = [{"delivery.failed_at": {"$lt": at}},
                          {"delivery.failed_at": at, "_id": {"$lt": ObjectId(mid)}}]
        except (ValueError, InvalidId):
            raise ApiError(400, "validation", "cursor: not one this server issued",
                           field="cursor") from None
    docs = await services.db.outbox.find(flt, {"raw": 0}, hint=FAILED_INDEX).sort(
        [("delivery.failed_at", -1), ("_id", -1)]).limit(limit + 1).to_list()
    next_cursor = None
    if len(docs) > limit:
        docs = docs[:limit]
        last = docs[-1]
        next_cursor = f"{last['delivery']['failed_at'].isoformat()}~{last['_id']}"
    return docs, next_cursor


async def failed_count(services: Any) -> int:
    return len(await services.db.outbox.find({"delivery.state": "failed"}, {"_id": 1},
                                             hint=FAILED_INDEX).limit(1000).to_list())


@routes.get("/api/messages")
@requires("agent")
async def list_failed(request: web.Request) -> web.Response:
    """`?delivery=failed`: every reply that ended failed, on every channel, newest first."""
    if request.query.get("delivery") != "failed":
        raise ApiError(400, "validation", "delivery: only 'failed' can be listed",
                       field="delivery")
    services = _services(request)
    docs, cursor = await failed_page(services, limit=_limit(request),
                                     cursor=request.query.get("cursor") or None)
    return web.json_response({"items": [message_json(d) for d in docs], "next_cursor": cursor,
                              "count": await failed_count(services)})
