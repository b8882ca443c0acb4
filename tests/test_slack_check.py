"""check(), notices, declarations and strings of the Slack connector, against the sandbox."""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator

import pytest

from connectors.base import ConnectError, Connector
from connectors.slack.connector import SlackConnector
from connectors.slack.sandbox import SlackSandbox
from tests.kits.slack import RecordingRuntime, account, seeded_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    sandbox = await seeded_sandbox()
    yield sandbox
    await sandbox.stop()


async def checked(sandbox: SlackSandbox, **kw: object):  # type: ignore[no-untyped-def]
    connector = SlackConnector(account(sandbox.api_url, **kw), RecordingRuntime())  # type: ignore[arg-type]
    try:
        return await connector.check(), connector
    finally:
        await connector.close()


async def test_check_reads_ids_and_scopes(sandbox: SlackSandbox) -> None:
    info, connector = await checked(sandbox, with_info=False)
    assert info.platform_id == "T0ACME:A0APP"  # app id from bots.info
    assert (info.username, info.display_name) == ("switchboard", "Acme")
    assert {k: info.extra[k] for k in ("team_id", "bot_user_id", "bot_id", "app_id")} == {
        "team_id": "T0ACME", "bot_user_id": "U0BOT", "bot_id": "B0BOT", "app_id": "A0APP"}
    assert "chat:write.customize" in info.extra["scopes"]
    assert connector.notices({"mode": "events", "info": info.extra}) == []


async def test_check_without_customize_scope_warns(sandbox: SlackSandbox) -> None:
    sandbox.workspace().scopes = ["chat:write", "channels:history"]
    info, connector = await checked(sandbox, with_info=False)
    assert info.platform_id == "T0ACME:B0BOT"  # no users:read → no bots.info → bot id
    assert info.extra["app_id"] is None
    (notice,) = connector.notices({"mode": "events", "info": info.extra})
    assert (notice.key, notice.level) == ("notice.no_customize_scope", "warning")


@pytest.mark.parametrize("state", ["bad_token", "revoked", "inactive"])
async def test_check_invalid_auth(sandbox: SlackSandbox, state: str) -> None:
    if state == "revoked":
        sandbox.workspace().revoked = True
    if state == "inactive":
        sandbox.workspace().inactive = True
    token = "xoxb-nope" if state == "bad_token" else "xoxb-test-acme"
    with pytest.raises(ConnectError) as caught:
        await checked(sandbox, bot_token=token)
    assert caught.value.code == "invalid_auth"


async def test_check_cannot_connect() -> None:
    connector = SlackConnector(account("http://127.0.0.1:9/api/"), RecordingRuntime())
    try:
        with pytest.raises(ConnectError) as caught:
            await connector.check()
        assert caught.value.code == "cannot_connect"
    finally:
        await connector.close()


async def test_check_when_slack_fails(sandbox: SlackSandbox) -> None:
    sandbox.fail("auth.test", status=503)
    with pytest.raises(ConnectError) as caught:
        await checked(sandbox)
    assert caught.value.code == "cannot_connect"


async def test_socket_mode_check_validates_the_app_token(sandbox: SlackSandbox) -> None:
    info, connector = await checked(sandbox, mode="socket")
    assert info.platform_id == "T0ACME:A0APP"
    assert [n.key for n in connector.notices({"mode": "socket", "info": info.extra})] == [
        "notice.socket_mode"]
    sandbox.workspace().app_token = "xapp-rotated"
    with pytest.raises(ConnectError) as caught:
        await checked(sandbox, mode="socket")
    assert caught.value.code == "invalid_app_token"


def test_events_mode_notice_shows_the_url() -> None:
    connector = SlackConnector(account(None, webhook_url="https://sb.example/webhooks/slack/a1"),
                               RecordingRuntime())
    (notice,) = connector.notices({"mode": "events", "info": {}})
    assert notice.key == "notice.events_url"
    assert notice.values["url"].endswith("/webhooks/slack/a1")
    assert connector.api_base_url == "https://slack.com/api/"


def test_notices_follow_the_stored_account() -> None:
    """The account page's notices come from the snapshot of the stored account (scopes the
    connector learned later, the mode), not from what the connector was built with."""
    connector = SlackConnector(account(None, mode="socket"), RecordingRuntime())
    found = connector.notices({"mode": "socket", "info": {"scopes": ["chat:write"]}})
    assert [n.key for n in found] == ["notice.socket_mode", "notice.no_customize_scope"]
    assert all(n.key in SlackConnector.strings["en"] for n in found)  # the host looks them up
    assert [n.key for n in connector.notices({"mode": "socket", "info": {
        "scopes": ["chat:write", "chat:write.customize"]}})] == ["notice.socket_mode"]


def test_declarations() -> None:
    assert isinstance(SlackConnector(account(None), RecordingRuntime()), Connector)
    assert SlackConnector.modes == ("events", "socket")
    assert SlackConnector.webhook_modes == ("events",)
    assert SlackConnector.ack_deadline == 3.0
    fields = {f.name: f for f in SlackConnector.credential_fields}
    assert fields["app_token"].modes == ("socket",)
    assert re.match(fields["bot_token"].pattern or "", "xoxb-123-456-abc")
    assert not re.match(fields["bot_token"].pattern or "", "xoxp-123")
    assert set(SlackConnector.normaliser.HANDLERS)


def test_strings_cover_every_key_in_both_languages() -> None:
    en, zh = SlackConnector.strings["en"], SlackConnector.strings["zh-CN"]
    assert set(en) == set(zh)
    required = {"name"}
    for f in SlackConnector.credential_fields:
        required |= {f"cred.{f.name}", f"cred.{f.name}.help"}
    for o in SlackConnector.option_fields:
        required |= {f"option.{o.name}", f"option.{o.name}.help"}
    for m in SlackConnector.modes:
        required |= {f"mode.{m}", f"mode.{m}.help"}
    required |= {f"error.{c}" for c in (
        "invalid_auth", "cannot_connect", "unknown", "invalid_app_token", "rate_limited",
        "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "missing_scope",
        "slack_error", "slack_unavailable", "network", "token_revoked", "account_inactive",
        "not_authed", "token_expired", "file_unavailable", "file_host_refused", "unexpected")}
    required |= {"notice.no_customize_scope", "notice.socket_mode", "notice.events_url"}
    assert required <= set(en)
    for key in en:
        fields_en = {f for _, f, _, _ in string.Formatter().parse(en[key]) if f}
        fields_zh = {f for _, f, _, _ in string.Formatter().parse(zh[key]) if f}
        assert fields_en == fields_zh, key
        assert zh[key] != en[key] or key in ("name", "mode.socket"), key
