"""Socket Mode end to end: the account is created through the API, the host's hosting loop
(connectors/hosting.py: lease, session, health) runs slack-sdk's Socket Mode client against the
sandbox's websocket, and each envelope is acknowledged only once it is in the database."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from tests.kits.slack import SlackE2E
from tests.kits.slack import slack_e2e as slack_e2e  # the fixture, used by name
from tests.live import wait_for


async def connected(slack_e2e: SlackE2E, account: dict[str, Any]) -> None:
    app_id = account["info"]["app_id"]
    await wait_for(lambda: _is_connected(slack_e2e, app_id), timeout=15)


async def _is_connected(slack_e2e: SlackE2E, app_id: str) -> bool:
    return slack_e2e.sandbox.hub.connected(app_id)


async def test_socket_message_is_stored_by_the_host_then_acked(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account("socket")
    await connected(slack_e2e, account)
    runner = slack_e2e.live.services.hosting.runners[account["id"]]
    assert runner.stats.owner and runner.stats.sessions == 1
    runtime = (await slack_e2e.connector(account["id"])).runtime
    real_sink = runtime.sink
    seen: list[tuple[int, int]] = []  # (messages in the database, acks) as each store returns

    async def watching_sink(events: Any) -> Any:
        result = await real_sink(events)
        seen.append((await slack_e2e.db.messages.count_documents({}),
                     len(slack_e2e.sandbox.hub.acks)))
        return result

    runtime.sink = watching_sink  # type: ignore[method-assign]
    payload = await slack_e2e.sandbox.say("U0CUST", "D0CUST01", "你好，在吗？")
    await slack_e2e.sandbox.wait_for_acks(1)
    assert seen == [(1, 0)]  # stored, and not yet acknowledged
    (doc,) = await slack_e2e.stored(1)
    assert doc["external_id"] == f"D0CUST01:{payload['event']['ts']}"
    (envelope,) = slack_e2e.sandbox.hub.envelopes.values()
    assert envelope.acked and envelope.attempts == [0]
    stored = await slack_e2e.db.accounts.find_one({"_id": ObjectId(account["id"])})
    assert stored["status"] == "active" and stored["lease"]["owner"] == runner.owner
    assert stored["last_inbound_at"] is not None


async def test_a_failed_store_is_not_acked_and_slack_delivers_again(
        slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account("socket")
    await connected(slack_e2e, account)
    runtime = (await slack_e2e.connector(account["id"])).runtime
    real_sink = runtime.sink
    calls = 0

    async def failing_once(events: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return await real_sink(events)

    runtime.sink = failing_once  # type: ignore[method-assign]
    await slack_e2e.sandbox.say("U0CUST2", "C0SUPPORT", "anyone there?")
    await slack_e2e.sandbox.wait_for_acks(1, timeout=10)
    (envelope,) = slack_e2e.sandbox.hub.envelopes.values()
    assert envelope.attempts == [0, 1]  # not acked, so sent again with retry_attempt 1
    (doc,) = await slack_e2e.stored(1)
    assert doc["text"] == "anyone there?" and calls == 2


async def test_the_session_comes_back_after_slack_closes_it(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account("socket")
    await connected(slack_e2e, account)
    await slack_e2e.sandbox.say("U0CUST", "D0CUST01", "one")
    await slack_e2e.sandbox.wait_for_acks(1)
    await slack_e2e.sandbox.hub.disconnect(account["info"]["app_id"])
    await slack_e2e.sandbox.say("U0CUST", "D0CUST01", "two")
    await slack_e2e.sandbox.wait_for_acks(2, timeout=15)
    texts = sorted(d["text"] for d in await slack_e2e.stored(2))
    assert texts == ["one", "two"]


async def test_a_revoked_app_token_makes_the_account_need_reauth(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account("socket")
    await connected(slack_e2e, account)
    slack_e2e.sandbox.workspace().app_token = "xapp-rotated"
    await slack_e2e.sandbox.hub.disconnect(account["info"]["app_id"])
    doc = await wait_for(lambda: slack_e2e.db.accounts.find_one(
        {"_id": ObjectId(account["id"]), "status": "needs_reauth"}), timeout=20)
    assert doc["last_error"]["code"] == "invalid_app_token"
