"""`switchboard demo`'s mailbox against a real listening Switchboard: the demo account is
created through the lifecycle, its customers' mails (Chinese, English, GBK labelled GB2312)
reach the inbox in threads, a reply reaches the sandbox's SMTP server under the agent's name,
and a second demo start replaces the account. With Dovecot when it is installed, and with the
in-process IMAP sandbox that the demo uses without it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from connectors.email.demo import ADDRESS, CUSTOMERS, EmailDemo
from connectors.email.dovecot import APT_PACKAGE, find_binary
from tests.live import Live, live_server, wait_for

needs_dovecot = pytest.mark.skipif(find_binary() is None, reason=(
    f"Dovecot is not installed (apt-get install -y {APT_PACKAGE}); the demo then uses the "
    "in-process IMAP sandbox, tested here too"))


@pytest.fixture(params=[pytest.param("dovecot", marks=needs_dovecot), "memory"])
async def demo_live(request: pytest.FixtureRequest, mongo_uri: str, db: Any, tmp_path: Path,
                    ) -> AsyncIterator[tuple[EmailDemo, Live]]:
    demo = EmailDemo(backend=request.param)
    await demo.start()
    try:
        async with live_server(mongo_uri, db.name, tmp_path,
                               identity={"brand": "Acme 客服部"}) as live:
            yield demo, live
    finally:
        await demo.stop()


async def _inbound(live: Live, n: int) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await live.services.db.messages.find(
        {"direction": "in"}).to_list()
    return found if len(found) >= n else None


async def test_demo_customers_reach_the_inbox_and_a_reply_goes_back(demo_live: Any) -> None:
    demo, live = demo_live
    line = await demo.connect(live.services.channels)
    assert ADDRESS in line and demo.account_id
    doc = await live.services.accounts.get(demo.account_id)
    assert (doc["platform"], doc["mode"], doc["platform_id"]) == ("email", "imap", ADDRESS)
    await wait_for(lambda: _session(live, demo.account_id))

    task = asyncio.create_task(demo.customers((0.05, 0.1), first_after=0.0))
    try:
        stored = await wait_for(lambda: _inbound(live, 6), timeout=20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    scripted = {text.replace("\n", " ").split()[0] for *_, lines, _, _ in CUSTOMERS
                for text in lines}
    assert {m["text"].split()[0] for m in stored} <= scripted
    assert any(not m["text"].isascii() for m in stored)  # Chinese customers
    ids = [ObjectId(i) for i in {m["conversation_id"] for m in stored}]
    assert len(ids) < len(stored)  # follow-ups joined their threads
    conversations = await wait_for(lambda: _all(live, ids))
    assert {c["title"] for c in conversations} <= {c[2] for c in CUSTOMERS}

    # the GBK mail labelled GB2312 decodes
    lilei = demo.customers_list[0]
    lilei.turn = 0  # a new thread of theirs
    gbk = await demo.write(lilei)
    mail = await wait_for(lambda: live.services.db.messages.find_one({"external_id": gbk}))
    assert mail["author"]["name"] == "李雷" and not mail["text"].isascii()
    await wait_for(lambda: live.services.db.conversations.find_one(
        {"_id": ObjectId(mail["conversation_id"])}))  # created right behind the message

    resp = await live.http.post(
        f"{live.url}/api/conversations/{mail['conversation_id']}/messages",
        headers=live.headers, json={"text": "我们马上处理"})
    assert resp.status == 202, await resp.text()
    (sent,) = await demo.sandbox.wait_for_sent(1, timeout=10)
    assert sent.rcpt_tos == ["lilei@customer.example"]
    assert sent.message["From"].addresses[0].display_name == "李经理 · Acme 客服部"
    # the customer's next mail answers our reply, in the same conversation
    answer = await demo.write(lilei)
    again = await wait_for(lambda: live.services.db.messages.find_one({"external_id": answer}))
    assert again["conversation_id"] == mail["conversation_id"]

    first = demo.account_id
    await demo.connect(live.services.channels)  # `switchboard demo` started again
    assert demo.account_id != first
    assert [d["name"] for d in await live.services.accounts.list("email")] == ["Demo mailbox"]


async def test_the_control_routes_inject_customer_mail(demo_live: Any) -> None:
    demo, live = demo_live
    await demo.connect(live.services.channels)
    await wait_for(lambda: _session(live, demo.account_id))
    async with live.http.post(f"{demo.sandbox.base_url}/_sandbox/inbound", json={
            "from": "zhaolei@customer.example", "from_name": "赵磊", "subject": "你好",
            "text": "通过控制接口发来的邮件。"}) as resp:
        assert resp.status == 200
    found = await wait_for(lambda: _inbound(live, 1))
    assert found[0]["text"] == "通过控制接口发来的邮件。"
    async with live.http.get(f"{demo.sandbox.base_url}/_sandbox/state") as resp:
        state = await resp.json()
    assert state["backend"] == demo.sandbox.backend and state["address"] == ADDRESS


async def _all(live: Live, ids: list[ObjectId]) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await live.services.db.conversations.find(
        {"_id": {"$in": ids}}).to_list()
    return found if len(found) == len(ids) else None


async def _session(live: Live, account_id: str | None) -> bool:
    runner = live.services.hosting.runners.get(account_id or "")
    if runner is None or not runner.stats.sessions:
        return False
    await asyncio.sleep(0.3)  # into IDLE
    return True
