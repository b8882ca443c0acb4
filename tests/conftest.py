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
    """A real MongoDB wire-protocol server: the embedded default, or $SWITCHBOARD_TEST_MONGODB_URI."""
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
