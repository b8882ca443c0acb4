"""`switchboard demo`'s Telegram: the sandbox Bot API, one bot, customers who write now and then.

A demo channel is started before the server, connected once the server runs (an account made
through the same lifecycle an admin uses), and then simulates customers until the demo stops.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from connectors.channels import Channels
from connectors.telegram.sandbox import TelegramSandbox

BOT_TOKEN = "7000000001:AAH-demo-sandbox-token-not-real-0000"  # noqa: S105 - sandbox only
ACCOUNT = "Demo Telegram"

CUSTOMERS: list[tuple[int, str, str, str, list[str]]] = [
    (51001, "王", "小明", "wangxm", ["你好，我的订单 #20931 还没有发货，可以帮我查一下吗？",
                                    "请问可以开发票吗？", "谢谢！"]),
    (51002, "Emma", "Lee", "emmalee", ["Hi! My package arrived damaged. What should I do?",
                                       "I can send a photo if that helps.", "Thanks a lot"]),
    (51003, "陈", "静", "chenjing", ["会员积分怎么兑换？", "APP 一直登录不上，提示密码错误。"]),
    (51004, "Lucas", "Martin", "lmartin", ["Do you ship to France?",
                                           "How long does delivery usually take?"]),
]


class TelegramDemo:
    platform = "telegram"

    def __init__(self) -> None:
        self.sandbox = TelegramSandbox()
        self.account_id: str | None = None

    async def start(self) -> None:
        await self.sandbox.start()
        self.sandbox.add_bot(BOT_TOKEN, 7000000001, "acme_support_bot", "Acme Support")

    async def connect(self, channels: Channels) -> str:
        existing = await channels.accounts.find("telegram", name=ACCOUNT)
        if existing is not None:
            await channels.delete(str(existing["_id"]))
        doc = await channels.create({
            "platform": "telegram", "name": ACCOUNT, "mode": "webhook",
            "api_base_url": self.sandbox.base_url, "credentials": {"bot_token": BOT_TOKEN}},
            actor="demo")
        self.account_id = str(doc["_id"])
        return "a sandbox Telegram bot (@acme_support_bot)"

    async def customers(self, every: tuple[float, float], *, first_after: float = 1.0) -> None:
        rng = random.Random()  # noqa: S311 - a demo, not a secret
        turn = {c[0]: 0 for c in CUSTOMERS}
        delay = first_after
        while True:
            await asyncio.sleep(delay)
            delay = rng.uniform(*every)
            user_id, first, last, username, lines = rng.choice(CUSTOMERS)
            text = lines[turn[user_id] % len(lines)]
            turn[user_id] += 1
            user: dict[str, Any] = {
                "id": user_id, "is_bot": False, "first_name": first, "last_name": last,
                "username": username, "language_code": "en" if first.isascii() else "zh-hans"}
            self.sandbox.inject_text(BOT_TOKEN, user_id, text, user=user)

    async def stop(self) -> None:
        await self.sandbox.stop()
