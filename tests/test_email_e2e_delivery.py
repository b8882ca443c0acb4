"""What the SMTP server answers, through the host's delivery worker: a 4xx is retried, a 5xx
fails the reply with the server's sentence, a refused login (535) makes the account
`needs_reauth` and the reply waits until an admin enters the right password, and an expired
XOAUTH2 token is renewed and saved sealed in the account document."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from connectors.email.sandbox_imap import ImapSandbox
from tests.email_servers import dovecot
from tests.kits.email import EmailLive, email_live
from tests.live import wait_for

__all__ = ["dovecot", "email_live"]


async def _conversation(email_live: EmailLive, **options: Any) -> tuple[dict[str, Any], str]:
    account = await email_live.add_account(**options)
    message_id = await email_live.customer_writes("请问我的退款什么时候到账？")
    return account, (await email_live.one(message_id))["conversation_id"]


async def test_a_4xx_answer_is_retried(email_live: EmailLive) -> None:
    _, conversation_id = await _conversation(email_live)
    email_live.smtp.fail("data", 451, "4.3.0 Mail server temporarily rejected message.")
    body = await email_live.reply(conversation_id, "退款已在处理中。")
    (sent,) = await email_live.smtp.wait_for_sent(1, timeout=10)
    doc = await email_live.delivery(body["id"], "sent")
    assert doc["delivery"]["attempts"] == 2 and doc["delivery"]["error"] is None
    assert sent.message.get_body(("plain",)).get_content().startswith("退款已在处理中。")


async def test_an_unreachable_server_is_retried_until_it_is_back(email_live: EmailLive,
                                                                 ) -> None:
    account, conversation_id = await _conversation(email_live)
    port = email_live.smtp.port
    await email_live.smtp.stop()
    body = await email_live.reply(conversation_id, "我们已经收到您的邮件。")
    waiting = await email_live.delivery(body["id"], "retry_wait")
    assert waiting["delivery"]["error"]["code"] == "network"
    assert waiting["delivery"]["error"]["message"].startswith(
        "The mail server cannot be reached:")
    await wait_for(lambda: _status(email_live, account["id"], "degraded"))
    await email_live.smtp.start(port)
    await email_live.smtp.wait_for_sent(1, timeout=15)
    doc = await email_live.delivery(body["id"], "sent")
    assert doc["delivery"]["attempts"] >= 2
    await wait_for(lambda: _status(email_live, account["id"], "active"))


async def test_a_5xx_answer_fails_with_the_servers_sentence(email_live: EmailLive) -> None:
    _, conversation_id = await _conversation(email_live)
    email_live.smtp.fail("rcpt", 550, "5.1.1 The email account that you tried to reach does "
                                      "not exist.")
    body = await email_live.reply(conversation_id, "您好！")
    doc = await email_live.delivery(body["id"], "failed")
    assert doc["delivery"]["attempts"] == 1  # not retried
    (shown,) = [m for m in await email_live.messages(conversation_id) if m["direction"] == "out"]
    error = shown["delivery"]["error"]
    assert error["code"] == "recipient_rejected"
    assert error["message"] == ("The mail server refused the reply (recipient: 550 5.1.1 The "
                                "email account that you tried to reach does not exist.)")
    assert email_live.smtp.sent == []


async def test_a_refused_login_waits_for_the_right_password(email_live: EmailLive) -> None:
    account, conversation_id = await _conversation(email_live)
    new_password = "rotated-by-the-mail-admin"
    # the mailbox's password is changed on the mail server (both IMAP and SMTP)
    await asyncio.to_thread(email_live.dovecot.set_password, email_live.user, new_password)
    email_live.smtp.password = new_password
    body = await email_live.reply(conversation_id, "退款已到账，请查收。")
    await wait_for(lambda: _status(email_live, account["id"], "needs_reauth"), timeout=10)
    _, shown = await email_live.api("GET", f"/api/accounts/{account['id']}", expect=200)
    assert shown["status"] == "needs_reauth"
    assert shown["last_error"]["code"] == "credentials_refused"
    assert "535" in shown["last_error"]["message"]
    await asyncio.sleep(1.5)  # the reply waits: not failed, no attempts burnt
    waiting = await email_live.db.messages.find_one({"direction": "out"})
    assert waiting["delivery"]["state"] in ("queued", "retry_wait")
    assert waiting["delivery"]["attempts"] <= 1 and email_live.smtp.sent == []

    # a wrong password is refused in words and changes nothing
    _, refused = await email_live.api(
        "PATCH", f"/api/accounts/{account['id']}", expect=422,
        json={"credentials": {"password": "still-the-old-one"}})
    assert refused["error"]["code"] == "invalid_auth"
    assert (await email_live.account_doc(account["id"]))["status"] == "needs_reauth"

    _, patched = await email_live.api("PATCH", f"/api/accounts/{account['id']}", expect=200,
                                      json={"credentials": {"password": new_password}})
    assert patched["status"] == "active" and patched["last_error"] is None
    (sent,) = await email_live.smtp.wait_for_sent(1, timeout=15)
    assert sent.message.get_body(("plain",)).get_content().startswith("退款已到账，请查收。")
    assert (await email_live.delivery(body["id"], "sent"))["delivery"]["state"] == "sent"
    # the IMAP session came back with the new password: new mail still arrives
    await email_live.session_ready(account["id"])
    later = await email_live.customer_writes("收到了，谢谢。", subject="谢谢")
    await email_live.one(later)


async def _status(email_live: EmailLive, account_id: str, status: str) -> bool:
    return (await email_live.account_doc(account_id))["status"] == status


class TokenEndpoint:
    """An OAuth 2.0 token endpoint (RFC 6749 §6): a refresh token for a new access token."""

    def __init__(self, refresh_token: str, new_token: str) -> None:
        self.refresh_token = refresh_token
        self.new_token = new_token
        self.calls: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.calls.append({k: str(v) for k, v in form.items()})
        if form.get("grant_type") != "refresh_token" or \
                form.get("refresh_token") != self.refresh_token:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": self.new_token, "expires_in": 3599,
                                  "token_type": "Bearer", "scope": "https://mail.google.com/"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self.token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/token"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def oauth_world(email_live: EmailLive) -> AsyncIterator[tuple[ImapSandbox, TokenEndpoint]]:
    """XOAUTH2 needs an IMAP server that takes bearer tokens: the in-process IMAP sandbox
    (Dovecot would need its oauth2 passdb and an introspection service)."""
    imap = ImapSandbox(tokens={"ya29.first-access-token"})
    endpoint = TokenEndpoint("1//refresh-token", "ya29.renewed-access-token")
    await imap.start()
    await endpoint.start()
    email_live.smtp.tokens = {"ya29.first-access-token"}
    try:
        yield imap, endpoint
    finally:
        await endpoint.stop()
        await imap.stop()


async def test_an_expired_oauth_token_is_renewed_and_saved(
        email_live: EmailLive, oauth_world: tuple[ImapSandbox, TokenEndpoint]) -> None:
    imap, endpoint = oauth_world
    account = await email_live.add_account(
        credentials={"username": email_live.user, "oauth2_token": "ya29.first-access-token",
                     "oauth2_refresh_token": "1//refresh-token",
                     "oauth2_client_secret": "client-secret"},
        imap_port=imap.port, oauth2_token_url=endpoint.url,
        oauth2_client_id="client-1.apps.example")
    assert ("XOAUTH2", email_live.user) in email_live.smtp.logins
    imap.deliver(email_live.user, (
        "From: 李雷 <lilei@customer.example>\r\nTo: support\r\nSubject: 退款\r\n"
        "Message-ID: <oauth-1@customer.example>\r\nContent-Type: text/plain; charset=utf-8"
        "\r\n\r\n退款到了吗？\r\n").encode())
    doc = await email_live.one("oauth-1@customer.example")
    sealed_before = (await email_live.account_doc(account["id"]))["credentials"]

    # an hour later the provider no longer takes the first token
    imap.tokens = email_live.smtp.tokens = {"ya29.renewed-access-token"}
    body = await email_live.reply(doc["conversation_id"], "已退款。")
    (sent,) = await email_live.smtp.wait_for_sent(1, timeout=15)
    assert (await email_live.delivery(body["id"], "sent"))["delivery"]["attempts"] == 2
    assert sent.login == email_live.user
    (call,) = endpoint.calls
    assert call == {"grant_type": "refresh_token", "refresh_token": "1//refresh-token",
                    "client_id": "client-1.apps.example", "client_secret": "client-secret"}

    stored = await email_live.account_doc(account["id"])
    assert stored["credentials"] != sealed_before and "ya29" not in str(stored["credentials"])
    opened = email_live.live.services.channels.box.open(stored["credentials"])
    assert opened["oauth2_token"].get_secret_value() == "ya29.renewed-access-token"
    assert opened["oauth2_refresh_token"].get_secret_value() == "1//refresh-token"

    # the IMAP session, dropped by the server, logs in again with the renewed token
    logins = len(imap.logins)
    await imap.drop_connections()
    await wait_for(lambda: _more_logins(imap, logins), timeout=15)
    imap.deliver(email_live.user, (
        "From: 李雷 <lilei@customer.example>\r\nTo: support\r\nSubject: 退款\r\n"
        "Message-ID: <oauth-2@customer.example>\r\nContent-Type: text/plain; charset=utf-8"
        "\r\n\r\n收到了。\r\n").encode())
    await email_live.one("oauth-2@customer.example", timeout=15)


async def _more_logins(imap: ImapSandbox, before: int) -> bool:
    return len(imap.logins) > before
