"""An account's rate-limit pauses, shared through the database and read at most once a
second per process: every send asks, and under load each read waits its turn."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

import connectors.runtime as runtime_module
from inbox.store import Store
from tests.helpers import host_runtime


async def account_reads(store: Store) -> int:
    """Queries the database has run on this test's accounts collection (`top`)."""
    try:
        top = await store.db.client.admin.command("top")
    except Exception:
        pytest.skip("this server does not report `top`")
    totals = top.get("totals", {}).get(f"{store.db.name}.accounts", {})
    return int(totals.get("queries", {}).get("count", 0))


async def account(store: Store) -> str:
    account_id = ObjectId()
    await store.db.accounts.insert_one({"_id": account_id, "platform": "telegram"})
    return str(account_id)


async def test_a_pause_set_here_is_known_at_once(store: Store) -> None:
    rt = host_runtime(store, await account(store))
    assert await rt.paused_for() == 0.0
    await rt.pause(30)
    assert 25 < await rt.paused_for() <= 30
    assert 25 < await rt.paused_for("sendMessage") <= 30  # the whole account is paused


async def test_sends_in_one_second_read_the_pauses_once(store: Store) -> None:
    rt = host_runtime(store, await account(store))
    before = await account_reads(store)
    for _ in range(20):
        assert await rt.paused_for() == 0.0
    assert await account_reads(store) - before == 1


async def test_another_process_pause_is_seen_within_the_second(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "PAUSES_FRESH", 0.2)
    account_id = await account(store)
    here, there = host_runtime(store, account_id), host_runtime(store, account_id)
    assert await here.paused_for("sendMessage") == 0.0
    await there.pause(30, "sendMessage")
    await asyncio.sleep(0.25)
    assert 25 < await here.paused_for("sendMessage") <= 30
    assert await here.paused_for("getUpdates") == 0.0  # a pause of one method only


async def test_a_pause_set_while_a_read_is_on_its_way_is_not_lost(store: Store) -> None:
    rt = host_runtime(store, await account(store))
    read_pauses = rt.accounts.pauses
    paused = asyncio.Event()

    async def read_from_before_the_pause(account_id: str) -> dict[str, object]:
        before = await read_pauses(account_id)  # the database answers before the pause lands
        await paused.wait()
        return before

    rt.accounts.pauses = read_from_before_the_pause  # type: ignore[method-assign]
    reading = asyncio.ensure_future(rt.paused_for("chat.postMessage"))
    await asyncio.sleep(0.05)
    await rt.pause(30, "chat.postMessage")  # lands while that read is on its way back
    paused.set()
    assert 25 < await reading <= 30  # its answer is from before the pause; ours is added
    assert 25 < await rt.paused_for("chat.postMessage") <= 30  # and the stale copy kept
