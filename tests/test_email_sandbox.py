"""The in-process mail sandbox: the same session and send code against the IMAP sandbox,
polling without IDLE, XOAUTH2 with a token refresh, and the demo's control routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from connectors.email.connector import EmailConnector
from connectors.email.imap_session import CURSOR
from connectors.email.sandbox import DEMO_MAILS, EmailSandbox, customer_mail
from inbox.models import (
    AccountId,
    AgentIdentity,
    ConversationId,
    CredentialsRefused,
    DeliveryReport,
    InboundMessage,
    MessageId,
    OutboundMessage,
    RenderContext,
    TransientError,
)
from tests.email_runtime import RecordingRuntime, email_account
from tests.test_email_imap_session import Running


@contextlib.asynccontextmanager
async def sandbox(**kwargs: object) -> AsyncIterator[EmailSandbox]:
    box = EmailSandbox(backend="memory", **kwargs)  # type: ignore[arg-type]
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


def running_for(box: EmailSandbox, **options: object) -> Running:
    account = email_account(box.account_options(**options), username=box.address,
                            password=box.password)
    runtime = RecordingRuntime(account)
    return Running(EmailConnector(account, runtime), runtime)


async def test_session_reads_the_sandbox_with_idle() -> None:
    async with sandbox() as box:
        uids = await box.seed_demo()
        running = running_for(box)
        await running.start()
        try:
            events = await running.runtime.wait_for(len(DEMO_MAILS))
            titles = sorted(e.thread_title or "" for e in events if isinstance(e, InboundMessage))
            assert "订单 10234 什么时候发货？" in titles
            gbk = next(e for e in events if isinstance(e, InboundMessage)
                       and e.author.user_id == "lilei@customer.example")
            assert gbk.author.name == "李雷" and "订单 10234 还没有发货" in gbk.text
            await asyncio.sleep(0.2)
            await box.inject_customer(sender="x@customer.example", name="新客户", subject="你好",
                                      text="新邮件", charset="gbk", label="gb2312")
            await running.runtime.wait_for(len(DEMO_MAILS) + 1, timeout=2)
            assert running.runtime.cursors[CURSOR]["last_uid"] == uids[-1] + 1
        finally:
            await running.stop()


async def test_session_polls_without_idle() -> None:
    async with sandbox(idle=False) as box:
        running = running_for(box, poll_seconds=0.2)
        await running.start()
        try:
            await box.inject_customer(sender="a@customer.example", name="A", subject="hi",
                                      text="polled")
            (event,) = await running.runtime.wait_for(1, timeout=3)
            assert isinstance(event, InboundMessage) and event.text == "polled"
        finally:
            await running.stop()


async def test_restart_and_uidvalidity_change_against_the_sandbox() -> None:
    async with sandbox() as box:
        for n in range(3):
            await box.inject_customer(sender="a@customer.example", name="A", subject=f"n{n}",
                                      text=str(n))
        running = running_for(box)
        await running.start()
        try:
            await running.runtime.wait_for(3)
            await running.restart()
            await asyncio.sleep(0.3)
            assert sum(len(c) for c in running.runtime.sink_calls) == 3
            await running.stop()
            box.imap.reset_uidvalidity(box.address)
            await running.start()
            await box.inject_customer(sender="a@customer.example", name="A", subject="n9",
                                      text="9")
            await running.runtime.wait_for(4)
            await asyncio.sleep(0.3)
            assert len(running.runtime.stored) == 4
        finally:
            await running.stop()


async def test_dropped_connection_ends_the_session() -> None:
    async with sandbox() as box:
        running = running_for(box)
        await running.start()
        await asyncio.sleep(0.2)
        await box.imap.drop_connections()
        assert running.task is not None
        with pytest.raises(Exception):  # noqa: B017 - any error: the host restarts the session
            await asyncio.wait_for(running.task, 5)


async def test_reply_then_bounce_reports_the_reply() -> None:
    async with sandbox() as box:
        running = running_for(box)
        await running.start()
        try:
            conn = running.connector
            agent = AgentIdentity(name="张客服", brand="Acme 客服部", signature="— {name}")
            rendered = conn.render(agent, "已发货。", RenderContext(kind="email", subject="订单"))
            delivery = await conn.send(OutboundMessage(
                message_id=MessageId("m1"), conversation_id=ConversationId("c1"),
                account_id=AccountId("acc-email-1"), thread_key="t@customer.example",
                text="已发货。", reply_to_author="lilei@customer.example", rendered=rendered))
            await box.inject_bounce(delivery.external_id)
            (report,) = await running.runtime.wait_for(1)
            assert isinstance(report, DeliveryReport)
            assert report.outbound_external_id == delivery.external_id
            assert "does not exist" in report.reason
        finally:
            await running.stop()


# --------------------------------------------------------------------------- XOAUTH2


@contextlib.asynccontextmanager
async def token_endpoint(new_token: str) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    calls: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        calls.append({k: str(v) for k, v in form.items()})
        if form.get("refresh_token") != "refresh-1":
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": new_token, "expires_in": 3599,
                                  "token_type": "Bearer"})

    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/token", calls
    finally:
        await runner.cleanup()


async def test_xoauth2_login_and_refresh_on_refusal() -> None:
    async with sandbox() as box, token_endpoint("fresh-token") as (url, calls):
        box.imap.tokens.add("fresh-token")
        box.smtp.tokens.add("fresh-token")
        account = email_account(box.account_options(oauth2_token_url=url,
                                                    oauth2_client_id="client-1"),
                                username=box.address, oauth2_token="expired-token",
                                oauth2_refresh_token="refresh-1",
                                oauth2_client_secret="shh")
        runtime = RecordingRuntime(account)
        conn = EmailConnector(account, runtime)
        rendered = conn.render(AgentIdentity(name="Li"), "hello", RenderContext(kind="email"))
        outbound = OutboundMessage(
            message_id=MessageId("m1"), conversation_id=ConversationId("c1"),
            account_id=AccountId("acc-email-1"), thread_key="t@customer.example", text="hello",
            reply_to_author="a@customer.example", rendered=rendered)
        with pytest.raises(TransientError, match="refreshed"):
            await conn.send(outbound)
        assert runtime.saved_credentials == [{"oauth2_token": "fresh-token"}]
        assert calls[0]["grant_type"] == "refresh_token" and calls[0]["client_secret"] == "shh"
        await conn.send(outbound)  # the retry logs in with the new token
        assert box.smtp.logins == [("XOAUTH2", box.address)]
        info = await conn.check()
        assert info.platform_id == box.address and box.imap.logins == [box.address]


async def test_revoked_refresh_token_needs_reauth() -> None:
    async with sandbox() as box, token_endpoint("x") as (url, _calls):
        account = email_account(box.account_options(oauth2_token_url=url,
                                                    oauth2_client_id="client-1"),
                                username=box.address, oauth2_token="expired",
                                oauth2_refresh_token="revoked")
        runtime = RecordingRuntime(account)
        session = EmailConnector(account, runtime).inbound()

        async def ready() -> None:
            raise AssertionError("must not get ready")

        with pytest.raises(CredentialsRefused, match="AUTHENTICATIONFAILED"):
            await asyncio.wait_for(session.run(runtime, ready), 5)
        assert runtime.saved_credentials == []


# --------------------------------------------------------------------------- control routes


async def test_control_routes() -> None:
    async with sandbox() as box, aiohttp.ClientSession(box.base_url) as http:
        state = await (await http.get("/_sandbox/state")).json()
        assert state["backend"] == "memory" and state["account_options"]["imap_port"]
        answer = await http.post("/_sandbox/inbound", json={
            "from": "lilei@customer.example", "from_name": "李雷", "subject": "退款",
            "text": "请退款", "charset": "gbk", "label": "gb2312"})
        assert (await answer.json())["uid"] == 1
        raw = customer_mail(sender="b@customer.example", name="B", subject="raw", text="r")
        assert (await (await http.post("/_sandbox/inbound/raw", data=raw)).json())["uid"] == 2
        assert (await http.post("/_sandbox/fail", json={"stage": "rcpt", "code": 550,
                                                        "message": "5.1.1 no"})).status == 200
        assert (await http.post("/_sandbox/bounce", json={})).status == 404
        assert await (await http.get("/_sandbox/sent")).json() == []
        reset = await (await http.post("/_sandbox/reset_uidvalidity")).json()
        assert reset["uidvalidity"] > 0
        mails = box.imap.folder(box.address).mails
        assert [m.uid for m in mails] == [1, 2] and b"=?gb2312?B?" in mails[0].raw


async def test_demo_sandbox_uses_dovecot_when_installed() -> None:
    from connectors.email.dovecot import find_binary

    if find_binary() is None:
        pytest.skip("Dovecot is not installed")
    box = EmailSandbox(backend="auto")
    assert box.backend == "dovecot"
    await box.start()
    try:
        await box.seed_demo()
        running = running_for(box)
        await running.start()
        try:
            events = await running.runtime.wait_for(len(DEMO_MAILS))
            assert {e.author.user_id for e in events if isinstance(e, InboundMessage)} == {
                m["sender"] for m in DEMO_MAILS}
        finally:
            await running.stop()
    finally:
        await box.stop()
