"""Replies through slack-sdk against the sandbox: threads, the agent's name, mrkdwn escaping,
every error class."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connectors.slack.connector import SlackConnector
from connectors.slack.mrkdwn import unescape
from connectors.slack.sandbox import SlackSandbox
from inbox.models import (
    AgentIdentity,
    CredentialsRefused,
    PermanentError,
    RateLimited,
    RenderContext,
    TransientError,
)
from tests.kits.slack import RecordingRuntime, account, outbound, seeded_sandbox

ROOT = "1610261659.001400"
AGENT = AgentIdentity(name="Zhang Kai", title="Support", brand="Acme",
                      avatar_url="https://avatars.example.com/zk.png")


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    sandbox = await seeded_sandbox()
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def runtime() -> RecordingRuntime:
    return RecordingRuntime()


@pytest.fixture
async def connector(sandbox: SlackSandbox, runtime: RecordingRuntime,
                    ) -> AsyncIterator[SlackConnector]:
    connector = SlackConnector(account(sandbox.api_url), runtime)
    yield connector
    await connector.close()


def rendered(connector: SlackConnector, text: str = "We are on it."):  # type: ignore[no-untyped-def]
    return connector.render(AGENT, text, RenderContext(kind="group"))


# --------------------------------------------------------------------------- threads


async def test_reply_in_a_channel_thread(sandbox: SlackSandbox,
                                         connector: SlackConnector) -> None:
    delivery = await connector.send(outbound(f"C0SUPPORT:{ROOT}", rendered=rendered(connector)))
    (post,) = sandbox.sent()
    assert (post.channel, post.thread_ts) == ("C0SUPPORT", ROOT)
    assert (post.username, post.icon_url) == ("Zhang Kai · Support",
                                             "https://avatars.example.com/zk.png")
    assert delivery.external_id == f"C0SUPPORT:{post.ts}"
    assert post.params["link_names"] is False


async def test_dm_reply_stays_in_the_dm(sandbox: SlackSandbox,
                                        connector: SlackConnector) -> None:
    await connector.send(outbound("D0CUST01", kind="dm", reply_to="D0CUST01:1596183880.004200"))
    # the customer wrote inside a DM thread: normalise put its root in the reply route
    await connector.send(outbound("D0CUST01", kind="dm", reply_to="D0CUST01:1596183890.004300",
                                  reply_route={"thread_ts": "1596183880.004200"}))
    first, second = sandbox.sent("D0CUST01")
    assert first.thread_ts is None
    assert second.thread_ts == "1596183880.004200"


async def test_channel_as_one_conversation_starts_or_joins_threads(
        sandbox: SlackSandbox, connector: SlackConnector) -> None:
    await connector.send(outbound("C0SUPPORT", reply_to=f"C0SUPPORT:{ROOT}",
                                  reply_route={"thread_ts": ROOT}))
    await connector.send(outbound("C0SUPPORT", reply_to="C0SUPPORT:1610261700.887259",
                                  reply_route={"thread_ts": ROOT}))
    await connector.send(outbound("C0SUPPORT", reply_route={"thread_ts": 12}))  # not ours
    await connector.send(outbound("C0SUPPORT"))
    assert [p.thread_ts for p in sandbox.sent()] == [ROOT, ROOT, None, None]


async def test_private_reply_to_a_channel_customer(sandbox: SlackSandbox,
                                                   connector: SlackConnector) -> None:
    delivery = await connector.send(outbound(f"C0SUPPORT:{ROOT}", target="dm",
                                             reply_to_author="U0CUST2"))
    (post,) = sandbox.sent()
    assert post.channel.startswith("D") and post.thread_ts is None
    assert delivery.external_id.startswith(post.channel + ":")


# --------------------------------------------------------------------------- the agent's name


async def test_without_customize_scope_a_signature_line(sandbox: SlackSandbox,
                                                        runtime: RecordingRuntime) -> None:
    sandbox.workspace().scopes = ["chat:write", "users:read"]
    connector = SlackConnector(account(sandbox.api_url, scopes=["chat:write"]), runtime)
    try:
        shown = connector.render(AGENT, "We are on it.", RenderContext())
        assert shown.username is None and shown.icon_url is None
        assert shown.text == "We are on it.\n\n— Zhang Kai · Acme"
        assert shown.shown_name == "Zhang Kai"
        await connector.send(outbound(f"C0SUPPORT:{ROOT}", rendered=shown))
        (post,) = sandbox.sent()
        assert post.username is None and post.text.endswith("— Zhang Kai · Acme")
        assert [n.key for n in connector.notices({"mode": "events", "info": runtime.info})] \
            == ["notice.no_customize_scope"]
    finally:
        await connector.close()


async def test_render_with_scope_and_greeting(connector: SlackConnector) -> None:
    greeted = AgentIdentity(name="王芳", brand="Acme", greeting="您好，我是王芳。")
    shown = connector.render(greeted, "请稍等。", RenderContext(first_reply=True))
    assert (shown.username, shown.shown_name, shown.icon_url) == ("王芳", "王芳", None)
    assert shown.text == "您好，我是王芳。\n\n请稍等。"
    assert connector.measure("x" * 4000, RenderContext()).fits
    over = connector.measure("字" * 4001, RenderContext())
    assert (over.over, over.unit) == (1, "characters")


async def test_scopes_learned_from_answers(sandbox: SlackSandbox,
                                           runtime: RecordingRuntime) -> None:
    connector = SlackConnector(account(sandbox.api_url, scopes=["chat:write"]), runtime)
    try:
        assert not connector.can_customize
        await connector.send(outbound(f"C0SUPPORT:{ROOT}"))
        assert connector.can_customize
        assert "chat:write.customize" in runtime.info["scopes"]
    finally:
        await connector.close()


async def test_agent_text_cannot_ping_or_link(sandbox: SlackSandbox,
                                              connector: SlackConnector) -> None:
    text = "<!channel> pay at <https://evil.example|acme.com> & <@U0CUST2> now"
    await connector.send(outbound(f"C0SUPPORT:{ROOT}", rendered=rendered(connector, text)))
    (post,) = sandbox.sent()
    assert "<" not in post.text and ">" not in post.text
    assert post.text == ("&lt;!channel&gt; pay at &lt;https://evil.example|acme.com&gt; "
                         "&amp; &lt;@U0CUST2&gt; now")
    assert unescape(post.text) == text  # what Slack shows: the characters as typed


# --------------------------------------------------------------------------- errors


async def test_rate_limit_honours_retry_after(sandbox: SlackSandbox,
                                              connector: SlackConnector) -> None:
    sandbox.fail("chat.postMessage", error="ratelimited", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await connector.send(outbound(f"C0SUPPORT:{ROOT}"))
    assert caught.value.retry_after == 7.0
    assert caught.value.scope == connector.send_scope(outbound(f"C0SUPPORT:{ROOT}")) \
        == "chat_postMessage"
    assert sandbox.sent() == []
    await connector.send(outbound(f"C0SUPPORT:{ROOT}"))
    assert len(sandbox.sent()) == 1


@pytest.mark.parametrize("failure", [{"status": 503}, {"status": 500},
                                     {"error": "internal_error"}, {"drop": True}],
                         ids=["503", "500", "internal_error", "dropped"])
async def test_transient(sandbox: SlackSandbox, connector: SlackConnector,
                         failure: dict[str, object]) -> None:
    sandbox.fail("chat.postMessage", **failure)  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        await connector.send(outbound(f"C0SUPPORT:{ROOT}"))
    assert sandbox.sent() == []


async def test_network_down_is_transient(runtime: RecordingRuntime) -> None:
    connector = SlackConnector(account("http://127.0.0.1:9/api/"), runtime)
    try:
        with pytest.raises(TransientError) as caught:
            await connector.send(outbound(f"C0SUPPORT:{ROOT}"))
        assert caught.value.code == "network"
    finally:
        await connector.close()


@pytest.mark.parametrize("code", ["channel_not_found", "not_in_channel", "is_archived",
                                  "msg_too_long"])
async def test_each_permanent_error_from_slacks_own_checks(
        sandbox: SlackSandbox, connector: SlackConnector, code: str) -> None:
    sandbox.add_channel("C0NOBOT", "no-bot", bot_is_member=False)
    sandbox.add_channel("C0OLD", "old").archived = True
    thread_key, text = {
        "channel_not_found": ("C0GONE:1.1", "hi"), "not_in_channel": ("C0NOBOT:1.1", "hi"),
        "is_archived": ("C0OLD:1.1", "hi"), "msg_too_long": (f"C0SUPPORT:{ROOT}", "x" * 40_001),
    }[code]
    with pytest.raises(PermanentError) as caught:
        await connector.send(outbound(thread_key, text))
    assert not isinstance(caught.value, CredentialsRefused)
    assert caught.value.code == code
    assert caught.value.human == connector.strings["en"][f"error.{code}"]


async def test_missing_scope_is_permanent(sandbox: SlackSandbox,
                                          connector: SlackConnector) -> None:
    sandbox.workspace().scopes = ["chat:write"]
    with pytest.raises(PermanentError) as caught:
        await connector.send(outbound(f"C0SUPPORT:{ROOT}", rendered=rendered(connector)))
    assert caught.value.code == "missing_scope"
    assert "chat:write.customize" in caught.value.human


@pytest.mark.parametrize("state", ["revoked", "inactive", "bad_token"])
async def test_credentials_refused(sandbox: SlackSandbox, runtime: RecordingRuntime,
                                   state: str) -> None:
    token = "xoxb-not-ours" if state == "bad_token" else "xoxb-test-acme"
    if state == "revoked":
        sandbox.workspace().revoked = True
    if state == "inactive":
        sandbox.workspace().inactive = True
    connector = SlackConnector(account(sandbox.api_url, bot_token=token), runtime)
    try:
        with pytest.raises(CredentialsRefused) as caught:
            await connector.send(outbound(f"C0SUPPORT:{ROOT}"))
        assert caught.value.code == {"revoked": "token_revoked", "inactive": "account_inactive",
                                     "bad_token": "invalid_auth"}[state]
    finally:
        await connector.close()


async def test_no_secret_in_logs_of_a_failing_send(sandbox: SlackSandbox,
                                                   connector: SlackConnector,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    sandbox.fail("chat.postMessage", status=503)
    with pytest.raises(TransientError):
        await connector.send(outbound(f"C0SUPPORT:{ROOT}"))
    assert "xoxb-test-acme" not in caplog.text
    assert "test-signing-secret" not in caplog.text
