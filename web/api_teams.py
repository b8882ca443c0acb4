"""The team-work API: teams and their queues, routing rules (and trying them), labels,
availability, private notes, contacts with their history, presence (collision detection)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from bson import ObjectId

from connectors.channels import platforms
from inbox.paging import make_sk
from inbox.store import NotFound, oid
from teams import hours
from teams.rules import Sample, decide, now_in_hours, reason_text
from teams.store import Invalid
from web import schemas_teams as st
from web.api_base import _audit, _services, body_as, invalid
from web.auth import requires
from web.errors import ApiError
from web.views import iso, message_json

routes = web.RouteTableDef()
PRESENCE_SECONDS = 30


def _work(request: web.Request) -> Any:
    return _services(request).teams


def _body(model: Any) -> dict[str, Any]:
    return {k: getattr(model, k) for k in model.model_fields_set}


# ---------------------------------------------------------------------- teams


async def team_json(work: Any, doc: dict[str, Any]) -> dict[str, Any]:
    tid = str(doc["_id"])
    return {"id": tid, "name": doc.get("name") or "", "names": dict(doc.get("names") or {}),
            "title": doc.get("title"), "members": list(doc.get("members") or []),
            "leads": list(doc.get("leads") or []),
            "business_hours": doc.get("business_hours"),
            "fallback_team_id": doc.get("fallback_team_id"),
            "overflow_after_s": doc.get("overflow_after_s"), "max_open": doc.get("max_open"),
            "member_caps": dict(doc.get("member_caps") or {}),
            "reassign_on_away": bool(doc.get("reassign_on_away")),
            "open_now": hours.is_open(doc.get("business_hours"), work.assigner.clock.now()),
            "queue_length": await work.db.team_queue.count_documents({"team_id": tid})}


def _team_body(model: Any) -> dict[str, Any]:
    body = _body(model)
    if "business_hours" in body and body["business_hours"] is not None:
        body["business_hours"] = model.business_hours.model_dump()
    return body


@routes.get("/api/teams")
@requires("agent")
async def list_teams(request: web.Request) -> web.Response:
    work = _work(request)
    docs = sorted((await work.store.teams()).values(), key=lambda d: d.get("name") or "")
    return web.json_response({"items": [await team_json(work, d) for d in docs]})


@routes.post("/api/teams")
@requires("admin")
async def create_team(request: web.Request) -> web.Response:
    body = await body_as(request, st.TeamCreate)
    work = _work(request)
    try:
        doc = await work.store.create_team(_team_body(body))
    except Invalid as exc:
        raise invalid(exc) from None
    except NotFound as exc:
        raise ApiError(400, "validation", f"fallback_team_id: no such team {exc}",
                       field="fallback_team_id") from None
    await _audit(request, "team.create", str(doc["_id"]), name=doc["name"])
    return web.json_response(await team_json(work, doc), status=201)


@routes.patch("/api/teams/{id}")
@requires("admin")
async def patch_team(request: web.Request) -> web.Response:
    body = await body_as(request, st.TeamPatch)
    work = _work(request)
    changes = _team_body(body)
    try:
        doc = await work.store.update_team(request.match_info["id"], changes)
    except Invalid as exc:
        raise invalid(exc) from None
    await _audit(request, "team.update", str(doc["_id"]),
                 **{k: v for k, v in changes.items() if k != "business_hours"})
    if {"members", "title", "names", "name"} & set(changes):
        from web.api_names import resync_team_names

        await resync_team_names(request, str(doc["_id"]))
    await work.assigner.drain(str(doc["_id"]))
    return web.json_response(await team_json(work, doc))


@routes.delete("/api/teams/{id}")
@requires("admin")
async def delete_team(request: web.Request) -> web.Response:
    await _work(request).store.delete_team(request.match_info["id"])
    await _audit(request, "team.delete", request.match_info["id"])
    return web.Response(status=204)


@routes.get("/api/teams/{id}/queue")
@requires("agent")
async def team_queue(request: web.Request) -> web.Response:
    work = _work(request)
    team = await work.store.team(request.match_info["id"])
    from teams.rules import PRIORITIES

    entries = await work.assigner.queue(str(team["_id"]))
    return web.json_response({"team_id": str(team["_id"]), "items": [
        {"conversation_id": e["_id"], "position": i + 1, "since": iso(e.get("since")),
         "priority": PRIORITIES[min(int(e.get("rank", 1)), 3)]}
        for i, e in enumerate(entries)]})


# ---------------------------------------------------------------------- routing rules


def rule_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(doc["_id"]), "name": doc.get("name") or "",
            "position": int(doc.get("position") or 0),
            "conditions": dict(doc.get("conditions") or {}),
            "actions": dict(doc.get("actions") or {})}


def _rule_body(model: Any) -> dict[str, Any]:
    body = _body(model)
    for key in ("conditions", "actions"):
        if key in body and body[key] is not None:
            body[key] = getattr(model, key).model_dump(exclude_none=True)
    return body


def _platform_names() -> list[str]:
    return [p["platform"] for p in platforms()]


@routes.get("/api/routing-rules")
@requires("admin")
async def list_rules(request: web.Request) -> web.Response:
    return web.json_response({"items": [rule_json(d) for d in
                                        await _work(request).store.rules()]})


@routes.post("/api/routing-rules")
@requires("admin")
async def create_rule(request: web.Request) -> web.Response:
    body = await body_as(request, st.RuleCreate)
    store = _work(request).store
    try:
        clean = await store.clean_rule(_rule_body(body), platforms=_platform_names())
    except Invalid as exc:
        raise invalid(exc) from None
    doc = await store.create_rule(clean)
    await _audit(request, "routing_rule.create", str(doc["_id"]), name=doc["name"])
    return web.json_response(rule_json(doc), status=201)


@routes.post("/api/routing-rules/test")
@requires("admin")
async def test_rule(request: web.Request) -> web.Response:
    """What would happen to a conversation like this one: which rule, which team."""
    body = await body_as(request, st.RuleTest)
    work = _work(request)
    teams = await work.store.teams()
    sample = Sample(platform=body.platform, account_id=body.account_id, kind=body.kind,
                    language=body.language, text=body.text, labels=tuple(body.labels))
    decision = decide(await work.store.rules(), sample,
                      now_in_hours(teams, work.assigner.clock.now(), hours.is_open))
    team = teams.get(decision.team_id or "")
    return web.json_response({
        "rule_id": decision.rule_id, "team_id": decision.team_id, "labels": decision.labels,
        "priority": decision.priority, "rule_name": decision.rule_name,
        "team_name": team.get("name") if team else None, "matched": decision.matched,
        "reason": reason_text(decision.as_doc())})


@routes.patch("/api/routing-rules/{id}")
@requires("admin")
async def patch_rule(request: web.Request) -> web.Response:
    body = await body_as(request, st.RulePatch)
    store = _work(request).store
    await store.rule(request.match_info["id"])
    try:
        clean = await store.clean_rule(_rule_body(body), platforms=_platform_names(),
                                       partial=True)
    except Invalid as exc:
        raise invalid(exc) from None
    if not clean:
        raise ApiError(400, "validation", "nothing to change")
    doc = await store.update_rule(request.match_info["id"], clean)
    await _audit(request, "routing_rule.update", str(doc["_id"]), fields=sorted(clean))
    return web.json_response(rule_json(doc))


@routes.delete("/api/routing-rules/{id}")
@requires("admin")
async def delete_rule(request: web.Request) -> web.Response:
    await _work(request).store.delete_rule(request.match_info["id"])
    await _audit(request, "routing_rule.delete", request.match_info["id"])
    return web.Response(status=204)


# ---------------------------------------------------------------------- labels


def label_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"name": doc["_id"], "color": doc.get("color") or "#6b7280"}


@routes.get("/api/labels")
@requires("agent")
async def list_labels(request: web.Request) -> web.Response:
    return web.json_response({"items": [label_json(d) for d in
                                        await _work(request).store.labels()]})


@routes.post("/api/labels")
@requires("admin")
async def create_label(request: web.Request) -> web.Response:
    body = await body_as(request, st.LabelCreate)
    try:
        doc = await _work(request).store.save_label(body.name, body.color, create=True)
    except Invalid as exc:
        if "exists" in str(exc):
            raise ApiError(409, "duplicate", str(exc)) from None
        raise invalid(exc) from None
    await _audit(request, "label.create", doc["_id"], color=doc["color"])
    return web.json_response(label_json(doc), status=201)


@routes.patch("/api/labels/{name}")
@requires("admin")
async def patch_label(request: web.Request) -> web.Response:
    body = await body_as(request, st.LabelPatch)
    try:
        doc = await _work(request).store.save_label(request.match_info["name"], body.color,
                                                    create=False)
    except Invalid as exc:
        raise invalid(exc) from None
    await _audit(request, "label.update", doc["_id"], color=doc["color"])
    return web.json_response(label_json(doc))


@routes.delete("/api/labels/{name}")
@requires("admin")
async def delete_label(request: web.Request) -> web.Response:
    await _work(request).store.delete_label(request.match_info["name"])
    await _audit(request, "label.delete", request.match_info["name"])
    return web.Response(status=204)


# ---------------------------------------------------------------------- availability


@routes.patch("/api/agents/me")
@requires("agent")
async def patch_me(request: web.Request) -> web.Response:
    """An agent's own availability: online (gets conversations), away, offline."""
    body = await body_as(request, st.MePatch)
    services = _services(request)
    agent = request["agent"]
    previous = agent.get("availability") or "offline"
    doc = await services.agents.update(str(agent["_id"]), {"availability": body.availability,
                                                           "availability_at": datetime.now(UTC)})
    moved = await services.teams.assigner.availability_changed(
        str(agent["_id"]), body.availability, previous)
    if previous != body.availability:
        await _audit(request, "agent.availability", agent["login"],
                     availability=body.availability, reassigned=moved)
    from web.views import agent_json

    out = agent_json(doc)
    if request["session"] is not None:
        out["csrf_token"] = request["session"]["csrf"]
    return web.json_response(out)


# ---------------------------------------------------------------------- notes


@routes.post("/api/conversations/{id}/notes")
@requires("agent")
async def add_note(request: web.Request) -> web.Response:
    """A private note: stored among the messages (`direction: "note"`), never sent — it has
    no delivery, so no worker ever claims it."""
    body = await body_as(request, st.NoteCreate)
    if not body.text.strip():
        raise ApiError(400, "validation", "text: the note is empty", field="text")
    services = _services(request)
    conv = await services.store.get_conversation(request.match_info["id"])
    agent = request["agent"]
    now = datetime.now(UTC)
    mid = ObjectId()
    doc = {"_id": mid, "sk": make_sk(now, mid), "conversation_id": str(conv["_id"]),
           "account_id": conv["account_id"], "platform": conv["platform"],
           "direction": "note", "agent_id": str(agent["_id"]),
           "agent_name": agent["display_name"],
           "author": {"user_id": str(agent["_id"]), "name": agent["display_name"],
                      "handle": None, "is_bot": False},
           "text": body.text, "attachments": [], "platform_ts": now, "created_at": now}
    await services.db.messages.insert_one(doc)
    return web.json_response(message_json(doc), status=201)


# ---------------------------------------------------------------------- contacts


async def contact_detail(services: Any, contact_id: str) -> dict[str, Any]:
    contact = await services.db.contacts.find_one({"_id": oid(contact_id)})
    if contact is None:
        raise NotFound(contact_id)
    merged = [str(c["_id"]) async for c in services.db.contacts.find(
        {"merged_into": str(contact["_id"])}, {"_id": 1}).limit(50)]
    ids = [str(contact["_id"]), *merged]
    history = await services.db.contact_history.find(
        {"contact_id": {"$in": ids}}).sort("created_at", -1).limit(50).to_list()
    return {"id": str(contact["_id"]), "name": contact.get("name"),
            "handle": contact.get("handle"), "labels": list(contact.get("labels") or []),
            "identities": [{"platform": i.get("platform"), "account_id": i.get("account_id"),
                            "handle": i.get("handle")} for i in contact.get("identities") or []],
            "conversations": [{"id": h["_id"], "platform": h.get("platform"),
                               "account_id": h.get("account_id"),
                               "created_at": iso(h.get("created_at")),
                               "agent_id": h.get("agent_id")} for h in history]}


@routes.get("/api/contacts/{id}")
@requires("agent")
async def get_contact(request: web.Request) -> web.Response:
    return web.json_response(await contact_detail(_services(request), request.match_info["id"]))


@routes.patch("/api/contacts/{id}")
@requires("agent")
async def patch_contact(request: web.Request) -> web.Response:
    """A contact's labels: their customer group (VIP) for routing rules and name policies."""
    body = await body_as(request, st.ContactPatch)
    services = _services(request)
    try:
        labels = await services.teams.store.check_labels(body.labels)
    except Invalid as exc:
        raise invalid(exc) from None
    result = await services.db.contacts.update_one({"_id": oid(request.match_info["id"])},
                                                   {"$set": {"labels": labels}})
    if result.matched_count == 0:
        raise NotFound(request.match_info["id"])
    await _audit(request, "contact.labels", request.match_info["id"], labels=labels)
    return web.json_response(await contact_detail(services, request.match_info["id"]))


# ---------------------------------------------------------------------- presence


@routes.post("/api/conversations/{id}/presence")
@requires("agent")
async def presence(request: web.Request) -> web.Response:
    """"I have this conversation open / am typing / left": other agents see it live (SSE
    `presence` events); it expires by itself after 30 s without a repeat."""
    body = await body_as(request, st.PresenceBody)
    services = _services(request)
    conv = await services.store.get_conversation(request.match_info["id"])
    agent = request["agent"]
    key = f"{conv['_id']}:{agent['_id']}"
    if body.state == "left":
        await services.db.presence.delete_one({"_id": key})
    else:
        now = datetime.now(UTC)
        await services.db.presence.replace_one({"_id": key}, {
            "_id": key, "conversation_id": str(conv["_id"]), "agent_id": str(agent["_id"]),
            "agent_name": agent["display_name"], "state": body.state, "at": now,
            "expires_at": now + timedelta(seconds=PRESENCE_SECONDS)}, upsert=True)
    return web.Response(status=204)
