"""The channels in the real browser: replying in a Slack thread under the agent's name, X's
weighted counter and "send as DM instead", a mail's subject, formatting and quoted history, and
an account whose credentials were refused getting new ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest_asyncio
from bson import ObjectId
from playwright.async_api import expect

from connectors.email.sandbox import EmailSandbox
from connectors.slack.sandbox import SlackSandbox
from connectors.x.sandbox import XSandbox
from tests.kits.slack import BOT_TOKEN as SLACK_TOKEN
from tests.kits.slack import SIGNING_SECRET
from tests.kits.x import CUSTOMER_ID, OUR_ID, credentials, sandbox_account
from tests.ui_support import BOT_TOKEN, Live, browser_test, wait_for

pytestmark = browser_test

REPLY_RESTRICTED = ("Reply to this conversation is not allowed because you have not been "
                    "mentioned or otherwise engaged by the author of the post you are "
                    "replying to.")


async def _conv_of(ui_live: Live, text: str) -> str:
    async def find() -> str | None:
        doc = await ui_live.services.db.messages.find_one({"direction": "in", "text": text})
        if doc is None:
            return None
        await ui_live.services.store.settle()
        conv = await ui_live.services.db.conversations.find_one(
            {"_id": ObjectId(doc["conversation_id"])})
        return str(conv["_id"]) if conv else None
    found: str = await wait_for(find, timeout=20)
    return found


@pytest_asyncio.fixture(loop_scope="session")
async def slack() -> AsyncIterator[SlackSandbox]:
    sandbox = SlackSandbox()
    await sandbox.start()
    sandbox.add_workspace("T0ACME", "Acme", bot_token=SLACK_TOKEN, signing_secret=SIGNING_SECRET)
    sandbox.add_user("U0CUST", "lin.wei", real_name="Lin Wei", display_name="Lin",
                     locale="zh-CN")
    sandbox.open_dm("U0CUST", "D0CUST01")
    yield sandbox
    await sandbox.stop()


async def test_replying_in_a_slack_conversation_posts_under_the_agents_name(
        ui_live: Live, slack: SlackSandbox) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    agent = await ui_live.person("zhang", display_name="张客服", title="技术支持")
    status, account = await ui_live.api("POST", "/api/accounts", admin, json={
        "platform": "slack", "name": "Acme Slack", "mode": "events",
        "api_base_url": slack.api_url,
        "credentials": {"bot_token": SLACK_TOKEN, "signing_secret": SIGNING_SECRET}})
    assert status == 201, account
    slack.set_events_url(account["webhook_url"])
    await slack.say("U0CUST", "D0CUST01", "我的发票还没收到", wait=True)
    conv = await _conv_of(ui_live, "我的发票还没收到")
    page = await ui_live.page(agent, locale="zh-CN")
    await page.goto(f"{ui_live.url}/conversations/{conv}")
    await expect(page.locator("#live")).to_be_visible()
    await page.fill("#reply-text", "已经为您补开，<!channel> 请查收")
    await page.click("#send")
    (sent,) = await slack.wait_for_sent(1)
    assert sent.username == "张客服 · 技术支持"  # the agent is the sender, not the bot
    assert "<!channel>" not in sent.text and "&lt;!channel&gt;" in sent.text
    await expect(page.locator(".msg-out .badge")).to_have_text("已发送")
    assert page.js_errors == []


@pytest_asyncio.fixture(loop_scope="session")
async def x() -> AsyncIterator[XSandbox]:
    sandbox = XSandbox(limits={"dm_events": 900, "mentions": 900})
    await sandbox.start()
    sandbox_account(sandbox)
    sandbox.add_user("li_na", "李娜", user_id=CUSTOMER_ID)
    yield sandbox
    await sandbox.stop()


async def test_x_counts_weighted_characters_and_offers_a_dm_when_a_reply_is_refused(
        ui_live: Live, x: XSandbox) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    status, account = await ui_live.api("POST", "/api/accounts", admin, json={
        "platform": "x", "name": "Acme X", "mode": "polling", "api_base_url": x.base_url,
        "credentials": {k: v.get_secret_value() for k, v in credentials().items()},
        "options": {"poll_interval_s": 1}})
    assert status == 201, account
    x.inject_mention(CUSTOMER_ID, "快递三天没动了", to=OUR_ID)
    conv = await _conv_of(ui_live, "@ExampleUser 快递三天没动了")
    page = await ui_live.page(admin, locale="zh-CN")
    await page.goto(f"{ui_live.url}/conversations/{conv}")
    await expect(page.locator("#live")).to_be_visible()
    text = "您好" * 70  # 140 CJK characters weigh 280, before the signature
    await page.fill("#reply-text", text)
    _, compose = await ui_live.api("GET", f"/api/conversations/{conv}/compose?text="
                                          f"{quote(text)}", admin)
    assert compose["unit"] == "weighted" and compose["over"] > 0
    await expect(page.locator("#char-count")).to_contain_text(str(compose["used"]))
    await expect(page.locator("#send")).to_be_disabled()

    x.fail("tweets", 403, detail=REPLY_RESTRICTED)
    await page.fill("#reply-text", "这边帮您登记了补发")
    await page.click("#send")
    bubble = page.locator(".msg-out").last
    await expect(bubble.locator(".badge")).to_have_text("发送失败")
    dm = bubble.locator(".retry-alt")
    await expect(dm).to_have_text("改为私信发送")
    await dm.click()
    (sent,) = await x.wait_for_sent(1)
    assert sent["kind"] == "dm" and sent["text"].startswith("这边帮您登记了补发")
    await expect(bubble.locator(".badge")).to_have_text("已发送")
    assert page.js_errors == []


@pytest_asyncio.fixture(loop_scope="session")
async def mailbox() -> AsyncIterator[EmailSandbox]:
    sandbox = EmailSandbox(backend="memory")
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


async def test_a_mail_shows_its_subject_formatting_and_folded_quotes(
        ui_live: Live, mailbox: EmailSandbox) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    status, account = await ui_live.api("POST", "/api/accounts", admin, json={
        "platform": "email", "name": "Acme 客服邮箱", "mode": "imap",
        "credentials": mailbox.credentials(), "options": mailbox.account_options()})
    assert status == 201, account
    await mailbox.inject_customer(
        sender="chen.jing@customer.example", name="陈静", subject="发票抬头填错了",
        text="麻烦帮我改一下发票抬头。\n\n"
             "在 2026年11月30日 周一 10:00，Acme 客服 <support@acme.example> 写道：\n"
             "> 您的发票已开具。\n")
    conv = await _conv_of(ui_live, "麻烦帮我改一下发票抬头。")
    page = await ui_live.page(admin, locale="zh-CN")
    await page.goto(f"{ui_live.url}/conversations/{conv}")
    await expect(page.locator(".conv-subject")).to_have_text("发票抬头填错了")
    msg = page.locator(".msg-in").first
    await expect(msg.locator(".msg-text")).to_have_text("麻烦帮我改一下发票抬头。")
    quoted = msg.locator(".quoted")
    await expect(quoted.locator("summary")).to_have_text("显示引用内容")
    await quoted.locator("summary").click()
    await expect(quoted.locator(".quoted-text")).to_contain_text("您的发票已开具")
    assert page.js_errors == []


async def test_an_account_whose_credentials_were_refused_gets_new_ones(
        ui_live: Live) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    account = await ui_live.telegram_account(admin)
    conv = await ui_live.customer_says(account, "在吗？")
    ui_live.sandbox.fail(BOT_TOKEN, "sendMessage", 401, description="Unauthorized", times=None)
    status, _ = await ui_live.api("POST", f"/api/conversations/{conv['id']}/messages", admin,
                                  json={"text": "在的，请讲"})
    assert status == 202

    async def refused() -> bool:
        doc = await ui_live.services.accounts.get(account["id"])
        return doc.get("status") == "needs_reauth"
    await wait_for(refused, timeout=15)
    ui_live.sandbox.clear_failures()
    page = await ui_live.page(admin, locale="zh-CN")
    await page.goto(f"{ui_live.url}/admin/accounts")
    row = page.locator(f'tr[data-id="{account["id"]}"]')
    await expect(row.locator(".status-pill")).to_have_attribute("data-account-status",
                                                                 "needs_reauth")
    form = row.locator(".credentials-update")
    await expect(form).to_have_attribute("open", "")  # opened for the admin
    await form.locator('input[name="cred.telegram.bot_token"]').fill(BOT_TOKEN)
    await form.locator("button[type=submit]").click()
    await expect(page.locator(f'tr[data-id="{account["id"]}"] .status-pill')).to_have_attribute(
        "data-account-status", "active")
    sent = await ui_live.sandbox.wait_for_sent(BOT_TOKEN, 1, timeout=15)
    assert sent[0]["params"]["text"].startswith("在的，请讲")
    assert page.js_errors == []
