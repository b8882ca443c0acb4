"""An account's health as users see it: `active`, `degraded` (recent transient errors, the last
in words), `needs_reauth` (the platform refused the credentials; replies wait), `error`; it
changes as events happen, clears when the account works again, and a 429 pauses the account
for every process through the database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from connectors.hosting import ERROR_AFTER, Runner
from connectors.telegram.sandbox import TelegramSandbox
from tests.conftest import BOT_TOKEN
from tests.live import Live, add_account, wait_for

USER = {"id": 515151, "is_bot": False, "first_name": "Kai", "username": "kai"}


async def account_json(live: Live, account_id: str) -> dict[str, Any]:
    resp = await live.http.get(f"{live.url}/api/accounts/{account_id}", headers=live.headers)
    return dict(await resp.json())


async def conversation(live: Live, tg: TelegramSandbox, text: str = "hello?") -> str:
    tg.inject_text(BOT_TOKEN, USER["id"], text, user=USER)
    doc = await wait_for(lambda: live.services.db.conversations.find_one({}))
    return str(doc["_id"])


async def reply(live: Live, conv_id: str, text: str) -> dict[str, Any]:
    resp = await live.http.post(f"{live.url}/api/conversations/{conv_id}/messages",
                                headers=live.headers, json={"text": text})
    assert resp.status == 202, await resp.text()
    return dict(await resp.json())


async def delivery(live: Live, message_id: str) -> dict[str, Any]:
    doc = await live.services.db.messages.find_one({"_id": ObjectId(message_id)})
    return dict(doc["delivery"])


async def test_refused_credentials_hold_replies_until_an_admin_fixes_them(
        e2e: Live, tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg)
    conv = await conversation(e2e, tg)
    tg.fail(BOT_TOKEN, "sendMessage", 401, description="Unauthorized", times=None)
    first = await reply(e2e, conv, "first")
    second = await reply(e2e, conv, "second")

    async def needs_reauth() -> bool:
        return (await account_json(e2e, account["id"]))["status"] == "needs_reauth"
    await wait_for(needs_reauth, timeout=15)
    shown = await account_json(e2e, account["id"])
    assert shown["last_error"]["code"] == "invalid_token"
    assert "bot token" in shown["last_error"]["message"]
    async def waiting() -> bool:  # not failed, and not burning attempts
        for m in (first, second):
            d = await delivery(e2e, m["id"])
            if d["state"] not in ("queued", "retry_wait") or d["attempts"] != 0:
                return False
        return True
    await wait_for(waiting, timeout=15)
    calls = len(tg.calls(BOT_TOKEN))
    await asyncio.sleep(1.5)  # a worker poll or two: the account stays excluded
    assert len([c for c in tg.calls(BOT_TOKEN)[calls:] if c["method"] == "sendMessage"]) == 0

    tg.clear_failures()
    resp = await e2e.http.patch(f"{e2e.url}/api/accounts/{account['id']}",
                                headers=e2e.headers,
                                json={"credentials": {"bot_token": BOT_TOKEN}})
    assert resp.status == 200
    assert (await resp.json())["status"] == "active"
    await tg.wait_for_sent(BOT_TOKEN, 2)
    texts = [s["params"]["text"].split("\n")[0] for s in tg.sent(BOT_TOKEN)]
    assert texts == ["first", "second"]  # in order, once each


async def test_credentials_of_another_bot_are_refused(e2e: Live, tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg)
    other = "7000000002:AAother-sandbox-token-0123456789abcdef"
    tg.add_bot(other, 7000000002, "other_bot", "Other")
    resp = await e2e.http.patch(f"{e2e.url}/api/accounts/{account['id']}",
                                headers=e2e.headers, json={"credentials": {"bot_token": other}})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "other_account"


async def test_transient_send_errors_degrade_the_account_and_a_success_clears_it(
        e2e: Live, tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg)
    conv = await conversation(e2e, tg)
    tg.fail(BOT_TOKEN, "sendMessage", 502, description="Bad Gateway", times=1)
    await reply(e2e, conv, "through a hiccup")

    async def recovered() -> bool:
        doc = await e2e.services.db.accounts.find_one({"_id": ObjectId(account["id"])})
        return bool(doc and doc.get("status_at") and doc["status"] == "active"
                    and doc["last_error"] is None)
    # the first attempt degrades it (status_at records the change), the retry clears it
    # (the retry's time is the backoff's, and a loaded machine's: not what is tested here)
    await tg.wait_for_sent(BOT_TOKEN, 1, timeout=15)
    await wait_for(recovered, timeout=15)


async def test_a_failing_poll_is_degraded_then_error_then_recovers(
        e2e: Live, tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg, mode="polling")
    await e2e.services.hosting.stop(account["id"])
    connector = await e2e.services.channels.get(account["id"])
    source = connector.inbound()
    assert source is not None
    source.poll_timeout = 0  # type: ignore[attr-defined]
    naps: list[float] = []
    runner = Runner(connector, source, e2e.services.accounts, e2e.services.clock)

    async def nap(seconds: float) -> None:  # no sleeping: record the backoff instead
        naps.append(seconds)

    runner._wait = nap  # type: ignore[method-assign]
    tg.fail(BOT_TOKEN, "getUpdates", 502, description="Bad Gateway", times=None)
    for _ in range(ERROR_AFTER):
        await runner.step()
    doc = await e2e.services.db.accounts.find_one({"_id": ObjectId(account["id"])})
    assert doc["status"] == "error"
    assert doc["last_error"]["message"] == "Telegram could not be reached."
    assert naps == sorted(naps[:3]) + naps[3:]  # the backoff grows
    tg.clear_failures()
    await runner._round(source)  # type: ignore[arg-type]
    doc = await e2e.services.db.accounts.find_one({"_id": ObjectId(account["id"])})
    assert doc["status"] == "active" and doc["last_error"] is None


async def test_a_429_pauses_the_account_for_every_process(e2e: Live,
                                                          tg: TelegramSandbox) -> None:
    account = await add_account(e2e, tg)
    conv = await conversation(e2e, tg)
    tg.fail(BOT_TOKEN, "sendMessage", 429, retry_after=3, times=1)
    message = await reply(e2e, conv, "slowly")

    async def paused() -> Any:
        doc = await e2e.services.db.accounts.find_one({"_id": ObjectId(account["id"])})
        return (doc.get("pauses") or {}).get("account")
    until = await wait_for(paused, timeout=15)
    assert until > datetime.now(UTC)
    # another process reads the pause from the database
    unavailable = await e2e.services.accounts.unavailable(e2e.services.clock.now())
    assert account["id"] in unavailable
    await tg.wait_for_sent(BOT_TOKEN, 1, timeout=20)

    async def sent() -> Any:
        return (await delivery(e2e, message["id"]))["sent_at"]
    sent_at = await wait_for(sent)
    assert sent_at >= until - timedelta(milliseconds=50)  # not before the pause ended
