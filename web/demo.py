"""`switchboard demo`: the server, a sandbox Telegram, a demo admin and simulated customers.

Everything runs on loopback; the sandbox is the fake Bot API from connectors/telegram/sandbox.py,
so a new user sees a live inbox and can reply without any real platform account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from typing import Any

from connectors.telegram.sandbox import TelegramSandbox
from web.app import Services
from web.runtime import serve
from web.settings import Settings

log = logging.getLogger(__name__)

DEMO_BOT_TOKEN = "7000000001:AAH-demo-sandbox-token-not-real-0000"  # noqa: S105 - sandbox only
DEMO_ACCOUNT = "Demo Telegram"

CUSTOMERS: list[tuple[int, str, str, str, list[str]]] = [
    (51001, "王", "小明", "wangxm", ["你好，我的订单 #20931 还没有发货，可以帮我查一下吗？",
                                    "请问可以开发票吗？", "谢谢！"]),
    (51002, "Emma", "Lee", "emmalee", ["Hi! My package arrived damaged. What should I do?",
                                       "I can send a photo if that helps.", "Thanks a lot"]),
    (51003, "陈", "静", "chenjing", ["会员积分怎么兑换？", "APP 一直登录不上，提示密码错误。"]),
    (51004, "Lucas", "Martin", "lmartin", ["Do you ship to France?",
                                           "How long does delivery usually take?"]),
]


async def _ensure_people(services: Services) -> str:
    password = secrets.token_urlsafe(9)
    admin = await services.agents.by_login("admin")
    if admin is None:
        await services.agents.create("admin", display_name="张客服", title="客服主管",
                                     password=password, role="admin")
    else:
        await services.agents.update(str(admin["_id"]), {"password": password, "active": True})
    return password


async def _ensure_account(services: Services, base_url: str) -> str:
    existing = await services.db.accounts.find_one({"platform": "telegram",
                                                    "name": DEMO_ACCOUNT})
    if existing is not None:
        await services.channels.delete(str(existing["_id"]))
    doc = await services.channels.create({
        "platform": "telegram", "name": DEMO_ACCOUNT, "mode": "webhook",
        "api_base_url": base_url, "credentials": {"bot_token": DEMO_BOT_TOKEN}}, actor="demo")
    return str(doc["_id"])


async def _customers(sandbox: TelegramSandbox, every: tuple[float, float]) -> None:
    rng = random.Random()  # noqa: S311 - a demo, not a secret
    turn = {c[0]: 0 for c in CUSTOMERS}
    opening = True
    while True:
        await asyncio.sleep(1.0 if opening else rng.uniform(*every))
        opening = False
        user_id, first, last, username, lines = rng.choice(CUSTOMERS)
        text = lines[turn[user_id] % len(lines)]
        turn[user_id] += 1
        user = {"id": user_id, "is_bot": False, "first_name": first, "last_name": last,
                "username": username, "language_code": "en" if first.isascii() else "zh-hans"}
        sandbox.inject_text(DEMO_BOT_TOKEN, user_id, text, user=user)


async def demo(settings: Settings, *, customers: bool = True,
               every: tuple[float, float] = (6.0, 15.0)) -> None:
    sandbox = TelegramSandbox()
    base_url = await sandbox.start()
    sandbox.add_bot(DEMO_BOT_TOKEN, 7000000001, "acme_support_bot", "Acme Support")
    tasks: list[asyncio.Task[Any]] = []

    async def setup(services: Services) -> None:
        password = await _ensure_people(services)
        await _ensure_account(services, base_url)
        url = settings.server.public_url
        print(f"\n  Switchboard demo: open {url}/login and sign in as  admin / {password}\n"
              f"  A sandbox Telegram bot is connected; simulated customers write every few "
              f"seconds.\n  Press Ctrl+C to stop.\n", flush=True)
        if customers:
            tasks.append(asyncio.create_task(_customers(sandbox, every)))

    try:
        await serve(settings, extra=setup)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await sandbox.stop()
