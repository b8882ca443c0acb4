"""Author enrichment after storing: users.info through slack-sdk, cached per account in the
host's shared cache (the real `HostRuntime` on the test database); and the account's health
when Slack says the app was uninstalled."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from connectors.base import HttpRequest
from connectors.runtime import HostRuntime
from connectors.slack import profiles
from connectors.slack.connector import SlackConnector
from connectors.slack.sandbox import SlackSandbox
from connectors.slack.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from inbox.models import Author
from inbox.store import Store
from tests.helpers import host_runtime
from tests.kits.slack import SIGNING_SECRET, RecordingRuntime, account, seeded_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    sandbox = await seeded_sandbox()
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def host(store: Store) -> HostRuntime:
    return host_runtime(store, "acc-slack-1")


@pytest.fixture
async def connector(sandbox: SlackSandbox, host: HostRuntime) -> AsyncIterator[SlackConnector]:
    connector = SlackConnector(account(sandbox.api_url), host)
    yield connector
    await connector.close()


@pytest.fixture
async def runtime() -> RecordingRuntime:
    return RecordingRuntime()


@pytest.fixture
async def recording(sandbox: SlackSandbox,
                    runtime: RecordingRuntime) -> AsyncIterator[SlackConnector]:
    connector = SlackConnector(account(sandbox.api_url), runtime)
    yield connector
    await connector.close()


def users_info_calls(sandbox: SlackSandbox) -> int:
    return sum(1 for method, _ in sandbox.state.calls if method == "users.info")


async def test_enrich_fills_name_avatar_locale_once(sandbox: SlackSandbox,
                                                     connector: SlackConnector,
                                                     host: HostRuntime) -> None:
    bare = Author(user_id="U0CUST2", name="U0CUST2")
    better = await connector.enrich_author(bare)
    assert better is not None
    assert (better.name, better.handle, better.locale) == ("王芳", "wang.fang", "zh-CN")
    assert better.avatar_url and better.avatar_url.endswith("_192.png")
    assert await connector.enrich_author(bare) == better
    assert users_info_calls(sandbox) == 1
    assert (await host.cache_get(profiles.cache_key("U0CUST2")))["name"] == "王芳"
    assert await connector.enrich_author(better) is None  # nothing new to say


async def test_unknown_users_and_bots(sandbox: SlackSandbox, connector: SlackConnector) -> None:
    ghost = Author(user_id="U0GHOST", name="U0GHOST")
    assert await connector.enrich_author(ghost) is None
    assert await connector.enrich_author(ghost) is None
    assert users_info_calls(sandbox) == 1  # the miss is remembered
    assert await connector.enrich_author(Author(user_id="B0OTHER", name="deploy-bot",
                                                is_bot=True)) is None
    assert users_info_calls(sandbox) == 1


async def test_trouble_is_not_cached(sandbox: SlackSandbox, connector: SlackConnector,
                                     host: HostRuntime) -> None:
    sandbox.fail("users.info", error="ratelimited", retry_after=30)
    bare = Author(user_id="U0CUST", name="U0CUST")
    assert await connector.enrich_author(bare) is None
    assert await host.cache_get(profiles.cache_key("U0CUST")) is None
    better = await connector.enrich_author(bare)
    assert better is not None and better.name == "Lin"


@pytest.mark.parametrize(("event", "expected"), [
    ({"type": "app_uninstalled"}, [("needs_reauth", "token_revoked")]),
    ({"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U0BOT"]}},
     [("needs_reauth", "token_revoked")]),
    ({"type": "tokens_revoked", "tokens": {"oauth": ["U0CUST"], "bot": []}}, []),
])
async def test_uninstall_marks_the_account(recording: SlackConnector, runtime: RecordingRuntime,
                                           event: dict[str, object],
                                           expected: list[tuple[str, str]]) -> None:
    payload = {"token": "x", "team_id": "T0ACME", "api_app_id": "A0APP", "event": event,
               "type": "event_callback", "event_id": "Ev0REVOKE", "event_time": 1610000000}
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    answer = await recording.handle_webhook(HttpRequest(
        method="POST", path="/", query={}, body=body,
        headers={TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SIGNING_SECRET, ts, body)}))
    assert answer.status == 200
    assert runtime.health == expected
    assert runtime.sink_calls == []
