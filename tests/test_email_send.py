"""Sending replies: aiosmtplib to a real aiosmtpd server; threading headers and every error."""

from __future__ import annotations

import logging
import re
from email.headerregistry import Address

import pytest

from connectors.email.connector import EmailConnector
from connectors.email.normalise import normalise, our_message_id
from connectors.email.sandbox import bounce_of
from connectors.email.sandbox_smtp import SmtpSandbox
from inbox.models import (
    AccountId,
    AgentIdentity,
    ConversationId,
    CredentialsRefused,
    DeliveryReport,
    Ignored,
    MessageId,
    OutboundMessage,
    PermanentError,
    RateLimited,
    RenderContext,
    TransientError,
)
from tests.email_runtime import RecordingRuntime, email_account
from tests.email_servers import PASSWORD, account_options, free_port, smtp_server

__all__ = ["smtp_server"]

AGENT = AgentIdentity(name="张客服", brand="Acme 客服部", signature="— {name} · {brand}")


def connector(smtp: SmtpSandbox | None, **options: object) -> EmailConnector:
    account = email_account(account_options(None, smtp, "u", **options), password=PASSWORD)
    return EmailConnector(account, RecordingRuntime(account))


def outbound(conn: EmailConnector, text: str = "您的订单已发货。", **fields: object
             ) -> OutboundMessage:
    rendered = conn.render(AGENT, text,
                           RenderContext(kind="email", subject="订单 10234 什么时候发货？"))
    values: dict[str, object] = {
        "message_id": MessageId("64f0c0ffee0000000000beef"),
        "conversation_id": ConversationId("conv-1"), "account_id": AccountId("acc-email-1"),
        "thread_key": "root@customer.example", "text": text, "kind": "dm",
        "reply_to": "latest@customer.example", "reply_to_author": "lilei@customer.example",
        "references": ("root@customer.example", "middle@acme.example"), "rendered": rendered}
    values.update(fields)
    return OutboundMessage(**values)  # type: ignore[arg-type]


async def test_reply_is_threaded_signed_and_from_the_agent(smtp_server: SmtpSandbox) -> None:
    conn = connector(smtp_server)
    delivery = await conn.send(outbound(conn))
    (sent,) = await smtp_server.wait_for_sent(1)
    msg = sent.message
    assert sent.mail_from == "support@acme.example"
    assert sent.rcpt_tos == ["lilei@customer.example"]
    assert sent.login == "support@acme.example"
    assert msg["From"].addresses[0] == Address("张客服 · Acme 客服部", "support", "acme.example")
    assert "=?utf-8?" in sent.data.split(b"\r\n\r\n")[0].decode()  # RFC 2047 on the wire
    assert str(msg["Subject"]) == "Re: 订单 10234 什么时候发货？"
    assert str(msg["In-Reply-To"]) == "<latest@customer.example>"
    assert str(msg["References"]).split() == ["<root@customer.example>", "<middle@acme.example>",
                                              "<latest@customer.example>"]
    assert msg["Auto-Submitted"] is None
    assert str(msg["X-Switchboard"]) == "64f0c0ffee0000000000beef"
    assert str(msg["Message-ID"]) == f"<{delivery.external_id}>"
    assert delivery.external_id.endswith("@acme.example")
    assert sent.dsn == {"ENVID": delivery.external_id, "RET": "HDRS"}
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == (
        "您的订单已发货。\n\n-- \n— 张客服 · Acme 客服部\n")
    assert "<p>您的订单已发货。</p>" in html.get_content()


async def test_our_sent_mail_coming_back_is_ignored(smtp_server: SmtpSandbox) -> None:
    conn = connector(smtp_server)
    await conn.send(outbound(conn))
    (sent,) = await smtp_server.wait_for_sent(1)
    assert normalise(sent.data, conn.account) == Ignored("own message")


async def test_synthetic_ids_are_not_named_in_headers(smtp_server: SmtpSandbox) -> None:
    conn = connector(smtp_server)
    fake = "0123abcd@synthetic.switchboard.invalid"
    await conn.send(outbound(conn, reply_to=fake, references=(fake,)))
    (sent,) = await smtp_server.wait_for_sent(1)
    assert sent.message["In-Reply-To"] is None and sent.message["References"] is None


async def test_recipients_override_the_author(smtp_server: SmtpSandbox) -> None:
    conn = connector(smtp_server)
    await conn.send(outbound(conn, recipients=("a@customer.example", "b@customer.example")))
    (sent,) = await smtp_server.wait_for_sent(1)
    assert sent.rcpt_tos == ["a@customer.example", "b@customer.example"]


async def test_the_reply_route_sends_to_the_reply_to_address(smtp_server: SmtpSandbox) -> None:
    conn = connector(smtp_server)
    await conn.send(outbound(conn, reply_route={"to": ["form-user@customer.example"]}))
    (sent,) = await smtp_server.wait_for_sent(1)
    assert sent.rcpt_tos == ["form-user@customer.example"]


async def test_no_address_to_reply_to_is_permanent(smtp_server: SmtpSandbox) -> None:
    conn = connector(smtp_server)
    with pytest.raises(PermanentError) as caught:
        await conn.send(outbound(conn, reply_to_author=None))
    assert caught.value.code == "no_recipient"


@pytest.mark.parametrize(("stage", "code", "message", "error", "error_code"), [
    ("rcpt", 550, "5.1.1 The email account that you tried to reach does not exist.",
     PermanentError, "recipient_rejected"),
    ("mail", 553, "5.7.1 Sender address rejected: not owned by user", PermanentError,
     "sender_rejected"),
    ("data", 554, "5.7.1 Message rejected as spam", PermanentError, "message_rejected"),
    ("data", 451, "4.3.0 Mail server temporarily rejected message.", TransientError,
     "smtp_temporary"),
    ("rcpt", 450, "4.2.1 Mailbox busy", TransientError, "smtp_temporary"),
    ("mail", 421, "4.7.0 Try again later, closing connection.", RateLimited, "rate_limited"),
    ("data", 550, "5.4.5 Daily user sending limit exceeded.", RateLimited, "rate_limited"),
    ("auth", 535, "5.7.8 Username and Password not accepted.", CredentialsRefused,
     "credentials_refused"),
    ("auth", 454, "4.7.0 Temporary authentication failure", TransientError, "smtp_temporary"),
])
async def test_smtp_answers_map_to_typed_errors(
        smtp_server: SmtpSandbox, stage: str, code: int, message: str,
        error: type[Exception], error_code: str) -> None:
    smtp_server.fail(stage, code, message)  # type: ignore[arg-type]
    conn = connector(smtp_server)
    with pytest.raises(error) as caught:
        await conn.send(outbound(conn))
    assert type(caught.value) is error
    assert caught.value.code == error_code  # type: ignore[attr-defined]
    if isinstance(caught.value, PermanentError):
        assert message in caught.value.human
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == (3600 if code >= 500 else 300)
    assert smtp_server.sent == []


async def test_wrong_password_is_credentials_refused(smtp_server: SmtpSandbox) -> None:
    account = email_account(account_options(None, smtp_server, "u"), password="wrong")
    conn = EmailConnector(account, RecordingRuntime(account))
    with pytest.raises(CredentialsRefused):
        await conn.send(outbound(conn))


async def test_unreachable_server_is_transient() -> None:
    conn = connector(None, smtp_port=free_port())
    with pytest.raises(TransientError) as caught:
        await conn.send(outbound(conn))
    assert caught.value.code == "network"


async def test_a_failing_send_logs_no_secret(smtp_server: SmtpSandbox,
                                             caplog: pytest.LogCaptureFixture) -> None:
    smtp_server.fail("auth", 535, "5.7.8 no")
    conn = connector(smtp_server)
    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialsRefused) as caught:
        await conn.send(outbound(conn))
    assert PASSWORD not in caplog.text and PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(conn.account)


async def test_the_message_id_names_our_reply_and_is_a_thread_alias(
        smtp_server: SmtpSandbox) -> None:
    conn = connector(smtp_server)
    delivery = await conn.send(outbound(conn))
    assert delivery.external_id.startswith("sb.64f0c0ffee0000000000beef.")
    assert our_message_id(delivery.external_id) == "64f0c0ffee0000000000beef"
    assert delivery.thread_alias == delivery.external_id  # the customer's answer names it
    again = await conn.send(outbound(conn))
    assert again.external_id != delivery.external_id


async def test_the_reply_route_wins_over_the_author_the_host_names(
        smtp_server: SmtpSandbox) -> None:
    """The host fills `recipients` with the answered mail's author; its Reply-To still wins."""
    conn = connector(smtp_server)
    await conn.send(outbound(conn, recipients=("lilei@customer.example",),
                             reply_route={"to": ["form-user@customer.example"]}))
    (sent,) = await smtp_server.wait_for_sent(1)
    assert sent.rcpt_tos == ["form-user@customer.example"]


@pytest.mark.parametrize("returned", ["as sent", "Message-ID only", "Message-ID rewritten"])
async def test_a_bounce_of_our_reply_names_it(smtp_server: SmtpSandbox, returned: str) -> None:
    """Which reply bounced is read from the Message-ID we gave it, or from our X-Switchboard
    header when a relay replaced the Message-ID."""
    conn = connector(smtp_server)
    await conn.send(outbound(conn))
    (sent,) = await smtp_server.wait_for_sent(1)
    if returned == "Message-ID only":
        sent.data = re.sub(rb"X-Switchboard: [^\r\n]*\r\n", b"", sent.data)
    elif returned == "Message-ID rewritten":
        sent.data = re.sub(rb"Message-ID: [^\r\n]*", b"Message-ID: <relay-1@mx.example>",
                           sent.data)
    report = normalise(bounce_of(sent), conn.account)
    assert isinstance(report, DeliveryReport) and report.message_id == "64f0c0ffee0000000000beef"
    assert "550 5.1.1 The email account that you tried to reach does not exist." in report.reason
