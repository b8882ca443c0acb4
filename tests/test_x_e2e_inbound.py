"""X polling through the real host: the hosting loop (lease, cursors saved after storing) runs
the connector's source against the sandbox, on real time; messages land in the real store."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from inbox.accounts import month_key
from tests.kits.x import CUSTOMER_ID, OUR_ID, XLive, sandbox_account, x_live_fixture  # noqa: F401
from tests.live import wait_for

OTHER_ID = "3333333333333333333"


def mention_calls(x: XLive) -> list[dict[str, object]]:
    return [c for c in x.sandbox.calls if c["path"] == f"/2/users/{OUR_ID}/mentions"]


async def rounds_after(x: XLive, n: int) -> None:
    """Wait until the poller has asked for mentions `n` more times."""
    start = len(mention_calls(x))
    await wait_for(lambda: _true(len(mention_calls(x)) >= start + n), timeout=15)


async def _true(value: bool) -> bool:
    return value


async def test_mention_and_dm_are_stored_once_across_polls_and_a_restart(x_live: XLive,
                                                                         ) -> None:
    x, sb = x_live, x_live.sandbox
    account = await x.add_account()
    mention = sb.inject_mention(x.customer, "我的订单 #4471 三天没有物流更新了", to=OUR_ID)
    dm = sb.inject_dm(x.customer, OUR_ID, "你好，可以私信聊一下退款吗？")
    stored = await x.wait_inbound(2)
    assert {m["external_id"] for m in stored} == {mention, dm}
    convs = {c["kind"]: c for c in await x.db.conversations.find({}).to_list()}
    assert set(convs) == {"mention", "dm"}
    assert convs["dm"]["platform"] == "x"
    await rounds_after(x, 3)
    assert len(await x.inbound()) == 2
    doc = await x.account_doc(account["id"])
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert doc["cursors"] == {"mentions": mention, "dm": dm,
                              "billed": {"day": day, "mentions": [mention], "dm": [dm]}}

    await x.live.services.channels.stop_all()  # the process goes away...
    down_mention = sb.inject_mention(x.customer, "still nothing?", to=OUR_ID,
                                     in_reply_to=mention)
    down_dm = sb.inject_dm(x.customer, OUR_ID, "在吗")
    calls_before = len(mention_calls(x))
    await x.live.services.channels.start_all()  # ...and a new one starts from the database
    await x.wait_inbound(4)
    first_after = mention_calls(x)[calls_before]
    assert first_after["query"]["since_id"] == mention  # the persisted cursor, not a fresh start
    await rounds_after(x, 3)
    stored = await x.inbound()
    assert sorted(m["external_id"] for m in stored) == sorted([mention, dm, down_mention,
                                                               down_dm])
    doc = await x.account_doc(account["id"])
    assert {k: doc["cursors"][k] for k in ("mentions", "dm")} == {"mentions": down_mention,
                                                                  "dm": down_dm}
    # the new process re-read the first DM page, and knew that X had billed `dm` today
    usage = doc["usage"][month_key(datetime.now(UTC))]
    assert (usage["post_reads"], usage["dm_reads"]) == (2, 2)
    assert await x.db.conversations.count_documents({}) == 2  # both joined their threads


async def test_an_edited_post_updates_the_stored_message(x_live: XLive) -> None:
    x, sb = x_live, x_live.sandbox
    await x.add_account()
    post = sb.inject_mention(x.customer, "the parcel is late", to=OUR_ID)
    (msg,) = await x.wait_inbound(1)
    x.skew += 2  # X edits later than it posts; created_at has whole seconds
    new_id = sb.edit_post(post, f"@{sb.users[OUR_ID].username} the parcel is 3 days late")
    edited = await wait_for(lambda: x.db.messages.find_one(
        {"_id": msg["_id"], "edited": True}), timeout=10)
    assert edited["text"].endswith("3 days late") and edited["external_id"] == post
    await rounds_after(x, 2)
    assert len(await x.inbound()) == 1
    listed = await x.api("GET", f"/api/conversations/{msg['conversation_id']}/messages",
                         expect=200)
    (shown,) = listed["items"]
    assert shown["edited"] is True and shown["text"].endswith("3 days late")
    assert new_id != post


async def test_a_dm_429_pauses_dm_reads_only_and_never_another_account(x_live: XLive,
                                                                       ) -> None:
    x, sb = x_live, x_live.sandbox
    sandbox_account(sb, 2, username="acme_cn", user_id=OTHER_ID)
    reset = int(time.time()) + 6
    sb.fail("dm_events", 429, user_id=OUR_ID, headers={
        "x-rate-limit-limit": "15", "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(reset)})
    a = await x.add_account(1)
    b = await x.add_account(2)
    doc = await wait_for(lambda: _paused(x, a["id"]), timeout=10)
    until = doc["pauses"]["dm_read"].replace(tzinfo=UTC)
    assert timedelta(seconds=3) <= until - datetime.now(UTC) <= timedelta(seconds=7)
    sb.inject_dm(x.customer, OUR_ID, "A: where is my refund?")
    sb.inject_dm(x.customer, OTHER_ID, "B: 发票什么时候开？")
    sb.inject_mention(x.customer, "A: hello?", to=OUR_ID)
    got = await x.wait_inbound(2, timeout=5)  # inside A's DM pause
    assert sorted(m["text"] for m in got) == ["@ExampleUser A: hello?", "B: 发票什么时候开？"]
    assert {m["account_id"] for m in got} == {a["id"], b["id"]}
    assert "pauses" not in (await x.account_doc(b["id"])) or not (
        await x.account_doc(b["id"]))["pauses"]
    (late,) = await x.wait_inbound(1, timeout=10, text="A: where is my refund?")
    assert late["received_at"].replace(tzinfo=UTC) >= until - timedelta(milliseconds=200)
    assert (await x.account_doc(a["id"]))["status"] == "active"  # mentions went on all along
    assert late["author"]["user_id"] == CUSTOMER_ID


async def _paused(x: XLive, account_id: str) -> dict[str, object] | None:
    doc = await x.account_doc(account_id)
    return doc if (doc.get("pauses") or {}).get("dm_read") else None
