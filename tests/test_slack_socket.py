"""Socket Mode in: slack-sdk's aiohttp client against the sandbox's websocket; each envelope
is acknowledged only after the sink returned, and a failed store means redelivery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from connectors.base import StoreResult
from connectors.slack.connector import SlackConnector
from connectors.slack.sandbox import SlackSandbox
from connectors.slack.socket import SlackSocketSource, SocketSessionLost
from inbox.models import CredentialsRefused, InboundEvent
from tests.kits.slack import RecordingRuntime, account, seeded_sandbox


class AckWatchingRuntime(RecordingRuntime):
    """Notes, as the sink finishes, whether the sandbox already holds an ack."""

    hub: Any = None
    acks_seen_in_sink: list[int] = []  # noqa: RUF012 - reset per instance below

    async def sink(self, events: Sequence[InboundEvent]) -> list[StoreResult]:
        result = await super().sink(events)
        self.acks_seen_in_sink.append(len(self.hub.acks))
        return result


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    sandbox = await seeded_sandbox(socket_ack_timeout=0.8)
    yield sandbox
    await sandbox.stop()


@contextlib.asynccontextmanager
async def session(sandbox: SlackSandbox, runtime: RecordingRuntime,
                  **source_options: Any) -> AsyncIterator[SlackSocketSource]:
    connector = SlackConnector(account(sandbox.api_url, mode="socket"), runtime)
    source = connector.inbound()
    assert isinstance(source, SlackSocketSource)
    for key, value in source_options.items():
        setattr(source, key, value)
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    task = asyncio.create_task(source.run(runtime, on_ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connector.close()


async def test_message_is_stored_then_acked(sandbox: SlackSandbox) -> None:
    runtime = AckWatchingRuntime()
    runtime.hub, runtime.acks_seen_in_sink = sandbox.hub, []
    runtime.delay = 0.05
    async with session(sandbox, runtime):
        payload = await sandbox.say("U0CUST", "D0CUST01", "你好，在吗？")
        await sandbox.wait_for_acks(1)
    (envelope,) = sandbox.hub.envelopes.values()
    assert envelope.acked and envelope.attempts == [0]
    assert runtime.acks_seen_in_sink == [0]  # the ack came only after the sink returned
    (stored,) = runtime.stored.values()
    assert stored.external_id == f"D0CUST01:{payload['event']['ts']}"


async def test_failed_store_is_not_acked_and_comes_again(sandbox: SlackSandbox) -> None:
    runtime = RecordingRuntime(fail_next=1)
    async with session(sandbox, runtime):
        await sandbox.say("U0CUST2", "C0SUPPORT", "anyone there?")
        await sandbox.wait_for_acks(1)
    (envelope,) = sandbox.hub.envelopes.values()
    assert envelope.attempts == [0, 1]  # redelivered with retry_attempt 1
    assert len(runtime.sink_calls) == 2 and len(runtime.stored) == 1


async def test_reconnects_after_slack_asks(sandbox: SlackSandbox) -> None:
    runtime = RecordingRuntime()
    async with session(sandbox, runtime):
        await sandbox.say("U0CUST", "D0CUST01", "one")
        await sandbox.wait_for_acks(1)
        await sandbox.hub.disconnect(sandbox.workspace().app_id)
        await sandbox.say("U0CUST", "D0CUST01", "two")
        await sandbox.wait_for_acks(2, timeout=10)
    assert sorted(m.text for m in runtime.stored.values()) == ["one", "two"]  # type: ignore[attr-defined]
    opens = [m for m, _ in sandbox.state.calls if m == "apps.connections.open"]
    assert len(opens) >= 2


async def test_own_echo_is_acked_but_not_stored(sandbox: SlackSandbox) -> None:
    from tests.kits.slack import outbound

    runtime = RecordingRuntime()
    async with session(sandbox, runtime) as source:
        await source.connector.send(outbound("D0CUST01", "On it", kind="dm"))
        await sandbox.wait_for_acks(1)
    assert runtime.sink_calls == []


async def test_refused_app_token_reaches_the_host(sandbox: SlackSandbox) -> None:
    sandbox.workspace().app_token = "xapp-rotated"
    connector = SlackConnector(account(sandbox.api_url, mode="socket"), RecordingRuntime())
    source = connector.inbound()
    assert source is not None

    async def never() -> None:
        raise AssertionError("not ready")

    with pytest.raises(CredentialsRefused) as caught:  # the host marks it needs_reauth
        await source.run(RecordingRuntime(), never)
    assert caught.value.code == "invalid_app_token"
    await connector.close()


async def test_session_down_too_long_ends_the_run(sandbox: SlackSandbox) -> None:
    runtime = RecordingRuntime()
    connector = SlackConnector(account(sandbox.api_url, mode="socket"), runtime)
    source = SlackSocketSource(connector, ping_interval=0.2, reconnect_grace=1.0)
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    task = asyncio.create_task(source.run(runtime, on_ready))
    await asyncio.wait_for(ready.wait(), 5)
    sandbox.fail("apps.connections.open", status=503, times=1000)
    await sandbox.hub.disconnect(sandbox.workspace().app_id)
    with pytest.raises(SocketSessionLost):
        await asyncio.wait_for(task, 10)
    await connector.close()


def test_events_mode_has_no_long_lived_source() -> None:
    connector = SlackConnector(account(None), RecordingRuntime())
    assert connector.inbound() is None
