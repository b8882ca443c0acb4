"""The team-work API end to end on a live server with the Telegram sandbox: teams, routing
rules tried before saving, availability, the recorded decision on the conversation, notes never
sent to a platform, the name policy (templates, per-channel check, uniqueness, audit, review,
refusal to send under another name), failed replies, search."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from connectors.telegram.sandbox import TelegramSandbox
from tests.conftest import BOT_TOKEN
from tests.live import Live, add_account, wait_for


async def call(live: Live, method: str, path: str, json: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with live.http.request(method, live.url + path, json=json,
                                 headers=headers or live.headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def agent_with_token(live: Live, login: str, display_name: str, **fields: Any,
                           ) -> tuple[str, dict[str, str]]:
    doc = await live.services.agents.create(login, display_name=display_name,
                                            password="x" * 10)
    if fields:
        await live.services.db.agents.update_one({"_id": doc["_id"]}, {"$set": fields})
    token, _ = await live.services.agents.create_token(str(doc["_id"]))
    return str(doc["_id"]), {"Authorization": f"Bearer {token}"}


async def customer(live: Live, tg: TelegramSandbox, chat: int, text: str) -> dict[str, Any]:
    tg.inject_text(BOT_TOKEN, chat, text, user={"id": chat, "is_bot": False,
                                                "first_name": "小明", "username": f"c{chat}"})

    async def routed() -> Any:
        msg = await live.services.db.messages.find_one({"text": text})
        if msg is None:
            return None
        return await live.services.db.conversations.find_one(
            {"_id": ObjectId(msg["conversation_id"]), "routing": {"$exists": True}})
    return dict(await wait_for(routed))


async def test_teams_rules_and_the_recorded_decision(e2e: Live, tg: TelegramSandbox) -> None:
    zhang, zhang_headers = await agent_with_token(e2e, "zhang", "张伟")
    status, team = await call(e2e, "POST", "/api/teams", {
        "name": "After-sales", "names": {"zh-CN": "售后", "en": "After-sales"},
        "title": "售后服务", "members": [zhang], "overflow_after_s": 300,
        "business_hours": {"timezone": "Asia/Shanghai", "holidays": "CN",
                           "weekly": {"mon": [["09:00", "18:00"]]}}})
    assert status == 201, team
    assert set(team) >= {"id", "name", "names", "title", "members", "business_hours",
                         "fallback_team_id", "overflow_after_s"}
    assert team["names"]["zh-CN"] == "售后" and team["members"] == [zhang]
    status, bad = await call(e2e, "POST", "/api/teams", {
        "name": "x", "business_hours": {"timezone": "Nowhere/City"}})
    assert status == 400 and bad["error"]["field"] == "business_hours"
    status, rule = await call(e2e, "POST", "/api/routing-rules", {
        "name": "退款", "conditions": {"keywords": ["退款", "退货"], "platform": "telegram"},
        "actions": {"team_id": team["id"], "labels": [], "priority": "high"}})
    assert status == 201, rule
    assert set(rule) == {"id", "name", "position", "conditions", "actions"}
    status, tried = await call(e2e, "POST", "/api/routing-rules/test", {
        "platform": "telegram", "text": "我想申请退款，谢谢"})
    assert status == 200
    assert {k: tried[k] for k in ("rule_id", "team_id", "labels", "priority")} == {
        "rule_id": rule["id"], "team_id": team["id"], "labels": [], "priority": "high"}
    assert tried["team_name"] == "After-sales"
    status, miss = await call(e2e, "POST", "/api/routing-rules/test", {"text": "你好"})
    assert miss["rule_id"] is None and miss["team_id"] is None
    status, _ = await call(e2e, "POST", "/api/routing-rules", {
        "name": "bad", "conditions": {"colour": "red"}, "actions": {"priority": "low"}})
    assert status == 400
    status, _ = await call(e2e, "GET", "/api/routing-rules", headers=zhang_headers)
    assert status == 403

    # availability: offline agents get nothing; online, the next conversation is theirs
    status, me = await call(e2e, "PATCH", "/api/agents/me", {"availability": "online"},
                            headers=zhang_headers)
    assert status == 200 and me["availability"] == "online"
    await add_account(e2e, tg)
    conv = await customer(e2e, tg, 9001, "我要退款")
    assert conv["assignee_id"] == zhang
    status, body = await call(e2e, "GET", f"/api/conversations/{conv['_id']}")
    assert body["team_id"] == team["id"] and body["priority"] == "high"
    assert body["queue_position"] is None and body["labels"] == []
    routing = body["routing"]
    assert routing["rule_id"] == rule["id"] and routing["agent_id"] == zhang
    assert routing["reason"] == "rule “退款”: platform is telegram; keyword “退款” in the " \
                                "first message"
    assert [s["step"] for s in routing["steps"]] == ["routed", "assigned"]
    status, queue = await call(e2e, "GET", f"/api/teams/{team['id']}/queue")
    assert status == 200 and queue["items"] == []


async def test_notes_are_listed_and_never_sent(e2e: Live, tg: TelegramSandbox) -> None:
    await add_account(e2e, tg)
    conv = await customer(e2e, tg, 9002, "在吗")
    status, note = await call(e2e, "POST", f"/api/conversations/{conv['_id']}/notes",
                              {"text": "客户是老顾客，注意语气 <b>x</b>"})
    assert status == 201 and note["direction"] == "note" and note["delivery"] is None
    status, reply = await call(e2e, "POST", f"/api/conversations/{conv['_id']}/messages",
                               {"text": "您好"})
    assert status == 202
    await tg.wait_for_sent(BOT_TOKEN, 1)
    await wait_for(lambda: e2e.services.db.messages.find_one(
        {"_id": ObjectId(reply["id"]), "delivery.state": "sent"}))
    sent = [c["params"].get("text", "") for c in tg.sent(BOT_TOKEN)]
    assert len(sent) == 1 and not any("老顾客" in s for s in sent)
    status, page = await call(e2e, "GET", f"/api/conversations/{conv['_id']}/messages")
    assert [m["direction"] for m in page["items"]] == ["out", "note", "in"]


async def test_name_policy_templates_uniqueness_audit_and_sending(
        e2e: Live, tg: TelegramSandbox) -> None:
    await add_account(e2e, tg)
    zhang, zhang_headers = await agent_with_token(
        e2e, "zhang", "张伟", name_parts={"surname": "张"}, availability="online")
    zhao, _ = await agent_with_token(e2e, "zhao", "张晓", name_parts={"surname": "张"})
    li, _ = await agent_with_token(e2e, "li", "李娜")
    status, team = await call(e2e, "POST", "/api/teams", {
        "name": "售后", "title": "售后服务", "members": [zhang, zhao, li]})
    # {surname}客服 gives 张客服 twice: refused, and the preview says why
    status, body = await call(e2e, "POST", "/api/name-policies", {
        "team_id": team["id"], "template": "{surname}客服", "dry_run": True})
    assert status == 200 and body["saved"] is False
    problems = {(p.get("login"), p["problem"]) for p in body["problems"]}
    assert ("li", "the agent's profile has no surname") in problems
    assert any("another agent" in p for _, p in problems)
    row = next(n for n in body["names"] if n["login"] == "zhang")
    assert row["name"] == "张客服" and row["channels"][0]["platform"] == "telegram"
    assert row["channels"][0]["text"].endswith("张客服 · Acme")
    status, refused = await call(e2e, "POST", "/api/name-policies", {
        "team_id": team["id"], "template": "{surname}客服"})
    assert status == 409 and refused["error"]["code"] == "name_conflict"
    # {team_title} {name} is unique; a line break is refused for every channel
    status, bad = await call(e2e, "POST", "/api/name-policies", {
        "team_id": team["id"], "kind": "role", "role_name": "客服\n专员"})
    assert status == 409 and "control characters" in bad["error"]["message"]
    status, policy = await call(e2e, "POST", "/api/name-policies", {
        "team_id": team["id"], "template": "{team_title} {name}"})
    assert status == 201, policy
    names = {n["agent_id"]: n["name"] for n in (await call(e2e, "GET", "/api/names"))[1]["items"]}
    assert names[zhang] == "售后服务 张伟" and names[li] == "售后服务 李娜"
    status, audit = await call(e2e, "GET", "/api/audit")
    actions = [e["action"] for e in audit["items"]]
    assert "name_policy.create" in actions and actions.count("agent_name.add") >= 3
    # a reply in that team's conversation goes out under the policy's name, recorded
    await e2e.services.db.routing_rules.insert_one({
        "name": "all", "position": 1, "conditions": {},
        "actions": {"team_id": team["id"], "labels": [], "priority": None}})
    e2e.services.teams.store._forget()
    conv = await customer(e2e, tg, 9003, "你好")
    assert conv["team_id"] == team["id"]
    status, sent = await call(e2e, "POST", f"/api/conversations/{conv['_id']}/messages",
                              {"text": "您好", "agent_name": "随便"}, headers=zhang_headers)
    assert status == 400  # no name can be chosen by the sender
    status, sent = await call(e2e, "POST", f"/api/conversations/{conv['_id']}/messages",
                              {"text": "您好"}, headers=zhang_headers)
    assert status == 202 and sent["shown_name"] == "售后服务 张伟"
    out = (await tg.wait_for_sent(BOT_TOKEN, 1))[0]["params"]["text"]
    assert out.endswith("— 售后服务 张伟 · Acme")
    # the policy changes to one the agent's profile cannot fill: sending is refused
    status, _ = await call(e2e, "PATCH", f"/api/name-policies/{policy['id']}",
                           {"template": "{english_name}"})
    assert status == 409
    await e2e.services.db.agent_names.delete_many({"agent_id": zhang})
    await e2e.services.db.name_policies.update_one({"_id": policy["id"]},
                                                   {"$set": {"template": "{english_name}"}})
    status, refused = await call(e2e, "POST", f"/api/conversations/{conv['_id']}/messages",
                                 {"text": "再见"}, headers=zhang_headers)
    assert status == 422 and refused["error"]["code"] == "name_not_allowed"
    # review: nothing is due today; every name is due in a year's time
    status, due = await call(e2e, "GET", "/api/names?unreviewed_days=30")
    assert due["items"] == []
    await e2e.services.db.agent_names.update_many({}, {"$set": {"reviewed_at": None}})
    first = (await call(e2e, "GET", "/api/names"))[1]["items"][0]
    status, reviewed = await call(e2e, "POST", f"/api/names/{first['id']}/review")
    assert status == 200 and reviewed["reviewed_by"] == "boss"


async def test_failed_replies_and_search(e2e: Live, tg: TelegramSandbox) -> None:
    await add_account(e2e, tg)
    conv = await customer(e2e, tg, 9004, "我的订单还没到，单号 SF1234567")
    await call(e2e, "POST", "/api/labels", {"name": "VIP", "color": "#e11d48"})
    status, contact = await call(e2e, "PATCH", f"/api/contacts/{conv['contact_id']}",
                                 {"labels": ["VIP"]})
    assert status == 200 and contact["labels"] == ["VIP"]
    assert contact["conversations"][0]["id"] == str(conv["_id"])
    status, _ = await call(e2e, "PATCH", f"/api/conversations/{conv['_id']}",
                           {"labels": ["VIP"], "priority": "urgent"})
    assert status == 200

    async def found(q: str) -> list[dict[str, Any]]:
        status, page = await call(e2e, "GET", f"/api/search?q={q}")
        assert status == 200, page
        return list(page["items"])

    hits = await wait_for(lambda: found("订单还没到"))
    assert hits[0]["type"] == "message" and "订单还没到" in hits[0]["snippet"]
    assert hits[0]["conversation"]["id"] == str(conv["_id"])
    assert (await found("sf1234567"))[0]["type"] == "message"
    assert (await found("label:vip"))[0]["type"] == "conversation"
    assert any(h["type"] == "conversation" for h in await wait_for(lambda: found("c900")))
    assert await found("退款") == []

    mid = ObjectId()  # a reply as the outbox leaves it when it failed (and its message)
    failed_reply = {
        "_id": mid, "sk": "0000000000000001." + str(mid), "conversation_id": str(conv["_id"]),
        "account_id": conv["account_id"], "platform": "telegram", "direction": "out",
        "text": "您好", "agent_name": "李经理", "attachments": [],
        "delivery": {"state": "failed", "attempts": 1, "failed_at": conv["created_at"],
                     "error": {"code": "blocked", "message": "The customer blocked the bot."}}}
    await e2e.services.db.outbox.insert_one(dict(failed_reply))
    await e2e.services.db.messages.insert_one(failed_reply)
    status, failed = await call(e2e, "GET", "/api/messages?delivery=failed")
    assert status == 200 and failed["count"] == 1
    assert failed["items"][0]["id"] == str(mid)
    assert failed["items"][0]["delivery"]["error"]["code"] == "blocked"
    status, _ = await call(e2e, "GET", "/api/messages")
    assert status == 400
