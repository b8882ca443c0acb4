"""The agent UI in a real browser (Chromium through Playwright): login, live inbox, safety."""

from __future__ import annotations

import time

from playwright.async_api import expect

from tests.ui_support import Live, browser_test, wait_for

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
        "7000000001:AAH-sandbox-token-for-browser-tests-0", 1002, "Is anyone there?",
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
    from tests.ui_support import BOT_TOKEN

    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    page = await ui_live.page(admin)
    await page.goto(ui_live.url + "/admin/accounts")
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
