"""The acknowledgement deadline: a webhook whose write outlives the platform's patience is
answered with a redelivery status in time, the slow write still lands, and the redelivery is
stored once. Through the made-up platform (its deadline is short, so the test is too)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import CONNECTORS
from inbox.db import Database
from tests.live import Live, live_server, wait_for
from tests.madeup_platform import ParrotConnector, ParrotPlatform, xml_message
from tests.test_connector_madeup import ACCOUNT, KEY, add, signed
from web.webhooks import answer_within


class SlowParrot(ParrotConnector):
    ack_deadline = 1.5


@pytest.fixture
async def live(mongo_uri: str, db: Database, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Live, ParrotPlatform]]:
    monkeypatch.setitem(CONNECTORS, "parrot", SlowParrot)
    platform = ParrotPlatform(KEY, ACCOUNT)
    await platform.start()
    async with live_server(mongo_uri, db.name, tmp_path) as server:
        yield server, platform
    await platform.stop()


def test_the_host_answers_inside_each_platforms_deadline() -> None:
    assert answer_within(3.0) == pytest.approx(2.4)  # Slack
    assert answer_within(10.0) == pytest.approx(8.0)  # X
    assert answer_within(60.0) == pytest.approx(48.0)  # Telegram
    assert answer_within(0.2) == 0.5  # never less than half a second


async def test_a_stalled_write_is_answered_in_time_and_stored_once(
        live: tuple[Live, ParrotPlatform]) -> None:
    server, parrot = live
    account = await add(server, parrot, "webhook")
    connector = await server.services.channels.get(account["id"])
    runtime: Any = connector.runtime
    real_sink = runtime.sink
    stalls = 1

    async def stalled_sink(events: Any) -> Any:  # the database is slow for one write
        nonlocal stalls
        if stalls:
            stalls -= 1
            await asyncio.sleep(3.0)
        return await real_sink(events)

    runtime.sink = stalled_sink
    hook = f"{server.url}/webhooks/parrot/{account['id']}"
    body = xml_message(ACCOUNT, "cust-9", "are you there?", "slow-1")
    started = time.monotonic()
    first = await server.http.post(hook, params=signed(), data=body)
    answered = time.monotonic() - started
    assert first.status == 503
    assert answered < SlowParrot.ack_deadline  # the platform never timed out
    assert server.services.webhooks.late  # the write goes on behind the answer
    again = await server.http.post(hook, params=signed(), data=body)  # the platform retries
    assert again.status == 200
    await wait_for(lambda: _no_late_writes(server), timeout=10)
    assert await server.services.db.messages.count_documents({"text": "are you there?"}) == 1
    runtime.sink = real_sink


async def _no_late_writes(server: Live) -> bool:
    return not server.services.webhooks.late
