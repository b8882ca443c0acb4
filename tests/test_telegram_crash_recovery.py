"""A worker that dies mid-delivery: its lease expires and another worker delivers the reply."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bson import ObjectId

from connectors.telegram.sandbox import TelegramSandbox
from inbox.db import Database
from replies.outbox import Outbox
from tests.conftest import BOT_TOKEN
from tests.live import add_account, live_server, wait_for


async def test_reply_claimed_by_a_dead_worker_is_delivered_after_its_lease(
        mongo_uri: str, db: Database, tmp_path: Path, tg: TelegramSandbox) -> None:
    async with live_server(mongo_uri, db.name, tmp_path, delivery={"workers": 0}) as server:
        await add_account(server, tg)
        tg.inject_text(BOT_TOKEN, 777, "anyone there?",
                       user={"id": 777, "is_bot": False, "first_name": "Ana"})
        conv = await wait_for(lambda: server.services.db.conversations.find_one({}))
        resp = await server.http.post(f"{server.url}/api/conversations/{conv['_id']}/messages",
                                      headers=server.headers, json={"text": "yes, here"})
        message_id = (await resp.json())["id"]
        # another process claims it and is killed before it sends: its lease stays behind
        crashed = Outbox(server.services.db, server.services.settings.delivery)
        await crashed.sync_clock()
        # due by the server's reading of the database clock: this one's may be a few ms behind
        # (each takes half its `hello` round trip for the way back, and a loaded machine makes
        # those differ), so the reply becomes due to it a moment later
        claim = await wait_for(crashed.claim, timeout=2)
        assert claim.message_id == message_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.services.worker.start()
        await asyncio.sleep(0.5)
        assert tg.sent(BOT_TOKEN) == []  # the lease is still valid: nobody sends
        await tg.wait_for_sent(BOT_TOKEN, 1, timeout=15)
        assert loop.time() - started >= 1.0  # lease_seconds = 2 in the test settings
        doc = await wait_for(lambda: server.services.db.messages.find_one(
            {"_id": ObjectId(message_id), "delivery.state": "sent"}))
        assert doc["delivery"]["attempts"] == 2
        # the dead worker might have reached Telegram: the re-send is flagged, not hidden
        assert doc["delivery"]["possibly_duplicated"] is True
        await asyncio.sleep(0.3)
        assert len(tg.sent(BOT_TOKEN)) == 1
