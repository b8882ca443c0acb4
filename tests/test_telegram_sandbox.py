"""The Telegram sandbox, driven through the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import base64
import datetime as dtm
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, MessageEntity, ReplyParameters
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter

from connectors.telegram.sandbox import SECRET_HEADER, TelegramSandbox

TOKEN = "7000000001:sandbox-test-token"
OTHER = "7000000002:sandbox-other-token"
CUSTOMER = 123456789


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    sb = TelegramSandbox(webhook_retry_delay=0.05)
    await sb.start()
    sb.add_bot(TOKEN, 7000000001, "acme_support_bot", "Acme Support")
    yield sb
    await sb.stop()


def make_bot(sb: TelegramSandbox, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=f"{sb.base_url}/bot", base_file_url=f"{sb.base_url}/file/bot")


async def test_get_me_and_multiple_bots(sandbox: TelegramSandbox) -> None:
    sandbox.add_bot(OTHER, 7000000002, "other_bot", "Other")
    async with make_bot(sandbox) as bot, make_bot(sandbox, OTHER) as other:
        me = await bot.get_me()
        assert (me.id, me.username, me.first_name, me.is_bot) == \
            (7000000001, "acme_support_bot", "Acme Support", True)
        assert (await other.get_me()).id == 7000000002


async def test_unknown_token_is_unauthorized(sandbox: TelegramSandbox) -> None:
    with pytest.raises(InvalidToken):
        await make_bot(sandbox, "1:nope").get_me()
    async with aiohttp.ClientSession() as http, \
            http.post(f"{sandbox.base_url}/bot1:nope/getMe") as resp:
        assert resp.status == 401
        assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_send_message_with_reply_and_entities(sandbox: TelegramSandbox) -> None:
    update = sandbox.inject_text(TOKEN, CUSTOMER, "Where is my order?")
    asked = update["message"]["message_id"]
    text = "Hello 👋 it ships today\n— Mei · Acme"
    async with make_bot(sandbox) as bot:
        sent = await bot.send_message(
            CUSTOMER, text, entities=[MessageEntity(MessageEntity.ITALIC, 25, 11)],
            reply_parameters=ReplyParameters(message_id=asked))
    assert sent.message_id == asked + 1
    assert sent.chat.id == CUSTOMER and sent.from_user is not None and sent.from_user.is_bot
    assert sent.reply_to_message is not None and sent.reply_to_message.message_id == asked
    assert sent.entities == (MessageEntity(MessageEntity.ITALIC, 25, 11),)
    (record,) = sandbox.sent(TOKEN)
    assert record["params"]["chat_id"] == CUSTOMER
    assert record["params"]["reply_parameters"] == {"message_id": asked}
    assert record["params"]["entities"] == [{"type": "italic", "offset": 25, "length": 11}]
    assert record["result"]["message_id"] == sent.message_id


async def test_send_message_validation(sandbox: TelegramSandbox) -> None:
    sandbox.inject_text(TOKEN, CUSTOMER, "hi")
    async with make_bot(sandbox) as bot:
        with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
            await bot.send_message(CUSTOMER, "x", reply_parameters=ReplyParameters(999))
        ok = await bot.send_message(CUSTOMER, "x", reply_parameters=ReplyParameters(
            999, allow_sending_without_reply=True))
        assert ok.reply_to_message is None
        with pytest.raises(BadRequest, match=r"(?i)entity beyond end of text"):
            await bot.send_message(CUSTOMER, "👋", entities=[MessageEntity("bold", 0, 3)])
        with pytest.raises(BadRequest, match=r"(?i)message is too long"):
            await bot.send_message(CUSTOMER, "a" * 4097)


async def test_forced_failures(sandbox: TelegramSandbox) -> None:
    sandbox.inject_text(TOKEN, CUSTOMER, "hi")
    sandbox.fail(TOKEN, "sendMessage", 429, retry_after=7)
    sandbox.fail(TOKEN, "sendMessage", 403)
    sandbox.fail(TOKEN, "sendMessage", 400)
    sandbox.fail(TOKEN, "sendMessage", 502, times=2)
    async with make_bot(sandbox) as bot:
        with pytest.raises(RetryAfter) as rate:
            await bot.send_message(CUSTOMER, "x")
        retry_after = rate.value.retry_after
        if isinstance(retry_after, dtm.timedelta):
            retry_after = int(retry_after.total_seconds())
        assert retry_after == 7
        with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
            await bot.send_message(CUSTOMER, "x")
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(CUSTOMER, "x")
        for _ in range(2):
            with pytest.raises(NetworkError, match=r"(?i)Bad Gateway"):
                await bot.send_message(CUSTOMER, "x")
        assert (await bot.send_message(CUSTOMER, "finally")).text == "finally"
        sandbox.fail(TOKEN, "*", 500, times=None)
        for _ in range(3):
            with pytest.raises(NetworkError):
                await bot.get_me()
        sandbox.clear_failures()
        assert (await bot.get_me()).id == 7000000001
    assert [r["params"]["text"] for r in sandbox.sent(TOKEN)] == ["finally"]


async def test_strict_chats_unknown_chat_not_found() -> None:
    sb = TelegramSandbox(strict_chats=True)
    await sb.start()
    try:
        sb.add_bot(TOKEN, 7000000001, "acme_support_bot", "Acme Support")
        async with make_bot(sb) as bot:
            with pytest.raises(BadRequest, match=r"(?i)chat not found"):
                await bot.send_message(555, "hello?")
    finally:
        await sb.stop()


async def test_get_updates_offset_and_long_poll(sandbox: TelegramSandbox) -> None:
    ids = [sandbox.inject_text(TOKEN, CUSTOMER, f"m{i}")["update_id"] for i in range(3)]
    async with make_bot(sandbox) as bot:
        got = await bot.get_updates()
        assert [u.update_id for u in got] == ids
        assert got[0].message is not None and got[0].message.text == "m0"
        assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
        assert [u.update_id for u in await bot.get_updates(limit=1)] == ids[1:2]
        assert await bot.get_updates(offset=ids[-1] + 1) == ()
        assert sandbox.pending_updates(TOKEN) == []

        poll = asyncio.create_task(bot.get_updates(offset=ids[-1] + 1, timeout=10))
        await asyncio.sleep(0.2)
        assert not poll.done()
        started = asyncio.get_running_loop().time()
        new_id = sandbox.inject_text(TOKEN, CUSTOMER, "late")["update_id"]
        (late,) = await asyncio.wait_for(poll, 3)
        assert late.update_id == new_id
        assert asyncio.get_running_loop().time() - started < 1

        quiet = asyncio.get_running_loop().time()
        assert await bot.get_updates(offset=new_id + 1, timeout=0.3) == ()
        assert asyncio.get_running_loop().time() - quiet >= 0.25


async def test_allowed_updates_and_bare_messages(sandbox: TelegramSandbox) -> None:
    async with make_bot(sandbox) as bot:
        await bot.get_updates(allowed_updates=["message"])
        sandbox.inject_update(TOKEN, {"poll": {"id": "1", "question": "?", "options": []}})
        bare = {"message_id": 7, "date": 1728281190, "text": "bare",
                "chat": {"id": -100123, "type": "supergroup", "title": "G"},
                "from": {"id": 5, "is_bot": False, "first_name": "A"}}
        update_id = sandbox.inject_update(TOKEN, bare)
        (update,) = await bot.get_updates()
        assert update.update_id == update_id and update.message is not None
        assert update.message.chat.title == "G"


async def test_get_file_and_download(sandbox: TelegramSandbox) -> None:
    data = bytes(range(256)) * 40
    sandbox.add_file("AgADBAADsample", data, "photos/file_0.jpg", "image/jpeg")
    async with make_bot(sandbox) as bot:
        file = await bot.get_file("AgADBAADsample")
        assert file.file_size == len(data)
        assert file.file_path == f"{sandbox.base_url}/file/bot{TOKEN}/photos/file_0.jpg"
        assert await file.download_as_bytearray() == bytearray(data)
        with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
            await bot.get_file("nope")


async def test_webhook_push_and_redelivery(
        sandbox: TelegramSandbox, aiohttp_server: Any) -> None:
    received: list[tuple[dict[str, Any], str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.json(), request.headers.get(SECRET_HEADER)))
        return web.Response(status=500 if len(received) == 1 else 200)

    app = web.Application()
    app.router.add_post("/webhooks/telegram/acc1", hook)
    server = await aiohttp_server(app)
    url = str(server.make_url("/webhooks/telegram/acc1"))

    async with make_bot(sandbox) as bot:
        assert await bot.set_webhook(url, secret_token="s3cret-Token_1")
        first = sandbox.inject_text(TOKEN, CUSTOMER, "one")["update_id"]
        second = sandbox.inject_text(TOKEN, CUSTOMER, "two")["update_id"]
        for _ in range(100):
            if len(received) >= 3:
                break
            await asyncio.sleep(0.02)
        assert [u["update_id"] for u, _ in received] == [first, first, second]
        assert {secret for _, secret in received} == {"s3cret-Token_1"}
        assert received[2][0]["message"]["text"] == "two"
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 0
        assert info.last_error_message == \
            "Wrong response from the webhook: 500 Internal Server Error"
        with pytest.raises(Conflict, match=r"(?i)webhook is active"):
            await bot.get_updates()
        with pytest.raises(BadRequest, match=r"(?i)unallowed characters"):
            await bot.set_webhook(url, secret_token="bad secret!")
        assert await bot.delete_webhook()
        sandbox.inject_text(TOKEN, CUSTOMER, "three")
        assert [u.message.text for u in await bot.get_updates() if u.message] == ["three"]
    assert len(received) == 3


async def test_webhook_gives_up_after_max_attempts(aiohttp_server: Any) -> None:
    hits: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        hits.append((await request.json())["update_id"])
        return web.Response(status=502)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    sb = TelegramSandbox(webhook_retry_delay=0.01, webhook_max_attempts=3)
    await sb.start()
    try:
        sb.add_bot(TOKEN, 7000000001, "acme_support_bot", "Acme Support")
        async with make_bot(sb) as bot:
            await bot.set_webhook(str(server.make_url("/hook")))
            sb.inject_text(TOKEN, CUSTOMER, "doomed")
            for _ in range(100):
                if not sb.pending_updates(TOKEN) and len(hits) >= 3:
                    break
                await asyncio.sleep(0.02)
        assert len(hits) == 3 and sb.pending_updates(TOKEN) == []
    finally:
        await sb.stop()


async def test_http_controls(sandbox: TelegramSandbox) -> None:
    base = sandbox.base_url
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/_sandbox/bots", json={
                "token": OTHER, "id": 7000000002, "username": "other_bot",
                "first_name": "Other"}) as resp:
            assert resp.status == 201
        async with http.post(f"{base}/_sandbox/updates", json={
                "token": OTHER, "chat_id": -1001971186208, "text": "你好",
                "chat_type": "supergroup", "chat_title": "客服群"}) as resp:
            assert resp.status == 201
            update = (await resp.json())["result"]
            assert update["message"]["chat"]["title"] == "客服群"
        async with http.post(f"{base}/_sandbox/files", json={
                "file_id": "f1", "file_path": "documents/a.txt", "mime": "text/plain",
                "data_base64": base64.b64encode(b"hello").decode()}) as resp:
            assert resp.status == 201
        async with http.post(f"{base}/_sandbox/failures", json={
                "token": OTHER, "method": "sendMessage", "status": 429,
                "retry_after": 3}) as resp:
            assert resp.status == 201
        # A raw JSON call, as a non-PTB client would make it.
        payload = {"chat_id": str(-1001971186208), "text": "hi",
                   "reply_parameters": {"message_id": update["message"]["message_id"]}}
        async with http.post(f"{base}/bot{OTHER}/sendMessage", json=payload) as resp:
            assert resp.status == 429
            assert (await resp.json())["parameters"] == {"retry_after": 3}
        async with http.post(f"{base}/bot{OTHER}/sendMessage", json=payload) as resp:
            assert resp.status == 200
            assert (await resp.json())["result"]["reply_to_message"]["text"] == "你好"
        async with http.post(f"{base}/_sandbox/failures", json={
                "token": OTHER, "method": "*", "status": 500, "times": None}) as resp:
            assert resp.status == 201
        async with http.delete(f"{base}/_sandbox/failures", params={"token": OTHER}) as resp:
            assert resp.status == 200
        async with http.get(f"{base}/_sandbox/sent", params={"token": OTHER}) as resp:
            (sent,) = (await resp.json())["result"]
            assert sent["params"]["text"] == "hi"
        async with http.get(f"{base}/file/bot{OTHER}/documents/a.txt") as resp:
            assert await resp.read() == b"hello"
        async with http.post(f"{base}/_sandbox/updates", json={"token": "nope"}) as resp:
            assert resp.status == 400
    assert await sandbox.wait_for_sent(OTHER, 1, timeout=1) == sandbox.sent(OTHER)


async def test_wait_for_sent(sandbox: TelegramSandbox) -> None:
    sandbox.inject_text(TOKEN, CUSTOMER, "hi")
    async with make_bot(sandbox) as bot:
        waiter = asyncio.create_task(sandbox.wait_for_sent(TOKEN, 2, timeout=3))
        await bot.send_message(CUSTOMER, "a")
        await bot.send_message(CUSTOMER, "b")
        assert [r["result"]["text"] for r in await waiter] == ["a", "b"]
    with pytest.raises(TimeoutError):
        await sandbox.wait_for_sent(TOKEN, 3, timeout=0.1)


async def test_competing_long_polls_conflict(sandbox: TelegramSandbox) -> None:
    async with make_bot(sandbox) as first, make_bot(sandbox) as second:
        older = asyncio.create_task(first.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        newer = asyncio.create_task(second.get_updates(timeout=0.2))
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates"):
            await asyncio.wait_for(older, 2)
        assert await newer == ()
