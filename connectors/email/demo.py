"""`switchboard demo`'s mailbox: a sandbox mail provider and customers who write now and then.

IMAP is Dovecot when Debian's `dovecot-imapd` is installed, else the in-process IMAP sandbox
(connectors/email/sandbox.py picks); SMTP is the aiosmtpd sandbox, which keeps every reply
(`GET /_sandbox/sent` on its control address). The account is made through the same lifecycle
an admin uses (check logs in to both servers, then the host runs the IMAP session).

Customers write in Chinese and English, one of them from a mailer that sends GBK labelled
GB2312; a customer's next mail answers the last one in their thread, and names our reply when
an agent has answered, so the demo shows threads and the agent's name in the From line.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from email.utils import make_msgid
from typing import Any

from connectors.channels import Channels
from connectors.email.sandbox import EmailSandbox

ACCOUNT = "Demo mailbox"
ADDRESS = "support@acme.example"


@dataclass
class Customer:
    address: str
    name: str
    subject: str
    lines: list[str]
    charset: str = "utf-8"
    label: str | None = None
    turn: int = 0
    thread: list[str] = field(default_factory=list)  # Message-IDs, root first


CUSTOMERS: tuple[tuple[str, str, str, list[str], str, str | None], ...] = (
    ("lilei@customer.example", "李雷", "订单 10234 什么时候发货？",
     ["你好，\n\n我上周五下的订单 10234 还没有发货，请帮忙查一下。\n\n谢谢！\n李雷",
      "补充一下：收货地址是上海市浦东新区。", "收到，谢谢！"], "gbk", "gb2312"),
    ("hanmeimei@customer.example", "韩梅梅", "发票抬头需要修改",
     ["您好，发票抬头请改为“北京某某科技有限公司”，税号 91110000XXXXXXXX。",
      "请问电子发票什么时候能开好？"], "utf-8", None),
    ("john.smith@customer.example", "John Smith", "Refund for a damaged parcel",
     ["Hello,\n\nThe parcel arrived damaged. Could you refund order 10250?\n\nJohn",
      "I can send photos of the box if that helps.", "Thanks a lot!"], "utf-8", None),
    ("wangfang@customer.example", "王芳", "会员积分兑换",
     ["请问会员积分怎么兑换优惠券？", "我在 App 里找不到兑换入口。"], "utf-8", None),
)


class EmailDemo:
    platform = "email"

    def __init__(self, backend: str = "auto") -> None:
        self.sandbox = EmailSandbox(address=ADDRESS, backend=backend)  # type: ignore[arg-type]
        self.account_id: str | None = None
        self.customers_list = [Customer(a, n, s, list(lines), c, label)
                               for a, n, s, lines, c, label in CUSTOMERS]

    async def start(self) -> None:
        await self.sandbox.start()

    async def connect(self, channels: Channels) -> str:
        existing = await channels.accounts.find("email", name=ACCOUNT)
        if existing is not None:
            await channels.delete(str(existing["_id"]))
        doc = await channels.create({
            "platform": "email", "name": ACCOUNT, "mode": "imap",
            "credentials": self.sandbox.credentials(),
            "options": self.sandbox.account_options(backfill_days=0)}, actor="demo")
        self.account_id = str(doc["_id"])
        imap = "Dovecot" if self.sandbox.backend == "dovecot" else "the built-in IMAP sandbox"
        return (f"a sandbox mailbox {ADDRESS} ({imap} for IMAP; replies kept at "
                f"{self.sandbox.base_url}/_sandbox/sent)")

    def _our_answer(self, customer: Customer) -> str | None:
        """The Message-ID of our latest reply to this customer, if it came after their
        latest mail."""
        for mail in reversed(self.sandbox.sent):
            if customer.address in mail.rcpt_tos:
                ours = str(mail.message["Message-ID"] or "").strip().strip("<>")
                return ours if ours and ours not in customer.thread else None
        return None

    async def write(self, customer: Customer) -> str:
        """The customer's next mail: their first starts a thread, the next ones answer it."""
        text = customer.lines[customer.turn % len(customer.lines)]
        first = customer.turn == 0 or customer.turn % len(customer.lines) == 0
        if first:
            customer.thread = []
        customer.turn += 1
        ours = self._our_answer(customer)
        if ours:
            customer.thread.append(ours)
        message_id = make_msgid(domain=customer.address.rpartition("@")[2])
        fields: dict[str, Any] = {
            "sender": customer.address, "name": customer.name, "text": text,
            "charset": customer.charset, "label": customer.label, "message_id": message_id,
            "subject": customer.subject if first else f"Re: {customer.subject}"}
        if customer.thread:
            fields["in_reply_to"] = customer.thread[-1]
            fields["references"] = tuple(customer.thread[:-1])
        await self.sandbox.inject_customer(**fields)
        customer.thread.append(message_id.strip("<>"))
        return message_id.strip("<>")

    async def customers(self, every: tuple[float, float], *, first_after: float = 1.0) -> None:
        rng = random.Random()  # noqa: S311 - a demo, not a secret
        delay = first_after
        while True:
            await asyncio.sleep(delay)
            delay = rng.uniform(*every)
            await self.write(rng.choice(self.customers_list))

    async def stop(self) -> None:
        await self.sandbox.stop()
