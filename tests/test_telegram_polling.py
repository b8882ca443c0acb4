"""Polling mode: getUpdates through python-telegram-bot, offset persisted after storing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from bson import ObjectId

from connectors.hosting import Runner
from connectors.telegram.connector import TelegramConnector
from connectors.telegram.sandbox import TelegramSandbox
from tests.conftest import BOT_TOKEN
from tests.live import Live, add_account, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "telegram" / "inbound"
USER = {"id": 626262, "is_bot": False, "first_name": "Emma", "username": "emma"}


async def test_polling_account_receives_messages(e2e: Live, tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg, mode="polling")
    assert account["webhook_url"] is None
    for n in range(3):
        tg.inject_text(BOT_TOKEN, USER["id"], f"hello {n}", user=USER)
    await wait_for(lambda: e2e.services.db.messages.count_documents({}), timeout=15)
    await wait_for(lambda: _count_is(e2e, 3), timeout=15)
    stored = await wait_for(lambda: e2e.services.db.accounts.find_one(
        {"_id": ObjectId(account["id"]), "cursors.default": {"$gt": 0}}))
    assert stored["lease"]["owner"]


async def _count_is(e2e: Live, n: int) -> bool:
    return await e2e.services.db.messages.count_documents({}) == n


async def test_poller_restart_loses_and_repeats_nothing(e2e: Live, tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg, mode="polling")
    connector = await e2e.services.channels.get(account["id"])
    assert isinstance(connector, TelegramConnector)
    for n in range(5):
        tg.inject_text(BOT_TOKEN, USER["id"], f"before {n}", user=USER)
    await wait_for(lambda: _count_is(e2e, 5), timeout=15)
    await e2e.services.hosting.stop(account["id"])  # the process stops polling (a restart)
    for n in range(4):
        tg.inject_text(BOT_TOKEN, USER["id"], f"while down {n}", user=USER)
    await asyncio.sleep(0.2)
    assert await e2e.services.db.messages.count_documents({}) == 5
    await e2e.services.hosting.start(connector)
    await wait_for(lambda: _count_is(e2e, 9), timeout=15)
    await asyncio.sleep(0.5)
    texts = [m["text"] for m in await e2e.services.db.messages.find({}).to_list()]
    assert len(texts) == len(set(texts)) == 9


async def test_a_round_that_fails_to_store_is_fetched_again(e2e: Live,
                                                            tg: TelegramSandbox) -> None:
    """Crash between getUpdates and storing: the offset is not advanced, so nothing is lost."""
    account = await add_account(e2e, tg, mode="polling")
    connector = await e2e.services.channels.get(account["id"])
    await e2e.services.hosting.stop(account["id"])
    for n in range(3):
        tg.inject_text(BOT_TOKEN, USER["id"], f"fragile {n}", user=USER)
    runtime = connector.runtime
    calls = 0
    real_sink = runtime.sink

    async def failing_sink(events: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return await real_sink(events)  # type: ignore[arg-type]

    runtime.sink = failing_sink  # type: ignore[method-assign]
    source = connector.inbound()
    assert source is not None
    source.poll_timeout = 0
    runner = Runner(connector, source, e2e.services.accounts, e2e.services.clock)
    assert await runner._lease()
    with contextlib.suppress(ConnectionError):
        await runner._round(source)
    assert await e2e.services.db.messages.count_documents({}) == 0
    await runner._round(source)
    assert await e2e.services.db.messages.count_documents({}) == 3
    runtime.sink = real_sink  # type: ignore[method-assign]


async def test_only_one_process_polls_an_account(e2e: Live, tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg, mode="polling")
    await wait_for(lambda: e2e.services.db.accounts.find_one(
        {"_id": ObjectId(account["id"]), "lease.owner": {"$type": "string"}}))
    connector = await e2e.services.channels.get(account["id"])
    source = connector.inbound()
    assert source is not None
    other = Runner(connector, source, e2e.services.accounts, e2e.services.clock)
    other.owner = "another-process"
    assert not await other._lease()


async def test_attachment_is_proxied_without_exposing_the_token(e2e: Live,
                                                               tg: TelegramSandbox) -> None:
    await add_account(e2e, tg)
    update = json.loads((FIXTURES / "message__photo_caption.json").read_text())
    file_id = update["message"]["photo"][-1]["file_id"]
    tg.add_file(file_id, b"\x89PNG fake image bytes", "photos/file_1.jpg", "image/jpeg")
    tg.inject_update(BOT_TOKEN, update)
    msg = await wait_for(lambda: e2e.services.db.messages.find_one({}))
    # its conversation is created behind the acknowledgement (inbox/summaries.py)
    await wait_for(lambda: e2e.services.db.conversations.find_one(
        {"_id": ObjectId(msg["conversation_id"])}))
    resp = await e2e.http.get(f"{e2e.url}/api/messages/{msg['_id']}/attachments/0",
                               headers=e2e.headers)
    assert resp.status == 200
    assert await resp.read() == b"\x89PNG fake image bytes"
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert BOT_TOKEN not in json.dumps(dict(resp.headers))
    listed = await (await e2e.http.get(
        f"{e2e.url}/api/conversations/{msg['conversation_id']}/messages",
        headers=e2e.headers)).json()
    attachment = listed["items"][0]["attachments"][0]
    assert attachment["url"] == f"/api/messages/{msg['_id']}/attachments/0"
    assert "file_id" not in attachment
    assert (await e2e.http.get(f"{e2e.url}/api/messages/{msg['_id']}/attachments/0")).status \
        == 401
