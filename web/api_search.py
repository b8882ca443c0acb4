"""Search, the failed-replies view, and the name policy (进线名称) with its review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from inbox.paging import BadCursor
from inbox.store import NotFound, oid
from replies import names as channel_names
from replies.identity import PolicyName
from teams.db import FAILED_INDEX
from teams.names import Plan
from teams.store import Invalid
from web import schemas_teams as st
from web.api import _conversation_page, _limit, _services, body_as
from web.api_teams import _audit, invalid
from web.auth import requires
from web.errors import ApiError
from web.views import iso, message_json

routes = web.RouteTableDef()


# ---------------------------------------------------------------------- search


@routes.get("/api/search")
@requires("agent")
async def search(request: web.Request) -> web.Response:
    """Conversations (customer name, handle, `label:VIP`) and messages (text, Chinese without
    spaces included), newest first."""
    services = _services(request)
    q = request.query.get("q", "").strip()
    if not q or len(q) > 200:
        raise ApiError(400, "validation", "q: 1 to 200 characters", field="q")
    limit = _limit(request, 20)
    try:
        hits, cursor = await services.teams.search.page(
            q, limit=limit, cursor=request.query.get("cursor") or None)
    except BadCursor as exc:
        raise ApiError(400, "validation", f"cursor: {exc}", field="cursor") from None
    conv_ids = list(dict.fromkeys(h["conversation_id"] for h in hits))
    docs = await services.db.conversations.find(
        {"_id": {"$in": [ObjectId(c) for c in conv_ids if ObjectId.is_valid(c)]}}).to_list()
    convs = {c["id"]: c for c in await _conversation_page(request, docs)}
    items = [{"type": h["kind"], "conversation": convs.get(h["conversation_id"]),
              "message_id": str(h["_id"]) if h["kind"] == "message" else None,
              "snippet": h.get("snippet") or "", "direction": h.get("direction"),
              "author": h.get("author"), "at": iso(h.get("at"))} for h in hits]
    return web.json_response({"items": items, "next_cursor": cursor})


# ---------------------------------------------------------------------- failed replies


async def failed_page(services: Any, *, limit: int, cursor: str | None,
                      ) -> tuple[list[dict[str, Any]], str | None]:
    flt: dict[str, Any] = {"delivery.state": "failed"}
    if cursor:
        try:
            at_raw, _, mid = cursor.partition("~")
            at = datetime.fromisoformat(at_raw)
            flt["$or"] = [{"delivery.failed_at": {"$lt": at}},
                          {"delivery.failed_at": at, "_id": {"$lt": ObjectId(mid)}}]
        except (ValueError, InvalidId):
            raise ApiError(400, "validation", "cursor: not one this server issued",
                           field="cursor") from None
    docs = await services.db.outbox.find(flt, {"raw": 0}, hint=FAILED_INDEX).sort(
        [("delivery.failed_at", -1), ("_id", -1)]).limit(limit + 1).to_list()
    next_cursor = None
    if len(docs) > limit:
        docs = docs[:limit]
        last = docs[-1]
        next_cursor = f"{last['delivery']['failed_at'].isoformat()}~{last['_id']}"
    return docs, next_cursor


async def failed_count(services: Any) -> int:
    return len(await services.db.outbox.find({"delivery.state": "failed"}, {"_id": 1},
                                             hint=FAILED_INDEX).limit(1000).to_list())


@routes.get("/api/messages")
@requires("agent")
async def list_failed(request: web.Request) -> web.Response:
    """`?delivery=failed`: every reply that ended failed, on every channel, newest first."""
    if request.query.get("delivery") != "failed":
        raise ApiError(400, "validation", "delivery: only 'failed' can be listed",
                       field="delivery")
    services = _services(request)
    docs, cursor = await failed_page(services, limit=_limit(request),
                                     cursor=request.query.get("cursor") or None)
    return web.json_response({"items": [message_json(d) for d in docs], "next_cursor": cursor,
                              "count": await failed_count(services)})


# ---------------------------------------------------------------------- the name policy


async def connected(services: Any) -> list[tuple[dict[str, Any], Any]]:
    out = []
    for account in await services.accounts.list():
        try:
            out.append((account, await services.channels.get(str(account["_id"]))))
        except Exception:  # an account that cannot be built is not a channel to check # noqa: S112
            continue
    return out


def validator(services: Any, channels: list[tuple[dict[str, Any], Any]]) -> Any:
    async def validate(name: str, agent: dict[str, Any]) -> list[str]:
        rows = channel_names.preview(channels, name, services.settings.identity)
        return channel_names.problems(rows)
    return validate


async def policy_json(services: Any, doc: dict[str, Any], plan: Plan | None = None, *,
                      saved: bool = True,
                      channels: list[tuple[dict[str, Any], Any]] | None = None,
                      ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(doc["_id"]), "team_id": doc.get("team_id"), "group": doc.get("group"),
        "kind": doc.get("kind") or "template", "template": doc.get("template"),
        "role_name": doc.get("role_name"), "show_title": bool(doc.get("show_title")),
        "shared": bool(doc.get("shared")), "max_length": doc.get("max_length"),
        "names": [], "problems": [], "saved": saved}
    if plan is not None:
        for item in plan.produced:
            rows = channel_names.preview(channels or [], item.name,
                                         services.settings.identity) if item.name else []
            out["names"].append({"agent_id": item.agent_id, "login": item.login,
                                 "name": item.name, "ok": not item.problems,
                                 "channels": rows})
        out["problems"] = plan.problems()
    return out


def _policy_body(model: Any) -> dict[str, Any]:
    return {k: getattr(model, k) for k in model.model_fields_set if k != "dry_run"}


@routes.get("/api/name-policies")
@requires("admin")
async def list_policies(request: web.Request) -> web.Response:
    services = _services(request)
    docs = await services.teams.names.list()
    return web.json_response({"items": [await policy_json(services, d) for d in docs]})


async def _save_policy(request: web.Request, policy_id: str | None, model: Any) -> web.Response:
    services = _services(request)
    channels = await connected(services)
    try:
        doc, plan, changes = await services.teams.names.save(
            policy_id, _policy_body(model), validator(services, channels),
            dry_run=model.dry_run)
    except Invalid as exc:
        raise invalid(exc) from None
    saved = not model.dry_run and plan.ok
    body = await policy_json(services, doc, plan, saved=saved, channels=channels)
    if not model.dry_run and not plan.ok:
        raise ApiError(409, "name_conflict", "the policy would give names that cannot be "
                       "used: " + "; ".join(f"{p.get('login') or p.get('agent_id')}: "
                                            f"{p['problem']}" for p in plan.problems()),
                       problems=plan.problems())
    if saved:
        await _audit(request, "name_policy.create" if policy_id is None else
                     "name_policy.update", str(doc["_id"]), **_policy_body(model))
        for change in changes:
            await _audit(request, f"agent_name.{change['action']}", change["agent_id"],
                         name=change["name"], policy_id=change["policy_id"])
    return web.json_response(body, status=201 if saved and policy_id is None else 200)


@routes.post("/api/name-policies")
@requires("admin")
async def create_policy(request: web.Request) -> web.Response:
    return await _save_policy(request, None, await body_as(request, st.NamePolicyBody))


@routes.patch("/api/name-policies/{id}")
@requires("admin")
async def patch_policy(request: web.Request) -> web.Response:
    model = await body_as(request, st.NamePolicyPatch)
    await _services(request).teams.names.get(request.match_info["id"])
    return await _save_policy(request, request.match_info["id"], model)


@routes.delete("/api/name-policies/{id}")
@requires("admin")
async def delete_policy(request: web.Request) -> web.Response:
    try:
        changes = await _services(request).teams.names.delete(request.match_info["id"])
    except Invalid as exc:
        raise invalid(exc) from None
    await _audit(request, "name_policy.delete", request.match_info["id"])
    for change in changes:
        await _audit(request, "agent_name.remove", change["agent_id"], name=change["name"],
                     policy_id=change["policy_id"])
    return web.Response(status=204)


def agent_name_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "agent_id": doc["agent_id"], "name": doc["name"],
            "brand": doc.get("brand") or "", "policies": list(doc.get("policies") or []),
            "created_at": iso(doc.get("created_at")), "reviewed_at": iso(doc.get("reviewed_at")),
            "reviewed_by": doc.get("reviewed_by")}


@routes.get("/api/names")
@requires("admin")
async def list_names(request: web.Request) -> web.Response:
    """Every name a policy gives an agent; `?unreviewed_days=N`: those not reviewed for N
    days (名称检查)."""
    raw = request.query.get("unreviewed_days")
    if raw is not None and (not raw.isdigit() or int(raw) > 36500):
        raise ApiError(400, "validation", "unreviewed_days: a whole number of days",
                       field="unreviewed_days")
    docs = await _services(request).teams.names.names(
        unreviewed_days=int(raw) if raw is not None else None)
    return web.json_response({"items": [agent_name_json(d) for d in docs]})


@routes.post("/api/names/{id}/review")
@requires("admin")
async def review_name(request: web.Request) -> web.Response:
    doc = await _services(request).teams.names.review(request.match_info["id"],
                                                      request["agent"]["login"])
    await _audit(request, "agent_name.review", doc["agent_id"], name=doc["name"])
    return web.json_response(agent_name_json(doc))


# ---------------------------------------------------------------------- used elsewhere


async def policy_name(request: web.Request, conv: dict[str, Any]) -> PolicyName:
    """The name this agent answers this conversation under; 422 when the policy gives none
    that may be used (the reply is refused, never sent under another name)."""
    services = _services(request)
    agent = request["agent"]
    groups: list[str] = []
    if conv.get("contact_id"):
        try:
            contact = await services.db.contacts.find_one({"_id": oid(conv["contact_id"])},
                                                          {"labels": 1})
        except NotFound:
            contact = None
        groups = list((contact or {}).get("labels") or [])
    async def validate(name: str, who: dict[str, Any]) -> list[str]:
        # only when the name is not recorded yet: the channels are built then, not per reply
        return await validator(services, await connected(services))(name, who)

    try:
        policy, name, team = await services.teams.names.resolve(
            agent, conv.get("team_id"), groups, validate)
    except Invalid as exc:
        raise ApiError(422, "name_not_allowed", str(exc).split(": ", 1)[-1]) from None
    title = agent.get("title") if policy.get("show_title") else None
    return PolicyName(name=name, title=title or None,
                      team=(team or {}).get("title") or (team or {}).get("name"))


async def resync_agent_names(request: web.Request, agent: dict[str, Any], *,
                             dry_run: bool) -> Plan:
    services = _services(request)
    plan, changes = await services.teams.names.resync_agent(
        agent, validator(services, await connected(services)), dry_run=dry_run)
    for change in changes:
        await _audit(request, f"agent_name.{change['action']}", change["agent_id"],
                     name=change["name"], policy_id=change["policy_id"])
    return plan


async def resync_team_names(request: web.Request, team_id: str) -> None:
    services = _services(request)
    names = services.teams.names
    validate = validator(services, await connected(services))
    for policy in await names.list():
        if policy.get("team_id") != team_id:
            continue
        plan = await names.plan(policy, validate)
        changes = await names.record(policy, Plan(produced=[
            p for p in plan.produced if not p.problems and not any(
                c.get("agent_id") == p.agent_id for c in plan.conflicts)]),
            datetime.now().astimezone())
        for change in changes:
            await _audit(request, f"agent_name.{change['action']}", change["agent_id"],
                         name=change["name"], policy_id=change["policy_id"])
