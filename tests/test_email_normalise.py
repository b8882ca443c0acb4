"""Email normaliser: golden fixtures, threading, subjects, charsets, noise, bounces, fuzzing."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import AccountContext
from connectors.email import normalise as email_normalise
from connectors.email.mime import UnreadableMail, decode_bytes
from connectors.email.normalise import (
    HANDLERS,
    dispatch_key,
    normalise,
    normalise_with_parts,
)
from connectors.email.text import fold, html_to_text, strip_subject_prefixes
from inbox.models import DeliveryReport, Ignored, InboundMessage
from tests.helpers_normalise import Fixture, as_json, inbound_fixtures

ACCOUNT = AccountContext(id="acc-email-1", platform="email", name="support", credentials={},
                         mode="imap", options={"address": "Support@Acme.example"})
FIXTURES = inbound_fixtures("email")


def load(name: str) -> bytes:
    (fixture,) = [f for f in FIXTURES if str(f) == name]
    payload = fixture.payload
    assert isinstance(payload, bytes)
    return payload


def message(raw: bytes) -> InboundMessage:
    result = normalise(raw, ACCOUNT)
    assert isinstance(result, InboundMessage), result
    return result


def with_headers(raw: bytes, **headers: str) -> bytes:
    """The fixture with header fields added on top (names: underscores become dashes)."""
    block = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return block.encode() + raw


# --------------------------------------------------------------------------- golden


@pytest.mark.parametrize("fixture", FIXTURES, ids=str)
def test_golden(fixture: Fixture) -> None:
    result = normalise(fixture.payload, ACCOUNT)
    if isinstance(result, InboundMessage):
        assert result.raw is not None and result.raw["size"] == len(fixture.payload)
    fixture.check(as_json(result))


def test_every_handler_and_the_required_scenarios_have_fixtures() -> None:
    names = {str(f) for f in FIXTURES}
    kinds = {name.split("__")[0] for name in names}
    assert set(HANDLERS) <= kinds
    assert any("own_echo" in n for n in names)
    assert any(n.startswith("unknown__") for n in names)
    for fixture in FIXTURES:
        key = dispatch_key(fixture.payload)
        expected = str(fixture).split("__")[0]
        assert key == (None if expected == "unknown" else expected), str(fixture)


# --------------------------------------------------------------------------- threading


def test_thread_key_is_the_root_of_references() -> None:
    msg = message(load("message__gbk_base64_coremail_163"))
    assert msg.thread_key == "20220721085232.50291-1-slark_xiao@163.com"
    assert msg.thread_aliases == ("20220721085232.50291-1-slark_xiao@163.com",
                                  "20220722150405.GA33010@nvidia.com",
                                  "720cea88.6fa.18232f6b15d.Coremail.slark_xiao@163.com")
    assert msg.reply_to == "20220722150405.GA33010@nvidia.com"
    assert msg.external_id == "720cea88.6fa.18232f6b15d.Coremail.slark_xiao@163.com"


def test_in_reply_to_without_references() -> None:
    msg = message(load("message__yahoo_in_reply_to"))
    assert msg.thread_key == "1333374262.7063.15.camel@mg5"
    assert msg.external_id in msg.thread_aliases and msg.thread_key in msg.thread_aliases


def test_a_new_mail_starts_its_own_thread() -> None:
    msg = message(load("message__plain_basic"))
    assert msg.thread_key == msg.external_id
    assert msg.external_id == "6B7EC235-5B17-4CA8-B2B8-39290DEB43A3@test.lindsaar.net"
    assert msg.thread_aliases == (msg.external_id,) and msg.kind == "dm"


def test_reply_to_different_from_the_author_is_the_reply_route() -> None:
    same = message(load("message__pdf_attachment"))  # Reply-To equals From
    assert same.reply_route is None
    form = message(with_headers(load("message__plain_basic"),
                                Reply_To="Li Lei <lilei@customer.example>"))
    assert form.author.user_id == "test@lindsaar.net"
    assert form.reply_route == {"to": ["lilei@customer.example"]}


def test_missing_message_id_gets_a_stable_synthetic_one() -> None:
    raw = load("message__outlook_reply_no_message_id")
    first, again = message(raw), message(raw)
    assert first.external_id == again.external_id
    assert first.external_id.endswith("@synthetic.switchboard.invalid")
    assert message(raw + b"\n").external_id != first.external_id


# --------------------------------------------------------------------------- subjects


@pytest.mark.parametrize(("subject", "title"), [
    ("Re: Test", "Test"), ("RE: RE: Fwd: Test", "Test"), ("Re:Re: [PATCH] x", "[PATCH] x"),
    ("回复：订单问题", "订单问题"), ("回复: 答复: 转发: 订单问题", "订单问题"),
    ("答复:发票", "发票"), ("Re[2]: hello", "hello"), ("AW: Frage", "Frage"),
    ("FW: 转发：退款", "退款"), ("  Re :  spaced  out ", "spaced out"),
    ("Rebate offer", "Rebate offer"),
])
def test_subject_prefixes(subject: str, title: str) -> None:
    assert strip_subject_prefixes(subject) == title


def test_rfc2047_gb2312_subject_with_chinese_prefix() -> None:
    msg = message(load("message__gb2312_subject_outlook_zh"))
    assert msg.thread_title == "[PATCH 1/6] migration/colo.c: Use event instead of semaphore"
    assert msg.raw is not None
    assert msg.raw["headers"]["subject"].startswith("答复: [PATCH 1/6]")
    assert msg.author.locale == "zh-CN"


# --------------------------------------------------------------------------- charsets


def test_gbk_body_in_base64_from_163_webmail() -> None:
    msg = message(load("message__gbk_base64_coremail_163"))
    assert msg.text.startswith("Thanks for that.")
    assert msg.full_text is not None and "At 2022-07-22 23:04:05" in msg.full_text


def test_gbk_8bit_body_and_chinese_attribution_line() -> None:
    msg = message(load("message__gbk_8bit_thunderbird_zh_quote"))
    assert msg.full_text is not None and "在 2021/1/26 7:22, Andrew Morton 写道:" in msg.full_text
    assert msg.text == "Ah, right. Thanks for letting me know."


def test_gb2312_label_decodes_gbk_only_characters() -> None:
    """镕 (U+9555) is in GBK but not in GB2312: mislabelled mail must still decode."""
    body = "朱镕基先生，您好。".encode("gbk")
    raw = (b"From: a@customer.example\r\nSubject: =?gb2312?B?"
           + base64.b64encode("镕".encode("gbk")) + b"?=\r\n"
           b"Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + body)
    msg = message(raw)
    assert msg.text == "朱镕基先生，您好。" and msg.thread_title == "镕"


def test_a_charset_label_holding_a_nul_is_an_unknown_charset() -> None:
    """Found by the fuzz test below: `codecs.lookup` raises ValueError, not LookupError, for a
    name with a NUL in it; the body then decodes by the usual guesses."""
    assert decode_bytes("您好，订单已发货。".encode("gb18030"), "\x00gbk") == "您好，订单已发货。"
    raw = (b"From: a@customer.example\r\nSubject: hello\r\n"
           b"Content-Type: text/plain; charset=\"\x00utf-8\"\r\n\r\n" + "谢谢".encode())
    assert message(raw).text == "谢谢"


def test_raw_big5_headers_use_the_body_charset() -> None:
    msg = message(load("message__big5_raw_headers_html"))
    assert msg.thread_title is not None and "大家說英語" in msg.thread_title
    assert "內置防止彈出視窗" in msg.text


def test_iso_2022_jp_and_euc_kr() -> None:
    assert message(load("message__iso_2022_jp")).text == "すみません。"
    assert message(load("message__euc_kr_subject")).thread_title == "NOTE: 한국말로 하는 것"


def test_decode_bytes_falls_back_without_losing_text() -> None:
    assert decode_bytes("中文".encode("gb18030"), "utf-8") == "中文"
    assert decode_bytes("naïve".encode(), "us-ascii") == "naïve"
    assert decode_bytes(b"caf\xe9", "iso-8859-1") == "café"
    assert decode_bytes("中文".encode("gbk"), "x-unknown-charset") == "中文"


# --------------------------------------------------------------------------- bodies


def test_gmail_reply_folds_the_quote_but_keeps_it_in_full_text() -> None:
    msg = message(load("message__gmail_reply"))
    assert msg.text == "Hello"
    assert msg.full_text is not None and "wrote:" in msg.full_text
    assert msg.html is not None and "<blockquote>" in msg.html


def test_outlook_reply_headers_are_folded() -> None:
    assert message(load("message__outlook_reply_no_message_id")).text == "Hello"
    assert message(load("message__hotmail_reply")).text == "Hello"


def test_html_only_mail_is_converted_and_sanitised() -> None:
    msg = message(load("message__html_only_outlook_2010"))
    assert msg.text == "Hi. I am fine."
    assert msg.html is not None
    assert "<style" not in msg.html and "font-family" not in msg.html
    assert "color:#1F497D" in msg.html


def test_html_sanitiser_drops_scripts_and_rewrites_cid_images() -> None:
    msg = message(load("message__html_inline_image_and_eml"))
    assert msg.html == '<img src="attachment:0">'
    image, mail = msg.attachments
    assert (image.type, image.inline, image.extra) == (
        "photo", True, {"content_id": "emedfeb92f-a786-4718-a446-98db8afb53fb@kronos"})
    assert (mail.type, mail.name, mail.mime, mail.inline) == (
        "document", "Testmail.eml", "message/rfc822", False)
    hostile = load("message__html_only_outlook_2010").replace(
        b"<body", b"<script>alert(1)</script><img src=cid:nope onerror=alert(2)><body")
    html = message(hostile).html or ""
    assert "script" not in html and "onerror" not in html and "cid:" not in html


def test_attachments_and_their_bytes() -> None:
    result, blobs = normalise_with_parts(load("message__pdf_attachment"), ACCOUNT)
    assert isinstance(result, InboundMessage)
    (pdf,) = result.attachments
    assert (pdf.type, pdf.name, pdf.mime, pdf.file_id) == ("document", "broken.pdf",
                                                          "application/pdf", "2")
    assert blobs[0].startswith(b"%PDF") and pdf.size == len(blobs[0])
    named, _ = normalise_with_parts(load("message__nonascii_filename"), ACCOUNT)
    assert isinstance(named, InboundMessage) and named.attachments[0].name == "ciële.txt"


def test_chinese_attachment_name_in_rfc2047_and_rfc2231() -> None:
    raw = load("message__nonascii_filename")
    encoded = b"=?gb2312?B?" + base64.b64encode("发票.pdf".encode("gbk")) + b"?="
    name = "ciële.txt".encode()
    outlook = raw.replace(b"name=" + name, b'name="' + encoded + b'"').replace(
        b"filename=" + name, b'filename="' + encoded + b'"')
    assert message(outlook).attachments[0].name == "发票.pdf"
    rfc2231 = raw.replace(b"filename=" + name, b"filename*=UTF-8''%E5%8F%91%E7%A5%A8.pdf")
    assert message(rfc2231).attachments[0].name == "发票.pdf"


def test_html_to_text_keeps_structure() -> None:
    text = html_to_text("<p>Hello&nbsp;there</p><ul><li>one</li><li>two</li></ul>"
                        "<p>see <a href='https://acme.example/o/1'>the order</a></p>"
                        "<blockquote>old<br>mail</blockquote><script>x()</script>")
    assert text == ("Hello there\n\n• one\n• two\n\nsee the order <https://acme.example/o/1>"
                    "\n\n> old\n> mail")


@pytest.mark.parametrize(("body", "newest"), [
    ("好的，谢谢！\n\n------------------ 原始邮件 ------------------\n发件人: \"Acme\"\n"
     "发送时间: 2024年1月1日\n收件人: x\n主题: 订单\n\n旧的内容", "好的，谢谢！"),
    ("收到。\n\n发件人：张三\n发送时间：2024年1月1日 10:00\n收件人：客服\n主题：订单\n\n旧的",
     "收到。"),
    ("可以的\n\n2024年1月1日 周一 10:00，Acme <s@acme.example> 写道：\n> 旧的", "可以的"),
    ("Yes.\n\n-- \nLi Lei\nAcme Corp", "Yes."),
    ("My list:\n- first\n- second", "My list:\n- first\n- second"),
])
def test_fold(body: str, newest: str) -> None:
    assert fold(body) == newest


def test_big_bodies_stay_fast() -> None:
    import time

    began = time.monotonic()
    assert html_to_text("<p>段落</p>" * 20_000).count("段落") == 20_000
    body = "\n".join(["On Mon, X wrote:", "> old", "From: a", "Sent: b", "新内容"] * 4_000)
    assert fold(body)
    assert time.monotonic() - began < 3.0


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize("name", ["auto_reply__exchange_oof_zh", "auto_reply__sieve_vacation",
                                  "auto_reply__x_autoreply_exim"])
def test_auto_replies_are_ignored(name: str) -> None:
    result = normalise(load(name), ACCOUNT)
    assert isinstance(result, Ignored) and result.reason.startswith("auto-reply")


@pytest.mark.parametrize(("headers", "kind"), [
    ({"Auto_Submitted": "auto-replied"}, "auto_reply"),
    ({"Auto_Submitted": "no"}, "message"),
    ({"X_Autorespond": "yes"}, "auto_reply"),
    ({"Precedence": "auto_reply"}, "auto_reply"),
    ({"Precedence": "bulk"}, "mailing_list"),
    ({"Precedence": "list"}, "mailing_list"),
    ({"List_Unsubscribe": "<mailto:u@news.example>"}, "mailing_list"),
    ({"List_Id": "<news.example>"}, "mailing_list"),
    ({"X_Switchboard": "m-1"}, "own"),
])
def test_noise_headers(headers: dict[str, str], kind: str) -> None:
    raw = with_headers(load("message__plain_basic"), **headers)
    assert dispatch_key(raw) == kind


def test_mailing_list_mail_is_ignored() -> None:
    result = normalise(load("mailing_list__coremail_gbk"), ACCOUNT)
    assert isinstance(result, Ignored) and "linux-rdma.vger.kernel.org" in result.reason


def test_own_address_and_own_header_are_own_messages() -> None:
    assert normalise(load("own__own_echo_reply"), ACCOUNT) == Ignored("own message")
    from_us = re.sub(rb"(?m)^From: .*$", b"From: SUPPORT@acme.example",
                     load("message__plain_basic"), count=1)
    assert dispatch_key(from_us) == "message"  # the account is not known to dispatch_key
    assert normalise(from_us, ACCOUNT) == Ignored("own message")


def test_unknown_report_type_is_ignored() -> None:
    raw = load("unknown__arf_feedback_report")
    assert dispatch_key(raw) is None
    result = normalise(raw, ACCOUNT)
    assert isinstance(result, Ignored) and "feedback-report" in result.reason


# --------------------------------------------------------------------------- bounces


def test_bounce_of_our_reply_names_its_message_id_and_reason() -> None:
    result = normalise(load("bounce__postfix_failed"), ACCOUNT)
    assert isinstance(result, DeliveryReport)
    assert result.outbound_external_id == "173298001.52.sb7f3a9c@acme.example"
    assert result.reason.startswith("bbbbvhvbbvkjbhfbvbvjhb@gmail.com: 550-5.1.1 The email "
                                    "account that you tried to reach does not exist.")
    assert "bad destination mailbox address" in result.reason
    assert result.at == datetime(2010, 2, 24, 6, 16, 41, tzinfo=UTC)


def test_bounce_with_returned_headers_only() -> None:
    result = normalise(load("bounce__sendmail_rfc822_headers"), ACCOUNT)
    assert isinstance(result, DeliveryReport)
    assert result.outbound_external_id == "200712232303.lBNN3jDq002941@mail12.rrrr.com.au"
    assert "553 5.3.0" in result.reason


def test_delay_warning_is_not_a_failure() -> None:
    assert normalise(load("bounce__delayed_warning"), ACCOUNT) == Ignored(
        "delivery report: delayed")


def test_envelope_id_names_the_reply_when_the_headers_are_not_returned() -> None:
    raw = load("bounce__postfix_failed")
    start = raw.index(b"Content-Description: Undelivered Message")
    trimmed = raw[:start] + b"\r\n--9B7841BC027.1266992201/lvmail01.LL.com--\r\n"
    trimmed = trimmed.replace(b"Reporting-MTA: dns; lvmail01.LL.com\r\n",
                              b"Reporting-MTA: dns; lvmail01.LL.com\r\n"
                              b"Original-Envelope-Id: 9911.ab+2Bc@acme.example\r\n")
    result = normalise(trimmed, ACCOUNT)
    assert isinstance(result, DeliveryReport)
    assert result.outbound_external_id == "9911.ab+c@acme.example"


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("payload", [b"", b"   \r\n", "From: a@b\r\n\r\nx", None, 42,
                                     b"Subject: no sender\r\n\r\nbody"])
def test_unreadable_payloads_raise_our_error(payload: object) -> None:
    with pytest.raises(UnreadableMail):
        normalise(payload, ACCOUNT)


def test_missing_date_falls_back_to_received_then_flags_it() -> None:
    raw = load("message__iso_2022_jp")  # no Date, no Received
    assert message(raw).platform_ts.year == 1970
    assert (message(raw).raw or {}).get("date_missing") is True
    with_received = b"Received: from x by y; Tue, 3 Feb 2009 10:00:00 +0800\r\n" + raw
    assert message(with_received).platform_ts == datetime(2009, 2, 3, 2, 0, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        result = normalise(data, ACCOUNT)
    except UnreadableMail:
        return
    assert isinstance(result, InboundMessage | Ignored | DeliveryReport)


_HEADER_NAMES = st.sampled_from(["From", "To", "Subject", "Message-ID", "References",
                                 "In-Reply-To", "Content-Type", "Content-Transfer-Encoding",
                                 "Content-Disposition", "Date", "Auto-Submitted", "List-Id"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_HEADER_NAMES, st.text(max_size=80)), max_size=12),
       st.binary(max_size=600), st.sampled_from([b"\r\n", b"\n"]))
def test_fuzz_mail_shaped_input(headers: list[tuple[str, str]], body: bytes,
                                newline: bytes) -> None:
    head = newline.join(f"{name}: {value}".encode("utf-8", "surrogatepass")
                        for name, value in headers)
    raw = b"From: Someone <someone@customer.example>" + newline + head + newline * 2 + body
    try:
        result = normalise(raw, ACCOUNT)
    except UnreadableMail:
        return
    assert isinstance(result, InboundMessage | Ignored | DeliveryReport)
    if isinstance(result, InboundMessage):
        assert result.external_id and result.thread_key in result.thread_keys


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([f.payload for f in FIXTURES]), st.integers(0, 10_000),
       st.integers(0, 60), st.binary(max_size=60))
def test_fuzz_damaged_real_mails(seed: bytes, at: int, cut: int, junk: bytes) -> None:
    at %= len(seed) + 1
    try:
        result = normalise(seed[:at] + junk + seed[at + cut:], ACCOUNT)
    except UnreadableMail:
        return
    assert isinstance(result, InboundMessage | Ignored | DeliveryReport)


def test_module_is_pure() -> None:
    with open(email_normalise.__file__, encoding="utf-8") as handle:
        source = handle.read()
    assert not re.search(r"^\s*import (socket|asyncio|imapclient|aiosmtplib)", source, re.M)
