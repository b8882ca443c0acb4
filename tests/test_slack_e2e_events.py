"""Events API end to end: the sandbox POSTs signed events (with Slack's retries) over real
HTTP to /webhooks/slack/{account_id} of a live Switchboard; they go through the host's route,
the connector's verification and slack-bolt into the embedded database."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from connectors.slack.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.kits.slack import BOT_TOKEN, SIGNING_SECRET, SlackE2E
from tests.kits.slack import slack_e2e as slack_e2e  # the fixture, used by name
from tests.live import wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
INBOUND = FIXTURES / "inbound"
VECTOR = json.loads((FIXTURES / "signing_test_vector.json").read_text(encoding="utf-8"))


def signed_headers(body: bytes, *, timestamp: int | None = None,
                   secret: str = SIGNING_SECRET, **extra: str) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(secret, ts, body), **extra}


async def post(slack_e2e: SlackE2E, url: str, body: bytes,
               headers: dict[str, str]) -> tuple[int, Any]:
    async with slack_e2e.live.http.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_signed_event_is_stored_once_under_slacks_retries(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account()
    payload = await slack_e2e.sandbox.say("U0CUST", "D0CUST01", "你好，我的发票有问题", wait=True)
    (first,) = slack_e2e.sandbox.deliveries
    assert (first.status, first.retry_num) == (200, 0)
    # Slack thought the answer was lost and delivers the same event again, three times
    url = await slack_e2e.events_url(account["id"])
    body = json.dumps(payload, ensure_ascii=False).encode()
    for retry in ("1", "2", "3"):
        status, answer = await post(slack_e2e, url, body, signed_headers(
            body, **{"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"}))
        assert (status, answer) == (200, {"ok": True})
    (doc,) = await slack_e2e.stored(1)
    assert await slack_e2e.db.messages.count_documents({}) == 1
    assert doc["external_id"] == f"D0CUST01:{payload['event']['ts']}"
    assert doc["text"] == "你好，我的发票有问题"
    conversation = await slack_e2e.conversation("D0CUST01")
    assert conversation["kind"] == "dm" and conversation["platform"] == "slack"


async def test_unverified_requests_are_401_and_store_nothing(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account()
    url = await slack_e2e.events_url(account["id"])
    payload = slack_e2e.sandbox.state.message_event(
        slack_e2e.sandbox.workspace(), "U0CUST", slack_e2e.sandbox.state.channels["D0CUST01"],
        "let me in")
    body = json.dumps(payload).encode()
    now = int(time.time())
    captured = signed_headers(body, timestamp=now - 600)
    tampered = body.replace(b"let me in", b"let me out")
    attempts = [
        ("bad signature", body, signed_headers(body, secret="not-the-signing-secret")),
        ("stale timestamp", body, signed_headers(body, timestamp=now - 301)),
        ("replayed with a new timestamp", body, {**captured, TIMESTAMP_HEADER: str(now)}),
        ("unsigned", body, {"Content-Type": "application/json"}),
        ("tampered body", tampered, signed_headers(body)),
    ]
    for what, sent, headers in attempts:
        status, answer = await post(slack_e2e, url, sent, headers)
        assert status == 401, what
        assert answer["error"]["code"] == "invalid_signature", what
    assert await slack_e2e.db.messages.count_documents({}) == 0
    assert await slack_e2e.db.conversations.count_documents({}) == 0


async def test_slacks_published_signing_vector(slack_e2e: SlackE2E) -> None:
    """Slack's own example request (a slash command, form-encoded) passes verification on the
    real route; it is then refused as no event (400), and one changed byte is a 401."""
    account = await slack_e2e.add_account(credentials={"signing_secret":
                                                       VECTOR["signing_secret"]})
    connector = await slack_e2e.connector(account["id"])
    connector.clock = lambda: float(VECTOR["timestamp"]) + 10  # the vector's moment
    url = await slack_e2e.events_url(account["id"])
    headers = {TIMESTAMP_HEADER: VECTOR["timestamp"], SIGNATURE_HEADER: VECTOR["signature"],
               "Content-Type": "application/x-www-form-urlencoded"}
    status, answer = await post(slack_e2e, url, VECTOR["body"].encode(), headers)
    assert status == 400 and answer["error"]["code"] == "invalid_body"
    status, answer = await post(slack_e2e, url, VECTOR["body"].encode() + b"&x=1", headers)
    assert status == 401
    connector.clock = time.time
    status, _ = await post(slack_e2e, url, VECTOR["body"].encode(), headers)
    assert status == 401  # the same request today is years outside the 5-minute window


async def test_url_verification_answers_the_challenge(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account()
    url = await slack_e2e.events_url(account["id"])
    body = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "type": "url_verification",
                       "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
                      ).encode()
    status, answer = await post(slack_e2e, url, body, signed_headers(body))
    assert (status, answer) == (200, {
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    status, _ = await post(slack_e2e, url, body, signed_headers(body, secret="wrong"))
    assert status == 401


async def test_a_database_stall_is_answered_in_time_and_nothing_is_lost(
        slack_e2e: SlackE2E) -> None:
    """The first write takes longer than Slack waits: the host answers 503 before Slack's
    3 seconds, the slow write goes on, Slack's retry is stored, and the late write finds the
    message already there. One message, none lost."""
    account = await slack_e2e.add_account()
    runtime = (await slack_e2e.connector(account["id"])).runtime
    real_sink = runtime.sink
    calls = 0

    async def stalling_sink(events: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(3.5)  # the database hangs for this write
        return await real_sink(events)

    runtime.sink = stalling_sink  # type: ignore[method-assign]
    payload = await slack_e2e.sandbox.say("U0CUST2", "C0SUPPORT", "Export fails at 99%",
                                          wait=True)
    first, retry = slack_e2e.sandbox.deliveries
    assert (first.status, first.retry_num) == (503, 0)
    assert first.duration < 3.0  # answered inside Slack's deadline
    assert (retry.status, retry.retry_num) == (200, 1)
    services = slack_e2e.live.services
    await wait_for(lambda: _drained(services), timeout=10)
    assert services.webhooks.late_done >= 1
    docs = await slack_e2e.db.messages.find({}).to_list()
    assert [d["external_id"] for d in docs] == [f"C0SUPPORT:{payload['event']['ts']}"]
    assert calls == 2


async def _drained(services: Any) -> bool:
    return not services.webhooks.late


async def test_the_author_is_enriched_after_storing(slack_e2e: SlackE2E) -> None:
    """The event names only a user id; users.info (after the acknowledgement) gives the
    contact its name, avatar and locale, and the conversation the customer's locale."""
    account = await slack_e2e.add_account()
    await slack_e2e.sandbox.say("U0CUST2", "C0SUPPORT", "导出到 99% 就卡住了", wait=True)
    (doc,) = await slack_e2e.stored(1)
    assert doc["author"]["user_id"] == "U0CUST2"
    runtime = (await slack_e2e.connector(account["id"])).runtime
    await runtime.settle()  # type: ignore[attr-defined]
    await slack_e2e.live.services.store.settle()
    status, body = await slack_e2e.api("GET", "/api/conversations")
    assert status == 200
    (conversation,) = body["items"]
    assert conversation["contact"]["name"] == "王芳"
    assert conversation["contact"]["handle"] == "wang.fang"
    contact = await slack_e2e.db.contacts.find_one({})
    assert contact["locale"] == "zh-CN" and contact["avatar_url"].endswith("_192.png")
    message = await slack_e2e.db.messages.find_one({})
    assert message["author"]["name"] == "王芳"
    await slack_e2e.live.services.store.settle()  # conversations follow the acknowledgement
    conv = await slack_e2e.db.conversations.find_one({})
    assert conv["customer_locale"] == "zh-CN"
    # a second message of the same customer costs no second users.info call (cached)
    await slack_e2e.sandbox.say("U0CUST2", "C0SUPPORT", "还在吗？", wait=True)
    await slack_e2e.stored(2)
    await runtime.settle()  # type: ignore[attr-defined]
    assert [m for m, _ in slack_e2e.sandbox.state.calls].count("users.info") == 1


async def test_edit_and_delete_are_reflected(slack_e2e: SlackE2E) -> None:
    await slack_e2e.add_account()
    payload = await slack_e2e.sandbox.say("U0CUST", "D0CUST01", "order 123", wait=True)
    ts = payload["event"]["ts"]
    (doc,) = await slack_e2e.stored(1)
    conv_id = str(doc["conversation_id"])
    await slack_e2e.sandbox.edit("D0CUST01", ts, "order 1234, sorry", wait=True)
    (shown,) = await slack_e2e.messages(conv_id)
    assert shown["text"] == "order 1234, sorry" and shown["edited"] is True
    assert shown["deleted_at"] is None
    stored = await slack_e2e.db.messages.find_one({})
    assert stored["edited_at"] is not None  # not in the message JSON (see the report)
    await slack_e2e.sandbox.delete("D0CUST01", ts, wait=True)
    (shown,) = await slack_e2e.messages(conv_id)
    assert shown["deleted_at"] is not None
    assert shown["text"] == "order 1234, sorry"  # kept for the record
    assert all(a.status == 200 for a in slack_e2e.sandbox.deliveries)
    assert await slack_e2e.db.messages.count_documents({}) == 1


async def test_a_shared_file_is_downloaded_with_the_token_kept_here(
        slack_e2e: SlackE2E) -> None:
    await slack_e2e.add_account()
    data = b"%PDF-1.4\n" + bytes(range(256)) * 40
    file = slack_e2e.sandbox.add_file("U0CUST", "invoice-march.pdf", "application/pdf", data)
    await slack_e2e.sandbox.say("U0CUST", "D0CUST01", "here is the invoice", files=[file],
                                wait=True)
    (doc,) = await slack_e2e.stored(1)
    (shown,) = await slack_e2e.messages(str(doc["conversation_id"]))
    (attachment,) = shown["attachments"]
    assert (attachment["type"], attachment["name"], attachment["mime"], attachment["size"]) == (
        "document", "invoice-march.pdf", "application/pdf", len(data))
    assert attachment["url"] == f"/api/messages/{shown['id']}/attachments/0"
    async with slack_e2e.live.http.get(f"{slack_e2e.live.url}{attachment['url']}",
                                       headers=slack_e2e.live.headers) as resp:
        assert resp.status == 200
        assert 'filename="invoice-march.pdf"' in resp.headers["Content-Disposition"]
        assert await resp.read() == data
        assert BOT_TOKEN not in str(resp.headers)
    assert BOT_TOKEN not in json.dumps(shown)
    # without the token Slack hands out its sign-in page, never the file
    async with slack_e2e.live.http.get(attachment["extra"]["url_private_download"]) as direct:
        assert direct.content_type == "text/html"
    async with slack_e2e.live.http.get(f"{slack_e2e.live.url}{attachment['url']}") as anon:
        assert anon.status == 401


async def test_a_mention_and_its_message_twin_are_one_message(slack_e2e: SlackE2E) -> None:
    """Slack delivers a post that mentions the app twice (`app_mention` and `message`): the
    store keeps one message, in the post's own thread."""
    account = await slack_e2e.add_account()
    url = await slack_e2e.events_url(account["id"])
    for name in ("app_mention__channel", "message__app_mention_twin"):
        body = (INBOUND / f"{name}.json").read_bytes()
        status, _ = await post(slack_e2e, url, body, signed_headers(body))
        assert status == 200, name
    (doc,) = await slack_e2e.stored(1)
    assert doc["external_id"] == "C0SUPPORT:1595926230.009600"
    assert doc["text"] == "Hi there! Can someone reset my 2FA?"
    await slack_e2e.live.services.store.settle()
    assert await slack_e2e.db.conversations.count_documents(
        {"thread_key": "C0SUPPORT:1595926230.009600"}) == 1
