"""Who is asking: a Bearer API token or a session cookie; roles enforced on the server."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from web.errors import ApiError, Handler

SESSION_COOKIE = "sb_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app["services"]
    request["agent"] = None
    request["session"] = None
    request["via"] = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        agent = await services.agents.agent_for_token(header[7:].strip())
        if agent is None:
            raise ApiError(401, "unauthorized", "the API token is not valid")
        request["agent"], request["via"] = agent, "token"
    elif SESSION_COOKIE in request.cookies:
        found = await services.agents.session(request.cookies[SESSION_COOKIE])
        if found is not None:
            request["session"], request["agent"] = found
            request["via"] = "session"
    return await handler(request)


def check_csrf(request: web.Request, form_token: str | None = None) -> None:
    """Cookie-authenticated changes must carry the session's CSRF token (header or form)."""
    if request["via"] != "session" or request.method not in UNSAFE:
        return
    given = form_token or request.headers.get(CSRF_HEADER, "")
    expected = request["session"]["csrf"]
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(403, "csrf", "missing or wrong CSRF token; reload the page")


def requires(role: str) -> Callable[[Handler], Handler]:
    """Guard an API handler: 401 without a valid identity, 403 without the role."""

    def wrap(handler: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            agent = request["agent"]
            if agent is None:
                raise ApiError(401, "unauthorized", "log in or send an API token")
            if role == "admin" and agent.get("role") != "admin":
                raise ApiError(403, "forbidden", "this needs the admin role")
            check_csrf(request)
            result: web.StreamResponse = await handler(request)
            return result

        guarded.required_role = role  # type: ignore[attr-defined]
        return guarded

    return wrap


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"
