"""Canned replies through the API: the shape, who sees and edits each scope (personal: its
owner; team: its members, edited by admins and the team's leads; everyone: all, edited by
admins), validation, usage counts."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from web.app import Services


async def call(client: TestClient, method: str, path: str, headers: dict[str, str],
               json: Any = None) -> tuple[int, Any]:
    resp = await client.request(method, path, json=json, headers=headers)
    body = await resp.json() if resp.content_type == "application/json" else None
    return resp.status, body


async def member(services: Services, login: str, name: str) -> tuple[str, dict[str, str]]:
    doc = await services.agents.create(login, display_name=name, password="x" * 10)
    token, _ = await services.agents.create_token(str(doc["_id"]))
    return str(doc["_id"]), {"Authorization": f"Bearer {token}"}


async def test_scopes_decide_who_sees_and_who_edits(client: TestClient, services: Services,
                                                    admin: dict[str, Any],
                                                    agent: dict[str, Any]) -> None:
    boss, zhang = admin["headers"], agent["headers"]
    lead_id, lead = await member(services, "lead", "王组长")
    other_id, other = await member(services, "other", "赵客服")
    zhang_id = str(agent["doc"]["_id"])
    status, team = await call(client, "POST", "/api/teams", boss, {
        "name": "售后", "members": [zhang_id, lead_id], "leads": [lead_id]})
    assert status == 201 and team["leads"] == [lead_id], team
    tid = team["id"]

    status, mine = await call(client, "POST", "/api/canned-replies", zhang, {
        "shortcut": "/hi", "title": "问候", "body": {"zh-CN": "您好{customer_name}"}})
    assert status == 201, mine
    assert set(mine) >= {"id", "shortcut", "title", "body", "scope", "team_id", "uses"}
    assert mine["shortcut"] == "hi" and mine["scope"] == "personal" and mine["uses"] == 0
    assert mine["team_id"] is None and mine["editable"] is True

    # an agent may not share a reply; a lead may share with their team, an admin with all
    status, err = await call(client, "POST", "/api/canned-replies", zhang, {
        "shortcut": "t", "title": "x", "body": {"en": "x"}, "scope": "team", "team_id": tid})
    assert status == 403 and err["error"]["code"] == "forbidden"
    status, shared = await call(client, "POST", "/api/canned-replies", lead, {
        "shortcut": "thlc", "title": "退货流程", "body": {"zh-CN": "退货请……", "en": "To "
                                                        "return…"},
        "scope": "team", "team_id": tid})
    assert status == 201, shared
    status, err = await call(client, "POST", "/api/canned-replies", lead, {
        "shortcut": "all", "title": "x", "body": {"en": "x"}, "scope": "everyone"})
    assert status == 403
    status, everyone = await call(client, "POST", "/api/canned-replies", boss, {
        "shortcut": "bye", "title": "结束语", "body": {"zh-CN": "感谢咨询"},
        "scope": "everyone"})
    assert status == 201

    async def visible(headers: dict[str, str]) -> set[str]:
        status, body = await call(client, "GET", "/api/canned-replies", headers)
        assert status == 200
        return {i["shortcut"] for i in body["items"]}

    assert await visible(zhang) == {"hi", "thlc", "bye"}
    assert await visible(lead) == {"thlc", "bye"}
    assert await visible(other) == {"bye"}  # not in the team, not the owner
    assert await visible(boss) == {"thlc", "bye"}  # admins manage shared ones, not personal

    # editing: a member may not change the team's reply, its lead may; nobody else's personal
    status, _ = await call(client, "PATCH", f"/api/canned-replies/{shared['id']}", zhang,
                           {"title": "退货"})
    assert status == 403
    status, changed = await call(client, "PATCH", f"/api/canned-replies/{shared['id']}", lead,
                                 {"title": "退货流程（新）"})
    assert status == 200 and changed["title"] == "退货流程（新）"
    status, _ = await call(client, "PATCH", f"/api/canned-replies/{shared['id']}", lead,
                           {"scope": "everyone"})
    assert status == 403  # a lead cannot widen it past the team
    status, _ = await call(client, "PATCH", f"/api/canned-replies/{mine['id']}", boss,
                           {"title": "x"})
    assert status == 404  # another agent's personal reply does not exist for them
    status, _ = await call(client, "DELETE", f"/api/canned-replies/{everyone['id']}", lead)
    assert status == 403
    status, _ = await call(client, "DELETE", f"/api/canned-replies/{everyone['id']}", boss)
    assert status == 204
    assert await visible(other) == set()
    del other_id


async def test_validation_and_usage_counts(client: TestClient, services: Services,
                                           agent: dict[str, Any]) -> None:
    zhang = agent["headers"]
    for bad, field in (({"shortcut": "a b", "title": "x", "body": {"en": "x"}}, "shortcut"),
                       ({"shortcut": "a", "title": "x", "body": {}}, "body"),
                       ({"shortcut": "a", "title": "x", "body": {"not a locale": "x"}},
                        "body"),
                       ({"shortcut": "a", "title": "x", "body": {"en": "x"},
                         "scope": "team"}, "team_id")):
        status, err = await call(client, "POST", "/api/canned-replies", zhang, bad)
        assert status == 400 and err["error"]["field"] == field, (bad, err)
    status, _ = await call(client, "GET", "/api/canned-replies?limit=0", zhang)
    assert status == 400
    from tests.helpers import inbound

    result = await services.store.ingest(inbound(1, text="hello"))
    await services.store.settle()
    status, doc = await call(client, "POST", "/api/canned-replies", zhang, {
        "shortcut": "hi", "title": "Hello", "body": {"en": "Hello {customer_name}"}})
    for n in (1, 2):
        status, used = await call(client, "POST", f"/api/canned-replies/{doc['id']}/use",
                                  zhang, {"conversation_id": result.conversation_id})
        assert status == 200 and used["uses"] == n and used["text"] == "Hello 王小明"
    stored = await services.db.canned_replies.find_one({})
    assert stored is not None and stored["uses"] == 2
