"""JSON errors: `{"error": {"code", "message"}}` with the right status, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from connectors.channels import AccountError
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


# The account lifecycle's error codes (connectors/channels.py) as HTTP statuses.
ACCOUNT_STATUS = {"validation": 400, "unknown_platform": 422, "invalid_auth": 422,
                  "cannot_connect": 502, "unknown": 502, "duplicate": 409, "other_account": 409}


def account_api_error(exc: AccountError) -> ApiError:
    """A connector's own code (an app token refused, a scope missing) is about what the admin
    entered, so it is a 422 like invalid_auth; only reaching the platform is a 502."""
    extra = {"field": exc.field} if exc.field else {}
    return ApiError(ACCOUNT_STATUS.get(exc.code, 422), exc.code, exc.message, **extra)


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
    except AccountError as exc:
        err = account_api_error(exc)
        return error_response(err.status, err.code, err.message, **err.extra)
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


# How deep a stored JSON value may nest: MongoDB refuses documents nested deeper than 100
# levels, and a request's value sits a level or two inside the document that stores it.
MAX_JSON_DEPTH = 64
_INT64 = 2**63


def unstorable(value: Any) -> str | None:
    """Why a parsed JSON value could not be stored in a MongoDB document as it is, or None.

    JSON allows what BSON does not: integers beyond 64 bits, lone UTF-16 surrogates ("\\ud800"),
    NUL in keys, any depth. Found by fuzzing: such a value reached the database only after a
    conversation had been created for it, and then failed with a 500. Iterative, so hostile
    nesting cannot exhaust the stack.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key or not _utf8(key):
                    return "an object key cannot be stored"
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, bool | float) or node is None:
            continue
        elif isinstance(node, int):
            if not -_INT64 <= node < _INT64:
                return "an integer does not fit in 64 bits"
        elif isinstance(node, str) and not _utf8(node):
            return "a string is not valid Unicode"
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400/413 that says what is wrong."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "too_large", "the request body is larger than the limit") from None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "bad_json", "the request body is not valid JSON") from None
    problem = unstorable(value)
    if problem:
        raise ApiError(400, "bad_json", f"the request body cannot be stored: {problem}")
    return value
