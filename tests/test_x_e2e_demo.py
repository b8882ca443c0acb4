"""`switchboard demo`'s X channel against a real listening Switchboard: the demo account is
created through the lifecycle, its customers' mentions and DMs reach the inbox, a reply goes
back to the sandbox, and a second demo start replaces the account."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.x.demo import BRAND_ID, CUSTOMERS, XDemo
from tests.live import Live, live_server, wait_for


@pytest.fixture
async def demo_live(mongo_uri: str, db: Any, tmp_path: Path,
                    ) -> AsyncIterator[tuple[XDemo, Live]]:
    demo = XDemo()
    await demo.start()
    try:
        async with live_server(mongo_uri, db.name, tmp_path) as live:
            yield demo, live
    finally:
        await demo.stop()


async def _inbound(live: Live) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await live.services.db.messages.find(
        {"direction": "in"}).to_list()
    return found


async def test_demo_customers_reach_the_inbox_and_a_reply_goes_back(demo_live: Any) -> None:
    demo, live = demo_live
    line = await demo.connect(live.services.channels)
    assert "@acme_support" in line and demo.account_id
    doc = await live.services.accounts.get(demo.account_id)
    assert (doc["platform"], doc["mode"], doc["platform_id"]) == ("x", "polling", BRAND_ID)

    task = asyncio.create_task(demo.customers((0.05, 0.1), first_after=0.0))
    try:
        # X's mention limit (300 per 15 minutes) spaces mention reads ~3 s apart
        stored = await wait_for(lambda: _both_kinds(live), timeout=20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    scripted = {text for _, _, lines in CUSTOMERS for _, text in lines}
    assert {m["text"].split(" ", 1)[-1] if m["text"].startswith("@") else m["text"]
            for m in stored} <= scripted
    assert any(not m["text"].isascii() for m in stored)  # Chinese customers too
    await wait_for(lambda: _conversations(live, 1), timeout=15)  # they follow the ack
    await live.services.store.settle()
    kinds = {c["kind"] for c in await live.services.db.conversations.find({}).to_list()}
    assert kinds <= {"mention", "dm"} and "mention" in kinds

    mention = next(m for m in stored if m["text"].startswith("@acme_support"))
    resp = await live.http.post(
        f"{live.url}/api/conversations/{mention['conversation_id']}/messages",
        headers=live.headers, json={"text": "我们马上处理"})
    assert resp.status == 202
    (sent, *_) = await demo.sandbox.wait_for_sent(1)
    assert sent["text"] == "我们马上处理 ^李" and sent["author_id"] == BRAND_ID

    first = demo.account_id
    await demo.connect(live.services.channels)  # `switchboard demo` started again
    assert demo.account_id != first
    assert [d["name"] for d in await live.services.accounts.list("x")] == ["Demo X"]


async def test_a_direct_message_from_the_demo_is_a_dm_conversation(demo_live: Any) -> None:
    demo, live = demo_live
    await demo.connect(live.services.channels)
    demo.write("wang_wei88", "dm", "你好，我收到的商品外包装破了，可以换货吗？")
    demo.write("li_na_sh", "mention", "你们的 App 今天一直闪退")
    demo.write("li_na_sh", "reply", "补充一下：是登录之后马上闪退。")
    await wait_for(lambda: _at_least(live, 3), timeout=15)
    # conversations follow the acknowledgement, and a message may be seen stored before its
    # batch is acknowledged (`settle` waits only for acknowledged ones): wait for both
    await wait_for(lambda: _conversations(live, 2), timeout=15)
    await live.services.store.settle()
    convs = await live.services.db.conversations.find({}).to_list()
    assert sorted(c["kind"] for c in convs) == ["dm", "mention"]


async def _conversations(live: Live, n: int) -> list[dict[str, Any]] | None:
    found = await live.services.db.conversations.find({}).to_list()
    return found if len(found) >= n else None


async def _both_kinds(live: Live) -> list[dict[str, Any]] | None:
    found = await _inbound(live)
    kinds = {m["text"].startswith("@acme_support") for m in found}
    return found if len(found) >= 4 and kinds == {True, False} else None


async def _at_least(live: Live, n: int) -> list[dict[str, Any]] | None:
    found = await _inbound(live)
    return found if len(found) >= n else None
