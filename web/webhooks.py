"""Inbound webhooks: `/webhooks/<platform>/<account_id>` and app-level `/webhooks/<platform>`.

Any method reaches the connector (challenge `GET`s, CRC checks), with the raw body; it answers
any status and content type. The platform's acknowledgement deadline is the connector's
(`ack_deadline`): when storing takes longer (the database is slow or away), the platform gets a
redelivery status (503) before the deadline, and the slow write goes on to completion in the
background; when the platform delivers again, the unique index makes the second write
"already have it". So nothing acknowledged is lost and nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from connectors.base import Connector, HttpRequest, HttpResponse
from connectors.registry import CONNECTORS
from inbox.store import NotFound
from web.errors import error_response, unstorable

log = logging.getLogger(__name__)

MIN_ANSWER = 0.5  # seconds: the least time a handler gets, whatever the platform declares
MARGIN = 0.5  # answer this much before the platform's deadline


def answer_within(deadline: float) -> float:
    """How long a handler may take before the host answers for it: a margin inside the
    platform's deadline (Slack's 3 s → 2.4 s), and never less than MIN_ANSWER."""
    return max(MIN_ANSWER, min(deadline - MARGIN, deadline * 0.8))


class Webhooks:
    """Keeps the handlers that outlived their deadline, so they finish and are not collected."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.late: set[asyncio.Task[HttpResponse]] = set()
        self.late_done = 0

    async def _bounded(self, connector: Connector, request: HttpRequest,
                       platform: str) -> HttpResponse:
        task = asyncio.create_task(connector.handle_webhook(request),
                                   name=f"webhook-{platform}")
        done, _ = await asyncio.wait({task}, timeout=answer_within(connector.ack_deadline))
        if task in done:
            return task.result()
        self.late.add(task)
        task.add_done_callback(self._finished_late)
        log.warning("%s webhook for account %s took longer than %.1f s; answered 503, the "
                    "write goes on", platform, connector.account.id,
                    answer_within(connector.ack_deadline))
        return HttpResponse.error(503, "unavailable", "storage is slow; deliver again later")

    def _finished_late(self, task: asyncio.Task[HttpResponse]) -> None:
        self.late.discard(task)
        self.late_done += 1
        if not task.cancelled() and task.exception() is not None:
            log.warning("a late webhook write failed: %s", type(task.exception()).__name__)

    async def drain(self, timeout: float = 10.0) -> None:
        """At shutdown: let late writes finish."""
        if self.late:
            await asyncio.wait(set(self.late), timeout=timeout)


def _as_response(result: HttpResponse) -> web.Response:
    return web.Response(status=result.status, body=result.body,
                        content_type=result.content_type.split(";")[0],
                        headers=dict(result.headers))


async def _read(request: web.Request) -> HttpRequest:
    body = await request.read()
    return HttpRequest(method=request.method, path=request.path, query=request.query,
                       headers=request.headers, body=body, remote=request.remote)


def _unstorable_json(body: bytes) -> str | None:
    """A JSON body that no connector could store (too deep for the parser or for MongoDB,
    64-bit overflow, lone surrogates, NUL in keys) is refused here, before any connector sees
    it, so no store write can start for it. Bodies that are not JSON are the connector's call.
    Checked before the connector verifies the signature: the answer reveals nothing secret."""
    try:
        value = json.loads(body)
    except RecursionError:
        return "nested too deeply"
    except ValueError:  # includes UnicodeDecodeError
        return None
    return unstorable(value)


def _unavailable(services: Any, platform: str) -> web.Response | None:
    if services.health.db_ok:
        return None
    services.metrics.webhooks.labels(platform, "503").inc()
    resp = error_response(503, "unavailable", "storage is unavailable; deliver again later")
    resp.headers["Retry-After"] = "5"
    return resp


async def _finish(request: web.Request, connector: Connector, incoming: HttpRequest,
                  started: float) -> web.Response:
    services = request.app["services"]
    platform = connector.platform
    problem = _unstorable_json(incoming.body)
    if problem:
        services.metrics.webhooks.labels(platform, "400").inc()
        return error_response(400, "bad_json", f"the body cannot be stored: {problem}")
    result = await services.webhooks._bounded(connector, incoming, platform)
    services.metrics.webhooks.labels(platform, str(result.status)).inc()
    services.metrics.webhook_seconds.labels(platform).observe(
        asyncio.get_running_loop().time() - started)
    return _as_response(result)


async def account_webhook(request: web.Request) -> web.Response:
    services = request.app["services"]
    platform = request.match_info["platform"]
    started = asyncio.get_running_loop().time()
    refused = _unavailable(services, platform)
    if refused is not None:
        return refused
    try:
        connector = await services.channels.get(request.match_info["account_id"])
    except NotFound:
        return error_response(404, "not_found", "no such channel account")
    if connector.platform != platform:
        return error_response(404, "not_found", "no such channel account")
    return await _finish(request, connector, await _read(request), started)


async def app_webhook(request: web.Request) -> web.Response:
    services = request.app["services"]
    platform = request.match_info["platform"]
    cls = CONNECTORS.get(platform)
    if cls is None or not cls.app_webhook:
        return error_response(404, "not_found", "no such webhook")
    started = asyncio.get_running_loop().time()
    refused = _unavailable(services, platform)
    if refused is not None:
        return refused
    incoming = await _read(request)
    problem = _unstorable_json(incoming.body)
    if problem:  # before the connector parses it to find the account
        services.metrics.webhooks.labels(platform, "400").inc()
        return error_response(400, "bad_json", f"the body cannot be stored: {problem}")
    routed = await cls.route_app_webhook(incoming, services.channels.directory(platform))
    if isinstance(routed, HttpResponse):
        services.metrics.webhooks.labels(platform, str(routed.status)).inc()
        return _as_response(routed)
    return await _finish(request, routed, incoming, started)


def setup(app: web.Application) -> None:
    app.router.add_route("*", "/webhooks/{platform}/{account_id}", account_webhook)
    app.router.add_route("*", "/webhooks/{platform}", app_webhook)
