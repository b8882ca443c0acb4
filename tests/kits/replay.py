"""A local HTTP server that answers every request with one recorded platform answer.

API fixtures (`tests/fixtures/<platform>/api/<operation>__<outcome>.json`) hold what a platform
answered: `status`, `headers`, `body` (JSON, or a string sent as is). Requests whose path
contains a key of `also` get that answer instead (e.g. Telegram's `getMe`, which the library
calls before the first send). Every request is recorded, so a kit can check what was sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class ReplayServer:
    fixture: Mapping[str, Any]
    also: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      dict(request.headers), await request.read()))
        answer = self.fixture
        for needle, other in {**self.fixture.get("also", {}), **self.also}.items():
            if needle in request.path:
                answer = other
                break
        body = answer.get("body", "")
        headers = dict(answer.get("headers") or {})
        if isinstance(body, str):
            data = body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return web.Response(status=int(answer.get("status", 200)), body=data, headers=headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@asynccontextmanager
async def replaying(fixture: Mapping[str, Any],
                    also: Mapping[str, Mapping[str, Any]] | None = None,
                    ) -> AsyncIterator[ReplayServer]:
    server = ReplayServer(fixture, dict(also or {}))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
