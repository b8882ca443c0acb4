"""Team-work pages in a real browser, in English and 简体中文: teams and routing rules (with
"this message would go to 售后"), the name policy preview, a routed conversation's side panel,
private notes, collision detection, failed replies with the navigation badge, search. Plus the
pages over HTTP: CSP-clean, CSRF on every form, no English left in zh-CN, admin-only."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from bson import ObjectId
from playwright.async_api import expect

from tests.conftest import ADMIN_PASSWORD, AGENT_PASSWORD
from tests.helpers import inbound
from tests.test_login import log_in
from tests.test_ui_i18n import ZH, english_left
from tests.test_ui_pages import Markup
from tests.ui_support import BOT_TOKEN, Live, browser_test, wait_for
from web.app import Services

LANGS = [("en-US", {"try": "This message would go to After-sales", "note": "Private note",
                    "typing": "李助理 is replying", "team": "After-sales"}),
         ("zh-CN", {"try": "这条消息会分到售后", "note": "内部备注",
                    "typing": "李助理 正在回复", "team": "售后"})]


async def failed_reply(live: Live, who: dict[str, Any], conv_id: str) -> str:
    """A reply the platform refuses for good (the customer blocked the bot): failed for real."""
    live.sandbox.fail(BOT_TOKEN, "sendMessage", 403,
                      description="Forbidden: bot was blocked by the user", times=None)
    status, body = await live.api("POST", f"/api/conversations/{conv_id}/messages", who,
                                  json={"text": "您好，<b>已发货</b>"})
    assert status == 202, body
    await wait_for(lambda: live.services.db.messages.find_one(
        {"_id": ObjectId(body["id"]), "delivery.state": "failed"}))
    live.sandbox.clear_failures(BOT_TOKEN)
    return str(body["id"])


@browser_test
@pytest.mark.parametrize(("locale", "words"), LANGS, ids=["en", "zh-CN"])
async def test_teams_rules_and_a_routed_conversation(ui_live: Live, locale: str,
                                                     words: dict[str, str]) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    helper = await ui_live.person("li", display_name="李助理")
    await ui_live.services.db.agents.update_one({"_id": admin["doc"]["_id"]},
                                                {"$set": {"availability": "online"}})
    page = await ui_live.page(admin, locale=locale)
    await page.goto(ui_live.url + "/admin/teams")
    form = page.locator("#team-create")
    await form.locator("input[name='name_zh-CN']").fill("售后")
    await form.locator("input[name='name_en']").fill("After-sales" if locale == "en-US" else "")
    await form.locator("input[name='title']").fill("售后服务")
    await form.locator(f"input[name='members'][value='{admin['id']}']").check()
    await form.locator("input[name='day_mon']").check()
    await page.click("#team-create-submit")
    await expect(page.locator("#teams-notice")).to_be_visible()
    await expect(page.locator("#team-list .team")).to_have_count(1)
    rule = page.locator("#rule-create")
    await rule.locator("input[name='name']").fill("退款")
    await rule.locator("input[name='keywords']").fill("退款，退货")
    await rule.locator("select[name='team_id']").select_option(index=1)
    await rule.locator("select[name='priority']").select_option("high")
    await page.click("#rule-create-submit")
    await expect(page.locator("#rule-list tbody tr")).to_have_count(1)
    await page.fill("#try-text", "你好，我想申请退款")
    await page.click("#rule-try-submit")
    await expect(page.locator("#try-result")).to_contain_text(words["try"])

    # a customer writes: routed to the team, assigned to the online admin, shown in the panel
    account = await ui_live.telegram_account(admin)
    conv = await ui_live.customer_says(account, "我要退货，<script>x</script>")
    await wait_for(lambda: ui_live.services.db.conversations.find_one(
        {"_id": ObjectId(conv["id"]), "routing": {"$exists": True}}))
    await page.goto(f"{ui_live.url}/conversations/{conv['id']}")
    await expect(page.locator("#side-team")).to_have_text(words["team"])
    await expect(page.locator("#side-reason")).to_contain_text("退货")
    await expect(page.locator("#assignee-name")).to_have_text("李经理")
    await page.fill("#note-text", "老顾客，<i>注意</i>语气")
    await page.click("#note-save")
    note = page.locator(".msg-note")
    await expect(note.locator(".msg-text")).to_have_text("老顾客，<i>注意</i>语气")
    await expect(note.locator(".note-tag")).to_contain_text(words["note"])
    # collision detection: the helper opens the same conversation and types
    other = await ui_live.page(helper, locale=locale)
    await other.goto(f"{ui_live.url}/conversations/{conv['id']}")
    await expect(other.locator("#side-team")).to_be_visible()
    await other.locator("#reply-text").press_sequentially("您好")
    await expect(page.locator("#presence")).to_contain_text(words["typing"])
    assert await page.evaluate("typeof window.x") == "undefined"
    assert page.js_errors == [] and other.js_errors == []


@browser_test
@pytest.mark.parametrize(("locale", "words"), LANGS, ids=["en", "zh-CN"])
async def test_failed_replies_badge_retry_and_search(ui_live: Live, locale: str,
                                                     words: dict[str, str]) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    account = await ui_live.telegram_account(admin)
    conv = await ui_live.customer_says(account, "我的订单还没到")
    mid = await failed_reply(ui_live, admin, conv["id"])
    page = await ui_live.page(admin, locale=locale)
    await page.goto(ui_live.url + "/")
    await expect(page.locator("#failed-badge")).to_have_text("1")
    await page.click("#nav-failed")
    item = page.locator(f".failed-item[data-id='{mid}']")
    await expect(item.locator(".msg-text")).to_have_text("您好，<b>已发货</b>")
    await expect(item.locator(".open-conv")).to_have_attribute(
        "href", f"/conversations/{conv['id']}")
    await item.locator(".retry").click()
    await expect(page.locator("#failed-empty")).to_be_visible()
    doc = await ui_live.services.db.messages.find_one({"_id": ObjectId(mid)})
    assert doc["delivery"]["state"] != "failed"

    await wait_for(lambda: ui_live.services.db.search_index.find_one({"t": "订单"}))
    await page.goto(ui_live.url + "/search")
    await page.fill("#search-q", "订单还没到")
    await page.click("#search-submit")
    hit = page.locator("#search-results .hit-message")
    await expect(hit.locator(".snippet")).to_have_text("我的订单还没到")
    await hit.locator("a").click()
    await expect(page).to_have_url(f"{ui_live.url}/conversations/{conv['id']}")
    assert page.js_errors == []


@browser_test
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
async def test_name_policy_preview_and_review(ui_live: Live, locale: str) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    await ui_live.telegram_account(admin)
    await ui_live.services.db.agents.update_one({"_id": admin["doc"]["_id"]},
                                                {"$set": {"name_parts": {"surname": "李"}}})
    page = await ui_live.page(admin, locale=locale)
    await page.goto(ui_live.url + "/admin/names")
    await page.fill("#policy-template", "{surname}客服")
    await page.click("#policy-preview")
    row = page.locator("#name-preview tr[data-login='boss']")
    await expect(row).to_contain_text("李客服")
    await expect(row).to_contain_text("— 李客服 · Acme")
    await page.fill("#policy-template", "{surname}客服")
    await page.click("#policy-save")
    await expect(page.locator("#names-notice")).to_be_visible()
    await expect(page.locator("#policy-list .policy[data-id='default'] code")).to_have_text(
        "{surname}客服")
    await page.fill("#review-days", "0")
    await page.locator("#review-days").press("Enter")
    await expect(page.locator("#review-list li[data-id]").first).to_be_visible()
    await page.locator("#review-list .review").first.click()
    await expect(page.locator("#names-notice")).to_be_visible()
    assert page.js_errors == []


def check_markup(html: str) -> None:
    """As tests/test_ui_pages.py, CSRF required on every form that changes something (the
    search and review-period forms are GETs and must not put the token in a URL)."""
    markup = Markup()
    markup.feed(html)
    assert markup.problems == []
    for form in markup.forms:
        assert form["csrf"] or form["method"] == "get", form["action"]


async def test_team_pages_over_http(client: TestClient, services: Services,
                                    admin: dict[str, Any], agent: dict[str, Any]) -> None:
    result = await services.store.ingest(inbound(1, text="你好 <b>在吗</b>"))
    await services.teams.store.create_team({"name": "售后", "names": {"zh-CN": "售后"}})
    await services.teams.store.save_label("贵宾", "#e11d48", create=True)
    await log_in(client, "boss", ADMIN_PASSWORD, **ZH)
    problems = {}
    for path in ("/admin/teams", "/admin/names", "/failed", "/search", "/search?q=你好",
                 f"/conversations/{result.conversation_id}"):
        resp = await client.get(path, headers=ZH)
        assert resp.status == 200, path
        html = await resp.text()
        check_markup(html)
        problems[path] = english_left(html)
    assert {p: left for p, left in problems.items() if left} == {}
    client.session.cookie_jar.clear()
    await log_in(client, "zhang", AGENT_PASSWORD)
    for path in ("/admin/teams", "/admin/names"):
        assert (await client.get(path)).status == 403
    assert (await client.get("/failed")).status == 200
