"""A pooled connection the database server closed for idleness is not used again: the driver
closes its own first (`inbox.db.MAX_IDLE_MS`, below the embedded server's 300 s), so the next
burst after a quiet spell does not fail with AutoReconnect ("connection closed")."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import secantus.server

from inbox.db import MAX_IDLE_MS, connect
from inbox.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
SERVER_IDLE_S = 2.0


@pytest.fixture
def short_idle_uri() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.short_idle_server", str(SERVER_IDLE_S),
                             "--host", "127.0.0.1", "--port", str(port),
                             "--storage-path", ":memory:", "--log-level", "WARNING"],
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_driver_gives_up_idle_connections_before_the_embedded_server_does() -> None:
    assert MAX_IDLE_MS < secantus.server.DEFAULT_CLIENT_IDLE_TIMEOUT_S * 1000 / 2


async def test_a_burst_after_a_quiet_spell_finds_no_closed_connection(
        short_idle_uri: str) -> None:
    client = connect(short_idle_uri, timeout_ms=10_000, idle_ms=int(SERVER_IDLE_S * 1000 / 2))
    try:
        coll = client.scratch.burst
        await asyncio.gather(*(coll.insert_one({"n": i}) for i in range(8)))  # a few pooled
        await asyncio.sleep(SERVER_IDLE_S * 2)  # the server has closed every one of them
        await asyncio.gather(*(coll.insert_one({"n": i}) for i in range(8, 16)))
        assert await coll.count_documents({}) == 16
    finally:
        await client.close()
