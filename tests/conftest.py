"""One embedded database server per test session, a fresh database per test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import MongoClient

from inbox.db import Database, connect
from inbox.embedded import EmbeddedServer
from inbox.store import Store


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """A real MongoDB wire-protocol server: the embedded one, or $SWITCHBOARD_TEST_MONGODB_URI."""
    external = os.environ.get("SWITCHBOARD_TEST_MONGODB_URI")
    if external:
        yield external
        return
    server = EmbeddedServer(data_dir=None, storage=":memory:", sync_on_commit=False)
    server.spawn()
    client: MongoClient[dict[str, object]] = MongoClient(server.uri, serverSelectionTimeoutMS=200)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.admin.command("ping")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.close()
    yield server.uri
    assert server.process is not None
    server.process.terminate()
    server.process.wait(timeout=30)


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Database]:
    client = connect(mongo_uri)
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture
async def store(db: Database) -> Store:
    s = Store(db)
    await s.setup()
    return s


# the whole server, in process, on the test database

from pathlib import Path  # noqa: E402

from aiohttp.test_utils import TestClient  # noqa: E402

from web.app import Services, create_app  # noqa: E402
from web.runtime import start_services, stop_services  # noqa: E402
from web.settings import Settings, load_settings  # noqa: E402

ADMIN_PASSWORD = "correct horse battery"
AGENT_PASSWORD = "another good password"


def make_settings(db_name: str, data_dir: Path, **sections: dict[str, object]) -> Settings:
    base: dict[str, dict[str, object]] = {
        "server": {"public_url": "http://127.0.0.1:8080"},
        "database": {"name": db_name, "data_dir": data_dir},
        "security": {"secret_key": "test-secret-key-not-for-production"},
        "delivery": {"backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.5,
                     "lease_seconds": 2.0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(**base)


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return make_settings(db.name, tmp_path)


@pytest.fixture
async def services(mongo_uri: str, settings: Settings) -> AsyncIterator[Services]:
    s = await start_services(settings, mongo_uri)
    try:
        yield s
    finally:
        await stop_services(s)


@pytest.fixture
async def client(aiohttp_client, services: Services) -> TestClient:  # type: ignore[no-untyped-def]
    return await aiohttp_client(create_app(services))


@pytest.fixture
async def admin(services: Services) -> dict[str, object]:
    doc = await services.agents.create("boss", display_name="李经理", password=ADMIN_PASSWORD,
                                       role="admin")
    token, _ = await services.agents.create_token(str(doc["_id"]))
    return {"doc": doc, "token": token, "headers": {"Authorization": f"Bearer {token}"}}


@pytest.fixture
async def agent(services: Services) -> dict[str, object]:
    doc = await services.agents.create("zhang", display_name="张客服", title="技术支持",
                                       password=AGENT_PASSWORD, role="agent")
    token, _ = await services.agents.create_token(str(doc["_id"]))
    return {"doc": doc, "token": token, "headers": {"Authorization": f"Bearer {token}"}}


from connectors.telegram.sandbox import TelegramSandbox  # noqa: E402

BOT_TOKEN = "7000000001:AAtest-sandbox-token-0123456789abcdef"
BOT_ID = 7000000001


@pytest.fixture
async def tg() -> AsyncIterator[TelegramSandbox]:
    """A fake Telegram Bot API with one bot, spoken to through python-telegram-bot."""
    sandbox = TelegramSandbox(webhook_retry_delay=0.05)
    await sandbox.start()
    sandbox.add_bot(BOT_TOKEN, BOT_ID, "acme_support_bot", "Acme Support")
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest.fixture
async def e2e(mongo_uri: str, db: Database, tmp_path: Path,
              tg: TelegramSandbox) -> AsyncIterator[object]:
    """A real listening server with the sandbox able to reach its webhooks."""
    from tests.live import live_server

    async with live_server(mongo_uri, db.name, tmp_path) as server:
        yield server


# browser tests: a shared Chromium and a real listening server (see tests/ui_support.py)
from tests.ui_support import ui_browser, ui_live  # noqa: E402, F401
