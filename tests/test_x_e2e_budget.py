"""X usage and budget through the real host: counters persisted in the account document, the
spend notice on the accounts API, and the budget stretching the poll interval — the last with
the real `HostRuntime` on a fixed clock, calling the source's `fetch` directly (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.x import budget
from connectors.x.polling import XPollingSource
from inbox.accounts import month_key
from inbox.clock import FixedClock
from tests.helpers import host_runtime
from tests.kits.x import OUR_ID, XLive, x_live_fixture  # noqa: F401
from tests.live import wait_for


async def _usage_is(x: XLive, account_id: str, **wanted: int) -> dict[str, int] | None:
    doc = await x.account_doc(account_id)
    usage = (doc.get("usage") or {}).get(month_key(datetime.now(UTC))) or {}
    return usage if all(usage.get(k) == v for k, v in wanted.items()) else None


async def test_usage_is_persisted_and_the_spend_shown(x_live: XLive) -> None:
    x, sb = x_live, x_live.sandbox
    account = await x.add_account()
    mention = sb.inject_mention(x.customer, "能开发票吗？", to=OUR_ID)
    dm = sb.inject_dm(x.customer, OUR_ID, "发票抬头是公司名")
    await x.wait_inbound(2)
    await wait_for(lambda: _usage_is(x, account["id"], post_reads=1, dm_reads=1), timeout=10)
    for external_id in (mention, dm):
        (msg,) = await x.inbound(external_id=external_id)
        queued = await x.reply(str(msg["conversation_id"]), "可以的，请提供税号")
        await x.delivery(queued["id"], "sent")
    # the DM we sent is an event of the conversation too: X returns it, and bills it
    usage = await wait_for(lambda: _usage_is(x, account["id"], post_reads=1, dm_reads=2,
                                             posts=1, dms=1), timeout=10)
    assert usage["polls"] >= 2 and set(usage) == {"post_reads", "dm_reads", "posts", "dms",
                                                  "polls"}
    shown = await x.api("GET", f"/api/accounts/{account['id']}", expect=200)
    assert {k: shown["usage"][k] for k in ("post_reads", "dm_reads", "posts", "dms")} == {
        "post_reads": 1, "dm_reads": 2, "posts": 1, "dms": 1}
    spent = budget.spend(shown["usage"], budget.DEFAULT_PRICES)
    (notice,) = shown["notices"]
    assert (notice["key"], notice["level"], notice["text"]) == (
        "notice.spend", "info",
        f"Estimated X API spend this month: ${spent:.2f} (3 reads, 2 replies).")
    await x.live.services.channels.stop_all()  # kept in the database, not in the process
    await x.live.services.channels.start_all()
    again = await x.api("GET", f"/api/accounts/{account['id']}", expect=200)
    assert again["usage"]["dms"] == 1 and again["notices"] == shown["notices"]


async def _fetch(source: XPollingSource, runtime: Any) -> Any:
    """One round as the hosting loop runs it: store, then cursors, then usage."""
    batch = await source.fetch(runtime)
    await runtime.sink(batch.events)
    for name, value in batch.cursors.items():
        await runtime.save_cursor(value, name)
    await runtime.record_usage(batch.usage)
    return batch


async def test_the_budget_stretches_the_interval_on_a_fixed_clock(x_live: XLive) -> None:
    x, sb = x_live, x_live.sandbox
    account = await x.add_account(options={"poll_interval_s": 60, "monthly_budget_usd": 5})
    services = x.live.services
    await services.hosting.stop(account["id"])  # this test turns the rounds itself
    # a fresh source: the hosting loop's first round may have paced its own on real time
    source = XPollingSource(await services.channels.get(account["id"]))
    clock = FixedClock(datetime.now(UTC).replace(day=10, hour=12, minute=0, second=0,
                                                 microsecond=0))
    runtime = host_runtime(services.store, account["id"])
    runtime.clock = clock
    sb.clock = lambda: clock.now().timestamp()
    sb.windows.windows.clear()
    before = await runtime.usage()
    await runtime.record_usage({"dm_reads": 300, "polls": 300, "posts": 20})  # $3.30 so far
    sb.inject_dm(x.customer, OUR_ID, "预算内的私信")

    first = await _fetch(source, runtime)
    assert [e.text for e in first.events] == ["预算内的私信"]
    assert first.wait_seconds > 60 and "to stay within $5.00/month" in first.note
    doc = await x.account_doc(account["id"])
    pace = doc["info"]["budget_pace"]
    assert pace["stretched"] and not pace["exhausted"] and pace["projected_usd"] <= 5.0
    shown = await x.api("GET", f"/api/accounts/{account['id']}", expect=200)
    keys = [n["key"] for n in shown["notices"]]
    assert keys == ["notice.budget", "notice.budget_slowed"]
    minutes = round(pace["wait_s"] / 60)
    assert f"every {minutes} min" in shown["notices"][1]["text"]

    clock.advance(first.wait_seconds)  # the next round, when the batch said
    sb.inject_dm(x.customer, OUR_ID, "第二条")
    second = await _fetch(source, runtime)
    assert [e.text for e in second.events] == ["第二条"]
    assert second.wait_seconds > 60

    await runtime.record_usage({"posts": 40})  # replies ate into the room: poll less often
    third = await _fetch(source, runtime)
    assert third.wait_seconds > second.wait_seconds

    await runtime.record_usage({"dm_reads": 200})  # now over the budget
    spent = await _fetch(source, runtime)
    assert spent.wait_seconds == budget.MAX_WAIT_S and "spent" in spent.note
    shown = await x.api("GET", f"/api/accounts/{account['id']}", expect=200)
    (notice,) = shown["notices"]
    assert notice["key"] == "notice.budget_exceeded" and notice["level"] == "warning"
    usage = (await x.account_doc(account["id"]))["usage"][month_key(clock.now())]
    assert usage["polls"] - before.get("polls", 0) == 304
    assert usage["dm_reads"] - before.get("dm_reads", 0) == 502

    await x.api("PATCH", f"/api/accounts/{account['id']}", expect=200,
                json={"options": {"monthly_budget_usd": None}})
    await services.hosting.stop(account["id"])
    free = XPollingSource(await services.channels.get(account["id"]))
    sb.windows.windows.clear()
    assert (await _fetch(free, runtime)).wait_seconds == 60  # no budget: the interval as set
