"""Replies end to end: API → outbox → worker → python-telegram-bot → sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.telegram.sandbox import TelegramSandbox
from tests.conftest import BOT_TOKEN
from tests.live import Live, add_account, wait_for

CUSTOMER = {"id": 515151, "is_bot": False, "first_name": "小明", "username": "xiaoming"}


async def conversation_with_message(e2e: Live, tg: TelegramSandbox,
                                    text: str = "在吗？") -> tuple[str, dict[str, Any]]:
    await add_account(e2e, tg)
    update = tg.inject_text(BOT_TOKEN, CUSTOMER["id"], text, user=CUSTOMER)
    conv = await wait_for(lambda: e2e.services.db.conversations.find_one({}))
    await wait_for(lambda: e2e.services.db.messages.count_documents({"direction": "in"}))
    return str(conv["_id"]), update


async def reply(e2e: Live, conv_id: str, text: str, key: str | None = None) -> Any:
    headers = dict(e2e.headers)
    if key:
        headers["Idempotency-Key"] = key
    return await e2e.http.post(f"{e2e.url}/api/conversations/{conv_id}/messages",
                                headers=headers, json={"text": text})


async def delivery(e2e: Live, message_id: str, state: str, timeout: float = 10) -> Any:
    from bson import ObjectId

    return await wait_for(lambda: e2e.services.db.messages.find_one(
        {"_id": ObjectId(message_id), "delivery.state": state}), timeout)


async def test_reply_is_delivered_with_signature_and_reply_parameters(
        e2e: Live, tg: TelegramSandbox) -> None:
    conv_id, update = await conversation_with_message(e2e, tg)
    resp = await reply(e2e, conv_id, "您好，订单已经发货了 📦")
    assert resp.status == 202
    body = await resp.json()
    assert body["delivery"]["state"] == "queued" and body["agent_name"] == "李经理"
    sent = (await tg.wait_for_sent(BOT_TOKEN, 1))[0]["params"]
    assert sent["chat_id"] == CUSTOMER["id"]
    assert sent["text"] == "您好，订单已经发货了 📦\n\n— 李经理 · Acme"
    bold = [e for e in sent["entities"] if e["type"] == "bold"]
    assert len(bold) == 1
    utf16 = sent["text"].encode("utf-16-le")
    start, length = bold[0]["offset"] * 2, bold[0]["length"] * 2
    assert utf16[start:start + length].decode("utf-16-le") == "李经理"
    assert sent["reply_parameters"]["message_id"] == update["message"]["message_id"]
    assert sent["reply_parameters"]["allow_sending_without_reply"] is True
    assert "parse_mode" not in sent
    doc = await delivery(e2e, body["id"], "sent")
    assert doc["external_id"].startswith(f"{CUSTOMER['id']}:")
    assert doc["agent_name"] == "李经理" and doc["agent_id"] == str(e2e.admin["_id"])


async def test_markdown_in_the_agent_text_is_not_interpreted(e2e: Live,
                                                             tg: TelegramSandbox) -> None:
    conv_id, _ = await conversation_with_message(e2e, tg)
    await reply(e2e, conv_id, "*not bold* _nor italic_ <b>x</b>")
    sent = (await tg.wait_for_sent(BOT_TOKEN, 1))[0]["params"]
    assert sent["text"].startswith("*not bold* _nor italic_ <b>x</b>\n\n")


async def test_idempotency_key_sends_once(e2e: Live, tg: TelegramSandbox) -> None:
    conv_id, _ = await conversation_with_message(e2e, tg)
    first, second = await asyncio.gather(reply(e2e, conv_id, "only once", key="k-1"),
                                         reply(e2e, conv_id, "only once", key="k-1"))
    a, b = await first.json(), await second.json()
    assert a.get("id") == b.get("id"), (first.status, a, second.status, b)
    await tg.wait_for_sent(BOT_TOKEN, 1)
    await asyncio.sleep(0.3)
    assert len(tg.sent(BOT_TOKEN)) == 1
    assert await e2e.services.db.messages.count_documents({"direction": "out"}) == 1


async def test_empty_and_too_long_replies_are_refused(e2e: Live, tg: TelegramSandbox) -> None:
    conv_id, _ = await conversation_with_message(e2e, tg)
    empty = await reply(e2e, conv_id, "   ")
    assert empty.status == 400 and (await empty.json())["error"]["field"] == "text"
    long = await reply(e2e, conv_id, "字" * 4090)
    assert long.status == 422 and (await long.json())["error"]["code"] == "too_long"
    assert await e2e.services.db.messages.count_documents({"direction": "out"}) == 0


async def test_rate_limit_then_success_honours_retry_after(e2e: Live,
                                                           tg: TelegramSandbox) -> None:
    conv_id, _ = await conversation_with_message(e2e, tg)
    tg.fail(BOT_TOKEN, "sendMessage", 429, retry_after=1, times=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    body = await (await reply(e2e, conv_id, "after a pause")).json()
    await tg.wait_for_sent(BOT_TOKEN, 1, timeout=10)
    assert loop.time() - started >= 1.0
    doc = await delivery(e2e, body["id"], "sent")
    assert doc["delivery"]["attempts"] == 2


async def test_blocked_bot_fails_with_a_human_reason_and_retry_works(
        e2e: Live, tg: TelegramSandbox) -> None:
    conv_id, _ = await conversation_with_message(e2e, tg)
    tg.fail(BOT_TOKEN, "sendMessage", 403, description="Forbidden: bot was blocked by the user",
            times=None)
    body = await (await reply(e2e, conv_id, "hello?")).json()
    doc = await delivery(e2e, body["id"], "failed")
    assert doc["delivery"]["error"]["message"] == "The customer blocked the bot."
    listed = await (await e2e.http.get(f"{e2e.url}/api/conversations/{conv_id}/messages",
                                        headers=e2e.headers)).json()
    out = next(m for m in listed["items"] if m["direction"] == "out")
    assert out["delivery"]["state"] == "failed"
    assert out["delivery"]["error"]["message"] == "The customer blocked the bot."
    tg.clear_failures()
    retried = await e2e.http.post(f"{e2e.url}/api/messages/{body['id']}/retry",
                                   headers=e2e.headers)
    assert retried.status == 202
    await delivery(e2e, body["id"], "sent")
    again = await e2e.http.post(f"{e2e.url}/api/messages/{body['id']}/retry",
                                 headers=e2e.headers)
    assert again.status == 409


async def test_server_errors_are_retried_until_sent(e2e: Live, tg: TelegramSandbox) -> None:
    conv_id, _ = await conversation_with_message(e2e, tg)
    tg.fail(BOT_TOKEN, "sendMessage", 502, times=2)
    body = await (await reply(e2e, conv_id, "eventually")).json()
    doc = await delivery(e2e, body["id"], "sent")
    assert doc["delivery"]["attempts"] == 3
    assert len(tg.sent(BOT_TOKEN)) == 1


async def test_replies_in_one_conversation_arrive_in_order(e2e: Live,
                                                           tg: TelegramSandbox) -> None:
    conv_id, _ = await conversation_with_message(e2e, tg)
    tg.fail(BOT_TOKEN, "sendMessage", 500, times=1)
    for n in range(5):
        assert (await reply(e2e, conv_id, f"part {n}")).status == 202
    sent = await tg.wait_for_sent(BOT_TOKEN, 5, timeout=15)
    assert [s["params"]["text"].split("\n")[0] for s in sent] == [f"part {n}" for n in range(5)]
