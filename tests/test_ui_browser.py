"""The agent UI in a real browser (Chromium through Playwright): login, live inbox, safety."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

from playwright.async_api import expect

from tests.ui_support import BOT_TOKEN, Live, browser_test, wait_for

pytestmark = browser_test


async def test_login_and_logout(ui_live: Live) -> None:
    await ui_live.person("zhang", display_name="张客服")
    page = await ui_live.page()
    await page.goto(ui_live.url + "/")
    await expect(page).to_have_url(ui_live.url + "/login?next=/")
    await page.fill("#login", "zhang")
    await page.fill("#password", "not the password")
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).to_have_text("Wrong login or password.")
    await page.fill("#password", ui_live.people["zhang"]["password"])
    await page.click("#login-submit")
    await expect(page.locator("h1")).to_have_text("Inbox")
    await expect(page.locator(".me")).to_have_text("张客服")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["sb_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert session["value"] != ui_live.people["zhang"]["session"]  # a new session id

    await page.click("#logout")
    await expect(page).to_have_url(ui_live.url + "/login")
    assert await ui_live.services.agents.session(session["value"]) is None
    await page.goto(ui_live.url + "/")
    await expect(page).to_have_url(ui_live.url + "/login?next=/")
    assert page.js_errors == []


async def test_new_message_appears_live_in_the_open_inbox(ui_live: Live) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    account = await ui_live.telegram_account(admin)
    first = await ui_live.customer_says(account, "你好，我的订单还没到", chat_id=1001,
                                        first_name="王", last_name="小明", username="xiaoming")
    page = await ui_live.page(admin)
    await page.goto(ui_live.url + "/")
    rows = page.locator("#conv-list .conv")
    await expect(rows).to_have_count(1)
    await expect(page.locator("#live")).to_be_visible()

    started = time.monotonic()
    ui_live.sandbox.inject_text(
        BOT_TOKEN, 1002, "Is anyone there?",
        user={"id": 1002, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace",
              "username": "ada"})
    top = rows.first
    await expect(top.locator(".name")).to_have_text("Ada Lovelace", timeout=3000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the new conversation took {elapsed:.2f}s to appear"
    await expect(top.locator(".handle")).to_have_text("@ada")
    await expect(top.locator(".preview")).to_have_text("Is anyone there?")
    await expect(top.locator(".unread")).to_have_text("1")
    await expect(top.locator(".channel")).to_have_text("Telegram")
    await expect(rows).to_have_count(2)

    # a second message in the older conversation moves it to the top and bumps its badge
    await ui_live.customer_says(account, "还在吗？", chat_id=1001)
    await expect(rows.first.locator(".name")).to_have_text("王 小明")
    await expect(rows.first.locator(".unread")).to_have_text("2")
    assert first["id"] == await rows.first.get_attribute("data-id")
    assert page.js_errors == []


async def test_customer_html_is_shown_as_text(ui_live: Live) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    account = await ui_live.telegram_account(admin)
    evil = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    page = await ui_live.page(admin)
    await page.goto(ui_live.url + "/")
    await expect(page.locator("#live")).to_be_visible()
    conv = await ui_live.customer_says(account, evil, chat_id=666, first_name="<b>Eve</b>",
                                       last_name="<img src=x onerror=alert(1)>",
                                       username="eve")
    row = page.locator("#conv-list .conv").first
    await expect(row.locator(".preview")).to_have_text(evil)  # live row, built by app.js
    await expect(row.locator(".name")).to_have_text("<b>Eve</b> <img src=x onerror=alert(1)>")
    await page.goto(f"{ui_live.url}/conversations/{conv['id']}")  # server-rendered
    await expect(page.locator(".msg-in .msg-text")).to_have_text(evil)
    await expect(page.locator("#conv-name")).to_contain_text("<b>Eve</b>")
    await page.goto(ui_live.url + "/")
    await expect(page.locator("#conv-list .conv .preview").first).to_have_text(evil)
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("#thread img, #conv-list img").count() == 0
    assert page.js_errors == []


async def test_agent_gets_403_on_admin_pages(ui_live: Live) -> None:
    agent = await ui_live.person("zhang", display_name="张客服")
    page = await ui_live.page(agent)
    for path in ("/admin/accounts", "/admin/agents", "/admin/audit"):
        response = await page.goto(ui_live.url + path)
        assert response is not None and response.status == 403, path
        await expect(page.locator(".error-code")).to_have_text("403")
    await page.goto(ui_live.url + "/")
    assert await page.locator("nav.nav a[href='/admin/accounts']").count() == 0
    for method, path in (("GET", "/api/accounts"), ("POST", "/api/agents"),
                         ("GET", "/api/audit")):
        status, _ = await ui_live.api(method, path, agent, json={})
        assert status == 403, path


async def test_conversation_page_marks_read(ui_live: Live) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    account = await ui_live.telegram_account(admin)
    conv = await ui_live.customer_says(account, "第一条消息", chat_id=77)
    assert conv["doc"]["unread"] == 1
    page = await ui_live.page(admin)
    await page.goto(f"{ui_live.url}/conversations/{conv['id']}")
    await expect(page.locator(".msg-in .msg-text")).to_have_text("第一条消息")

    async def unread() -> int:
        doc = await ui_live.services.store.get_conversation(conv["id"])
        return int(doc["unread"])

    assert await unread() == 0
    await expect(page.locator("#live")).to_be_visible()
    await ui_live.customer_says(account, "第二条消息", chat_id=77)
    await expect(page.locator(".msg-in .msg-text").last).to_have_text("第二条消息")
    await wait_for(lambda: _is_zero(unread))  # marked read again while the page is open
    assert page.js_errors == []


async def _is_zero(probe) -> bool:  # type: ignore[no-untyped-def]
    return await probe() == 0


async def test_admin_adds_a_telegram_account(ui_live: Live) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    page = await ui_live.page(admin)
    await page.goto(ui_live.url + "/admin/accounts")
    await page.select_option("#account-platform", "telegram")  # not the only platform
    await page.fill("#account-name", "Acme support")
    await page.fill("#cred-telegram-bot_token", "123456:" + "X" * 30)  # unknown to Telegram
    await page.click("details.advanced summary")
    await page.fill("#account-api-base", ui_live.sandbox.base_url)

    await page.click("#account-test")  # JavaScript: tests without saving
    result = page.locator("#test-result")
    await expect(result).to_have_text(
        "The platform refused these credentials. Check the token and try again.")
    await expect(result).to_have_class("notice error")
    await page.click("#account-save")  # the form: the server tests again and refuses
    await expect(page.locator("#account-result")).to_contain_text("refused these credentials")
    assert await page.input_value("#account-name") == "Acme support"
    assert await page.input_value("#cred-telegram-bot_token") == ""  # never rendered back

    await page.fill("#cred-telegram-bot_token", BOT_TOKEN)
    await page.click("#account-test")
    await expect(result).to_have_text("The connection works: @acme_support_bot")
    await page.click("#account-save")
    webhook = page.locator("#created-webhook")
    await expect(webhook).to_be_visible()
    doc = await ui_live.services.db.accounts.find_one({"name": "Acme support"})
    expected = f"{ui_live.url}/webhooks/telegram/{doc['_id']}"
    await expect(webhook).to_have_text(expected)
    assert ui_live.sandbox.webhook_info(BOT_TOKEN)["url"] == expected
    row = page.locator(f"#accounts-table tr[data-id='{doc['_id']}']")
    await expect(row).to_contain_text("@acme_support_bot")
    assert BOT_TOKEN not in await page.content()

    page.once("dialog", lambda dialog: dialog.accept())
    await row.locator("button.danger").click()
    await expect(page.locator("#accounts-table")).to_have_count(0)
    assert await ui_live.services.db.accounts.count_documents({}) == 0
    assert page.js_errors == []


async def _conversation_page(ui_live: Live, **who: Any) -> tuple[Any, dict[str, Any], Any]:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    agent = await ui_live.person("zhang", display_name="张客服", title="技术支持", **who)
    account = await ui_live.telegram_account(admin)
    conv = await ui_live.customer_says(account, "我的订单什么时候发货？", chat_id=5150)
    page = await ui_live.page(agent)
    await page.goto(f"{ui_live.url}/conversations/{conv['id']}")
    await expect(page.locator("#live")).to_be_visible()
    return page, conv, agent


async def test_reply_is_delivered_with_the_signature_and_shows_sent(ui_live: Live) -> None:
    page, conv, agent = await _conversation_page(ui_live)
    await expect(page.locator("#reply-as")).to_have_text("You reply as 张客服 · Acme")
    await expect(page.locator("#send")).to_be_disabled()
    text = "Your parcel left the warehouse today."
    await expect(page.locator("#signature-preview .value")).to_have_text("— 张客服 · Acme")
    await page.fill("#reply-text", text)
    # the count is the connector's measure of the whole reply, signature included
    status, compose = await ui_live.api(
        "GET", f"/api/conversations/{conv['id']}/compose?text={quote(text)}", agent)
    assert status == 200 and compose["limit"] == 4096 and compose["fits"]
    assert len(text) < compose["used"] < len(text) + 40
    await expect(page.locator("#char-count")).to_have_text(
        f"{compose['used']} / {compose['limit']}")
    await page.dblclick("#send")  # a double click sends once
    sent = await ui_live.sandbox.wait_for_sent(BOT_TOKEN, 1)
    delivered = sent[0]["params"]["text"]
    assert delivered.startswith(text) and "张客服" in delivered and "Acme" in delivered
    bubble = page.locator(".msg-out").last
    await expect(bubble.locator(".msg-text")).to_have_text(text)
    await expect(bubble.locator(".badge")).to_have_text("Sent")  # live, from the event stream
    await expect(bubble.locator(".as-sent-text")).to_have_text(delivered)
    await expect(page.locator("#reply-text")).to_have_value("")
    await page.wait_for_timeout(300)
    assert len(ui_live.sandbox.sent(BOT_TOKEN)) == 1
    assert await ui_live.services.db.messages.count_documents({"direction": "out"}) == 1

    await page.fill("#reply-text", "还有其他问题吗？")
    await page.press("#reply-text", "Control+Enter")
    await ui_live.sandbox.wait_for_sent(BOT_TOKEN, 2)
    await expect(page.locator(".msg-out .badge")).to_have_text(["Sent", "Sent"])
    assert page.js_errors == []


async def test_the_counter_is_the_connectors_measure_and_stops_a_long_reply(
        ui_live: Live) -> None:
    """The reply box asks the server (GET …/compose?text=) how long the whole reply is in the
    channel's units; over the limit, Send is off. No platform rule lives in app.js."""
    page, conv, agent = await _conversation_page(ui_live)
    text = "x" * 4090  # fits alone; with the signature it does not
    await page.fill("#reply-text", text)
    status, compose = await ui_live.api(
        "GET", f"/api/conversations/{conv['id']}/compose?text={text}", agent)
    assert status == 200 and compose["over"] > 0 and not compose["fits"]
    count = page.locator("#char-count")
    await expect(count).to_have_text(f"{compose['used']} / {compose['limit']}")
    await expect(count).to_have_class(re.compile(r"\bover\b"))
    await expect(page.locator("#send")).to_be_disabled()
    # a draft too long to ask about in a URL (36 KB encoded): estimated, and still refused
    await page.fill("#reply-text", "长" * 4090)
    await expect(count).to_have_class(re.compile(r"\bestimate\b.*\bover\b|\bover\b.*\bestimate"))
    await expect(page.locator("#send")).to_be_disabled()
    await page.fill("#reply-text", "短")
    await expect(page.locator("#send")).to_be_enabled()
    assert page.js_errors == []


async def test_lost_response_then_resend_delivers_once(ui_live: Live) -> None:
    """The server stored the reply but the answer never arrived: Send again reuses the key."""
    page, conv, _ = await _conversation_page(ui_live)
    dropped: list[str] = []

    async def drop_first_answer(route: Any) -> None:
        if not dropped:
            response = await route.fetch()
            dropped.append(str(response.status))
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route(f"**/api/conversations/{conv['id']}/messages", drop_first_answer)
    await page.fill("#reply-text", "只发一次")
    await page.click("#send")
    await expect(page.locator("#compose-error")).to_be_visible()
    assert await page.input_value("#reply-text") == "只发一次"  # the draft is kept
    await page.click("#send")
    await expect(page.locator("#reply-text")).to_have_value("")
    await ui_live.sandbox.wait_for_sent(BOT_TOKEN, 1)
    await page.wait_for_timeout(500)
    assert len(ui_live.sandbox.sent(BOT_TOKEN)) == 1
    assert await ui_live.services.db.messages.count_documents({"direction": "out"}) == 1
    assert dropped and dropped[0].startswith("2")


async def test_failed_delivery_shows_the_reason_and_retry_works(ui_live: Live) -> None:
    page, _, _ = await _conversation_page(ui_live)
    ui_live.sandbox.fail(BOT_TOKEN, "sendMessage", 403,
                         description="Forbidden: bot was blocked by the user", times=None)
    await page.fill("#reply-text", "您好，请问还需要帮助吗？")
    await page.click("#send")
    bubble = page.locator(".msg-out").last
    await expect(bubble.locator(".badge")).to_have_text("Failed")
    await expect(bubble.locator(".delivery-error")).to_have_text("The customer blocked the bot.")
    retry = bubble.locator("button.retry")
    await expect(retry).to_be_visible()
    assert ui_live.sandbox.sent(BOT_TOKEN) == []

    ui_live.sandbox.clear_failures(BOT_TOKEN)
    await retry.click()
    await expect(bubble.locator(".badge")).to_have_text("Sent")
    await expect(retry).to_be_hidden()
    await expect(bubble.locator(".delivery-error")).to_have_text("")
    sent = await ui_live.sandbox.wait_for_sent(BOT_TOKEN, 1)
    assert sent[0]["params"]["text"].startswith("您好，请问还需要帮助吗？")
    await page.reload()  # and the server-rendered page agrees
    await expect(page.locator(".msg-out .badge")).to_have_text("Sent")
    assert page.js_errors == []


def _png() -> bytes:
    """A valid 4x4 teal PNG, made here (no binary fixture needed)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x1f\x6f\x6a" * 4 for _ in range(4))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def test_attachments_images_inline_files_as_links(ui_live: Live) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    await ui_live.telegram_account(admin)
    ui_live.sandbox.add_file("PHOTO-1", _png(), "photos/file_1.png", "image/png")
    ui_live.sandbox.add_file("DOC-1", b"%PDF-1.4 invoice", "documents/file_2.pdf",
                             "application/pdf")
    user = {"id": 3003, "is_bot": False, "first_name": "李", "last_name": "雷"}
    chat = {"id": 3003, "type": "private", "first_name": "李", "last_name": "雷"}
    ui_live.sandbox.inject_update(BOT_TOKEN, {"message": {
        "message_id": 1, "from": user, "chat": chat, "date": int(time.time()),
        "photo": [{"file_id": "PHOTO-1", "file_unique_id": "p1", "file_size": 100,
                   "width": 4, "height": 4}], "caption": "截图"}})
    ui_live.sandbox.inject_update(BOT_TOKEN, {"message": {
        "message_id": 2, "from": user, "chat": chat, "date": int(time.time()),
        "document": {"file_id": "DOC-1", "file_unique_id": "d1", "file_name": "发票.pdf",
                     "mime_type": "application/pdf", "file_size": 16}}})

    async def both() -> Any:
        return await ui_live.services.db.messages.count_documents({"direction": "in"}) == 2

    await wait_for(both)
    doc = await ui_live.services.db.messages.find_one({"text": "截图"})
    page = await ui_live.page(admin)
    await page.goto(f"{ui_live.url}/conversations/{doc['conversation_id']}")
    image = page.locator(".attachment.image img")
    await expect(image).to_have_attribute("src", f"/api/messages/{doc['_id']}/attachments/0")
    await page.wait_for_function(
        "() => document.querySelector('.attachment.image img').naturalWidth === 4")
    link = page.locator("a.attachment.file")
    await expect(link).to_contain_text("发票.pdf")
    response = await page.request.get(ui_live.url + str(await link.get_attribute("href")))
    assert response.status == 200 and await response.body() == b"%PDF-1.4 invoice"
    anonymous = await ui_live.http.get(ui_live.url + str(await image.get_attribute("src")))
    assert anonymous.status == 401  # only through the authenticated proxy
    assert page.js_errors == []
