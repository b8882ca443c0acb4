"""Replies end to end: POST /api/conversations/{id}/messages → outbox → delivery worker →
slack-sdk's chat.postMessage against the sandbox: the agent's name as sender, the right
thread, escaped mrkdwn, Slack's rate limit and a revoked token handled by the host."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import ObjectId

from connectors.slack.mrkdwn import unescape
from tests.kits.slack import SlackE2E
from tests.kits.slack import slack_e2e as slack_e2e  # the fixture, used by name
from tests.live import wait_for

AVATAR = "https://avatars.example.com/li.png"


async def delivered(slack_e2e: SlackE2E, message_id: str, state: str = "sent",
                    timeout: float = 15.0) -> dict[str, Any]:
    doc = await wait_for(lambda: slack_e2e.db.messages.find_one(
        {"_id": ObjectId(message_id), "delivery.state": state}), timeout)
    return dict(doc)


async def customer_writes(slack_e2e: SlackE2E, user: str, channel: str, text: str, *,
                          thread_ts: str | None = None) -> tuple[str, dict[str, Any]]:
    """The customer's message, stored; returns its conversation id and the event."""
    payload = await slack_e2e.sandbox.say(user, channel, text, thread_ts=thread_ts, wait=True)
    external = f"{channel}:{payload['event']['ts']}"
    doc = await wait_for(lambda: slack_e2e.db.messages.find_one({"external_id": external}))
    # the conversation is made behind the acknowledgement (inbox/summaries.py)
    await wait_for(lambda: slack_e2e.db.conversations.find_one(
        {"_id": ObjectId(doc["conversation_id"])}))
    return str(doc["conversation_id"]), payload["event"]


async def agent_with_avatar(slack_e2e: SlackE2E, title: str | None = None) -> None:
    await slack_e2e.db.agents.update_one({"_id": slack_e2e.live.admin["_id"]},
                                         {"$set": {"avatar_url": AVATAR, "title": title}})


async def test_threaded_reply_under_the_agents_name(slack_e2e: SlackE2E) -> None:
    await slack_e2e.add_account()
    await agent_with_avatar(slack_e2e, title="技术支持")
    conv_id, event = await customer_writes(slack_e2e, "U0CUST2", "C0SUPPORT",
                                           "Export fails at 99%")
    body = await slack_e2e.reply(conv_id, "We are looking into it.")
    assert body["agent_name"] == "李经理 · 技术支持"
    (post,) = await slack_e2e.sandbox.wait_for_sent(1)
    # a top-level channel message: the answer starts its thread
    assert (post.channel, post.thread_ts) == ("C0SUPPORT", event["ts"])
    assert (post.username, post.icon_url) == ("李经理 · 技术支持", AVATAR)
    assert post.text == "We are looking into it."
    doc = await delivered(slack_e2e, body["id"])
    assert doc["external_id"] == f"C0SUPPORT:{post.ts}"
    (shown,) = [m for m in await slack_e2e.messages(conv_id) if m["direction"] == "out"]
    assert shown["shown_name"] == "李经理 · 技术支持" and shown["delivery"]["state"] == "sent"
    # the customer answers in the thread; the reply to that goes into the same thread
    conv_again, _ = await customer_writes(slack_e2e, "U0CUST2", "C0SUPPORT", "Thanks!",
                                          thread_ts=event["ts"])
    assert conv_again == conv_id
    await slack_e2e.reply(conv_id, "You're welcome.")
    _, second = await slack_e2e.sandbox.wait_for_sent(2)
    assert second.thread_ts == event["ts"]
    # our own posts came back as events (Slack echoes them) and were not stored
    await asyncio.sleep(0.2)
    assert await slack_e2e.db.messages.count_documents({"direction": "in"}) == 2


async def test_dm_replies_follow_the_customers_thread(slack_e2e: SlackE2E) -> None:
    """A DM is one conversation; the answer goes where the customer last wrote: into the DM,
    or into the DM thread they wrote in (its root travels as the message's reply route)."""
    await slack_e2e.add_account()
    conv_id, first = await customer_writes(slack_e2e, "U0CUST", "D0CUST01", "Hi, my invoice")
    await slack_e2e.reply(conv_id, "Which invoice?")
    (plain,) = await slack_e2e.sandbox.wait_for_sent(1)
    assert (plain.channel, plain.thread_ts) == ("D0CUST01", None)
    conv_again, _ = await customer_writes(slack_e2e, "U0CUST", "D0CUST01", "March, see here",
                                          thread_ts=first["ts"])
    assert conv_again == conv_id
    stored = await slack_e2e.db.messages.find_one({"direction": "in", "reply_route": {
        "$ne": None}})
    assert stored["reply_route"] == {"thread_ts": first["ts"]}
    await slack_e2e.reply(conv_id, "Found it, resending now.")
    _, threaded = await slack_e2e.sandbox.wait_for_sent(2)
    assert (threaded.channel, threaded.thread_ts) == ("D0CUST01", first["ts"])
    out = await slack_e2e.db.messages.find_one({"direction": "out", "text": {
        "$regex": "^Found"}})
    assert out["reply_route"] == {"thread_ts": first["ts"]}


async def test_agent_text_is_escaped_for_mrkdwn(slack_e2e: SlackE2E) -> None:
    await slack_e2e.add_account()
    conv_id, _ = await customer_writes(slack_e2e, "U0CUST2", "C0SUPPORT", "help")
    text = "<!channel> pay at <https://evil.example|acme.com> & <@U0CUST> now"
    await slack_e2e.reply(conv_id, text)
    (post,) = await slack_e2e.sandbox.wait_for_sent(1)
    assert post.text == ("&lt;!channel&gt; pay at &lt;https://evil.example|acme.com&gt; "
                         "&amp; &lt;@U0CUST&gt; now")
    assert unescape(post.text) == text  # what the customer sees: the characters typed
    assert post.params.get("link_names") in (False, "0", "false", 0)


async def test_without_the_customize_scope_a_signature_line(slack_e2e: SlackE2E) -> None:
    slack_e2e.sandbox.workspace().scopes = ["chat:write", "users:read", "files:read"]
    await slack_e2e.add_account()
    conv_id, _ = await customer_writes(slack_e2e, "U0CUST", "D0CUST01", "hello")
    body = await slack_e2e.reply(conv_id, "Hello!")
    (post,) = await slack_e2e.sandbox.wait_for_sent(1)
    assert post.username is None and post.icon_url is None
    assert post.text == "Hello!\n\n— 李经理 · Acme"
    assert (await delivered(slack_e2e, body["id"]))["agent_name"] == "李经理"


async def test_rate_limit_is_honoured(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account()
    conv_id, _ = await customer_writes(slack_e2e, "U0CUST", "D0CUST01", "hello?")
    slack_e2e.sandbox.fail("chat.postMessage", error="ratelimited", retry_after=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    body = await slack_e2e.reply(conv_id, "after a pause")
    paused = await wait_for(lambda: slack_e2e.db.accounts.find_one(
        {"_id": ObjectId(account["id"]), "pauses.chat_postMessage": {"$exists": True}}))
    assert set(paused["pauses"]) == {"chat_postMessage"}  # replies only, not the whole account
    (post,) = await slack_e2e.sandbox.wait_for_sent(1, timeout=15)
    assert loop.time() - started >= 2.0
    doc = await delivered(slack_e2e, body["id"])
    assert doc["delivery"]["attempts"] == 2
    calls = [m for m, _ in slack_e2e.sandbox.state.calls if m == "chat.postMessage"]
    assert len(calls) == 2  # no attempt inside the pause
    assert post.text == "after a pause"


async def test_a_revoked_token_waits_for_new_credentials(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account()
    conv_id, _ = await customer_writes(slack_e2e, "U0CUST", "D0CUST01", "still there?")
    ws = slack_e2e.sandbox.workspace()
    ws.revoked = True
    body = await slack_e2e.reply(conv_id, "Yes, one moment.")
    doc = await wait_for(lambda: slack_e2e.db.accounts.find_one(
        {"_id": ObjectId(account["id"]), "status": "needs_reauth"}), timeout=15)
    assert doc["last_error"]["code"] == "token_revoked"
    status, shown = await slack_e2e.api("GET", f"/api/accounts/{account['id']}")
    assert status == 200 and shown["status"] == "needs_reauth"
    await asyncio.sleep(1.5)  # the reply waits: no attempts burnt, not failed
    reply = await slack_e2e.db.messages.find_one({"_id": ObjectId(body["id"])})
    assert reply["delivery"]["state"] != "failed"
    attempts = [m for m, _ in slack_e2e.sandbox.state.calls].count("chat.postMessage")
    assert attempts == 1
    # the admin reinstalls the app: a new bot token for the same workspace app
    ws.bot_token, ws.revoked = "xoxb-test-acme-reinstalled", False
    status, patched = await slack_e2e.api("PATCH", f"/api/accounts/{account['id']}", json={
        "credentials": {"bot_token": "xoxb-test-acme-reinstalled"}})
    assert status == 200 and patched["status"] == "active", patched
    (post,) = await slack_e2e.sandbox.wait_for_sent(1, timeout=15)
    assert post.text == "Yes, one moment." and post.channel == "D0CUST01"
    sent = await delivered(slack_e2e, body["id"])
    assert sent["delivery"]["state"] == "sent"
