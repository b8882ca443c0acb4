"""Conversation and message listing, filters, keyset pagination, status and assignment."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import inbound, ingest_settled, seed_conversations
from web.app import Services


async def test_list_is_newest_first_with_contact_and_summary(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    await seed_conversations(services.store, 3)
    resp = await client.get("/api/conversations", headers=agent["headers"])
    assert resp.status == 200
    body = await resp.json()
    items = body["items"]
    assert [i["preview"] for i in items] == ["message 2", "message 1", "message 0"]
    first = items[0]
    assert set(first) >= {"id", "platform", "account_id", "kind", "status", "assignee_id",
                          "contact", "last_message_at", "preview", "unread"}
    assert first["contact"]["name"] == "王小明" and first["unread"] == 1
    assert body["next_cursor"] is None


async def test_cursor_pages_cover_everything_once(client: TestClient, services: Services,
                                                  agent: dict[str, Any]) -> None:
    ids = await seed_conversations(services.store, 23)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        url = "/api/conversations?limit=5" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(url, headers=agent["headers"])).json()
        seen += [i["id"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == list(reversed(ids))


async def test_filters_status_platform_assignee(client: TestClient, services: Services,
                                                agent: dict[str, Any]) -> None:
    ids = await seed_conversations(services.store, 4)
    await ingest_settled(services.store, inbound(1, thread="x1", platform="slack", account="acc2"))
    me = str(agent["doc"]["_id"])
    h = agent["headers"]
    assert (await client.patch(f"/api/conversations/{ids[0]}", headers=h,
                               json={"status": "resolved"})).status == 200
    assert (await client.patch(f"/api/conversations/{ids[1]}", headers=h,
                               json={"assignee_id": me})).status == 200

    async def count(query: str) -> int:
        body = await (await client.get(f"/api/conversations?{query}", headers=h)).json()
        return len(body["items"])

    assert await count("status=open") == 4
    assert await count("status=resolved") == 1
    assert await count("platform=slack") == 1
    assert await count("status=open&platform=telegram") == 3
    assert await count("assignee=me") == 1
    assert await count(f"assignee={me}&status=open") == 1
    assert await count("assignee=none") == 4


async def test_messages_page_newest_first_with_cursor(client: TestClient, services: Services,
                                                      agent: dict[str, Any]) -> None:
    for n in range(7):
        r = await ingest_settled(services.store, inbound(n))
    url = f"/api/conversations/{r.conversation_id}/messages?limit=3"
    body = await (await client.get(url, headers=agent["headers"])).json()
    assert [m["text"] for m in body["items"]] == ["message 6", "message 5", "message 4"]
    msg = body["items"][0]
    assert msg["direction"] == "in" and msg["author"]["name"] == "王小明"
    assert msg["external_id"] == "100:6" and msg["delivery"] is None
    older = await (await client.get(url + f"&cursor={body['next_cursor']}",
                                    headers=agent["headers"])).json()
    assert [m["text"] for m in older["items"]] == ["message 3", "message 2", "message 1"]


async def test_reading_clears_unread(client: TestClient, services: Services,
                                     agent: dict[str, Any]) -> None:
    r = await ingest_settled(services.store, inbound(1))
    resp = await client.post(f"/api/conversations/{r.conversation_id}/read",
                             headers=agent["headers"])
    assert (await resp.json())["unread"] == 0


async def test_errors_have_the_right_status(client: TestClient, services: Services,
                                            agent: dict[str, Any]) -> None:
    h = agent["headers"]
    r = await ingest_settled(services.store, inbound(1))
    cases = [
        (await client.get("/api/conversations/nope", headers=h), 404, "not_found"),
        (await client.get("/api/conversations/0123456789abcdef01234567", headers=h), 404,
         "not_found"),
        (await client.get("/api/conversations?status=weird", headers=h), 400, "validation"),
        (await client.get("/api/conversations?limit=0", headers=h), 400, "validation"),
        (await client.get("/api/conversations?cursor=%%%", headers=h), 400, "bad_cursor"),
        (await client.patch(f"/api/conversations/{r.conversation_id}", headers=h,
                            data=b"{not json"), 400, "bad_json"),
        (await client.patch(f"/api/conversations/{r.conversation_id}", headers=h,
                            json={"status": "gone"}), 400, "validation"),
        (await client.patch(f"/api/conversations/{r.conversation_id}", headers=h,
                            json={"assignee_id": "0123456789abcdef01234567"}), 400,
         "validation"),
        (await client.post("/api/agents", headers=h, json={}), 403, "forbidden"),
    ]
    for resp, status, code in cases:
        assert resp.status == status, (resp.url, await resp.text())
        assert (await resp.json())["error"]["code"] == code


async def test_oversized_body_is_413(client: TestClient, services: Services,
                                     agent: dict[str, Any]) -> None:
    r = await ingest_settled(services.store, inbound(1))
    big = b'{"status": "' + b"x" * 2_000_000 + b'"}'
    resp = await client.patch(f"/api/conversations/{r.conversation_id}",
                              headers={**agent["headers"], "Content-Type": "application/json"},
                              data=big)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "too_large"


async def test_openapi_document_is_served(client: TestClient) -> None:
    body = await (await client.get("/api/openapi.json")).json()
    assert body["openapi"].startswith("3.")
    assert "/api/conversations/{id}/messages" in body["paths"]


async def test_healthz_and_metrics(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["database"] == "ok"
    metrics = await (await client.get("/metrics")).text()
    assert "switchboard_webhooks_total" in metrics
