"""Service-measure pages in a real browser, in English and 简体中文: an SLA policy made on
its admin page; the reports page draws
its charts (Chart.js, served by Switchboard) without a CSP violation and links the CSV; the
inbox shows a running SLA clock's time left and sorts by breaching soonest; a team lead's
notification shows in the navigation and is marked read. No English is left in zh-CN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from measures.counters import Tally
from tests.test_ui_i18n import english_left
from tests.ui_support import Live, browser_test, wait_for

LANGS = [("en-US", {"reports": "Reports", "left": "left", "sort": "Breaching soonest",
                    "note": "A conversation missed its first response target"}),
         ("zh-CN", {"reports": "报表", "left": "剩余", "sort": "即将超时",
                    "note": "有会话未达成首次响应目标"})]


@browser_test
@pytest.mark.parametrize(("locale", "words"), LANGS, ids=["en", "zh-CN"])
async def test_reports_sla_badges_and_notifications(ui_live: Live, locale: str,
                                                    words: dict[str, str]) -> None:
    db = ui_live.services.db
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    page = await ui_live.page(admin, locale=locale, timezone="Asia/Shanghai")
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)

    # the policy, made on the SLA page
    await page.goto(ui_live.url + "/admin/sla")
    form = page.locator("#policy-create")
    await form.locator("input[name='name']").fill("标准")
    await form.locator("input[name='first_response_min']").fill("60")
    await form.locator("input[name='resolution_min']").fill("1440")
    await form.locator("input[name='business_hours']").uncheck()
    await page.click("#policy-create-submit")
    await expect(page.locator("#policy-list tbody tr[data-id]")).to_have_count(1)
    if locale == "zh-CN":
        assert english_left(await page.content()) == []
    # a team's lead and its survey switch, on the same page
    status, _ = await ui_live.api("POST", "/api/teams", admin, json={"name": "售后"})
    assert status == 201
    await page.goto(ui_live.url + "/admin/sla")
    lead_form = page.locator("#lead-list form")
    await lead_form.locator(f"input[name='leads'][value='{admin['id']}']").check()
    await lead_form.locator("select[name='csat_enabled']").select_option("yes")
    await lead_form.locator("button[type='submit']").click()
    await expect(page.locator("#sla-notice")).to_be_visible()
    saved = await db.teams.find_one({"name": "售后"})
    assert saved is not None and saved["leads"] == [admin["id"]] and saved["csat_enabled"]
    (policy,) = await db.sla_policies.find({}).to_list()
    assert (policy["first_response_s"], policy["resolution_s"]) == (3600, 86400)
    account = await ui_live.telegram_account(admin)
    conv = await ui_live.customer_says(account, "我的订单还没到")
    await wait_for(lambda: db.sla_timers.find_one({"_id": conv["id"], "due_at": {"$ne": None}}))

    now = datetime.now(UTC)
    tally = Tally()
    dims = {"team_id": None, "agent_id": admin["id"], "channel": "telegram"}
    for days, opened in ((2, 5), (1, 3)):
        at = now - timedelta(days=days)
        tally.add(at, dims, opened=opened, resolved=opened - 1, messages_in=opened * 2,
                  messages_out=opened, sla_n=opened, sla_hit=opened - 1)
        for seconds in (60, 240, 600):
            tally.observe(at, dims, "fr", seconds)
    await tally.flush(db)
    await db.notifications.insert_one({
        "agent_id": admin["id"], "at": now, "kind": "sla_breach", "target": "first_response",
        "conversation_id": conv["id"], "team_id": None, "read": False})

    await page.goto(ui_live.url + "/")
    await expect(page.locator("#nav-reports")).to_have_text(words["reports"])
    await expect(page.locator("#notice-badge")).to_have_text("1")

    # breaching soonest, with the time left
    await page.click("#sort-sla")
    row = page.locator(f"#conv-list li[data-id='{conv['id']}']")
    await expect(row.locator(".sla-badge")).to_contain_text(words["left"])
    await expect(row.locator(".sla-badge")).to_have_attribute("data-state", "ok")
    await expect(page.locator("#sort-sla")).to_have_attribute("aria-current", "true")

    # the conversation's side panel: its SLA clock
    await page.goto(ui_live.url + f"/conversations/{conv['id']}")
    await expect(page.locator("#side-sla-state")).to_have_attribute("data-state", "ok")
    await page.goto(ui_live.url + "/?sort=sla")

    # the reports page: charts drawn by the vendored library, the table, the CSV
    await page.click("#nav-reports")
    await expect(page.locator("#report-charts")).to_have_attribute("data-drawn", "true")
    assert await page.evaluate("window.reportCharts.length") == 2
    table = page.locator("#report-table tbody tr")
    await expect(table).to_have_count(14)  # the last two weeks, one row a day
    busy = page.locator("#report-table tbody tr td[data-column='opened']", has_text="5")
    await expect(busy).to_have_count(1)
    csv_url = await page.get_attribute("#report-csv", "href")
    assert csv_url and "format=csv" in csv_url
    resp = await page.request.get(ui_live.url + csv_url)
    assert resp.ok and resp.headers["content-type"].startswith("text/csv")
    assert (await resp.text()).splitlines()[0].startswith("key,opened,resolved,reopened")
    await page.select_option("select[name='group_by']", "channel")
    await page.click("#report-form button[type='submit']")
    await expect(page.locator("#report-table tbody tr")).to_have_count(1)
    await expect(page.locator("#report-table tbody tr td[data-column='opened']")).to_have_text(
        "9")  # the live customer's conversation too
    if locale == "zh-CN":
        assert english_left(await page.content()) == []

    # the lead's notification, then read
    await page.click("#nav-notifications")
    await expect(page.locator("#notification-list .notification.unread")).to_contain_text(
        words["note"])
    await page.click("#notifications-read")
    await expect(page.locator("#notification-list .notification.unread")).to_have_count(0)
    await expect(page.locator("#notice-badge")).to_have_count(0)
    if locale == "zh-CN":
        assert english_left(await page.content()) == []
    assert violations == [] and page.js_errors == []  # type: ignore[attr-defined]
    assert await db.notifications.count_documents({"agent_id": admin["id"],
                                                   "read": True}) == 1
