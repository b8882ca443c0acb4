"""`switchboard demo`'s Slack channel (connectors/slack/demo.py, web/demo.py's DemoChannel)
against a live Switchboard: the demo workspace is connected through the account lifecycle,
its simulated customers reach the inbox, and an agent's reply reaches the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from connectors.slack.demo import SlackDemo
from connectors.slack.sandbox_demo import SCRIPT, SHARED_CHANNEL
from tests.live import live_server, wait_for


@pytest.mark.parametrize("mode", ["socket", "events"])
async def test_demo_customers_arrive_in_the_inbox(mongo_uri: str, db: Any, tmp_path: Path,
                                                  mode: str) -> None:
    demo = SlackDemo(mode=mode)
    await demo.start()
    try:
        async with live_server(mongo_uri, db.name, tmp_path) as live:
            line = await demo.connect(live.services.channels)
            assert "Slack" in line and ("Socket Mode" if mode == "socket" else "Events") in line
            again = await demo.connect(live.services.channels)  # a second run replaces it
            assert again == line and await live.services.db.accounts.count_documents({}) == 1
            task = asyncio.create_task(demo.customers((0.05, 0.1), first_after=0.05))
            try:
                await wait_for(lambda: _has(live, len(SCRIPT)), timeout=30)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            texts = {d["text"] for d in await live.services.db.messages.find(
                {"direction": "in"}).to_list()}
            assert {text for _, _, text, _ in SCRIPT} <= texts
            assert any("订单" in t for t in texts)  # some customers write in Chinese
            await live.services.store.settle()  # conversations follow the acknowledgement
            shared = await live.services.db.conversations.find(
                {"thread_key": {"$regex": f"^{SHARED_CHANNEL}:"}}).to_list()
            assert shared and all(c["kind"] == "group" for c in shared)
            dms = await live.services.db.conversations.count_documents({"kind": "dm"})
            assert dms >= 2
            # an agent answers one of the DMs; it reaches the sandbox Slack under their name
            conv = await live.services.db.conversations.find_one({"kind": "dm"})
            async with live.http.post(
                    f"{live.url}/api/conversations/{conv['_id']}/messages",
                    headers=live.headers, json={"text": "您好，马上为您查询。"}) as resp:
                assert resp.status == 202
            (post,) = await demo.sandbox.wait_for_sent(1, timeout=15)
            assert post.username == "李经理" and post.channel == conv["thread_key"]
    finally:
        await demo.stop()


async def _has(live: Any, count: int) -> bool:
    return bool(await live.services.db.messages.count_documents({"direction": "in"}) >= count)
