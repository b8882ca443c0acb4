"""Telegram webhook mode end to end: sandbox → python-telegram-bot's setWebhook → our route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.telegram.sandbox import SECRET_HEADER, TelegramSandbox
from tests.conftest import BOT_TOKEN
from tests.live import add_account, wait_for
from web.app import Services

FIXTURES = Path(__file__).parent / "fixtures" / "telegram" / "inbound"


async def test_inbound_message_is_stored_once_under_redelivery(e2e: Any,
                                                              tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg)
    services: Services = e2e["services"]
    update = tg.inject_text(BOT_TOKEN, 424242, "你好，我的订单还没到",
                            user={"id": 424242, "is_bot": False, "first_name": "小明"})
    await wait_for(lambda: services.db.messages.count_documents({"direction": "in"}))
    # Telegram redelivers an update it thinks failed: the same body again, twice.
    url = account["webhook_url"].replace("http://127.0.0.1:8080", e2e["url"])
    secret = (await services.db.accounts.find_one({}))["webhook_secret"]
    for _ in range(2):
        resp = await e2e["http"].post(url, data=json.dumps(update),
                                       headers={SECRET_HEADER: secret,
                                                "Content-Type": "application/json"})
        assert resp.status == 200
    assert await services.db.messages.count_documents({}) == 1
    msg = await services.db.messages.find_one({})
    assert msg["text"] == "你好，我的订单还没到" and msg["author"]["name"] == "小明"
    await services.store.settle()  # summaries follow the acknowledgement
    conv = await services.db.conversations.find_one({})
    assert conv["thread_key"] == "424242" and conv["unread"] == 1


async def test_forged_or_missing_secret_is_401_and_stores_nothing(e2e: Any,
                                                                 tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg)
    services: Services = e2e["services"]
    url = f"{e2e['url']}/webhooks/telegram/{account['id']}"
    payload = (FIXTURES / "message__private_text.json").read_bytes()
    for headers in ({}, {SECRET_HEADER: "forged"}, {SECRET_HEADER: ""}):
        resp = await e2e["http"].post(url, data=payload, headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "bad_signature"
    assert await services.db.messages.count_documents({}) == 0


async def test_malformed_and_ignored_updates(e2e: Any, tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg)
    services: Services = e2e["services"]
    secret = (await services.db.accounts.find_one({}))["webhook_secret"]
    url = f"{e2e['url']}/webhooks/telegram/{account['id']}"
    h = {SECRET_HEADER: secret}
    bad = await e2e["http"].post(url, data=b"{not json", headers=h)
    assert bad.status == 400
    unparseable = await e2e["http"].post(url, json={"update_id": 1, "message": "hi"}, headers=h)
    assert unparseable.status == 400
    ignored = await e2e["http"].post(
        url, data=(FIXTURES / "my_chat_member__bot_added.json").read_bytes(), headers=h)
    assert ignored.status == 200 and (await ignored.json())["ignored"] is True
    huge = await e2e["http"].post(url, data=b"x" * 2_000_000, headers=h)
    assert huge.status == 413
    assert await services.db.messages.count_documents({}) == 0


async def test_unknown_account_is_404(e2e: Any) -> None:
    resp = await e2e["http"].post(f"{e2e['url']}/webhooks/telegram/0123456789abcdef01234567",
                                   data=b"{}")
    assert resp.status == 404
