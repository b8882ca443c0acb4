"""Slack accounts through the real API: POST /api/accounts runs `auth.test` (slack-sdk against
the sandbox), stores the workspace's ids and granted scopes, refuses bad or unreachable
credentials and the same workspace app twice; the account JSON carries the Events URL and the
connector's notices."""

from __future__ import annotations

from tests.kits.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, SlackE2E
from tests.kits.slack import slack_e2e as slack_e2e  # the fixture, used by name


async def test_create_stores_ids_and_scopes(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account("events")
    assert account["platform_id"] == "T0ACME:A0APP"
    assert (account["username"], account["display_name"]) == ("switchboard", "Acme")
    info = account["info"]
    assert {k: info[k] for k in ("team_id", "bot_user_id", "bot_id", "app_id")} == {
        "team_id": "T0ACME", "bot_user_id": "U0BOT", "bot_id": "B0BOT", "app_id": "A0APP"}
    assert "chat:write.customize" in info["scopes"]
    assert account["status"] == "active"
    body = str(account)
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        assert secret not in body
    events_url = await slack_e2e.events_url(account["id"])
    assert events_url == f"{slack_e2e.live.url}/webhooks/slack/{account['id']}"
    (notice,) = account["notices"]
    assert (notice["key"], notice["level"]) == ("notice.events_url", "info")
    assert events_url in notice["text"]
    called = [m for m, _ in slack_e2e.sandbox.state.calls]
    assert called[:2] == ["auth.test", "bots.info"]  # bots.info: auth.test has no app id


async def test_events_mode_account_json_has_the_webhook_url(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account("events")
    assert account["webhook_url"] == await slack_e2e.events_url(account["id"])


async def test_socket_mode_needs_no_public_url(slack_e2e: SlackE2E) -> None:
    account = await slack_e2e.add_account("socket")
    assert account["webhook_url"] is None
    assert [n["key"] for n in account["notices"]] == ["notice.socket_mode"]
    assert "no public URL" in account["notices"][0]["text"]
    assert APP_TOKEN not in str(account)
    # the app-level token was tried too: apps.connections.open with it
    assert "apps.connections.open" in [m for m, _ in slack_e2e.sandbox.state.calls]


async def stale_app_token(slack_e2e: SlackE2E) -> tuple[int, dict[str, object]]:
    slack_e2e.sandbox.workspace().app_token = "xapp-rotated"
    status, body = await slack_e2e.api("POST", "/api/accounts", json={
        "platform": "slack", "name": "Stale app token", "mode": "socket",
        "api_base_url": slack_e2e.sandbox.api_url,
        "credentials": {"bot_token": BOT_TOKEN, "app_token": APP_TOKEN}})
    return status, body


async def test_socket_mode_requires_the_app_token(slack_e2e: SlackE2E) -> None:
    status, body = await slack_e2e.api("POST", "/api/accounts", json={
        "platform": "slack", "name": "No app token", "mode": "socket",
        "api_base_url": slack_e2e.sandbox.api_url, "credentials": {"bot_token": BOT_TOKEN}})
    assert status == 400 and body["error"]["field"] == "credentials.app_token"
    status, body = await stale_app_token(slack_e2e)
    assert body["error"]["code"] == "invalid_app_token"  # type: ignore[index]
    assert "app-level token" in body["error"]["message"]  # type: ignore[index]
    assert await slack_e2e.db.accounts.count_documents({}) == 0


async def test_a_refused_app_token_is_422(slack_e2e: SlackE2E) -> None:
    status, _ = await stale_app_token(slack_e2e)
    assert status == 422


async def test_without_customize_scope_the_admin_is_told(slack_e2e: SlackE2E) -> None:
    slack_e2e.sandbox.workspace().scopes = ["chat:write", "users:read", "files:read"]
    account = await slack_e2e.add_account("events")
    assert "chat:write.customize" not in account["info"]["scopes"]
    notices = {n["key"]: n for n in account["notices"]}
    assert notices["notice.no_customize_scope"]["level"] == "warning"
    assert "signature line" in notices["notice.no_customize_scope"]["text"]
    status, again = await slack_e2e.api("GET", f"/api/accounts/{account['id']}")
    assert status == 200 and [n["key"] for n in again["notices"]] == [
        "notice.events_url", "notice.no_customize_scope"]


async def test_invalid_auth_is_422_and_nothing_is_stored(slack_e2e: SlackE2E) -> None:
    await slack_e2e.add_account(credentials={"bot_token": "xoxb-not-a-real-token"}, expect=422)
    slack_e2e.sandbox.workspace().revoked = True
    await slack_e2e.add_account(expect=422)
    assert await slack_e2e.db.accounts.count_documents({}) == 0


async def test_unreachable_slack_is_502(slack_e2e: SlackE2E) -> None:
    await slack_e2e.add_account(api_base_url="http://127.0.0.1:9/api/", expect=502)
    slack_e2e.sandbox.fail("auth.test", status=503)
    await slack_e2e.add_account(expect=502)
    assert await slack_e2e.db.accounts.count_documents({}) == 0


async def test_the_same_workspace_app_twice_is_409(slack_e2e: SlackE2E) -> None:
    await slack_e2e.add_account("events", name="Acme")
    await slack_e2e.add_account("socket", name="Acme again", expect=409)
    assert await slack_e2e.db.accounts.count_documents({}) == 1
