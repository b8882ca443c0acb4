"""Leases under crashes and wrong clocks: the at-least-once window and who reads which clock.

Each "host" is modelled by the wall clock this process shows it: `datetime.now` inside the clock
modules is replaced by a wall clock with an adjustable step (what NTP does to a host whose
clock was wrong), while `time.monotonic` and the database's clock stay real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from connectors.hosting import Runner
from connectors.telegram.connector import TelegramConnector
from connectors.telegram.sandbox import TelegramSandbox
from inbox import clock as inbox_clock
from inbox.accounts import AccountStore
from inbox.clock import DbClock
from inbox.models import AccountId, Author, InboundMessage
from inbox.store import Store
from replies.outbox import Outbox, outbound_of
from replies.worker import DeliveryWorker
from tests.conftest import BOT_ID, BOT_TOKEN
from tests.helpers import ingest_settled, telegram_connector, telegram_render
from tests.live import wait_for
from web.settings import DeliverySettings


class _StandsForDatetime(type):
    """Everything but `now()` is the real `datetime` (constructors, isinstance checks)."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, datetime)

    def __getattr__(cls, name: str) -> Any:
        return getattr(datetime, name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return datetime(*args, **kwargs)


class SteppedClock(metaclass=_StandsForDatetime):
    """`datetime` whose `now()` is the real wall clock plus `step` (a host's clock error)."""

    step = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:
        return datetime.now(tz) + cls.step


@pytest.fixture
def wall() -> Iterator[type[SteppedClock]]:
    SteppedClock.step = timedelta(0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inbox_clock, "datetime", SteppedClock)
        yield SteppedClock


async def db_now(store: Store) -> datetime:
    hello = await store.db.client.admin.command("hello")
    local: datetime = hello["localTime"]
    return local if local.tzinfo else local.replace(tzinfo=UTC)


async def account_and_conversation(store: Store, sandbox: TelegramSandbox) -> tuple[
        TelegramConnector, dict[str, Any]]:
    oid = ObjectId()
    await store.db.accounts.insert_one({"_id": oid, "platform": "telegram", "name": "bot",
                                        "mode": "polling", "lease": None, "cursors": {}})
    connector = telegram_connector(store, str(oid), sandbox.base_url, BOT_TOKEN,
                                   bot_id=str(BOT_ID))
    result = await ingest_settled(store, InboundMessage(
        account_id=AccountId(str(oid)), platform="telegram", external_id="640000001:1",
        thread_key="640000001", kind="dm", author=Author(user_id="640000001", name="Ann"),
        text="hello?", platform_ts=datetime.now(UTC)))
    await store.settle()  # the conversation is created behind the acknowledgement
    return connector, await store.get_conversation(result.conversation_id)


async def queue_reply(box: Outbox, conv: dict[str, Any], text: str) -> dict[str, Any]:
    rendered = telegram_render(text)
    doc, _ = await box.enqueue(conv, agent_id="ag1", agent_name="王小明", agent_title=None,
                               text=text, rendered=rendered)
    return doc


LEASE = DeliverySettings(lease_seconds=30, backoff_base_seconds=0.05, backoff_cap_seconds=0.2)


async def test_hosts_with_wrong_wall_clocks_lease_on_the_database_clock(
        store: Store, tg: TelegramSandbox, wall: type[SteppedClock]) -> None:
    """Host A's clock runs 40 s fast, host B's is right: each syncs with the database, so A's
    30 s lease is 30 s for B too (on wall clocks, B would see it as 70 s, or A see B's as
    expired at once)."""
    _, conv = await account_and_conversation(store, tg)
    wall.step = timedelta(seconds=40)
    host_a = Outbox(store.db, LEASE)
    await host_a.sync_clock()
    wall.step = timedelta(0)
    host_b = Outbox(store.db, LEASE)
    await host_b.sync_clock()
    doc = await queue_reply(host_b, conv, "one reply")

    wall.step = timedelta(seconds=40)
    # due by host B's reading of the database clock, which may be a few ms ahead of A's
    # (half a `hello` round trip each)
    claim = await wait_for(host_a.claim, timeout=2)
    lease_until = claim.doc["delivery"]["lease_until"]
    assert abs((lease_until - await db_now(store)) - timedelta(seconds=30)) < timedelta(seconds=2)
    wall.step = timedelta(0)
    assert await host_b.claim() is None  # the lease holds on B
    stored = await store.db.outbox.find_one({"_id": doc["_id"]})  # the queue entry
    assert stored["delivery"]["state"] == "sending"


async def test_a_wall_clock_step_after_sync_does_not_break_a_lease(
        store: Store, tg: TelegramSandbox, wall: type[SteppedClock]) -> None:
    _, conv = await account_and_conversation(store, tg)
    worker_1, worker_2 = Outbox(store.db, LEASE), Outbox(store.db, LEASE)
    await worker_1.sync_clock()
    await worker_2.sync_clock()
    await queue_reply(worker_1, conv, "one reply")
    assert await worker_1.claim() is not None
    wall.step = timedelta(minutes=10)  # NTP steps this host's clock forward
    assert abs(worker_2.clock.now() - await db_now(store)) < timedelta(seconds=5)
    assert await worker_2.claim() is None


async def test_poller_lease_survives_a_wall_clock_step(store: Store, tg: TelegramSandbox,
                                                        wall: type[SteppedClock]) -> None:
    """Inbound leases use inbox.clock.DbClock: database time, advanced with the monotonic
    clock."""
    connector, _ = await account_and_conversation(store, tg)
    source = connector.inbound()
    assert source is not None
    accounts = AccountStore(store.db)
    first = Runner(connector, source, accounts, DbClock(store.db))
    first.owner = "process-1"
    second_clock = DbClock(store.db)
    second = Runner(connector, source, accounts, second_clock)
    second.owner = "process-2"
    assert await first._lease()
    before = await second_clock.fresh()  # sampled before the step
    wall.step = timedelta(minutes=10)
    after = await second_clock.fresh()
    assert abs(after - before) < timedelta(seconds=2)
    assert abs(after - await db_now(store)) < timedelta(seconds=2)
    assert not await second._lease()
    assert await first._lease()  # the owner renews


async def test_a_resend_after_a_dead_workers_lease_is_flagged(
        store: Store, tg: TelegramSandbox) -> None:
    connector, conv = await account_and_conversation(store, tg)
    settings = DeliverySettings(lease_seconds=1, backoff_base_seconds=0.05,
                                backoff_cap_seconds=0.2)
    dead = Outbox(store.db, settings)
    await dead.sync_clock()
    doc = await queue_reply(dead, conv, "did this arrive?")
    claim = await dead.claim()
    assert claim is not None
    await connector.send(outbound_of(claim.doc))  # reached Telegram; then the process died
    survivor = Outbox(store.db, settings)

    async def lookup(account_id: str) -> TelegramConnector:
        return connector

    worker = DeliveryWorker(survivor, lookup, poll_interval=0.1)  # type: ignore[arg-type]
    await worker.start()
    try:
        for _ in range(100):
            stored = await store.db.messages.find_one({"_id": doc["_id"]})
            if stored["delivery"]["state"] == "sent":
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
        await connector.close()
    assert len(tg.sent(BOT_TOKEN)) == 2  # the honest at-least-once outcome
    assert stored["delivery"]["state"] == "sent"
    assert stored["delivery"]["possibly_duplicated"] is True
