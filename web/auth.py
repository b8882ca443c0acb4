"""Who is asking: a Bearer API token or a session cookie; roles enforced on the server."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from functools import cache, wraps
from typing import Any

from aiohttp import web

from web.errors import ApiError, Handler

SESSION_COOKIE = "sb_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    """The address of the client behind any trusted proxies (`server.trusted_proxies`).

    X-Forwarded-For is believed only when the direct peer is a trusted proxy, and then only
    from the right: each trusted proxy appends the address it got the request from, so walking
    right to left past trusted proxies, the first other address is the client's. Anything to
    the left of it was written by the client and may be made up (a fresh address per login
    attempt would otherwise dodge the limiter).
    """
    peer = request.remote or "unknown"
    trusted = _networks(tuple(request.app["services"].settings.server.trusted_proxies))
    return forwarded_client(peer, request.headers.getall("X-Forwarded-For", []), trusted)


def forwarded_client(peer: str, forwarded_for: list[str],
                     trusted: tuple[IPNetwork, ...]) -> str:
    """`client_address` without the request: the peer, the X-Forwarded-For header values (in
    order; several headers count as one list) and the trusted networks."""
    if not trusted or not _is_trusted(_ip(peer), trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    client = peer
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:  # not written by a proxy of ours: stop at the last trusted hop
            break
        client = str(address)
        if not _is_trusted(address, trusted):
            break
    return client


@cache
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _ip(value: str) -> IPAddress | None:
    """An address as proxies write it: "203.0.113.7", "2001:db8::1", and with a port
    "203.0.113.7:51234" or "[2001:db8::1]:51234"."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # "::ffff:10.0.0.1" is 10.0.0.1 for the trusted list
    return address


def _is_trusted(address: IPAddress | None, trusted: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(address in network for network in trusted)
