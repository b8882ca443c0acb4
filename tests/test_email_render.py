"""Rendering a reply as a mail: From name, Re: subject, text and HTML parts, signature."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest

from connectors.email import render
from connectors.email.connector import EmailConnector
from connectors.email.settings import load
from inbox.models import (
    AccountId,
    AgentIdentity,
    ConversationId,
    MessageId,
    OutboundMessage,
    RenderContext,
)
from tests.email_runtime import RecordingRuntime, email_account
from tests.email_servers import account_options

AGENT = AgentIdentity(name="张客服", title="技术支持", brand="Acme 客服部",
                      signature="— {name} · {brand}",
                      greeting="您好，这里是Acme客服部，我是张客服。")


def connector(**options: object) -> EmailConnector:
    account = email_account(account_options(None, None, "u", **options), password="pw")
    return EmailConnector(account, RecordingRuntime(account))


def test_render_parts_and_name() -> None:
    rendered = connector().render(AGENT, "您的订单已发货。\n\n单号 SF123。",
                                  RenderContext(kind="email", subject="订单 10234"))
    assert rendered.shown_name == "张客服 · Acme 客服部"
    assert rendered.subject == "Re: 订单 10234"
    assert rendered.text == ("您好，这里是Acme客服部，我是张客服。\n\n您的订单已发货。\n\n"
                             "单号 SF123。\n\n-- \n— 张客服 · Acme 客服部")
    assert rendered.html is not None
    assert "<p>您的订单已发货。</p><p>单号 SF123。</p>" in rendered.html
    assert "-- <br>— 张客服 · Acme 客服部" in rendered.html
    assert rendered.extra["from"] == "张客服 · Acme 客服部 <support@acme.example>"


def test_html_part_escapes_the_agents_text() -> None:
    rendered = connector().render(AgentIdentity(name="Li"), "<script>x</script>\na & b",
                                  RenderContext(kind="email"))
    assert rendered.html is not None
    assert "<script>" not in rendered.html and "&lt;script&gt;x&lt;/script&gt;<br>a &amp; b" in (
        rendered.html)
    assert rendered.subject is None


@pytest.mark.parametrize(("subject", "expected"), [
    ("订单 10234", "Re: 订单 10234"), ("Re: 订单", "Re: 订单"), ("回复：订单", "回复：订单"),
    ("RE: x", "RE: x"), ("Fwd: 资料", "Re: Fwd: 资料"), ("  ", None), (None, None),
])
def test_subject(subject: str | None, expected: str | None) -> None:
    assert render.subject_for(subject) == expected


@pytest.mark.parametrize(("template", "identity", "shown"), [
    ("{name} · {brand}", AgentIdentity(name="张客服", brand="Acme 客服部"),
     "张客服 · Acme 客服部"),
    ("{name} · {brand}", AgentIdentity(name="张客服"), "张客服"),
    ("{brand} {title} {name}", AgentIdentity(name="Li", title="技术支持", brand="Acme"),
     "Acme 技术支持 Li"),
    ("{name} ({unknown})", AgentIdentity(name="Li"), "Li ({unknown})"),
    ("{name", AgentIdentity(name="Li", brand="Acme"), "Li · Acme"),
])
def test_display_name_template(template: str, identity: AgentIdentity, shown: str) -> None:
    assert connector(display_name_template=template).render(
        identity, "x", RenderContext(kind="email")).shown_name == shown


def test_from_line_is_rfc2047_encoded_and_parses_back() -> None:
    conn = connector()
    rendered = conn.render(AGENT, "好的", RenderContext(kind="email", subject="订单"))
    msg, recipients, message_id = render.compose(load(conn.account), OutboundMessage(
        message_id=MessageId("m1"), conversation_id=ConversationId("c1"),
        account_id=AccountId("a"), thread_key="t", text="好的", rendered=rendered,
        reply_to_author="lilei@customer.example"), now=datetime(2025, 12, 1, tzinfo=UTC))
    wire = msg.as_bytes(policy=policy.SMTP)
    head = wire.split(b"\r\n\r\n")[0]
    assert head.isascii()
    assert b"From: =?utf-8?b?" in head and b"<support@acme.example>" in head
    parsed = BytesParser(policy=policy.default).parsebytes(wire)
    assert parsed["From"].addresses[0].display_name == "张客服 · Acme 客服部"
    assert str(parsed["Date"]) == "Mon, 01 Dec 2025 00:00:00 +0000"
    assert recipients == ["lilei@customer.example"] and message_id.endswith("@acme.example")
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_measure_is_generous() -> None:
    measure = connector().measure("字" * 50_000, RenderContext(kind="email"))
    assert measure.fits and measure.limit == 100_000 and measure.unit == "characters"
    assert not connector().measure("x" * 100_001, RenderContext(kind="email")).fits
