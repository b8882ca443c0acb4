"""Team-work pages: teams, labels and routing rules (with "try a message"), the name policy and
its review, failed replies, search, a conversation's notes and side panel, availability.
Roles are enforced here on the server (`page("admin")`); every form carries the CSRF token."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from connectors.channels import platforms
from inbox.store import NotFound
from teams import hours
from teams.rules import PRIORITIES, Sample, decide, now_in_hours
from teams.store import Invalid
from web.api_names import connected, policy_json, validator
from web.api_search import failed_page
from web.api_teams import contact_detail
from web.auth import client_address
from web.pages import form, page, render
from web.views import conversation_json

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _audit(request: web.Request, action: str, target: str, **details: Any) -> Any:
    return request.app["services"].store.audit(
        request["agent"]["login"], action, target, address=client_address(request),
        details=details)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.replace("，", ",").split(",") if v.strip()]


# ---------------------------------------------------------------------- teams and rules


async def _teams_page(request: web.Request, *, status: int = 200, error: str | None = None,
                      tried: dict[str, Any] | None = None) -> web.Response:
    services = request.app["services"]
    work = services.teams
    teams = sorted((await work.store.teams()).values(), key=lambda t: t.get("name") or "")
    agents = [a for a in await services.agents.list() if a.get("active")]
    queues = {str(t["_id"]): len(await work.assigner.queue(str(t["_id"]))) for t in teams}
    now = work.assigner.clock.now()
    return render(request, "admin_teams.html", status=status, active="teams", teams=teams,
                  agents=agents, rules=await work.store.rules(), labels=await work.store.labels(),
                  queues=queues, open_now={str(t["_id"]): hours.is_open(
                      t.get("business_hours"), now) for t in teams},
                  error=error, tried=tried, priorities=PRIORITIES, days=DAYS,
                  platform_list=[p["platform"] for p in platforms()],
                  team_names={str(t["_id"]): t.get("name") for t in teams},
                  notice=request.query.get("notice"))


@page("admin")
async def teams_page(request: web.Request) -> web.StreamResponse:
    return await _teams_page(request)


def _team_form(data: dict[str, str], members: list[str]) -> dict[str, Any]:
    names = {k: data.get(f"name_{k}", "").strip() for k in ("zh-CN", "en")}
    weekly = {d: [[data.get("opens", "09:00"), data.get("closes", "18:00")]]
              for d in DAYS if data.get(f"day_{d}")}
    body: dict[str, Any] = {
        "name": names["en"] or names["zh-CN"], "names": {k: v for k, v in names.items() if v},
        "title": data.get("title", "").strip() or None, "members": members,
        "fallback_team_id": data.get("fallback_team_id") or None,
        "overflow_after_s": int(data["overflow_after_s"]) if data.get(
            "overflow_after_s", "").isdigit() else None,
        "max_open": int(data["max_open"]) if data.get("max_open", "").isdigit() else None,
        "reassign_on_away": bool(data.get("reassign_on_away"))}
    body["business_hours"] = {"timezone": data.get("timezone") or "UTC", "weekly": weekly,
                              "holidays": data.get("holidays") or None} if weekly else None
    return body


@page("admin")
async def team_save(request: web.Request) -> web.StreamResponse:
    post = await request.post()
    data = await form(request)
    members = [str(m) for m in post.getall("members", [])]
    work = request.app["services"].teams
    team_id = request.match_info.get("id")
    try:
        if data.get("action") == "delete" and team_id:
            await work.store.delete_team(team_id)
            await _audit(request, "team.delete", team_id)
            raise web.HTTPFound("/admin/teams?notice=deleted")
        body = _team_form(data, members)
        body["leads"] = [str(m) for m in post.getall("leads", [])]
        if team_id:
            doc = await work.store.update_team(team_id, body)
        else:
            doc = await work.store.create_team(body)
    except Invalid as exc:
        return await _teams_page(request, status=400, error=str(exc))
    except NotFound:
        return await _teams_page(request, status=400, error="fallback_team_id: no such team")
    await _audit(request, "team.update" if team_id else "team.create", str(doc["_id"]),
                 name=doc["name"])
    await work.assigner.drain(str(doc["_id"]))
    raise web.HTTPFound("/admin/teams?notice=saved")


@page("admin")
async def rule_save(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    work = request.app["services"].teams
    rule_id = request.match_info.get("id")
    if data.get("action") == "delete" and rule_id:
        await work.store.delete_rule(rule_id)
        await _audit(request, "routing_rule.delete", rule_id)
        raise web.HTTPFound("/admin/teams?notice=deleted")
    hours_choice = data.get("in_business_hours", "")
    body = {"name": data.get("name", ""),
            "position": int(data["position"]) if data.get("position", "").lstrip(
                "-").isdigit() else None,
            "conditions": {"platform": data.get("platform") or None,
                           "kind": data.get("kind") or None,
                           "language": data.get("language") or None,
                           "keywords": _split(data.get("keywords", "")),
                           "labels": _split(data.get("labels", "")),
                           "in_business_hours": {"yes": True, "no": False}.get(hours_choice)},
            "actions": {"team_id": data.get("team_id") or None,
                        "labels": _split(data.get("add_labels", "")),
                        "priority": data.get("priority") or None}}
    try:
        clean = await work.store.clean_rule(body, platforms=[p["platform"] for p in platforms()])
        doc = await (work.store.update_rule(rule_id, clean) if rule_id
                     else work.store.create_rule(clean))
    except Invalid as exc:
        return await _teams_page(request, status=400, error=str(exc))
    await _audit(request, "routing_rule.update" if rule_id else "routing_rule.create",
                 str(doc["_id"]), name=doc["name"])
    raise web.HTTPFound("/admin/teams?notice=saved")


@page("admin")
async def rule_try(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    work = request.app["services"].teams
    teams = await work.store.teams()
    sample = Sample(platform=data.get("platform") or None, kind=data.get("kind") or None,
                    language=data.get("language") or None, text=data.get("text", ""),
                    labels=tuple(_split(data.get("labels", ""))))
    decision = decide(await work.store.rules(), sample,
                      now_in_hours(teams, work.assigner.clock.now(), hours.is_open))
    tried = {**decision.as_doc(), "text": sample.text,
             "team_name": (teams.get(decision.team_id or "") or {}).get("name")}
    return await _teams_page(request, tried=tried)


@page("admin")
async def label_save(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    work = request.app["services"].teams
    name = request.match_info.get("name") or data.get("name", "")
    try:
        if data.get("action") == "delete":
            await work.store.delete_label(name)
        else:
            await work.store.save_label(name, data.get("color") or None,
                                        create="name" not in request.match_info)
    except Invalid as exc:
        return await _teams_page(request, status=400, error=str(exc))
    await _audit(request, "label." + ("delete" if data.get("action") == "delete" else "save"),
                 name)
    raise web.HTTPFound("/admin/teams?notice=saved")


# ---------------------------------------------------------------------- names


async def _names_page(request: web.Request, *, status: int = 200,
                      preview: dict[str, Any] | None = None, error: str | None = None,
                      ) -> web.Response:
    services = request.app["services"]
    work = services.teams
    days = request.query.get("days", "")
    days_n = int(days) if days.isdigit() else services.settings.teams.name_review_days
    agents = {str(a["_id"]): a for a in await services.agents.list()}
    return render(request, "admin_names.html", status=status, active="names",
                  policies=[await policy_json(services, p) for p in await work.names.list()],
                  due=await work.names.names(unreviewed_days=days_n), days=days_n,
                  agents=agents, teams=await work.store.teams(), labels=await work.store.labels(),
                  preview=preview, error=error, notice=request.query.get("notice"))


@page("admin")
async def names_page(request: web.Request) -> web.StreamResponse:
    return await _names_page(request)


@page("admin")
async def policy_save(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    services = request.app["services"]
    names = services.teams.names
    policy_id = request.match_info.get("id")
    if data.get("action") == "delete" and policy_id:
        try:
            changes = await names.delete(policy_id)
        except Invalid as exc:
            return await _names_page(request, status=400, error=str(exc))
        await _audit(request, "name_policy.delete", policy_id)
        for c in changes:
            await _audit(request, f"agent_name.{c['action']}", c["agent_id"], name=c["name"])
        raise web.HTTPFound("/admin/names?notice=deleted")
    body: dict[str, Any] = {"kind": data.get("kind") or "template",
                            "template": data.get("template") or None,
                            "role_name": data.get("role_name") or None,
                            "show_title": bool(data.get("show_title")),
                            "shared": bool(data.get("shared"))}
    if not policy_id and not data.get("team_id") and not data.get("group"):
        policy_id = "default"  # every team and every customer: that is the default policy
    if policy_id != "default":
        body.update(team_id=data.get("team_id") or None, group=data.get("group") or None)
    channels = await connected(services)
    dry = data.get("action") == "preview"
    try:
        doc, plan, changes = await names.save(policy_id, body, validator(services, channels),
                                              dry_run=dry)
    except Invalid as exc:
        return await _names_page(request, status=400, error=str(exc))
    if dry or not plan.ok:
        shown = await policy_json(services, doc, plan, saved=False, channels=channels)
        return await _names_page(request, status=200 if dry else 409, preview=shown)
    await _audit(request, "name_policy.update" if policy_id else "name_policy.create",
                 str(doc["_id"]), **body)
    for c in changes:
        await _audit(request, f"agent_name.{c['action']}", c["agent_id"], name=c["name"],
                     policy_id=c["policy_id"])
    raise web.HTTPFound("/admin/names?notice=saved")


@page("admin")
async def name_review(request: web.Request) -> web.StreamResponse:
    await form(request)
    doc = await request.app["services"].teams.names.review(request.match_info["id"],
                                                           request["agent"]["login"])
    await _audit(request, "agent_name.review", doc["agent_id"], name=doc["name"])
    raise web.HTTPFound("/admin/names?notice=reviewed")


# ---------------------------------------------------------------------- agents' pages


@page()
async def failed(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    docs, cursor = await failed_page(services, limit=50,
                                     cursor=request.query.get("cursor") or None)
    from web.views import message_json

    return render(request, "failed.html", active="failed", items=[
        {**message_json(d), "platform": d.get("platform") or ""} for d in docs],
        next_cursor=cursor)


@page()
async def search(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    q = request.query.get("q", "").strip()[:200]
    items: list[dict[str, Any]] = []
    cursor = None
    if q:
        from inbox.paging import BadCursor

        try:
            hits, cursor = await services.teams.search.page(
                q, limit=20, cursor=request.query.get("cursor") or None)
        except BadCursor:
            raise web.HTTPFound("/search") from None
        convs = {str(c["_id"]): c for c in await services.db.conversations.find(
            {"_id": {"$in": [__import__("bson").ObjectId(h["conversation_id"])
                             for h in hits]}}).to_list()}
        contacts = await services.store.contacts_by_id(
            [c.get("contact_id") for c in convs.values()])
        for h in hits:
            conv = convs.get(h["conversation_id"])
            items.append({"kind": h["kind"], "snippet": h.get("snippet") or "",
                          "author": h.get("author"), "at": h.get("at"),
                          "conversation": conversation_json(
                              conv, contacts.get(conv.get("contact_id") or "")) if conv else None})
    return render(request, "search.html", active="search", q=q, items=items,
                  next_cursor=cursor)


@page()
async def note_add(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    conv_id = request.match_info["id"]
    text = data.get("text", "").strip()
    if text:
        from bson import ObjectId

        from inbox.paging import make_sk

        services = request.app["services"]
        conv = await services.store.get_conversation(conv_id)
        agent = request["agent"]
        now, mid = datetime.now(UTC), ObjectId()
        await services.db.messages.insert_one({
            "_id": mid, "sk": make_sk(now, mid), "conversation_id": str(conv["_id"]),
            "account_id": conv["account_id"], "platform": conv["platform"],
            "direction": "note", "agent_id": str(agent["_id"]),
            "agent_name": agent["display_name"], "text": text[:20_000], "attachments": [],
            "author": {"user_id": str(agent["_id"]), "name": agent["display_name"],
                       "handle": None, "is_bot": False}, "platform_ts": now, "created_at": now})
    raise web.HTTPFound(f"/conversations/{conv_id}")


@page()
async def conversation_labels(request: web.Request) -> web.StreamResponse:
    post = await request.post()
    data = await form(request)
    services = request.app["services"]
    conv_id = request.match_info["id"]
    try:
        labels = await services.teams.store.check_labels([str(v) for v in post.getall(
            "labels", [])])
    except Invalid:
        labels = []
    changes: dict[str, Any] = {"labels": labels}
    if data.get("priority") in PRIORITIES:
        changes["priority"] = data["priority"]
    await services.store.update_conversation(conv_id, changes)
    await services.teams.reindex_conversation(conv_id)
    raise web.HTTPFound(f"/conversations/{conv_id}")


@page("admin")
async def conversation_team(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    conv_id = request.match_info["id"]
    work = request.app["services"].teams
    with contextlib.suppress(NotFound):
        await work.assigner.move_to_team(conv_id, data.get("team_id", ""),
                                         by=str(request["agent"]["_id"]))
    raise web.HTTPFound(f"/conversations/{conv_id}")


@page()
async def availability(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    value = data.get("availability", "")
    services = request.app["services"]
    agent = request["agent"]
    if value in ("online", "away", "offline"):
        previous = agent.get("availability") or "offline"
        await services.agents.update(str(agent["_id"]), {"availability": value})
        await services.teams.assigner.availability_changed(str(agent["_id"]), value, previous)
    from web.pages import safe_next

    raise web.HTTPFound(safe_next(data.get("next", "/")))


async def side_panel(services: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """What the conversation page shows beside the thread."""
    work = services.teams
    contact = None
    if doc.get("contact_id"):
        try:
            contact = await contact_detail(services, doc["contact_id"])
        except NotFound:
            contact = None
    if contact:
        contact["conversations"] = [c for c in contact["conversations"]
                                    if c["id"] != str(doc["_id"])]
    teams = await work.store.teams()
    positions = await work.assigner.positions([str(doc["_id"])]) if doc.get(
        "queued_since") else {}
    return {"contact": contact, "team": teams.get(doc.get("team_id") or ""), "teams": teams,
            "labels": await work.store.labels(), "priorities": PRIORITIES,
            "position": positions.get(str(doc["_id"]))}


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/teams", teams_page)
    app.router.add_post("/admin/teams", team_save)
    app.router.add_post("/admin/teams/{id}", team_save)
    app.router.add_post("/admin/rules", rule_save)
    app.router.add_post("/admin/rules/try", rule_try)
    app.router.add_post("/admin/rules/{id}", rule_save)
    app.router.add_post("/admin/labels", label_save)
    app.router.add_post("/admin/labels/{name}", label_save)
    app.router.add_get("/admin/names", names_page)
    app.router.add_post("/admin/names/policies", policy_save)
    app.router.add_post("/admin/names/policies/{id}", policy_save)
    app.router.add_post("/admin/names/{id}/review", name_review)
    app.router.add_get("/failed", failed)
    app.router.add_get("/search", search)
    app.router.add_post("/conversations/{id}/notes", note_add)
    app.router.add_post("/conversations/{id}/labels", conversation_labels)
    app.router.add_post("/conversations/{id}/team", conversation_team)
    app.router.add_post("/availability", availability)
