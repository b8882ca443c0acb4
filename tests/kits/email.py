"""Kit for the email connector's tests.

`replay(operation, fixture)` for the contract test: run `send` or `check` against real servers
(the sandbox's aiosmtpd SMTP server and in-process IMAP server) where the SMTP server answers
the fixture's stage with the fixture's reply code. `email_live` for the end-to-end tests
through the real host (tests/test_email_e2e_*.py).

Fixtures (`tests/fixtures/email/api/<operation>__<outcome>.json`) are SMTP answers, not HTTP:
`{"source": …, "smtp": {"stage": "auth|mail|rcpt|data|connect", "code": 550, "message": …}}`.
A 2xx code injects nothing (the server accepts); stage `connect` points the connector at a
port where nothing listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from connectors.base import AccountContext
from connectors.email.connector import EmailConnector
from connectors.email.dovecot import Dovecot, free_port
from connectors.email.sandbox import EmailSandbox, customer_mail
from connectors.email.sandbox_smtp import SmtpSandbox
from inbox.models import (
    AccountId,
    AgentIdentity,
    ConversationId,
    MessageId,
    OutboundMessage,
    RenderContext,
)
from tests.email_runtime import RecordingRuntime, email_account
from tests.live import Live, live_server, wait_for

# The account the golden outputs (tests/fixtures/email/inbound/*.expected.json) were made with.
GOLDEN_ACCOUNT = AccountContext(id="acc-email-1", platform="email", name="support",
                                credentials={}, mode="imap",
                                options={"address": "Support@Acme.example"})


async def replay(operation: str, fixture: dict[str, Any]) -> Any:
    answer = fixture["smtp"]
    box = EmailSandbox(backend="memory")
    await box.start()
    try:
        options = box.account_options()
        if answer.get("stage") == "connect":
            options["smtp_port"] = free_port()
        elif answer.get("code") is not None and int(answer["code"]) >= 400:
            box.fail(answer["stage"], int(answer["code"]), str(answer["message"]), times=10)
        account = email_account(options, username=box.address, password=box.password)
        connector = EmailConnector(account, RecordingRuntime(account))
        if operation == "check":
            return await connector.check()
        if operation == "send":
            rendered = connector.render(AgentIdentity(name="张客服", brand="Acme 客服部"),
                                        "您的订单已发货。",
                                        RenderContext(kind="email", subject="订单 10234"))
            return await connector.send(OutboundMessage(
                message_id=MessageId("m-replay"), conversation_id=ConversationId("c-replay"),
                account_id=AccountId(account.id), thread_key="root@customer.example",
                text="您的订单已发货。", kind="email", reply_to="root@customer.example",
                reply_to_author="lilei@customer.example", rendered=rendered))
        raise ValueError(f"the email kit replays send and check, not {operation!r}")
    finally:
        await box.stop()


# --------------------------------------------------------------------------- end to end
# A real listening Switchboard (tests/live.py) with its hosting runner, outbox and worker, real
# Dovecot for IMAP and aiosmtpd for SMTP: the tests in tests/test_email_e2e_*.py create the
# mailbox through POST /api/accounts and let the host do the rest.

BRAND = "Acme 客服部"
AGENT_NAME = "张客服"
AGENT_PASSWORD = "agent-password-for-tests"


@dataclass
class EmailLive:
    """A live Switchboard, a Dovecot mailbox of its own (`user`, also the support address)
    and the SMTP server its replies go to; `agent` is 张客服's API token header."""

    live: Live
    dovecot: Dovecot
    smtp: SmtpSandbox
    user: str
    agent: dict[str, str]

    @property
    def db(self) -> Any:
        return self.live.services.db

    async def api(self, method: str, path: str, *, expect: int | None = None,
                  headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, Any]:
        async with self.live.http.request(method, f"{self.live.url}{path}",
                                          headers=headers or self.live.headers,
                                          **kwargs) as resp:
            body = await resp.json() if resp.content_type == "application/json" \
                else await resp.read()
            if expect is not None:
                assert resp.status == expect, (resp.status, body)
            return resp.status, body

    def account_body(self, *, name: str = "Support mailbox", password: str | None = None,
                     credentials: dict[str, str] | None = None, **options: Any,
                     ) -> dict[str, Any]:
        return {"platform": "email", "name": name,
                "credentials": credentials or {"username": self.user,
                                               "password": password or self.dovecot.password},
                "options": {"address": self.user, "security": "none",
                            "imap_host": self.dovecot.host, "imap_port": self.dovecot.port,
                            "smtp_host": "127.0.0.1", "smtp_port": self.smtp.port, **options}}

    async def add_account(self, **kwargs: Any) -> dict[str, Any]:
        """POST /api/accounts, then wait until the host's runner has the IMAP session in
        IDLE (its first session is ready and the folder has been caught up on)."""
        _, body = await self.api("POST", "/api/accounts", expect=201,
                                 json=self.account_body(**kwargs))
        await self.session_ready(body["id"])
        return dict(body)

    async def session_ready(self, account_id: str, sessions: int = 1) -> None:
        hosting = self.live.services.hosting

        async def ready() -> bool:
            runner = hosting.runners.get(account_id)
            return runner is not None and runner.stats.sessions >= sessions

        await wait_for(ready, timeout=15)
        await asyncio.sleep(0.3)  # from `ready` through the catch-up into IDLE

    async def account_doc(self, account_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self.db.accounts.find_one({"_id": ObjectId(account_id)})
        return doc

    async def deliver(self, raw: bytes, folder: str = "INBOX") -> int:
        """IMAP APPEND into the mailbox, as the customer's mail arriving looks to IDLE."""
        return await asyncio.to_thread(self.dovecot.append, self.user, raw, folder)

    async def customer_writes(self, text: str, *, subject: str = "订单 10234 什么时候发货？",
                              sender: str = "lilei@customer.example", name: str = "李雷",
                              in_reply_to: str | None = None, references: Sequence[str] = (),
                              charset: str = "utf-8", label: str | None = None,
                              folder: str = "INBOX", ago: float = 0.0) -> str:
        """A customer's mail delivered into the mailbox; returns its Message-ID (bare). Its
        Date is `ago` seconds back: the inbox orders mail by Date, which has whole seconds,
        so a test that writes twice in a second says which came first."""
        message_id = make_msgid(domain=sender.rpartition("@")[2])
        await self.deliver(customer_mail(
            sender=sender, name=name, subject=subject, text=text, to=self.user,
            in_reply_to=in_reply_to, references=references, message_id=message_id,
            charset=charset, label=label,
            when=datetime.now(UTC) - timedelta(seconds=ago)), folder)
        return message_id.strip("<>")

    async def stored(self, count: int, timeout: float = 10.0, **flt: Any,
                     ) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            docs = await self.db.messages.find({"direction": "in", **flt}).to_list()
            return docs if len(docs) >= count else None

        docs = list(await wait_for(enough, timeout))
        await self.live.services.store.settle()  # their conversations follow the messages
        return docs

    async def one(self, external_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The stored mail, once its conversation exists too (the host acknowledges the
        message first and creates its conversation right behind)."""
        (doc,) = await self.stored(1, timeout, external_id=external_id)
        await wait_for(lambda: self.db.conversations.find_one(
            {"_id": ObjectId(doc["conversation_id"])}), timeout)
        return doc

    async def reply(self, conversation_id: str, text: str, *, expect: int = 202,
                    ) -> dict[str, Any]:
        _, body = await self.api("POST", f"/api/conversations/{conversation_id}/messages",
                                 expect=expect, headers=self.agent, json={"text": text})
        return dict(body)

    async def delivery(self, message_id: str, state: str, timeout: float = 15.0,
                       ) -> dict[str, Any]:
        doc: dict[str, Any] = await wait_for(lambda: self.db.messages.find_one(
            {"_id": ObjectId(message_id), "delivery.state": state}), timeout)
        return doc

    async def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        _, body = await self.api("GET", f"/api/conversations/{conversation_id}/messages",
                                 expect=200, headers=self.agent)
        return list(body["items"])

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        _, body = await self.api("GET", f"/api/conversations/{conversation_id}", expect=200,
                                 headers=self.agent)
        return dict(body)


@pytest.fixture
async def email_live(mongo_uri: str, db: Any, tmp_path: Path,
                     dovecot: Dovecot) -> AsyncIterator[EmailLive]:
    """A test module imports `dovecot` (tests/email_servers.py) and `email_live` to use it."""
    user = dovecot.new_user()
    smtp = SmtpSandbox(username=user, password=dovecot.password)
    await smtp.start()
    try:
        async with live_server(mongo_uri, db.name, tmp_path,
                               identity={"brand": BRAND}) as live:
            agent = await live.services.agents.create(
                "zhang", display_name=AGENT_NAME, password=AGENT_PASSWORD, role="agent")
            token, _ = await live.services.agents.create_token(str(agent["_id"]))
            yield EmailLive(live, dovecot, smtp, user, {"Authorization": f"Bearer {token}"})
    finally:
        await smtp.stop()
