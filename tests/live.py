"""A real listening Switchboard for end-to-end tests: platforms' fakes can reach its webhooks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from connectors.telegram.sandbox import TelegramSandbox
from tests.conftest import BOT_TOKEN, make_settings
from web.app import Services, create_app
from web.runtime import start_services, stop_services


@dataclass
class Live:
    services: Services
    url: str
    http: ClientSession
    headers: dict[str, str]
    admin: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def live_server(mongo_uri: str, db_name: str, tmp_path: Path,
                      **sections: dict[str, object]) -> AsyncIterator[Live]:
    port = free_port()
    server_section = {"public_url": f"http://127.0.0.1:{port}", "port": port,
                      **sections.pop("server", {})}
    settings = make_settings(db_name, tmp_path, server=server_section, **sections)
    services = await start_services(settings, mongo_uri)
    server = TestServer(create_app(services), host="127.0.0.1", port=port)
    await server.start_server()
    admin = await services.agents.by_login("boss") or await services.agents.create(
        "boss", display_name="李经理", password="x" * 10, role="admin")
    token, _ = await services.agents.create_token(str(admin["_id"]))
    async with ClientSession() as http:
        try:
            yield Live(services, f"http://127.0.0.1:{port}", http,
                       {"Authorization": f"Bearer {token}"}, admin)
        finally:
            await server.close()
            await stop_services(services)


async def add_account(live: Live, tg: TelegramSandbox, mode: str = "webhook",
                      name: str | None = None) -> dict[str, Any]:
    resp = await live.http.post(f"{live.url}/api/accounts", headers=live.headers, json={
        "platform": "telegram", "name": name or f"Bot {mode}", "mode": mode,
        "api_base_url": tg.base_url, "credentials": {"bot_token": BOT_TOKEN}})
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def wait_for(predicate: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def listed_conversations(live: Live, n: int = 1, timeout: float = 10.0,
                               **query: str) -> list[dict[str, Any]]:
    """GET /api/conversations until it lists `n` (they are created behind the webhook's
    acknowledgement, inbox/summaries.py)."""
    async def enough() -> list[dict[str, Any]] | None:
        resp = await live.http.get(f"{live.url}/api/conversations", headers=live.headers,
                                   params=query)
        items = list((await resp.json())["items"])
        return items if len(items) >= n else None

    found: list[dict[str, Any]] = await wait_for(enough, timeout)
    return found
