"""The outbox on the real embedded database: idempotent enqueue, leases, back-off, order."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from inbox.models import (
    AccountId,
    Author,
    Delivery,
    InboundMessage,
    PermanentError,
    RateLimited,
    Rendered,
    TransientError,
)
from inbox.store import NotFound, Store
from replies.outbox import Claim, NotRetryable, Outbox, ReplyContext, is_first_reply, outbound_of
from replies.timing import DbClock, FixedClock, backoff_delay
from tests.helpers import ingest_settled, telegram_render
from web.settings import DeliverySettings

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SETTINGS = DeliverySettings(max_attempts=3, max_age_seconds=3600, backoff_base_seconds=1,
                            backoff_cap_seconds=60, lease_seconds=30)

Doc = dict[str, Any]


async def conversation(store: Store, thread: str = "chat-1", account: str = "acc1") -> Doc:
    result = await ingest_settled(store, InboundMessage(
        account_id=AccountId(account), platform="telegram", external_id=f"{thread}:1",
        thread_key=thread, kind="dm", author=Author(user_id="u1", name="Ann"), text="help!",
        platform_ts=T0))
    await store.settle()  # the conversation is created behind the acknowledgement
    return await store.get_conversation(result.conversation_id)


def outbox(store: Store, clock: FixedClock | None = None, **settings: Any) -> Outbox:
    return Outbox(store.db, SETTINGS.model_copy(update=settings), clock=clock or FixedClock(T0))


async def reply(box: Outbox, conv: Doc, text: str = "On it", *, key: str | None = None,
                agent: str = "ag1") -> Doc:
    rendered = telegram_render(text)
    doc, _ = await box.enqueue(conv, agent_id=agent, agent_name="王小明", agent_title=None,
                               text=text, rendered=rendered,
                               context=ReplyContext(reply_to="chat-1:1"), idempotency_key=key)
    return doc


async def state(store: Store, doc: Doc) -> Doc:
    """The reply's queue entry (the outbox), where the scheduling fields live."""
    found = await store.db.outbox.find_one({"_id": doc["_id"]})
    assert found is not None
    return dict(found["delivery"])


async def shown(store: Store, doc: Doc) -> Doc:
    """The reply as the conversation shows it: the delivery state copied from the queue."""
    found = await store.db.messages.find_one({"_id": doc["_id"]})
    assert found is not None
    return dict(found["delivery"])


async def test_enqueue_stores_the_reply_and_updates_the_conversation(store: Store) -> None:
    conv = await conversation(store)
    box = outbox(store)
    assert is_first_reply(conv, "ag1")
    doc = await reply(box, conv, "Your parcel ships today 📦")
    stored = await store.get_message(str(doc["_id"]))
    assert stored["direction"] == "out" and stored["agent_name"] == "王小明"
    assert stored["rendered_text"] == "Your parcel ships today 📦\n\n— 王小明 · Acme"
    assert stored["entities"] == [{"type": "bold", "offset": 30, "length": 3}]
    assert stored["delivery"]["state"] == "queued" and stored["delivery"]["attempts"] == 0
    assert stored["platform_ts"] == T0 and stored["sk"].endswith(str(doc["_id"]))
    after = await store.get_conversation(str(conv["_id"]))
    assert after["preview"] == "Your parcel ships today 📦" and after["preview_direction"] == "out"
    assert after["first_response_at"] == T0 and after["message_count"] == 2
    assert not is_first_reply(after, "ag1") and is_first_reply(after, "ag2")
    page, _ = await store.list_messages(str(conv["_id"]))
    assert [m["direction"] for m in page] == ["out", "in"]
    out = outbound_of(stored)
    assert out.text == stored["rendered_text"] and out.entities[0].length == 3
    assert out.thread_key == "chat-1" and out.reply_to == "chat-1:1"


async def test_first_response_at_is_kept(store: Store) -> None:
    conv = await conversation(store)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)  # after the ingest
    clock = FixedClock(start)
    box = outbox(store, clock)
    await reply(box, conv)
    clock.advance(60)
    await reply(box, conv)
    after = await store.get_conversation(str(conv["_id"]))
    assert after["first_response_at"] == start
    assert after["last_message_at"] == start + timedelta(seconds=60)


async def test_same_idempotency_key_twice_is_one_reply(store: Store) -> None:
    conv = await conversation(store)
    box = outbox(store)
    rendered = Rendered("hi")
    first, created = await box.enqueue(conv, agent_id="a", agent_name="A", agent_title=None,
                                       text="hi", rendered=rendered, idempotency_key="k-1")
    again, created_again = await box.enqueue(conv, agent_id="a", agent_name="A",
                                             agent_title=None, text="hi", rendered=rendered,
                                             idempotency_key="k-1")
    assert created and not created_again and again["_id"] == first["_id"]
    assert await store.db.messages.count_documents({"direction": "out"}) == 1
    assert (await store.get_conversation(str(conv["_id"])))["message_count"] == 2
    # the same key in another conversation is another reply
    other = await conversation(store, thread="chat-2")
    _, created_other = await box.enqueue(other, agent_id="a", agent_name="A", agent_title=None,
                                         text="hi", rendered=rendered, idempotency_key="k-1")
    assert created_other


async def test_concurrent_retries_with_one_key_store_one_reply(store: Store) -> None:
    conv = await conversation(store)
    boxes = [outbox(store) for _ in range(3)]  # as if from three web processes
    results = await asyncio.gather(*[
        boxes[i % 3].enqueue(conv, agent_id="a", agent_name="A", agent_title=None, text="hi",
                             rendered=Rendered("hi"), idempotency_key="double-click")
        for i in range(12)])
    assert sum(created for _, created in results) == 1
    assert len({doc["_id"] for doc, _ in results}) == 1
    assert await store.db.messages.count_documents({"direction": "out"}) == 1


async def test_a_claim_is_taken_once(store: Store) -> None:
    conv = await conversation(store)
    box = outbox(store)
    doc = await reply(box, conv)
    claim = await box.claim()
    assert claim is not None and claim.message_id == str(doc["_id"]) and claim.attempts == 1
    assert await box.claim() is None
    d = await state(store, doc)
    assert d["state"] == "sending" and d["lease_id"] == claim.lease_id
    assert d["due_at"] == d["lease_until"] == T0 + timedelta(seconds=30)


async def test_racing_claimers_take_each_message_once(store: Store) -> None:
    conv = await conversation(store)
    box = outbox(store)
    for i in range(6):
        await reply(box, await conversation(store, thread=f"t{i}"), f"r{i}")
    rivals = [outbox(store) for _ in range(4)]
    claims = await asyncio.gather(*[r.claim() for r in rivals for _ in range(3)])
    taken = [c.message_id for c in claims if c is not None]
    assert len(taken) == len(set(taken)) == 6
    assert conv  # the first conversation has no reply; only the six were due


async def test_an_expired_lease_is_claimed_again_and_counted(store: Store) -> None:
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock)
    doc = await reply(box, conv)
    crashed = await box.claim()
    assert crashed is not None
    clock.advance(29)
    assert await box.claim() is None
    clock.advance(2)
    again = await box.claim()
    assert again is not None and again.message_id == crashed.message_id and again.attempts == 2
    # the crashed worker comes back and records its send after all: flagged, not lost
    assert await box.mark_sent(crashed, Delivery("tg-1")) is False
    d = await state(store, doc)
    assert d["state"] == "sent" and d["possibly_duplicated"] is True
    assert await box.mark_sent(again, Delivery("tg-2")) is False
    stored = await store.get_message(str(doc["_id"]))
    assert stored["external_id"] == "tg-1" and stored["duplicate_external_ids"] == ["tg-2"]


async def test_a_send_recorded_only_on_its_message_is_finished_not_sent_again(
        store: Store) -> None:
    """A worker killed between the two writes that end an attempt (the message first, then
    the queue entry) leaves the entry `sending`; taking it back finishes it from the message."""
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock)
    first, second = await reply(box, conv, "one"), await reply(box, conv, "two")
    crashed = await box.claim()
    assert crashed is not None and crashed.message_id == str(first["_id"])
    await store.db.messages.update_one({"_id": first["_id"]}, {"$set": {
        "delivery.state": "sent", "delivery.sent_at": T0, "delivery.attempts": 1,
        "external_id": "tg-1"}})  # what the killed worker's mark_sent had written
    clock.advance(31)
    nxt = await box.claim()
    assert nxt is not None and nxt.message_id == str(second["_id"])  # not `first` again
    d = await state(store, first)
    assert d["state"] == "sent" and "due_at" not in d and d["possibly_duplicated"] is False
    assert (await store.get_message(str(first["_id"])))["external_id"] == "tg-1"


async def test_sent_is_recorded(store: Store) -> None:
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock)
    doc = await reply(box, conv)
    claim = await box.claim()
    assert claim is not None
    clock.advance(1)
    assert await box.mark_sent(claim, Delivery("555", platform_ts=T0 + timedelta(seconds=1)))
    stored = await store.get_message(str(doc["_id"]))
    d = stored["delivery"]
    assert d["state"] == "sent" and "due_at" not in d and d["possibly_duplicated"] is False
    assert stored["external_id"] == "555" and stored["platform_ts"] == T0 + timedelta(seconds=1)
    assert await box.claim() is None


def test_backoff_is_capped_jittered_and_never_below_retry_after() -> None:
    rng = random.Random(7)
    for attempts in range(1, 30):
        for _ in range(50):
            assert 0 <= backoff_delay(attempts, base=1, cap=60, rng=rng) <= 60
            assert backoff_delay(attempts, base=1, cap=60, retry_after=90, rng=rng) >= 90
            assert backoff_delay(attempts, base=1, cap=60, retry_after=3, rng=rng) >= 3
    spread = {round(backoff_delay(6, base=1, cap=60, rng=rng), 3) for _ in range(50)}
    assert len(spread) > 40 and max(spread) <= 32


async def test_reschedule_respects_retry_after(store: Store) -> None:
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock)
    doc = await reply(box, conv)
    claim = await box.claim()
    assert claim is not None
    assert await box.reschedule(claim, RateLimited(retry_after=120)) == "retry_wait"
    d = await state(store, doc)
    assert d["state"] == "retry_wait" and d["error"]["code"] == "rate_limited"
    assert d["due_at"] >= T0 + timedelta(seconds=120) and d["next_attempt_at"] == d["due_at"]
    clock.advance(119)
    assert await box.claim() is None
    clock.advance(200)
    again = await box.claim()
    assert again is not None and again.attempts == 2


async def test_failed_after_max_attempts(store: Store) -> None:
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock, max_attempts=3)
    doc = await reply(box, conv)
    states = []
    for _ in range(3):
        claim = await box.claim()
        assert claim is not None
        states.append(await box.reschedule(claim, TransientError("Telegram is down (502)")))
        clock.advance(120)
    assert states == ["retry_wait", "retry_wait", "failed"]
    d = await state(store, doc)
    assert d["state"] == "failed" and d["error"]["message"] == "Telegram is down (502)"
    assert "due_at" not in d and await box.claim() is None


async def test_failed_when_too_old(store: Store) -> None:
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock, max_age_seconds=600, max_attempts=100)
    doc = await reply(box, conv)
    claim = await box.claim()
    assert claim is not None
    clock.advance(599)
    assert await box.reschedule(claim, RateLimited(retry_after=5)) == "failed"
    assert (await state(store, doc))["state"] == "failed"


async def test_permanent_failure_and_retry(store: Store) -> None:
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock)
    doc = await reply(box, conv)
    claim = await box.claim()
    assert claim is not None
    with pytest.raises(NotRetryable):
        await box.retry(str(doc["_id"]))  # still sending
    error = PermanentError("The customer blocked the bot", code="blocked")
    await box.mark_failed(claim, error.code, error.human)
    d = await state(store, doc)
    assert d["state"] == "failed" and d["error"] == {"code": "blocked",
                                                     "message": "The customer blocked the bot"}
    assert await box.claim() is None
    clock.advance(7200)  # older than max_age: a manual retry still gets a fresh chance
    retried = await box.retry(str(doc["_id"]))
    assert retried["delivery"]["state"] == "queued" and retried["delivery"]["attempts"] == 0
    again = await box.claim()
    assert again is not None and again.attempts == 1
    with pytest.raises(NotRetryable):
        await box.retry(str(doc["_id"]))
    with pytest.raises(NotFound):
        await box.retry("0123456789ab0123456789ab")


async def test_replies_in_one_conversation_go_in_order(store: Store) -> None:
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock)
    first = await reply(box, conv, "one")
    clock.advance(0.001)
    second = await reply(box, conv, "two")
    c1 = await box.claim()
    assert c1 is not None and c1.message_id == str(first["_id"])
    assert await box.claim() is None  # "two" waits for "one"
    d2 = await state(store, second)
    assert d2["state"] == "queued" and d2["blocked_by"] == str(first["_id"])
    assert d2["attempts"] == 0
    # "one" is rate limited: "two" still waits, although its own time has long come
    await box.reschedule(c1, RateLimited(retry_after=100))
    clock.advance(50)
    assert await box.claim() is None
    assert (await state(store, second))["blocked_by"] == str(first["_id"])
    clock.advance(60)
    c1 = await box.claim()
    assert c1 is not None and c1.message_id == str(first["_id"])
    assert await box.claim() is None
    await box.mark_sent(c1, Delivery("1"))
    c2 = await box.claim()
    assert c2 is not None and c2.message_id == str(second["_id"]) and c2.attempts == 1


async def test_a_failed_reply_does_not_block_the_next(store: Store) -> None:
    conv = await conversation(store)
    clock = FixedClock(T0)
    box = outbox(store, clock)
    await reply(box, conv, "one")
    clock.advance(0.001)
    second = await reply(box, conv, "two")
    c1 = await box.claim()
    assert c1 is not None and await box.claim() is None
    await box.mark_failed(c1, "blocked", "The customer blocked the bot")
    c2 = await box.claim()
    assert c2 is not None and c2.message_id == str(second["_id"])


async def test_other_conversations_are_not_held_up(store: Store) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    conv_a = await conversation(store, thread="a")
    conv_b = await conversation(store, thread="b")
    await reply(box, conv_a, "a1")
    clock.advance(0.001)
    await reply(box, conv_a, "a2")
    clock.advance(0.001)
    b1 = await reply(box, conv_b, "b1")
    claims: list[Claim] = []
    while (c := await box.claim()) is not None:
        claims.append(c)
    assert [c.doc["text"] for c in claims] == ["a1", "b1"]
    assert claims[1].message_id == str(b1["_id"])


async def test_excluded_accounts_are_skipped(store: Store) -> None:
    box = outbox(store)
    await reply(box, await conversation(store, thread="x", account="busy"))
    quiet = await reply(box, await conversation(store, thread="y", account="quiet"))
    claim = await box.claim(exclude_accounts=["busy"])
    assert claim is not None and claim.message_id == str(quiet["_id"])
    assert await box.claim(exclude_accounts=["busy"]) is None
    assert await box.claim() is not None


async def test_defer_puts_a_claim_back_untried(store: Store) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    doc = await reply(box, await conversation(store))
    claim = await box.claim()
    assert claim is not None
    await box.defer(claim, T0 + timedelta(seconds=10))
    d = await state(store, doc)
    assert d["state"] == "queued" and d["attempts"] == 0 and d["lease_id"] is None
    assert await box.claim() is None
    clock.advance(10)
    assert await box.claim() is not None


async def test_the_database_clock_is_close_to_ours(store: Store) -> None:
    clock = DbClock()
    await clock.sync(store.db)
    assert clock.synced and abs(clock.offset.total_seconds()) < 5


async def test_the_shown_reply_follows_its_queue_entry(store: Store) -> None:
    conv = await conversation(store)
    box = outbox(store)
    doc = await reply(box, conv)
    assert (await shown(store, doc))["state"] == "queued"
    claim = await box.claim()
    assert claim is not None and (await state(store, doc))["state"] == "sending"
    assert (await shown(store, doc))["state"] == "queued"  # a send in flight is not shown
    await box.mark_sent(claim, Delivery(external_id="chat-1:99"))
    shown_doc = await store.db.messages.find_one({"_id": doc["_id"]})
    assert shown_doc["delivery"]["state"] == "sent" and shown_doc["external_id"] == "chat-1:99"
    for queue_field in ("due_at", "lease_id", "lease_until", "blocked_by"):
        assert queue_field not in shown_doc["delivery"]  # scheduling lives in the outbox only


async def test_a_reply_whose_message_a_crash_lost_is_still_sent_and_shown(store: Store) -> None:
    conv = await conversation(store)
    box = outbox(store)
    doc = await reply(box, conv, "written just before the crash")
    await store.db.messages.delete_one({"_id": doc["_id"]})  # queued, then the process died
    claim = await box.claim()
    assert claim is not None
    await box.mark_sent(claim, Delivery(external_id="chat-1:100"))
    restored = await store.db.messages.find_one({"_id": doc["_id"]})
    assert restored["text"] == "written just before the crash"
    assert restored["delivery"]["state"] == "sent"


async def test_inbound_messages_pay_for_one_secondary_index(store: Store) -> None:
    """The write-heavy collections carry only what their queries need (inbox/db.py)."""
    messages = {ix["name"] async for ix in await store.db.messages.list_indexes()}
    assert messages == {"_id_", "conversation_id_1_sk_-1"}
    queue = {ix["name"] async for ix in await store.db.outbox.list_indexes()}
    assert queue == {"_id_", "delivery.due_at_1", "conversation_id_1_delivery.due_at_1"}
