"""Who may call what: 401 without identity, 403 without the role, tokens revocable."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

ADMIN_ROUTES = [("GET", "/api/accounts"), ("POST", "/api/accounts"),
                ("POST", "/api/accounts/test"), ("GET", "/api/accounts/0123456789abcdef01234567"),
                ("DELETE", "/api/accounts/0123456789abcdef01234567"), ("POST", "/api/agents"),
                ("PATCH", "/api/agents/0123456789abcdef01234567"), ("GET", "/api/audit")]


async def test_no_identity_is_401_with_json_error(client: TestClient) -> None:
    resp = await client.get("/api/conversations")
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "unauthorized"


async def test_unknown_token_is_401(client: TestClient) -> None:
    resp = await client.get("/api/me", headers={"Authorization": "Bearer sbt_nope"})
    assert resp.status == 401


async def test_agent_gets_403_on_every_admin_route(client: TestClient,
                                                   agent: dict[str, Any]) -> None:
    for method, path in ADMIN_ROUTES:
        resp = await client.request(method, path, headers=agent["headers"], json={})
        assert resp.status == 403, (method, path)
        assert (await resp.json())["error"]["code"] == "forbidden"


async def test_admin_reaches_admin_routes(client: TestClient, admin: dict[str, Any]) -> None:
    resp = await client.get("/api/accounts", headers=admin["headers"])
    assert resp.status == 200
    assert (await resp.json()) == {"items": []}


async def test_revoked_token_stops_working(client: TestClient, agent: dict[str, Any]) -> None:
    created = await client.post("/api/tokens", headers=agent["headers"], json={"name": "ci"})
    assert created.status == 201
    token = (await created.json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/me", headers=headers)).status == 200
    token_id = (await created.json())["id"]
    assert (await client.delete(f"/api/tokens/{token_id}", headers=headers)).status == 204
    assert (await client.get("/api/me", headers=headers)).status == 401


async def test_deactivated_agent_is_locked_out_at_once(client: TestClient, admin: dict[str, Any],
                                                       agent: dict[str, Any]) -> None:
    assert (await client.get("/api/me", headers=agent["headers"])).status == 200
    resp = await client.patch(f"/api/agents/{agent['doc']['_id']}", headers=admin["headers"],
                              json={"active": False})
    assert resp.status == 200
    assert (await client.get("/api/me", headers=agent["headers"])).status == 401


async def test_token_hashes_and_passwords_are_never_returned(
        client: TestClient, admin: dict[str, Any], agent: dict[str, Any]) -> None:
    for path in ("/api/agents", "/api/me", "/api/tokens"):
        text = await (await client.get(path, headers=admin["headers"])).text()
        assert "password" not in text and "token_hash" not in text
        assert admin["token"] not in text and agent["token"] not in text
