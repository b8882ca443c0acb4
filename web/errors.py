"""JSON errors: `{"error": {"code", "message"}}` with the right status, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from inbox.paging import BadCursor
from inbox.store import NotFound

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    return web.json_response({"error": body}, status=status)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large",
               415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limited"}


def _wants_json(request: web.Request) -> bool:
    path = request.path
    return path.startswith(("/api/", "/webhooks/")) or path in ("/healthz", "/metrics")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)
    except NotFound:
        return error_response(404, "not_found", "no such resource")
    except BadCursor as exc:
        return error_response(400, "bad_cursor", str(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", "the request body is larger than the limit")
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        code = _HTTP_CODES.get(exc.status, "error")
        return error_response(exc.status, code, exc.reason)
    except (ConnectionFailure, ServerSelectionTimeoutError):
        log.warning("database unavailable while serving %s %s", request.method, request.path)
        resp = error_response(503, "unavailable", "the database is unavailable; try again")
        resp.headers["Retry-After"] = "5"
        return resp


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400/413 that says what is wrong."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "too_large", "the request body is larger than the limit") from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the request body is not valid JSON") from None
