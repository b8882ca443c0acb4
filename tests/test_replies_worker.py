"""The delivery worker's logic against a recording connector (the end-to-end tests through
python-telegram-bot and the sandbox live elsewhere). No timing assertions: wait for states."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from connectors.base import AccountInfo, Connector, CredentialField
from inbox.models import (
    AccountId,
    Author,
    Delivery,
    InboundMessage,
    OutboundMessage,
    PermanentError,
    RateLimited,
    TransientError,
)
from inbox.store import NotFound, Store
from replies.outbox import Outbox
from replies.worker import DeliveryWorker
from tests.helpers import host_runtime, ingest_settled, telegram_render
from tests.test_replies_claim_batch import outbox_updates
from web.settings import DeliverySettings

Doc = dict[str, Any]
SECRET = "123456:AAE-very-secret-bot-token"
SETTINGS = DeliverySettings(max_attempts=4, backoff_base_seconds=0.05, backoff_cap_seconds=0.2,
                            lease_seconds=30)


class RecordingConnector:
    """Records every send; `outcomes` are raised (or None: success) in turn, then `default`."""

    platform: ClassVar[str] = "telegram"
    text_limit: ClassVar[int] = 4096
    credential_fields: ClassVar[tuple[CredentialField, ...]] = ()
    modes: ClassVar[tuple[str, ...]] = ("webhook",)

    def __init__(self, outcomes: list[BaseException | None] | None = None, *,
                 default: BaseException | None = None, gate: asyncio.Event | None = None,
                 delay: float = 0.0) -> None:
        self.outcomes = list(outcomes or [])
        self.default = default
        self.gate = gate
        self.delay = delay
        self.calls: list[OutboundMessage] = []
        self.sent: list[str] = []

    async def send(self, outbound: OutboundMessage) -> Delivery:
        self.calls.append(outbound)
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        outcome = self.outcomes.pop(0) if self.outcomes else self.default
        if outcome is not None:
            raise outcome
        self.sent.append(outbound.text)
        return Delivery(external_id=f"ext-{len(self.calls)}", platform_ts=datetime.now(UTC))

    async def check(self) -> AccountInfo:
        return AccountInfo(platform_id="1")

    def send_scope(self, outbound: OutboundMessage) -> str:
        return "account"


def lookup(connectors: dict[str, RecordingConnector],
           store: Store | None = None) -> Callable[[str], Awaitable[Connector]]:
    async def get(account_id: str) -> Connector:
        if account_id not in connectors:
            raise NotFound(account_id)
        connector = connectors[account_id]
        if store is not None and not hasattr(connector, "runtime"):
            connector.runtime = host_runtime(store, account_id)  # type: ignore[attr-defined]
        return connector  # type: ignore[return-value]
    return get


async def conversation(store: Store, thread: str, account: str = "acc1") -> Doc:
    result = await ingest_settled(store, InboundMessage(
        account_id=AccountId(account), platform="telegram", external_id=f"{thread}:1",
        thread_key=thread, kind="dm", author=Author(user_id="u1", name="Ann"), text="help",
        platform_ts=datetime.now(UTC)))
    await store.settle()  # the conversation is created behind the acknowledgement
    return await store.get_conversation(result.conversation_id)


async def reply(box: Outbox, conv: Doc, text: str) -> Doc:
    rendered = telegram_render(text)
    doc, _ = await box.enqueue(conv, agent_id="ag1", agent_name="王小明", agent_title=None,
                               text=text, rendered=rendered)
    return doc


def outbox_store(box: Outbox) -> Store:
    return Store(box.db)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll `check` until true; generous, because a loaded 2-core machine is slow."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def delivery(store: Store, doc: Doc) -> Doc:
    found = await store.db.messages.find_one({"_id": doc["_id"]})
    assert found is not None
    return found


def in_state(store: Store, docs: list[Doc], state: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = [await delivery(store, d) for d in docs]
        return all(f["delivery"]["state"] == state for f in found)
    return check


@pytest.fixture
async def outbox(store: Store) -> Outbox:
    return Outbox(store.db, SETTINGS)


@pytest.fixture
async def run(outbox: Outbox) -> AsyncIterator[Callable[..., Awaitable[DeliveryWorker]]]:
    workers: list[DeliveryWorker] = []

    async def start(connectors: dict[str, RecordingConnector], **kwargs: Any) -> DeliveryWorker:
        worker = DeliveryWorker(outbox, lookup(connectors, outbox_store(outbox)), **kwargs)
        await worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        await worker.stop(grace=1)


async def test_an_enqueued_reply_is_sent(store: Store, outbox: Outbox, run: Any) -> None:
    tg = RecordingConnector()
    await run({"acc1": tg})
    doc = await reply(outbox, await conversation(store, "c1"), "Hello 👋")
    await eventually(in_state(store, [doc], "sent"))
    stored = await delivery(store, doc)
    assert stored["external_id"] == "ext-1" and stored["delivery"]["attempts"] == 1
    (sent,) = tg.calls
    assert sent.text == "Hello 👋\n\n— 王小明 · Acme" and sent.thread_key == "c1"
    assert sent.entities[0].offset == 12 and sent.message_id == str(doc["_id"])


async def test_replies_in_a_conversation_arrive_in_order(store: Store, outbox: Outbox,
                                                         run: Any) -> None:
    tg = RecordingConnector(delay=0.01)
    await run({"acc1": tg}, concurrency=8)
    conv_a, conv_b = await conversation(store, "a"), await conversation(store, "b")
    docs = []
    for i in range(6):
        docs.append(await reply(outbox, conv_a, f"a{i}"))
        docs.append(await reply(outbox, conv_b, f"b{i}"))
    await eventually(in_state(store, docs, "sent"))
    texts = [t.split("\n")[0] for t in tg.sent]
    assert [t for t in texts if t.startswith("a")] == [f"a{i}" for i in range(6)]
    assert [t for t in texts if t.startswith("b")] == [f"b{i}" for i in range(6)]


async def test_a_transient_error_is_retried(store: Store, outbox: Outbox, run: Any) -> None:
    tg = RecordingConnector([TransientError("Telegram answered 502"), None])
    await run({"acc1": tg})
    doc = await reply(outbox, await conversation(store, "c1"), "hi")
    await eventually(in_state(store, [doc], "sent"))
    stored = await delivery(store, doc)
    assert len(tg.calls) == 2 and stored["delivery"]["attempts"] == 2


async def test_a_permanent_error_fails_with_its_message(store: Store, outbox: Outbox,
                                                       run: Any) -> None:
    tg = RecordingConnector([PermanentError("The customer blocked the bot", code="blocked")])
    await run({"acc1": tg})
    doc = await reply(outbox, await conversation(store, "c1"), "hi")
    await eventually(in_state(store, [doc], "failed"))
    error = (await delivery(store, doc))["delivery"]["error"]
    assert error == {"code": "blocked", "message": "The customer blocked the bot"}
    assert len(tg.calls) == 1


async def test_attempts_run_out(store: Store, outbox: Outbox, run: Any) -> None:
    tg = RecordingConnector(default=TransientError("Telegram answered 502"))
    await run({"acc1": tg})
    doc = await reply(outbox, await conversation(store, "c1"), "hi")
    await eventually(in_state(store, [doc], "failed"))
    stored = await delivery(store, doc)
    assert len(tg.calls) == SETTINGS.max_attempts
    assert stored["delivery"]["error"]["message"] == "Telegram answered 502"


async def test_a_removed_account_fails_the_reply(store: Store, outbox: Outbox,
                                                 run: Any) -> None:
    await run({})
    doc = await reply(outbox, await conversation(store, "c1"), "hi")
    await eventually(in_state(store, [doc], "failed"))
    error = (await delivery(store, doc))["delivery"]["error"]
    assert error == {"code": "account_removed", "message": "The channel account was removed"}


async def test_an_unexpected_exception_is_retried_and_logged_without_secrets(
        store: Store, outbox: Outbox, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    leak = RuntimeError(f"POST https://api.telegram.org/bot{SECRET}/sendMessage failed")
    tg = RecordingConnector([leak, None])
    await run({"acc1": tg})
    doc = await reply(outbox, await conversation(store, "c1"), "hi")
    await eventually(in_state(store, [doc], "sent"))
    assert "RuntimeError" in caplog.text
    assert SECRET not in caplog.text
    assert "AAE-very-secret" not in str(await delivery(store, doc))


async def test_a_rate_limited_account_does_not_delay_others(store: Store, outbox: Outbox,
                                                           run: Any) -> None:
    storm = RecordingConnector(default=RateLimited(retry_after=60))
    calm = RecordingConnector()
    worker = await run({"storm": storm, "calm": calm}, concurrency=4)
    stormy = [await reply(outbox, await conversation(store, f"s{i}", "storm"), f"s{i}")
              for i in range(10)]
    calm_docs = [await reply(outbox, await conversation(store, f"c{i}", "calm"), f"c{i}")
                 for i in range(5)]
    await eventually(in_state(store, calm_docs, "sent"))
    await eventually(lambda: _true(worker.paused_accounts() == ["storm"]))
    # once told to wait, the worker stops asking: only the sends already in flight (at most
    # its per-account share of slots) reached the platform
    assert 1 <= len(storm.calls) <= worker.per_account
    for doc in stormy:
        d = (await delivery(store, doc))["delivery"]
        assert d["state"] in ("queued", "retry_wait") and d["attempts"] <= 1


async def test_a_hanging_account_cannot_take_every_slot(store: Store, outbox: Outbox,
                                                        run: Any) -> None:
    gate = asyncio.Event()
    storm = RecordingConnector(default=TransientError("Telegram answered 504"), gate=gate)
    calm = RecordingConnector()
    worker = await run({"storm": storm, "calm": calm}, concurrency=4)
    for i in range(10):
        await reply(outbox, await conversation(store, f"s{i}", "storm"), f"s{i}")
    await eventually(lambda: _true(len(storm.calls) == worker.per_account))
    calm_docs = [await reply(outbox, await conversation(store, f"c{i}", "calm"), f"c{i}")
                 for i in range(5)]
    await eventually(in_state(store, calm_docs, "sent"))  # while storm's sends still hang
    assert len(storm.calls) == worker.per_account
    gate.set()


async def test_due_replies_are_claimed_together(store: Store, outbox: Outbox,
                                                run: Any) -> None:
    """Twelve replies waiting when the worker starts go out at once, taken in one write."""
    docs = [await reply(outbox, await conversation(store, f"b{i}"), f"b{i}") for i in range(12)]
    gate = asyncio.Event()
    tg = RecordingConnector(gate=gate)
    before = await outbox_updates(store)
    await run({"acc1": tg}, concurrency=16, per_account=16)
    await eventually(lambda: _true(len(tg.calls) == 12))  # every send in flight together
    assert await outbox_updates(store) - before == 1
    gate.set()
    await eventually(in_state(store, docs, "sent"))


async def test_an_idle_worker_sleeps_until_the_next_retry_is_due(store: Store,
                                                                 outbox: Outbox) -> None:
    """Not until its slow safety poll (a minute here): the outbox says when the next
    pending reply comes due."""
    worker = DeliveryWorker(outbox, lookup({}, outbox_store(outbox)), poll_interval=60)
    await outbox.sync_clock()
    await reply(outbox, await conversation(store, "c1"), "hi")
    (claim,) = await outbox.claim_many(1)
    await outbox.defer(claim, outbox.clock.now() + timedelta(seconds=2))
    await worker._learn_next_due()
    assert 1.0 < worker._idle_timeout() <= 2.0


async def test_a_claim_near_the_end_of_its_lease_is_given_back_unsent(
        store: Store, outbox: Outbox) -> None:
    """A batch's claims may wait for the rest of their round: one whose lease is nearly over
    is not sent (it could outlive the lease and be sent again by whoever takes it next)."""
    tg = RecordingConnector()
    worker = DeliveryWorker(outbox, lookup({"acc1": tg}, outbox_store(outbox)))
    await outbox.sync_clock()
    doc = await reply(outbox, await conversation(store, "c1"), "hi")
    (claim,) = await outbox.claim_many(1)
    claim.doc["delivery"]["lease_until"] = outbox.clock.now() + timedelta(seconds=5)
    await worker._attempt(claim)  # 5 s left of a 30 s lease: inside the 6 s margin
    assert not tg.calls
    d = (await delivery(store, doc))["delivery"]
    assert d["state"] == "queued" and d["attempts"] == 0
    (again,) = await outbox.claim_many(1)
    assert 23 < worker._time_left(again) <= worker.send_timeout == 24


async def test_stop_ends_the_worker(store: Store, outbox: Outbox) -> None:
    tg = RecordingConnector()
    worker = DeliveryWorker(outbox, lookup({"acc1": tg}, outbox_store(outbox)))
    await worker.start()
    await worker.stop()
    doc = await reply(outbox, await conversation(store, "c1"), "hi")
    await asyncio.sleep(0.3)
    assert (await delivery(store, doc))["delivery"]["state"] == "queued" and not tg.calls


async def _true(value: bool) -> bool:
    return value
