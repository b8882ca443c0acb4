"""Polling rounds against the sandbox with a test-only runtime and a fake clock (no sleeping)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.x import budget
from connectors.x.connector import XConnector
from connectors.x.polling import KEEP_BILLED, XPollingSource, _Round
from connectors.x.sandbox import XSandbox
from inbox.models import InboundMessage, RateLimited
from tests.kits.x import OUR_ID, FakeRuntime, account, sandbox_account


class World:
    def __init__(self, sandbox: XSandbox, runtime: FakeRuntime, connector: XConnector,
                 customer: str) -> None:
        self.sandbox, self.runtime, self.connector = sandbox, runtime, connector
        self.customer = customer

    @property
    def source(self) -> XPollingSource:
        source = self.connector.inbound()
        assert isinstance(source, XPollingSource)
        return source

    async def round(self) -> Any:
        return await self.runtime.run_round(self.source)

    def texts(self) -> list[str]:
        return [e.text for e in self.runtime.stored if isinstance(e, InboundMessage)]


async def make_world(options: dict[str, Any] | None = None) -> World:
    runtime = FakeRuntime()
    sandbox = XSandbox(clock=runtime.timestamp)
    base = await sandbox.start()
    sandbox_account(sandbox)
    customer = sandbox.add_user("li_na", "李娜")
    connector = XConnector(account(base, options=options), runtime)
    return World(sandbox, runtime, connector, customer)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = await make_world()
    yield w
    await w.connector.close()
    await w.sandbox.stop()


async def test_first_round_reads_one_page_then_cursors_move(world: World) -> None:
    sb, c = world.sandbox, world.customer
    for n in range(12):
        sb.inject_mention(c, f"old mention {n}")
    batch = await world.round()
    assert len(batch.events) == 12 and world.runtime.cursors["mentions"]
    sb.inject_mention(c, "new one")
    world.runtime.advance(61)
    batch = await world.round()
    assert [e.text for e in batch.events] == ["@ExampleUser new one"]
    world.runtime.advance(61)
    assert (await world.round()).events == ()


async def test_pagination_to_the_end_and_oldest_first(world: World) -> None:
    sb, c = world.sandbox, world.customer
    await world.round()  # an empty first round sets nothing
    first = sb.inject_mention(c, "seed")
    world.runtime.advance(61)
    await world.round()
    assert world.runtime.cursors["mentions"] == first
    for n in range(230):
        sb.inject_mention(c, f"burst {n}")
    world.runtime.advance(61)
    batch = await world.round()
    texts = [e.text for e in batch.events]
    assert len(texts) == 230 and texts[0].endswith("burst 0") and texts[-1].endswith("burst 229")
    mention_calls = [x for x in sb.calls if x["path"].endswith("/mentions")]
    assert len(mention_calls) == 2 + 3 and "pagination_token" in mention_calls[-1]["query"]


async def test_dms_stop_at_the_cursor_and_dedupe(world: World) -> None:
    sb, c = world.sandbox, world.customer
    sb.inject_dm(c, OUR_ID, "你好")
    await world.round()
    assert world.texts() == ["你好"]
    for n in range(150):
        sb.inject_dm(c, OUR_ID, f"dm {n}")
    world.runtime.advance(120)
    batch = await world.round()
    dms = [e for e in batch.events if e.kind == "dm"]
    assert len(dms) == 150 and len({e.external_id for e in dms}) == 150
    calls = [x for x in sb.calls if x["path"] == "/2/dm_events"]
    assert len(calls) == 3  # one on the first round, two pages now, never the whole history
    world.runtime.advance(120)
    assert (await world.round()).events == ()


async def test_own_replies_are_not_stored(world: World) -> None:
    sb, c = world.sandbox, world.customer
    mention = sb.inject_mention(c, "help")
    await world.round()
    from tests.kits.x import outbound

    await world.connector.send(outbound("on it ^ZK", reply_to=mention))
    await world.connector.send(outbound("on it by DM ^ZK", kind="dm", reply_to_author=c))
    world.runtime.advance(120)
    assert (await world.round()).events == ()


async def test_an_edit_updates_the_same_message(world: World) -> None:
    sb, c = world.sandbox, world.customer
    post = sb.inject_mention(c, "my order is late")
    await world.round()
    sb.edit_post(post, "@ExampleUser my order is 3 days late")
    world.runtime.advance(61)
    (edit,) = (await world.round()).events
    assert isinstance(edit, InboundMessage)
    assert edit.external_id == post and edit.is_edit and edit.text.endswith("3 days late")


async def test_dm_reads_slow_down_before_x_refuses(world: World) -> None:
    sb, c = world.sandbox, world.customer
    dm_calls = 0
    for _ in range(40):  # 40 rounds, each after the wait the batch asked for
        batch = await world.round()
        world.runtime.advance(batch.wait_seconds)
        sb.inject_dm(c, OUR_ID, "ping")
        dm_calls = len([x for x in sb.calls if x["path"] == "/2/dm_events"])
    elapsed = world.runtime.timestamp() - datetime(2026, 12, 10, 12, tzinfo=UTC).timestamp()
    assert dm_calls <= 15 * (elapsed // 900 + 1)
    assert all(x["status"] == 200 for x in sb.calls)  # no 429 was ever needed
    assert len([e for e in world.runtime.stored if e.kind == "dm"]) >= 35


async def test_429_pauses_that_family_only_and_the_other_account_not_at_all() -> None:
    a = await make_world()
    b_runtime = FakeRuntime(account_id="acc-x-2")
    sandbox_account(a.sandbox, 2, username="other_brand", user_id="3333333333333333333")
    b = XConnector(account(a.sandbox.base_url, account_id="acc-x-2", app=2,
                           platform_id="3333333333333333333", username="other_brand"), b_runtime)
    try:
        a.sandbox.inject_mention(a.customer, "hello first brand", to=OUR_ID)
        a.sandbox.fail("dm_events", 429)
        batch = await a.round()  # mentions still come in; DM reads wait for X's reset
        assert [e.kind for e in batch.events] == ["mention"]
        assert 890 <= a.runtime.pauses["dm_read"] - a.runtime.timestamp() <= 900
        assert "dm_read paused" in (batch.note or "")
        a.sandbox.inject_mention(a.customer, "to the other brand",
                                 to="3333333333333333333")
        batch = await b_runtime.run_round(b.inbound())  # the other account is not blocked
        assert [e.kind for e in batch.events] == ["mention"]
        a.runtime.advance(61)
        a.sandbox.inject_mention(a.customer, "still reading mentions", to=OUR_ID)
        dm_calls = len([x for x in a.sandbox.calls if x["path"] == "/2/dm_events"])
        batch = await a.round()
        assert [e.text for e in batch.events] == ["@ExampleUser still reading mentions"]
        assert len([x for x in a.sandbox.calls if x["path"] == "/2/dm_events"]) == dm_calls
    finally:
        await b.close()
        await a.connector.close()
        await a.sandbox.stop()


async def test_429_on_every_family_reaches_the_host() -> None:
    w = await make_world()
    try:
        w.sandbox.fail("mentions", 429, headers={"x-rate-limit-remaining": "0",
                                                 "x-rate-limit-reset": str(int(
                                                     w.runtime.timestamp()) + 300)})
        w.sandbox.fail("dm_events", 429)
        with pytest.raises(RateLimited) as caught:
            await w.round()
        assert caught.value.scope == "mentions" and 290 <= caught.value.retry_after <= 300
        assert w.runtime.pauses["dm_read"] > w.runtime.timestamp() + 800  # recorded here
    finally:
        await w.connector.close()
        await w.sandbox.stop()


async def test_usage_is_counted_once_per_day() -> None:
    w = await make_world()
    try:
        w.sandbox.inject_dm(w.customer, OUR_ID, "a")
        await w.round()
        w.runtime.advance(120)
        await w.round()  # the same newest page is read again: X does not bill it twice a day
        assert w.runtime.counts["dm_reads"] == 1 and w.runtime.counts["polls"] == 2
        w.runtime.advance(86_400)
        await w.round()
        assert w.runtime.counts["dm_reads"] == 2
    finally:
        await w.connector.close()
        await w.sandbox.stop()


async def test_a_new_source_does_not_bill_again_what_was_billed_today() -> None:
    """A restart, or another process taking the account over, starts a new source: the first
    DM page it reads again was billed today already, and X does not bill it twice."""
    w = await make_world()
    try:
        w.sandbox.inject_dm(w.customer, OUR_ID, "a")
        w.sandbox.inject_mention(w.customer, "b", to=OUR_ID)
        await w.round()
        assert (w.runtime.counts["dm_reads"], w.runtime.counts["post_reads"]) == (1, 1)
        assert w.runtime.cursors["billed"]["day"] == "2026-12-10"
        w.runtime.advance(120)
        w.sandbox.inject_dm(w.customer, OUR_ID, "c")
        await w.runtime.run_round(XPollingSource(w.connector))
        assert (w.runtime.counts["dm_reads"], w.runtime.counts["post_reads"]) == (2, 1)
        assert sorted(w.texts()) == ["@ExampleUser b", "a", "c"]
        w.runtime.advance(86_400)  # a new UTC day: the same page is billed again
        await w.runtime.run_round(XPollingSource(w.connector))
        assert w.runtime.counts["dm_reads"] == 4
    finally:
        await w.connector.close()
        await w.sandbox.stop()


async def test_the_billed_ids_kept_are_the_newest_and_bounded(world: World) -> None:
    source, rnd = XPollingSource(world.connector), _Round()
    ids = [str(10**18 + i) for i in range(KEEP_BILLED + 50)]
    assert await source._bill(world.runtime, rnd, "dm", ids[::-1]) == len(ids)
    assert await source._bill(world.runtime, rnd, "dm", ids[:10] + ids[:1]) == 0
    kept = rnd.cursors["billed"]["dm"]
    assert kept == ids[50:]


async def test_budget_stretches_the_interval_and_says_so() -> None:
    w = await make_world({"monthly_budget_usd": 5, "poll_interval_s": 60})
    try:
        w.runtime.counts.update({"dm_reads": 300, "polls": 300, "posts": 20})  # $3.30 so far
        w.sandbox.inject_dm(w.customer, OUR_ID, "hi")
        batch = await w.round()
        assert batch.wait_seconds > 60
        assert batch.note and "to stay within $5.00/month" in batch.note
        free = await make_world({"poll_interval_s": 60})
        try:
            assert (await free.round()).wait_seconds == 60
        finally:
            await free.connector.close()
            await free.sandbox.stop()
    finally:
        await w.connector.close()
        await w.sandbox.stop()


# --------------------------------------------------------------------------- pure budget


def test_pace_is_a_pure_function_of_usage_time_and_prices() -> None:
    table = budget.prices()
    now = datetime(2026, 12, 16, 0, 0, tzinfo=UTC)  # about half the month left
    usage = {"dm_reads": 1000, "polls": 1000, "posts": 100}  # $10 reads, $1.50 posts so far
    free = budget.pace(base_s=60, budget_usd=None, usage=usage, table=table, now=now,
                       default_round_usd=0.01)
    assert free.wait_s == 60 and not free.stretched and free.spent_usd == pytest.approx(11.5)
    tight = budget.pace(base_s=60, budget_usd=20, usage=usage, table=table, now=now,
                        default_round_usd=0.01)
    assert tight.stretched and tight.wait_s > 60 and tight.projected_usd <= 20 + 0.01
    roomy = budget.pace(base_s=60, budget_usd=10_000, usage=usage, table=table, now=now,
                        default_round_usd=0.01)
    assert roomy.wait_s == 60 and not roomy.stretched
    spent = budget.pace(base_s=60, budget_usd=5, usage=usage, table=table, now=now,
                        default_round_usd=0.01)
    assert spent.exhausted and spent.wait_s == budget.MAX_WAIT_S
    later = budget.pace(base_s=60, budget_usd=20, usage=usage, table=table,
                        now=datetime(2026, 12, 30, tzinfo=UTC), default_round_usd=0.01)
    assert later.wait_s < tight.wait_s  # fewer days left: the same room buys closer rounds


def test_prices_can_be_overridden() -> None:
    table = budget.prices({"post_reads": 0.001, "bogus": 5, "dms": -1})
    assert table["post_reads"] == 0.001 and table["dms"] == budget.DEFAULT_PRICES["dms"]
    assert "bogus" not in table
    assert budget.month_bounds(datetime(2026, 2, 10, tzinfo=UTC))[1].day == 28
