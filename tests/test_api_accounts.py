"""Channel accounts: checked before saving, one per bot, credentials never returned."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from connectors.telegram.sandbox import TelegramSandbox
from tests.conftest import BOT_TOKEN
from web.app import Services


def body(tg: TelegramSandbox, **extra: Any) -> dict[str, Any]:
    return {"platform": "telegram", "name": "Support bot", "mode": "webhook",
            "api_base_url": tg.base_url, "credentials": {"bot_token": BOT_TOKEN}, **extra}


async def test_create_checks_the_token_and_returns_the_webhook_url(
        client: TestClient, services: Services, admin: dict[str, Any],
        tg: TelegramSandbox) -> None:
    resp = await client.post("/api/accounts", headers=admin["headers"], json=body(tg))
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["platform_id"] == "7000000001"
    assert created["username"] == "acme_support_bot"
    assert created["webhook_url"] == (
        f"http://127.0.0.1:8080/webhooks/telegram/{created['id']}")
    info = tg.webhook_info(BOT_TOKEN)
    assert info["url"] == created["webhook_url"]
    assert BOT_TOKEN not in created["webhook_url"]
    stored = await services.db.accounts.find_one({})
    assert stored is not None and BOT_TOKEN.encode() not in bytes(stored["credentials"])


async def test_credentials_never_come_back(client: TestClient, admin: dict[str, Any],
                                           tg: TelegramSandbox) -> None:
    created = await (await client.post("/api/accounts", headers=admin["headers"],
                                       json=body(tg))).json()
    secret_part = BOT_TOKEN.split(":")[1]
    for path in ("/api/accounts", f"/api/accounts/{created['id']}", "/api/audit"):
        text = await (await client.get(path, headers=admin["headers"])).text()
        assert secret_part not in text and "credentials" not in text and "secret" not in text


async def test_bad_token_is_422_invalid_auth(client: TestClient, admin: dict[str, Any],
                                             tg: TelegramSandbox) -> None:
    wrong = body(tg, credentials={"bot_token": "7000000002:AAwrong-token-0123456789abcdefgh"})
    resp = await client.post("/api/accounts", headers=admin["headers"], json=wrong)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "invalid_auth"
    assert (await (await client.get("/api/accounts", headers=admin["headers"])).json()) == {
        "items": []}


async def test_unreachable_api_is_502_cannot_connect(client: TestClient,
                                                      admin: dict[str, Any],
                                                      tg: TelegramSandbox) -> None:
    resp = await client.post("/api/accounts", headers=admin["headers"],
                             json=body(tg, api_base_url="http://127.0.0.1:9"))
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "cannot_connect"


async def test_same_bot_cannot_be_added_twice(client: TestClient, admin: dict[str, Any],
                                              tg: TelegramSandbox) -> None:
    assert (await client.post("/api/accounts", headers=admin["headers"],
                              json=body(tg))).status == 201
    again = await client.post("/api/accounts", headers=admin["headers"],
                              json=body(tg, name="Another name"))
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "duplicate"


async def test_unknown_platform_is_422(client: TestClient, admin: dict[str, Any]) -> None:
    resp = await client.post("/api/accounts", headers=admin["headers"],
                             json={"platform": "myspace", "name": "x", "credentials": {}})
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "unknown_platform"


async def test_test_connection_saves_nothing(client: TestClient, admin: dict[str, Any],
                                             tg: TelegramSandbox) -> None:
    resp = await client.post("/api/accounts/test", headers=admin["headers"], json=body(tg))
    assert resp.status == 200 and (await resp.json())["username"] == "acme_support_bot"
    assert (await (await client.get("/api/accounts", headers=admin["headers"])).json()) == {
        "items": []}


async def test_delete_and_audit(client: TestClient, admin: dict[str, Any],
                                tg: TelegramSandbox) -> None:
    created = await (await client.post("/api/accounts", headers=admin["headers"],
                                       json=body(tg))).json()
    resp = await client.delete(f"/api/accounts/{created['id']}", headers=admin["headers"])
    assert resp.status == 204
    assert (await client.get(f"/api/accounts/{created['id']}",
                             headers=admin["headers"])).status == 404
    audit = await (await client.get("/api/audit", headers=admin["headers"])).json()
    actions = [e["action"] for e in audit["items"]]
    assert actions == ["account.delete", "account.create"]
    assert all(e["actor"] == "boss" and e["address"] for e in audit["items"])
