"""Replies through the real host: POST /api/conversations/{id}/messages → outbox → delivery
worker → aiosmtplib → aiosmtpd. Threaded for the customer's mail client, from the agent's
name, plain and HTML; the customer's answer naming only our Message-ID joins the same
conversation; a bounce (DSN) arriving in the mailbox marks the reply failed."""

from __future__ import annotations

import asyncio
import re
from email.headerregistry import Address

from connectors.email.normalise import OWN_HEADER
from connectors.email.sandbox import bounce_of
from tests.email_servers import dovecot
from tests.kits.email import AGENT_NAME, BRAND, EmailLive, email_live

__all__ = ["dovecot", "email_live"]

SHOWN = f"{AGENT_NAME} · {BRAND}"  # "张客服 · Acme 客服部"
RE = "Re: 订单 10234 什么时候发货？"


async def test_a_reply_arrives_threaded_from_the_agent(email_live: EmailLive) -> None:
    await email_live.add_account()
    first = await email_live.customer_writes("我上周五下的订单 10234 还没有发货。", ago=60)
    second = await email_live.customer_writes("请尽快处理，谢谢。", subject=RE, in_reply_to=first)
    doc = await email_live.one(second)
    body = await email_live.reply(doc["conversation_id"],
                                  "您好，订单已于今天发出。\n\n快递单号 SF123。")
    assert body["agent_name"] == SHOWN

    (sent,) = await email_live.smtp.wait_for_sent(1, timeout=10)
    msg = sent.message
    assert sent.mail_from == email_live.user and sent.rcpt_tos == ["lilei@customer.example"]
    assert msg["From"].addresses[0] == Address(SHOWN, addr_spec=email_live.user)
    head = re.sub(r"\r\n[ \t]+", " ", sent.data.split(b"\r\n\r\n")[0].decode("ascii"))
    from_line = next(line for line in head.split("\r\n") if line.startswith("From:"))
    assert "=?utf-8?" in from_line and from_line.endswith(f"<{email_live.user}>")  # RFC 2047
    assert str(msg["Subject"]) == "Re: 订单 10234 什么时候发货？"
    assert str(msg["In-Reply-To"]) == f"<{second}>"
    assert str(msg["References"]).split() == [f"<{first}>", f"<{second}>"]
    assert str(msg[OWN_HEADER]) == body["id"]
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == (
        f"您好，订单已于今天发出。\n\n快递单号 SF123。\n\n-- \n— {SHOWN}\n")
    assert "<p>您好，订单已于今天发出。</p>" in html.get_content()

    stored = await email_live.delivery(body["id"], "sent")
    message_id = str(msg["Message-ID"]).strip("<>")
    assert stored["external_id"] == message_id and message_id.endswith("@acme.example")
    assert sent.dsn["ENVID"] == message_id  # a bounce can name it even without headers
    (shown,) = [m for m in await email_live.messages(doc["conversation_id"])
                if m["direction"] == "out"]
    assert shown["shown_name"] == SHOWN and shown["delivery"]["state"] == "sent"
    conversation = await email_live.db.conversations.find_one({})
    assert message_id in conversation["thread_keys"]  # Delivery.thread_alias, learned

    # a copy of our own reply lands in the folder (Bcc to the support address): not stored
    await email_live.deliver(sent.data)
    later = await email_live.customer_writes("还有一个问题。", subject=RE, in_reply_to=second,
                                             references=(first,))
    await email_live.one(later)
    assert await email_live.db.messages.count_documents({"direction": "in"}) == 3
    assert await email_live.db.messages.count_documents({"direction": "out"}) == 1


async def _our_reply(email_live: EmailLive) -> tuple[str, str, str]:
    """A customer's mail and our answer to it: (their Message-ID, conversation, ours)."""
    await email_live.add_account()
    first = await email_live.customer_writes("我的订单还没有发货。", ago=60)
    doc = await email_live.one(first)
    body = await email_live.reply(doc["conversation_id"], "您好，马上为您查询。")
    (sent,) = await email_live.smtp.wait_for_sent(1, timeout=10)
    await email_live.delivery(body["id"], "sent")
    return first, doc["conversation_id"], str(sent.message["Message-ID"]).strip("<>")


async def test_the_customers_answer_to_our_mail_joins_the_conversation(
        email_live: EmailLive) -> None:
    """Their client names the thread's root and our Message-ID in References."""
    first, conversation_id, ours = await _our_reply(email_live)
    answer = await email_live.customer_writes("收到，谢谢！", subject=RE, in_reply_to=ours,
                                              references=(first,))
    assert (await email_live.one(answer))["conversation_id"] == conversation_id
    assert await email_live.db.conversations.count_documents({}) == 1


async def test_an_answer_naming_only_our_message_id_joins_the_conversation(
        email_live: EmailLive) -> None:
    """Some clients send only In-Reply-To (no References): the mail names nothing but our
    Message-ID, which the conversation learned from the Delivery's thread_alias."""
    _, conversation_id, ours = await _our_reply(email_live)
    answer = await email_live.customer_writes("收到，谢谢！", subject=RE, in_reply_to=ours)
    assert (await email_live.one(answer))["conversation_id"] == conversation_id


async def test_the_next_reply_names_the_whole_thread(email_live: EmailLive) -> None:
    await email_live.add_account()
    first = await email_live.customer_writes("你好", ago=60)
    doc = await email_live.one(first)
    one = await email_live.reply(doc["conversation_id"], "您好，请问有什么可以帮您？")
    (sent,) = await email_live.smtp.wait_for_sent(1, timeout=10)
    ours = str(sent.message["Message-ID"]).strip("<>")
    await email_live.delivery(one["id"], "sent")
    answer = await email_live.customer_writes("订单没到。", subject=RE,
                                              in_reply_to=ours, references=(first,))
    await email_live.one(answer)
    await email_live.reply(doc["conversation_id"], "马上为您查询。")
    _, again = await email_live.smtp.wait_for_sent(2, timeout=10)
    assert str(again.message["In-Reply-To"]) == f"<{answer}>"
    assert str(again.message["References"]).split() == [f"<{first}>", f"<{ours}>",
                                                        f"<{answer}>"]


async def test_a_reply_to_a_mail_with_reply_to_goes_there(email_live: EmailLive) -> None:
    """A web form sends on the customer's behalf and names the customer in Reply-To."""
    await email_live.add_account()
    from connectors.email.sandbox import customer_mail

    raw = customer_mail(sender="noreply@forms.example", name="Website form",
                        subject="Contact form: 退货", text="我想退货。", to=email_live.user,
                        message_id="<form-1@forms.example>").replace(
        b"MIME-Version:", b"Reply-To: =?utf-8?b?546L5bCP5piO?= <xiaoming@customer.example>"
                          b"\r\nMIME-Version:")
    await email_live.deliver(raw)
    doc = await email_live.one("form-1@forms.example")
    assert doc["reply_route"] == {"to": ["xiaoming@customer.example"]}
    await email_live.reply(doc["conversation_id"], "您好，请把订单号发给我们。")
    (sent,) = await email_live.smtp.wait_for_sent(1, timeout=10)
    assert sent.rcpt_tos == ["xiaoming@customer.example"]
    assert str(sent.message["To"]) == "xiaoming@customer.example"


async def test_a_bounce_marks_the_reply_failed_with_the_dsn_reason(email_live: EmailLive,
                                                                  ) -> None:
    await email_live.add_account()
    first = await email_live.customer_writes("你好，请回复我。", sender="gone@customer.example")
    doc = await email_live.one(first)
    body = await email_live.reply(doc["conversation_id"], "您好！")
    (sent,) = await email_live.smtp.wait_for_sent(1, timeout=10)
    await email_live.delivery(body["id"], "sent")

    # the customer's server refuses it later and sends a DSN back to the support address
    await email_live.deliver(bounce_of(sent, status="5.1.1", diagnostic=(
        "550 5.1.1 The email account that you tried to reach does not exist.")))
    failed = await email_live.delivery(body["id"], "failed", timeout=10)
    error = failed["delivery"]["error"]
    assert error["code"] == "bounced" and error["reported"] is True
    assert error["message"] == ("gone@customer.example: 550 5.1.1 The email account that you "
                                "tried to reach does not exist. (5.1.1: bad destination mailbox "
                                "address)")
    (shown,) = [m for m in await email_live.messages(doc["conversation_id"])
                if m["direction"] == "out"]
    assert shown["delivery"]["state"] == "failed"
    assert shown["delivery"]["error"]["message"] == error["message"]
    await asyncio.sleep(0.3)
    assert await email_live.db.messages.count_documents({"direction": "in"}) == 1  # not a mail
