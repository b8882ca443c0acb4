"""X replies through the real host: API → outbox → delivery worker → tweepy → sandbox.

Covers the issue's reply list: threading under the customer's latest post with the signature
suffix, the weighted-length refusal with the counter's figures, the reply restriction in words
with "send as DM instead", a 429 that holds back one account's posts only, and a 401 that
parks the replies until an admin enters the regenerated token."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from connectors.x.sandbox_api import REPLY_RESTRICTED
from connectors.x.strings import STRINGS
from tests.kits.x import CUSTOMER_ID, OUR_ID, XLive, sandbox_account, x_live_fixture  # noqa: F401
from tests.live import wait_for

SIGNATURE = " ^李"  # the default " ^{initials}" for the test admin 李经理
OTHER_ID = "3333333333333333333"


async def mention_thread(x: XLive, to: str = OUR_ID) -> tuple[str, str, str]:
    """A customer's mention and their follow-up under it: (conversation id, first, latest)."""
    first = x.sandbox.inject_mention(x.customer, "订单 #5521 显示已签收，但我没收到", to=to)
    latest = x.sandbox.inject_mention(x.customer, "补充：快递员电话也打不通", to=to,
                                      in_reply_to=first)
    stored = await x.wait_inbound(2, external_id={"$in": [first, latest]})
    assert len({m["conversation_id"] for m in stored}) == 1
    return str(stored[0]["conversation_id"]), first, latest


async def dm_thread(x: XLive, to: str = OUR_ID) -> str:
    dm = x.sandbox.inject_dm(x.customer, to, "可以私信说吗？")
    (msg,) = await x.wait_inbound(1, external_id=dm)
    return str(msg["conversation_id"])


async def listed(x: XLive, conversation_id: str) -> list[dict[str, Any]]:
    body = await x.api("GET", f"/api/conversations/{conversation_id}/messages", expect=200)
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_a_public_reply_threads_under_the_latest_post_with_the_signature(
        x_live: XLive) -> None:
    x = x_live
    await x.add_account()
    conv, _, latest = await mention_thread(x)
    queued = await x.reply(conv, "我们马上帮您联系快递")
    assert queued["delivery"]["state"] == "queued"
    (sent,) = await x.sandbox.wait_for_sent(1)
    assert sent["kind"] == "post" and sent["in_reply_to"] == latest
    assert sent["text"] == "我们马上帮您联系快递" + SIGNATURE and sent["author_id"] == OUR_ID
    doc = await x.delivery(queued["id"], "sent")
    assert doc["external_id"] == sent["id"]
    assert (doc.get("rendered") or {}).get("shown_name") == "李经理"
    out = [m for m in await listed(x, conv) if m["direction"] == "out"]
    assert out[0]["rendered_text"] == sent["text"] and out[0]["delivery"]["state"] == "sent"


async def test_a_dm_reply_goes_to_the_customer_with_the_signature(x_live: XLive) -> None:
    x = x_live
    await x.add_account()
    conv = await dm_thread(x)
    queued = await x.reply(conv, "您好，请把订单号发给我")
    (sent,) = await x.sandbox.wait_for_sent(1)
    assert sent["kind"] == "dm" and sent["participant_id"] == CUSTOMER_ID
    assert sent["text"] == "您好，请把订单号发给我" + SIGNATURE
    await x.delivery(queued["id"], "sent")


async def test_an_over_long_chinese_reply_is_refused_with_the_weighted_count(x_live: XLive,
                                                                             ) -> None:
    x = x_live
    await x.add_account()
    conv, _, _ = await mention_thread(x)
    text = "请" * 140  # 280 weighted, and the signature " ^李" weighs 4 more
    preview = await x.api("GET", f"/api/conversations/{conv}/compose?text={quote(text)}",
                          expect=200)
    assert (preview["used"], preview["limit"], preview["over"], preview["unit"]) == (
        284, 280, 4, "weighted")
    assert preview["fits"] is False and preview["after"] == SIGNATURE
    refused = await x.api("POST", f"/api/conversations/{conv}/messages", expect=422,
                          json={"text": text})
    error = refused["error"]
    assert (error["code"], error["over"], error["used"], error["limit"]) == (
        "too_long", 4, 284, 280)
    assert "4 over" in error["message"] and "weighted" in error["message"]
    assert await x.db.messages.count_documents({"direction": "out"}) == 0
    fits = await x.api("GET", f"/api/conversations/{conv}/compose?text={quote('请' * 138)}",
                       expect=200)
    assert (fits["used"], fits["over"], fits["fits"]) == (280, 0, True)
    as_dm = await x.api("GET", f"/api/conversations/{conv}/compose?text={quote(text)}"
                               "&target=dm", expect=200)
    assert (as_dm["used"], as_dm["limit"], as_dm["fits"]) == (143, 10_000, True)
    assert x.sandbox.sent() == []


async def test_the_reply_restriction_is_shown_in_words_and_send_as_dm_works(x_live: XLive,
                                                                            ) -> None:
    x = x_live
    await x.add_account()
    conv, _, _ = await mention_thread(x)
    x.sandbox.fail("tweets", 403, detail=REPLY_RESTRICTED)
    queued = await x.reply(conv, "这边帮您登记了补发")
    await x.delivery(queued["id"], "failed")
    (shown,) = [m for m in await listed(x, conv) if m["direction"] == "out"]
    error = shown["delivery"]["error"]
    assert error["code"] == "reply_restricted"
    assert error["message"] == STRINGS["en"]["error.reply_restricted"]
    assert error["alternatives"] == ["dm"] and shown["delivery"]["alternatives"] == ["dm"]
    assert x.sandbox.sent() == []
    retried = await x.api("POST", f"/api/messages/{queued['id']}/retry", expect=202,
                          json={"target": "dm"})
    assert retried["delivery"]["state"] == "queued"
    (sent,) = await x.sandbox.wait_for_sent(1)
    assert sent["kind"] == "dm" and sent["participant_id"] == CUSTOMER_ID
    assert sent["text"] == "这边帮您登记了补发" + SIGNATURE
    doc = await x.delivery(queued["id"], "sent")
    assert doc["target"] == "dm" and doc["external_id"] == sent["id"]
    again = await x.api("POST", f"/api/messages/{queued['id']}/retry", expect=409,
                        json={"target": "dm"})
    assert again["error"]["code"] == "not_failed"


async def test_a_post_429_holds_back_that_accounts_posts_only(x_live: XLive) -> None:
    x, sb = x_live, x_live.sandbox
    sandbox_account(sb, 2, username="acme_cn", user_id=OTHER_ID)
    a = await x.add_account(1)
    b = await x.add_account(2)
    conv_a, _, _ = await mention_thread(x, OUR_ID)
    dm_a = await dm_thread(x, OUR_ID)
    conv_b, _, _ = await mention_thread(x, OTHER_ID)
    reset = int(time.time()) + 6
    sb.fail("tweets", 429, user_id=OUR_ID, headers={
        "x-rate-limit-limit": "200", "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(reset)})
    held = await x.reply(conv_a, "A: 稍等，正在查询")
    paused = await wait_for(lambda: _paused(x, a["id"], "tweets"), timeout=10)
    until = paused["pauses"]["tweets"].replace(tzinfo=UTC)
    other = await x.reply(conv_b, "B: 已为您处理")
    private = await x.reply(dm_a, "A: 私信这边也在跟进")  # DMs are another limit on X
    await x.delivery(other["id"], "sent")
    await x.delivery(private["id"], "sent")
    assert datetime.now(UTC) < until  # both went out while A's posts were still paused
    assert [s["text"][:2] for s in sb.sent()] == ["B:", "A:"]
    doc = await x.delivery(held["id"], "sent", timeout=15)
    assert doc["delivery"]["attempts"] == 2
    assert sb.sent()[-1]["text"] == "A: 稍等，正在查询" + SIGNATURE
    assert not (await x.account_doc(b["id"])).get("pauses")
    assert set((await x.account_doc(a["id"]))["pauses"]) == {"tweets"}


async def _paused(x: XLive, account_id: str, scope: str) -> dict[str, Any] | None:
    doc = await x.account_doc(account_id)
    return doc if (doc.get("pauses") or {}).get(scope) else None


async def test_a_401_parks_replies_until_the_admin_enters_the_new_token(x_live: XLive,
                                                                       ) -> None:
    x, sb = x_live, x_live.sandbox
    account = await x.add_account()
    conv, _, _ = await mention_thread(x)
    sb.set_tokens(OUR_ID, "9-regenerated-access-token", "regenerated-token-secret-9")
    queued = await x.reply(conv, "马上为您补发")
    await wait_for(lambda: _status(x, account["id"], "needs_reauth"), timeout=10)
    shown = await x.api("GET", f"/api/accounts/{account['id']}", expect=200)
    assert shown["status"] == "needs_reauth"
    assert shown["last_error"]["code"] == "credentials_refused"
    doc = await x.account_doc(account["id"])
    assert doc["status"] == "needs_reauth"
    msg = await x.db.messages.find_one({"direction": "out"})
    assert msg["delivery"]["state"] in ("queued", "retry_wait") and sb.sent() == []
    wrong = await x.api("PATCH", f"/api/accounts/{account['id']}", expect=422, json={
        "credentials": {"access_token": "9-some-other-token-xx",
                        "access_token_secret": "not-the-right-secret"}})
    assert wrong["error"]["code"] == "invalid_auth"
    fixed = await x.api("PATCH", f"/api/accounts/{account['id']}", expect=200, json={
        "credentials": {"access_token": "9-regenerated-access-token",
                        "access_token_secret": "regenerated-token-secret-9"}})
    assert fixed["status"] == "active"
    (sent,) = await sb.wait_for_sent(1, timeout=10)
    assert sent["text"] == "马上为您补发" + SIGNATURE
    done = await x.delivery(queued["id"], "sent")
    assert done["delivery"]["state"] == "sent"


async def _status(x: XLive, account_id: str, status: str) -> bool:
    return (await x.account_doc(account_id)).get("status") == status
