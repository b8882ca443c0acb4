"""Canned replies, suggestions and automatic messages in a real browser, in English and
简体中文: a shared reply added on the canned-replies page, then in a conversation `/thlc`
lists it (arrow keys move, Enter inserts the body in the customer's language with the
placeholders filled), a suggested reply inserts with one click, the usage count follows, and
a team's automatic messages are switched on. The zh-CN pages leave no English."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.test_ui_i18n import english_left
from tests.test_ui_pages import check_markup
from tests.ui_support import Live, browser_test, wait_for

FILLED = "王 小明您好，我是李经理。退货请在订单里申请，审核后 3 天内退款。"
LANGS = [("en-US", {"saved": "Saved.", "suggest": "Suggested replies:"}),
         ("zh-CN", {"saved": "已保存。", "suggest": "推荐回复："})]


@browser_test
@pytest.mark.parametrize(("locale", "words"), LANGS, ids=["en", "zh-CN"])
async def test_canned_replies_in_the_reply_box(ui_live: Live, locale: str,
                                               words: dict[str, str]) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    account = await ui_live.telegram_account(admin)
    status, team = await ui_live.api("POST", "/api/teams", admin, json={
        "name": "售后", "names": {"zh-CN": "售后"}, "members": [admin["id"]]})
    assert status == 201
    await ui_live.api("POST", "/api/canned-replies", admin, json={
        "shortcut": "track", "title": "物流查询", "scope": "everyone",
        "body": {"zh-CN": "请把订单号发给我，我帮您查快递。"}})

    page = await ui_live.page(admin, locale=locale)
    await page.goto(ui_live.url + "/canned")
    form = page.locator("#canned-create")
    await form.locator("input[name='shortcut']").fill("return")
    await form.locator("input[name='title']").fill("退货流程")
    await form.locator("select[name='scope']").select_option("everyone")
    await form.locator("textarea[name='body_zh-CN']").fill(
        "{customer_name}您好，我是{agent_name}。退货请在订单里申请，审核后 3 天内退款。")
    await form.locator("textarea[name='body_en']").fill("Hi {customer_name}, return it "
                                                        "from your order page.")
    await form.locator("textarea[name='examples']").fill("怎么退货\n我要退货")
    await page.click("#canned-create-submit")
    await expect(page.locator("#canned-notice")).to_have_text(words["saved"])
    await expect(page.locator("#canned-list .canned-item")).to_have_count(2)
    check_markup(await page.content())  # CSP-clean, a CSRF token in every form
    if locale == "zh-CN":
        assert english_left(await page.content()) == []

    conv = await ui_live.customer_says(account, "你好，我想退货，要怎么操作？")
    await page.goto(f"{ui_live.url}/conversations/{conv['id']}")
    box = page.locator("#reply-text")
    await box.click()
    await box.type("/thlc")
    pop = page.locator("#canned-pop")
    await expect(pop.locator(".canned-option").first).to_contain_text("退货流程")
    await expect(pop.locator(".canned-option[aria-selected='true']")).to_have_attribute(
        "data-shortcut", "return")
    await box.press("ArrowDown")
    await box.press("ArrowUp")
    await box.press("Enter")
    await expect(pop).to_be_hidden()
    await expect(box).to_have_value(FILLED)

    # the suggestions beside the box: the return reply first, one click inserts it
    suggestions = page.locator("#suggestions")
    await expect(suggestions).to_contain_text(words["suggest"])
    first = page.locator("#suggest-list .suggest-item").first
    await expect(first).to_have_attribute("data-shortcut", "return")
    await box.fill("")
    await first.click()
    await expect(box).to_have_value(FILLED)
    # typing "/" and letters that match nothing says so; Escape closes the list
    await box.fill("")
    await box.type("/zzzz")
    await expect(pop.locator(".canned-none")).to_be_visible()
    await box.press("Escape")
    await expect(pop).to_be_hidden()
    doc = await wait_for(lambda: ui_live.services.db.canned_replies.find_one(
        {"shortcut": "return", "uses": 2}))
    assert doc is not None

    # a team's automatic messages, switched on from their page
    await page.goto(f"{ui_live.url}/admin/auto-messages?team={team['id']}")
    await page.locator("input[name='welcome_enabled']").check()
    await page.locator("textarea[name='welcome_zh-CN']").fill("您好，欢迎联系{team}。")
    await page.click("#auto-save")
    await expect(page.locator("#auto-notice")).to_have_text(words["saved"])
    check_markup(await page.content())
    if locale == "zh-CN":
        assert english_left(await page.content()) == []
    settings = await ui_live.services.answers.auto.settings_of(team["id"])
    assert settings["welcome"]["enabled"] and not settings["closing"]["enabled"]
    assert settings["welcome"]["texts"]["zh-CN"] == "您好，欢迎联系{team}。"
    assert page.js_errors == []  # type: ignore[attr-defined]
