"""Regenerate the README screenshots: docs/inbox.png, docs/conversation.png, docs/accounts.png.

    .venv/bin/python docs/screenshots.py        # needs chromium + fonts-noto-cjk (make browser)

Everything is real: an in-memory embedded database, the whole app on a free port, the Telegram
sandbox pushing customer messages to its webhook, and Chromium driving the UI — the reply in the
conversation screenshot is typed into the reply box and delivered to the sandbox.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.telegram.sandbox import TelegramSandbox  # noqa: E402
from inbox.embedded import EmbeddedServer  # noqa: E402
from web.app import create_app  # noqa: E402
from web.runtime import start_services, stop_services  # noqa: E402
from web.settings import load_settings  # noqa: E402

DOCS = ROOT / "docs"
TOKEN = "7000000001:AAH-screenshot-sandbox-token-000000"  # noqa: S105 - sandbox only
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CUSTOMERS: list[tuple[int, dict[str, Any], list[str]]] = [
    (2001, {"first_name": "Maria", "last_name": "Garcia", "username": "mgarcia"},
     ["Hi! I was charged twice for order #48213, can you check?"]),
    (2002, {"first_name": "陈", "last_name": "静", "username": "chenjing"},
     ["请问国际运费怎么计算？寄到新加坡大概几天？"]),
    (2003, {"first_name": "Tom", "last_name": "Becker"},
     ["The invite link for the team workspace has expired."]),
    (2004, {"first_name": "刘", "last_name": "洋", "username": "liuyang88"},
     ["发票抬头写错了，可以重新开一张吗？", "公司名称是：上海星河科技有限公司"]),
    (2001, {"first_name": "Maria", "last_name": "Garcia", "username": "mgarcia"},
     ["Here is the receipt number: RC-20931"]),
    (2005, {"first_name": "王", "last_name": "小明", "username": "xiaoming"},
     ["你好，我的订单 #51027 三天了还没发货，能帮忙查一下吗？"]),
]


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def until(probe: Any, tries: int = 200) -> Any:
    for _ in range(tries):
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {probe}")


async def main() -> None:
    from playwright.async_api import async_playwright

    db_server = EmbeddedServer(data_dir=None, storage=":memory:", sync_on_commit=False)
    db_server.spawn()
    await db_server.wait_ready()
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            server={"public_url": url}, database={"name": "screenshots", "data_dir": tmp},
            security={"secret_key": "screenshots-only-secret-key"},
            ui={"default_timezone": "Asia/Shanghai"})
        services = await start_services(settings, db_server.uri)
        runner = web.AppRunner(create_app(services), access_log=None, shutdown_timeout=1)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        sandbox = TelegramSandbox(webhook_retry_delay=0.05)
        await sandbox.start()
        sandbox.add_bot(TOKEN, 7000000001, "acme_support_bot", "Acme Support")
        try:
            await shoot(url, services, sandbox, async_playwright)
        finally:
            await sandbox.stop()
            await runner.cleanup()
            await stop_services(services)
            await db_server.stop()


async def shoot(url: str, services: Any, sandbox: TelegramSandbox, async_playwright: Any) -> None:
    agents = services.agents
    boss = await agents.create("boss", display_name="李经理", password="x" * 12, role="admin",
                               timezone="Asia/Shanghai")
    zhang = await agents.create("zhang", display_name="张客服", title="技术支持",
                                password="x" * 12, role="admin", timezone="Asia/Shanghai")
    await agents.create("anna", display_name="Anna", title="Billing", password="x" * 12)
    await services.channels.create({
        "platform": "telegram", "name": "Acme Support", "mode": "webhook",
        "api_base_url": sandbox.base_url, "credentials": {"bot_token": TOKEN}}, "boss")
    for chat_id, user, texts in CUSTOMERS:
        for text in texts:
            sandbox.inject_text(TOKEN, chat_id, text, user={"id": chat_id, **user})
            await until(lambda t=text: services.db.messages.find_one({"text": t}))
            await asyncio.sleep(0.3)
    maria = await services.db.contacts.find_one({"name": "Maria Garcia"})
    conv = await services.db.conversations.find_one({"contact_id": str(maria["_id"])})
    await services.store.update_conversation(str(conv["_id"]), {
        "assignee_id": str(zhang["_id"])})
    tom = await services.db.contacts.find_one({"name": "Tom Becker"})
    await services.db.conversations.update_one({"contact_id": str(tom["_id"])},
                                               {"$set": {"status": "pending", "unread": 0}})
    wang = await services.db.contacts.find_one({"name": "王 小明"})
    wang_conv = str((await services.db.conversations.find_one(
        {"contact_id": str(wang["_id"])}))["_id"])

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                           args=CHROMIUM_ARGS)

        async def page_for(agent: Any, locale: str) -> Any:
            session, _ = await agents.create_session(str(agent["_id"]), 1)
            context = await browser.new_context(
                locale=locale, timezone_id="Asia/Shanghai", device_scale_factor=1,
                viewport={"width": 1200, "height": 760},
                extra_http_headers={"Accept-Language": locale})
            await context.add_cookies([{"name": "sb_session", "value": session, "url": url}])
            return await context.new_page()

        page = await page_for(zhang, "en-US")
        await page.goto(url + "/?status=all")
        await page.locator("#live").wait_for()
        await page.screenshot(path=str(DOCS / "inbox.png"))

        page = await page_for(zhang, "zh-CN")
        await page.goto(f"{url}/conversations/{wang_conv}")
        await page.fill("#reply-text", "您好！我查了一下，订单 #51027 今天下午会从上海仓发出，"
                                       "发货后会收到短信通知。")
        await page.keyboard.press("Control+Enter")
        await page.locator(".msg-out .badge[data-state='sent']").wait_for()
        sandbox.inject_text(TOKEN, 2005, "好的，谢谢！", user={"id": 2005, "first_name": "王",
                                                           "last_name": "小明",
                                                           "username": "xiaoming"})
        await page.locator(".msg-in .msg-text", has_text="好的，谢谢！").wait_for()
        await page.fill("#reply-text", "不客气，有其他问题随时联系我们。")
        await page.screenshot(path=str(DOCS / "conversation.png"))

        page = await page_for(boss, "en-US")
        await page.goto(url + "/admin/accounts")
        await page.fill("#account-name", "Acme Support (staging)")
        await page.screenshot(path=str(DOCS / "accounts.png"), full_page=True)
        await browser.close()
    for name in ("inbox", "conversation", "accounts"):
        print(f"wrote docs/{name}.png")


if __name__ == "__main__":
    asyncio.run(main())
