"""Browser tests: one Chromium for the whole session, a real listening server per test.

Playwright's objects belong to the event loop that created them, so the browser and the
per-test server share pytest-asyncio's *session* loop: browser tests are marked
`pytest.mark.asyncio(loop_scope="session")` and use the fixtures here
(`ui_browser`, `ui_live`) instead of the function-loop `services`/`client`/`live` ones.

The server is the whole app on 127.0.0.1:<free port> with `server.public_url` set to that
address, so a Telegram sandbox in webhook mode can push updates to it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from bson import ObjectId

from connectors.telegram.sandbox import TelegramSandbox
from inbox.db import connect
from tests.conftest import ADMIN_PASSWORD, AGENT_PASSWORD, make_settings
from web.app import Services, create_app
from web.runtime import start_services, stop_services

CHROMIUM = os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BOT_TOKEN = "7000000001:AAH-sandbox-token-for-browser-tests-0"
BOT = {"id": 7000000001, "username": "acme_support_bot", "first_name": "Acme Support"}

browser_test = pytest.mark.asyncio(loop_scope="session")


def need_browser() -> None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser` (apt: chromium, fonts-noto-cjk)")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ui_browser() -> AsyncIterator[Any]:
    need_browser()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=10_000)  # CI machines are slow; waits end as soon as they can
    playwright = await async_playwright().start()
    chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        await chromium.close()
        await playwright.stop()


@dataclass
class Live:
    url: str
    app: web.Application
    services: Services
    sandbox: TelegramSandbox
    http: aiohttp.ClientSession
    browser: Any
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    contexts: list[Any] = field(default_factory=list)

    async def person(self, login: str, *, role: str = "agent", display_name: str = "张客服",
                     title: str | None = None, password: str | None = None,
                     locale: str | None = None, timezone: str | None = None) -> dict[str, Any]:
        """An agent with an API token and a session token (for a browser cookie)."""
        password = password or (ADMIN_PASSWORD if role == "admin" else AGENT_PASSWORD)
        doc = await self.services.agents.create(
            login, display_name=display_name, password=password, title=title, role=role,
            locale=locale, timezone=timezone)
        token, _ = await self.services.agents.create_token(str(doc["_id"]))
        session, _ = await self.services.agents.create_session(str(doc["_id"]), 1)
        person = {"doc": doc, "id": str(doc["_id"]), "token": token, "session": session,
                  "password": password, "headers": {"Authorization": f"Bearer {token}"}}
        self.people[login] = person
        return person

    async def page(self, who: dict[str, Any] | None = None, *, locale: str = "en-US",
                   timezone: str = "UTC") -> Any:
        """A fresh browser context (own cookies), logged in as `who` when given."""
        context = await self.browser.new_context(
            locale=locale, timezone_id=timezone, viewport={"width": 1280, "height": 860},
            extra_http_headers={"Accept-Language": locale})
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        if who is not None:
            await context.add_cookies([{"name": "sb_session", "value": who["session"],
                                        "url": self.url}])
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # type: ignore[attr-defined]
        return page

    async def api(self, method: str, path: str, who: dict[str, Any], **kw: Any) -> Any:
        async with self.http.request(method, self.url + path, headers=who["headers"],
                                     **kw) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body

    async def telegram_account(self, admin: dict[str, Any], name: str = "Acme 客服") -> dict:
        status, body = await self.api("POST", "/api/accounts", admin, json={
            "platform": "telegram", "name": name, "mode": "webhook",
            "api_base_url": self.sandbox.base_url, "credentials": {"bot_token": BOT_TOKEN}})
        assert status == 201, body
        return dict(body)

    async def customer_says(self, account: dict[str, Any], text: str, *, chat_id: int = 4242,
                            first_name: str = "王", last_name: str = "小明",
                            username: str = "xiaoming") -> dict[str, Any]:
        """A customer message through the sandbox's webhook push; returns the conversation."""
        user = {"id": chat_id, "is_bot": False, "first_name": first_name,
                "last_name": last_name, "username": username, "language_code": "zh-hans"}
        self.sandbox.inject_text(BOT_TOKEN, chat_id, text, user=user)
        return await wait_for(lambda: self._stored(account["id"], text))  # type: ignore[no-any-return]

    async def _stored(self, account_id: str, text: str) -> dict[str, Any] | None:
        doc = await self.services.db.messages.find_one(
            {"account_id": account_id, "direction": "in", "text": text})
        if doc is None:
            return None
        conv = await self.services.db.conversations.find_one(
            {"_id": ObjectId(doc["conversation_id"])})
        return {"id": str(conv["_id"]), "message_id": str(doc["_id"]), "doc": conv} \
            if conv else None


async def wait_for(probe: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                   every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {probe}")
        await asyncio.sleep(every)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest_asyncio.fixture(loop_scope="session")
async def ui_live(mongo_uri: str, ui_browser: Any, tmp_path: Path) -> AsyncIterator[Live]:
    sock = _free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    db_name = f"t_{uuid.uuid4().hex[:12]}"
    settings = make_settings(db_name, tmp_path, server={"public_url": url})
    services = await start_services(settings, mongo_uri)
    app = create_app(services)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    sandbox = TelegramSandbox(webhook_retry_delay=0.05)
    await sandbox.start()
    sandbox.add_bot(BOT_TOKEN, BOT["id"], BOT["username"], BOT["first_name"])
    http = aiohttp.ClientSession()
    live = Live(url=url, app=app, services=services, sandbox=sandbox, http=http, browser=ui_browser)
    try:
        yield live
    finally:
        for context in live.contexts:
            await context.close()
        await http.close()
        await sandbox.stop()
        await runner.cleanup()
        await stop_services(services)
        client = connect(mongo_uri)
        await client.drop_database(db_name)
        await client.close()
