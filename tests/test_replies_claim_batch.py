"""Claiming replies in batches: as many as there are free send slots, in a few commands,
with the guarantees of one claim at a time (once each, in order per conversation, no account
past its share, a crashed worker's reply flagged)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from inbox.models import Delivery, TransientError
from inbox.store import Store
from replies.outbox import Outbox
from replies.timing import FixedClock
from tests.test_replies_outbox import T0, conversation, outbox, reply, state


async def outbox_updates(store: Store) -> int:
    """How many update commands the database has run on this test's outbox (`top`)."""
    try:
        top = await store.db.client.admin.command("top")
    except Exception:
        pytest.skip("this server does not report `top`")
    totals: dict[str, Any] = top.get("totals", {})
    return int(totals.get(f"{store.db.name}.outbox", {}).get("update", {}).get("count", 0))


async def replies_in_conversations(store: Store, box: Outbox, clock: FixedClock, n: int,
                                   account: str = "acc1") -> list[dict[str, Any]]:
    docs = []
    for i in range(n):
        conv = await conversation(store, thread=f"{account}-t{i}", account=account)
        docs.append(await reply(box, conv, f"r{i}"))
        clock.advance(0.001)
    return docs


async def test_a_batch_is_taken_with_one_update(store: Store) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    docs = await replies_in_conversations(store, box, clock, 12)
    before = await outbox_updates(store)
    claims = await box.claim_many(16)
    assert await outbox_updates(store) - before == 1
    assert sorted(c.message_id for c in claims) == sorted(str(d["_id"]) for d in docs)
    assert len({c.lease_id for c in claims}) == 1
    for claim in claims:
        d = await state(store, claim.doc)
        assert d["state"] == "sending" and d["attempts"] == claim.attempts == 1
        assert d["lease_id"] == claim.lease_id and claim.previous_state == "queued"
    assert await box.claim_many(16) == []


async def test_a_batch_takes_the_most_overdue_first(store: Store) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    docs = await replies_in_conversations(store, box, clock, 6)
    claims = await box.claim_many(4)
    assert [c.message_id for c in claims] == [str(d["_id"]) for d in docs[:4]]


async def test_no_account_gets_more_than_its_share(store: Store) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    await replies_in_conversations(store, box, clock, 6, account="busy")
    await replies_in_conversations(store, box, clock, 3, account="quiet")
    claims = await box.claim_many(16, per_account=4, busy={"busy": 1})
    by_account = [c.account_id for c in claims]
    assert by_account.count("busy") == 3 and by_account.count("quiet") == 3


async def test_racing_batches_take_each_reply_once(store: Store) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    docs = await replies_in_conversations(store, box, clock, 20)
    rivals = [outbox(store, clock) for _ in range(4)]
    batches = await asyncio.gather(*[r.claim_many(8) for r in rivals for _ in range(2)])
    taken = [c.message_id for batch in batches for c in batch]
    assert sorted(taken) == sorted(str(d["_id"]) for d in docs)


async def test_a_later_reply_in_the_batch_waits_for_the_earlier(store: Store) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    conv = await conversation(store, thread="both")
    first = await reply(box, conv, "one")
    clock.advance(0.001)
    second = await reply(box, conv, "two")
    other = await reply(box, await conversation(store, thread="other"), "elsewhere")
    claims = await box.claim_many(16)
    assert sorted(c.doc["text"] for c in claims) == ["elsewhere", "one"]
    waiting = await state(store, second)
    assert waiting["state"] == "queued" and waiting["blocked_by"] == str(first["_id"])
    assert waiting["attempts"] == 0
    assert other
    one = next(c for c in claims if c.doc["text"] == "one")
    await box.mark_sent(one, Delivery("tg-1"))
    again = await box.claim_many(16)
    assert [c.message_id for c in again] == [str(second["_id"])]


async def test_retries_and_a_crashed_workers_reply_in_one_batch(store: Store) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    crashed_doc, failed_doc, fresh_doc = await replies_in_conversations(store, box, clock, 3)
    crashed, failed = await box.claim_many(2)
    await box.reschedule(failed, TransientError("platform down", code="http_502"))
    clock.advance(120)  # the retry is due, the crashed worker's lease has expired
    claims = {c.message_id: c for c in await box.claim_many(16)}
    assert set(claims) == {str(crashed_doc["_id"]), str(failed_doc["_id"]),
                           str(fresh_doc["_id"])}
    assert claims[str(crashed_doc["_id"])].previous_state == "sending"
    assert (await state(store, crashed_doc))["possibly_duplicated"] is True
    assert claims[str(failed_doc["_id"])].previous_state == "retry_wait"
    assert claims[str(failed_doc["_id"])].attempts == 2
    assert claims[str(fresh_doc["_id"])].previous_state == "queued"
    assert crashed.message_id == str(crashed_doc["_id"])
    assert not (await state(store, fresh_doc)).get("possibly_duplicated")


async def test_a_round_that_fails_half_way_gives_its_claims_back(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    docs = await replies_in_conversations(store, box, clock, 4)

    async def database_gone(claims: Any) -> Any:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(box, "_blockers", database_gone)
    with pytest.raises(ConnectionError):
        await box.claim_many(16)
    for doc in docs:  # untried: not sending for a lease, no attempt used, no duplicate flag
        d = await state(store, doc)
        assert d["state"] == "queued" and d["attempts"] == 0 and d["due_at"] == clock.now()
        assert not d.get("possibly_duplicated")
    monkeypatch.undo()
    assert len(await box.claim_many(16)) == 4


async def test_claims_of_earlier_rounds_survive_a_later_rounds_failure(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FixedClock(T0)
    box = outbox(store, clock)
    conv = await conversation(store, thread="both")
    await reply(box, conv, "one")
    clock.advance(0.001)
    await reply(box, conv, "two")  # put aside in the first round: a second round follows
    await replies_in_conversations(store, box, clock, 2)
    take_from = box._take_from
    rounds = 0

    async def second_round_fails(*args: Any, **kwargs: Any) -> Any:
        nonlocal rounds
        rounds += 1
        if rounds == 2:
            raise ConnectionError("the database went away")
        return await take_from(*args, **kwargs)

    monkeypatch.setattr(box, "_take_from", second_round_fails)
    claims = await box.claim_many(16)
    assert rounds == 2
    assert sorted(c.doc["text"] for c in claims) == ["one", "r0", "r1"]
