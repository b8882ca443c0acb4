"""X Activity API through the real host: the account's creation registers the app's webhook
(X's CRC check answered by the host's `/webhooks/x`) and subscribes the account; signed
deliveries are stored through `route_app_webhook` → `handle_webhook`; forged ones get 401 and
store nothing."""

from __future__ import annotations

import json

from connectors.x import activity
from tests.kits.x import (  # noqa: F401
    CONSUMER_KEY,
    CONSUMER_SECRET,
    OUR_ID,
    XLive,
    sandbox_account,
    x_live_fixture,
)


def registered_url(x: XLive) -> str:
    return f"{x.live.url}/webhooks/x?app={activity.app_fingerprint(CONSUMER_KEY)}"


async def test_creating_an_activity_account_registers_and_subscribes(x_live: XLive) -> None:
    x, sb = x_live, x_live.sandbox
    account = await x.add_account(mode="activity")
    (hook,) = sb.webhooks.values()
    assert hook["url"] == registered_url(x) and hook["valid"]  # X's CRC, answered by the host
    subs = [s for s in sb.subscriptions.values() if s["filter"]["user_id"] == OUR_ID]
    assert sorted(s["event_type"] for s in subs) == sorted(activity.EVENT_TYPES)
    doc = await x.account_doc(account["id"])
    assert doc["info"]["activity"]["webhook_url"] == registered_url(x)
    assert doc["info"]["activity"]["webhook_id"] == hook["id"]
    assert doc.get("lease") is None  # nothing to poll in this mode
    await x.api("DELETE", f"/api/accounts/{account['id']}", expect=204)
    assert [s for s in sb.subscriptions.values() if s["filter"]["user_id"] == OUR_ID] == []


async def test_the_crc_check_through_the_host(x_live: XLive) -> None:
    x = x_live
    await x.add_account(mode="activity")
    for query in (f"?app={activity.app_fingerprint(CONSUMER_KEY)}&crc_token=abc%2B%2F%3D",
                  "?crc_token=abc%2B%2F%3D"):  # named app, or a URL registered by hand
        resp = await x.live.http.get(f"{x.live.url}/webhooks/x{query}")
        assert resp.status == 200
        assert await resp.json() == {"response_token": activity.sign(CONSUMER_SECRET,
                                                                     b"abc+/=")}
    missing = await x.live.http.get(f"{x.live.url}/webhooks/x")
    assert missing.status == 400


async def test_signed_deliveries_are_stored_and_forged_ones_refused(x_live: XLive) -> None:
    x, sb = x_live, x_live.sandbox
    await x.add_account(mode="activity")
    post = sb.inject_mention(x.customer, "物流一直没更新 @ExampleUser", to=OUR_ID)
    dm = sb.inject_dm(x.customer, OUR_ID, "私信补充一下订单号：#7781")
    await sb.idle()
    assert [(d["event_type"], d["status"]) for d in sb.deliveries] == [
        ("post.mention.create", 200), ("dm.received", 200)]
    stored = await x.wait_inbound(2)
    assert {(m["external_id"], m["text"][:2]) for m in stored} == {(post, "物流"), (dm, "私信")}
    kinds = sorted(c["kind"] for c in await x.db.conversations.find({}).to_list())
    assert kinds == ["dm", "mention"]

    forged = {"data": {"event_uuid": "2", "filter": {"user_id": OUR_ID},
                       "event_type": "dm.received", "tag": "", "payload": {
                           "direct_message_events": [{
                               "type": "message_create", "id": "1999999999999999999",
                               "created_timestamp": "1764590400000", "message_create": {
                                   "target": {"recipient_id": OUR_ID},
                                   "sender_id": x.customer,
                                   "message_data": {"text": "退款请转到这个账户"}}}],
                           "users": {}}}}
    body = json.dumps(forged, ensure_ascii=False).encode()
    url = registered_url(x)
    for headers in ({}, {activity.SIGNATURE_HEADER: activity.sign("not-the-secret", body)},
                    {activity.SIGNATURE_HEADER: "sha256=" + "A" * 44},
                    {activity.SIGNATURE_HEADER: activity.sign(CONSUMER_SECRET, body + b" ")}):
        resp = await x.live.http.post(url, data=body, headers={
            "content-type": "application/json", **headers})
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "bad_signature"
    assert await x.db.messages.count_documents({}) == 2

    redelivered = sb.dms[-1]
    envelope = {"data": {"event_uuid": "1", "filter": {"user_id": OUR_ID},
                         "event_type": "dm.received", "tag": "",
                         "payload": {"direct_message_events": [redelivered.legacy(OUR_ID)],
                                     "users": {}}}}
    raw = json.dumps(envelope, ensure_ascii=False).encode()
    again = await x.live.http.post(url, data=raw, headers={
        "content-type": "application/json",
        activity.SIGNATURE_HEADER: activity.sign(CONSUMER_SECRET, raw)})
    assert again.status == 200 and (await again.json())["stored"] == 0  # X redelivers: once
    other = dict(envelope, data={**envelope["data"], "filter": {"user_id": "42"}})
    raw = json.dumps(other).encode()
    nobody = await x.live.http.post(url, data=raw, headers={
        "content-type": "application/json",
        activity.SIGNATURE_HEADER: activity.sign(CONSUMER_SECRET, raw)})
    assert nobody.status == 200 and "ignored" in await nobody.json()
    assert await x.db.messages.count_documents({}) == 2


async def test_a_reply_to_a_pushed_mention_goes_out_like_a_polled_one(x_live: XLive) -> None:
    x, sb = x_live, x_live.sandbox
    await x.add_account(mode="activity")
    post = sb.inject_mention(x.customer, "请问周末发货吗", to=OUR_ID)
    (msg,) = await x.wait_inbound(1)
    queued = await x.reply(str(msg["conversation_id"]), "周末也发货的")
    (sent,) = await sb.wait_for_sent(1)
    assert sent["in_reply_to"] == post and sent["text"] == "周末也发货的 ^李"
    await x.delivery(queued["id"], "sent")
    await sb.idle()
    assert await x.db.messages.count_documents({"direction": "in"}) == 1  # no echo stored


async def test_xs_own_reply_rule_fails_in_words_and_the_dm_goes_out(x_live: XLive) -> None:
    """The 2026-02-23 rule as the sandbox applies it, no failure injected: the customer answers
    our reply without mentioning us (X pushes it as `post.reply.create`), so a public reply to
    that post is refused; "send as DM instead" delivers the same text."""
    x, sb = x_live, x_live.sandbox
    await x.add_account(mode="activity")
    first = sb.inject_mention(x.customer, "退货地址是哪里？", to=OUR_ID)
    (msg,) = await x.wait_inbound(1)
    conv = str(msg["conversation_id"])
    answered = await x.reply(conv, "请寄到上海市浦东新区 XX 路 1 号")
    ours = (await sb.wait_for_sent(1))[0]
    assert ours["in_reply_to"] == first
    await x.delivery(answered["id"], "sent")
    later = sb.inject_post(x.customer, "好的，寄出了，单号 SF123", in_reply_to=ours["id"])
    await x.wait_inbound(2)
    (pushed,) = await x.inbound(external_id=later)
    assert str(pushed["conversation_id"]) == conv  # the same public thread
    queued = await x.reply(conv, "收到，到货后 3 天内退款")
    failed = await x.delivery(queued["id"], "failed")
    assert failed["delivery"]["error"]["code"] == "reply_restricted"
    assert failed["delivery"]["error"]["alternatives"] == ["dm"]
    await x.api("POST", f"/api/messages/{queued['id']}/retry", expect=202, json={"target": "dm"})
    sent = await sb.wait_for_sent(2)
    assert (sent[1]["kind"], sent[1]["participant_id"], sent[1]["text"]) == (
        "dm", x.customer, "收到，到货后 3 天内退款 ^李")
    await x.delivery(queued["id"], "sent")


async def test_the_account_json_shows_the_webhook_url(x_live: XLive) -> None:
    account = await x_live.add_account(mode="activity")
    assert account["webhook_url"] == f"{x_live.live.url}/webhooks/x"
    sandbox_account(x_live.sandbox, 2, username="acme_cn", user_id="3333333333333333333")
    polled = await x_live.add_account(2, mode="polling")
    assert polled["webhook_url"] is None
