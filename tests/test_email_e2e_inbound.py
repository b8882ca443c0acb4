"""Customer mail through the real host: Dovecot → the hosting runner's IMAP session (IDLE) →
the inbox store. Once and within a second; threads by In-Reply-To / References with the
subject as the conversation's title; GBK labelled GB2312; attachments kept in GridFS and
served by the attachment route; noise ignored; restarts and a rebuilt folder repeat nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import quote

from connectors.email.imap_session import CURSOR
from connectors.email.sandbox import customer_mail
from tests.email_servers import dovecot
from tests.kits.email import EmailLive, email_live
from tests.live import wait_for

__all__ = ["dovecot", "email_live"]

log = logging.getLogger(__name__)

# a one-pixel PNG
PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                      "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a1e3b2d40000000049454e44ae426082")


async def test_a_mail_appears_in_the_inbox_once_and_within_a_second(
        email_live: EmailLive) -> None:
    account = await email_live.add_account()
    began = time.monotonic()
    message_id = await email_live.customer_writes("你好，我的订单还没有发货。")
    doc = await email_live.one(message_id, timeout=5)
    latency = time.monotonic() - began
    log.warning("IMAP APPEND → stored in the inbox through IDLE: %.0f ms", latency * 1000)
    assert latency < 1.0, f"{latency:.3f} s"
    assert doc["text"] == "你好，我的订单还没有发货。" and doc["account_id"] == account["id"]
    assert doc["author"]["name"] == "李雷" and doc["author"]["user_id"] == "lilei@customer.example"
    await asyncio.sleep(1.0)  # another IDLE round: nothing stored twice
    assert await email_live.db.messages.count_documents({"direction": "in"}) == 1
    await wait_for(lambda: _cursor_at(email_live, account["id"], 1))
    stored = await email_live.account_doc(account["id"])
    assert stored["status"] == "active" and stored["last_inbound_at"] is not None


async def test_a_thread_is_one_conversation_titled_by_its_subject(email_live: EmailLive) -> None:
    await email_live.add_account()
    first = await email_live.customer_writes("我上周五下的订单 10234 还没有发货。", ago=60)
    doc = await email_live.one(first)
    second = await email_live.customer_writes(
        "补充一下：收货地址是上海。", subject="Re: 订单 10234 什么时候发货？", in_reply_to=first)
    again = await email_live.one(second)
    assert again["conversation_id"] == doc["conversation_id"]
    conversation = await email_live.conversation(doc["conversation_id"])
    assert conversation["title"] == "订单 10234 什么时候发货？"  # the subject, without Re:
    assert conversation["kind"] == "dm" and conversation["platform"] == "email"
    _, listed = await email_live.api("GET", "/api/conversations", expect=200,
                                     headers=email_live.agent)
    assert [c["title"] for c in listed["items"]] == ["订单 10234 什么时候发货？"]
    stored = await email_live.db.conversations.find_one({})
    assert stored["thread_key"] == first  # the root of References
    # a mail of another thread, same customer: a conversation of its own
    other = await email_live.customer_writes("另外想问一下发票的事。", subject="发票")
    assert (await email_live.one(other))["conversation_id"] != doc["conversation_id"]


async def test_gbk_labelled_gb2312_and_quoted_history(email_live: EmailLive) -> None:
    """What Chinese mailers send: GBK bytes under a GB2312 label, RFC 2047 in the subject;
    the quoted history is folded away and kept behind "show quoted text"."""
    await email_live.add_account()
    text = ("镕基的订单已经收到了吗？\n\n在 2025年12月1日 10:00，Acme 客服部 写道：\n"
            "> 您好，请提供订单号。")
    message_id = await email_live.customer_writes(text, subject="关于订单", charset="gbk",
                                                  label="gb2312", name="朱镕基")
    doc = await email_live.one(message_id)
    assert doc["text"] == "镕基的订单已经收到了吗？"  # 镕 is GBK, not GB2312
    assert "> 您好，请提供订单号。" in doc["full_text"]
    assert doc["author"]["name"] == "朱镕基"
    conversation = await email_live.conversation(doc["conversation_id"])
    assert conversation["title"] == "关于订单"
    (shown,) = await email_live.messages(doc["conversation_id"])
    assert shown["text"] == doc["text"] and shown["full_text"] == doc["full_text"]


def _mail_with_files(to: str) -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"] = "韩梅梅 <hanmeimei@customer.example>"
    msg["To"] = to
    msg["Subject"] = "发票和截图"
    msg["Date"] = format_datetime(datetime.now(UTC))
    message_id = make_msgid(domain="customer.example")
    msg["Message-ID"] = message_id
    msg.set_content("发票见附件，截图在正文里。")
    msg.add_alternative('<p>发票见附件，截图：</p><p><img src="cid:shot@customer.example" '
                        'alt="截图"><script>alert(1)</script></p>', subtype="html")
    html = msg.get_payload()[1]
    html.add_related(PIXEL, "image", "png", cid="<shot@customer.example>", filename="截图.png")
    msg.add_attachment(b"%PDF-1.4 invoice 10234\n%%EOF\n", maintype="application",
                       subtype="pdf", filename="发票 10234.pdf")
    return msg.as_bytes(), message_id.strip("<>")


async def test_attachments_are_served_by_the_attachment_route(email_live: EmailLive) -> None:
    await email_live.add_account()
    raw, message_id = _mail_with_files(email_live.user)
    await email_live.deliver(raw)
    doc = await email_live.one(message_id)
    (shown,) = await email_live.messages(doc["conversation_id"])
    by_name = {a["name"]: a for a in shown["attachments"]}
    assert set(by_name) == {"截图.png", "发票 10234.pdf"}
    image, pdf = by_name["截图.png"], by_name["发票 10234.pdf"]
    assert image["inline"] is True and image["mime"] == "image/png"
    assert pdf["inline"] is False and pdf["size"] == len(b"%PDF-1.4 invoice 10234\n%%EOF\n")
    index = shown["attachments"].index(image)
    assert f'src="{image["url"]}"' in shown["html"] and "<script" not in shown["html"]
    assert image["url"].endswith(f"/attachments/{index}")  # the part, through the route

    async with email_live.live.http.get(f"{email_live.live.url}{pdf['url']}",
                                        headers=email_live.agent) as resp:
        assert resp.status == 200
        assert await resp.read() == b"%PDF-1.4 invoice 10234\n%%EOF\n"
        disposition = resp.headers["Content-Disposition"]
        assert disposition.startswith("attachment;")
        assert f"filename*=UTF-8''{quote('发票 10234.pdf', safe='')}" in disposition
    async with email_live.live.http.get(f"{email_live.live.url}{image['url']}",
                                        headers=email_live.agent) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
        assert await resp.read() == PIXEL
        assert resp.headers["Content-Disposition"].startswith("inline;")
    async with email_live.live.http.get(f"{email_live.live.url}{pdf['url']}") as resp:
        assert resp.status == 401  # never without a login


async def test_noise_is_not_stored(email_live: EmailLive) -> None:
    """An auto-reply, a mailing list, and our own reply come back into the folder (a copy
    Bcc'd to the support address): ignored; the customer's mail after them is stored."""
    await email_live.add_account()
    auto = customer_mail(sender="lilei@customer.example", name="李雷", subject="自动答复: 订单",
                         text="我正在休假。", to=email_live.user).replace(
        b"MIME-Version:", b"Auto-Submitted: auto-replied\r\nMIME-Version:")
    listed = customer_mail(sender="news@shop.example", name="Shop", subject="本周特价",
                           text="特价商品", to=email_live.user).replace(
        b"MIME-Version:", b"List-Id: <deals.shop.example>\r\nMIME-Version:")
    ours = customer_mail(sender=email_live.user, name="张客服 · Acme 客服部", subject="Re: 订单",
                         text="您好", to="lilei@customer.example")
    for raw in (auto, listed, ours):
        await email_live.deliver(raw)
    message_id = await email_live.customer_writes("真正的客户来信。")
    await email_live.one(message_id)
    assert await email_live.db.messages.count_documents({}) == 1


async def test_a_restart_repeats_nothing_and_loses_nothing(email_live: EmailLive) -> None:
    account = await email_live.add_account()
    channels = email_live.live.services.channels
    first = [await email_live.customer_writes(f"第 {n} 封邮件。", subject=f"问题 {n}")
             for n in (1, 2)]
    await email_live.stored(2)
    await channels.stop_all()  # the process stops...
    while_down = await email_live.customer_writes("停机时到达的邮件。", subject="问题 3")
    await channels.start_all()  # ...and starts again: the session resumes from the cursor
    await email_live.one(while_down)
    await email_live.live.services.hosting.stop(account["id"])  # and the runner alone
    await email_live.live.services.hosting.start(await channels.get(account["id"]))
    await email_live.session_ready(account["id"])
    last = await email_live.customer_writes("重启之后的邮件。", subject="问题 4")
    await email_live.one(last)
    await asyncio.sleep(0.5)
    stored = await email_live.db.messages.find({"direction": "in"}).to_list()
    assert sorted(d["external_id"] for d in stored) == sorted([*first, while_down, last])
    await wait_for(lambda: _cursor_at(email_live, account["id"], 4))


async def test_a_rebuilt_folder_is_read_again_without_duplicates(email_live: EmailLive,
                                                                 ) -> None:
    """A new UIDVALIDITY (the folder was deleted and made again, e.g. by a migration): the
    session reads it again from a day before the newest mail it had, and the store's unique
    Message-ID absorbs the ones it already holds."""
    folder = "Support"
    await asyncio.to_thread(email_live.dovecot.recreate, email_live.user, folder)
    mails = [customer_mail(sender="lilei@customer.example", name="李雷", subject=f"问题 {n}",
                           text=f"第 {n} 封。", to=email_live.user,
                           message_id=f"<rebuilt-{n}-{time.time_ns()}@customer.example>")
             for n in (1, 2, 3)]
    account = await email_live.add_account(folder=folder)
    for raw in mails[:2]:
        await email_live.deliver(raw, folder)
    await email_live.stored(2)
    before = await wait_for(lambda: _cursor_at(email_live, account["id"], 2))
    await email_live.live.services.hosting.stop(account["id"])
    await asyncio.to_thread(email_live.dovecot.recreate, email_live.user, folder)
    for raw in mails:  # the same two again, with new UIDs, and a new one
        await email_live.deliver(raw, folder)
    await email_live.live.services.hosting.start(
        await email_live.live.services.channels.get(account["id"]))
    await email_live.stored(3)
    await asyncio.sleep(0.5)
    assert await email_live.db.messages.count_documents({"direction": "in"}) == 3
    after = await wait_for(lambda: _cursor_moved(email_live, account["id"], before))
    assert after["uidvalidity"] != before["uidvalidity"] and after["last_uid"] == 3


async def _cursor_at(email_live: EmailLive, account_id: str,
                     uid: int) -> dict[str, object] | None:
    cursor = (await email_live.account_doc(account_id))["cursors"].get(CURSOR)
    return cursor if cursor and cursor["last_uid"] == uid else None


async def _cursor_moved(email_live: EmailLive, account_id: str,
                        before: dict[str, object]) -> dict[str, object] | None:
    cursor = (await email_live.account_doc(account_id))["cursors"][CURSOR]
    return cursor if cursor["uidvalidity"] != before["uidvalidity"] else None
