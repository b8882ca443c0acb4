"""The JSON API under /api (see web/openapi.py for its description)."""

from __future__ import annotations

from aiohttp import web

from connectors.channels import platforms
from inbox.agents import AgentExists
from inbox.models import CONVERSATION_STATUSES
from inbox.store import NotFound
from web.api_base import _conversation_page, _limit, _services, body_as
from web.auth import client_address, requires
from web.errors import ApiError
from web.schemas import AgentCreate, AgentPatch, Body, ConversationPatch, TokenCreate
from web.views import agent_json, audit_json, message_json, token_json

routes = web.RouteTableDef()


# The bodies' models live in web/schemas.py (the OpenAPI document is generated from them);
# these names stay importable from here for the modules that import them from web.api.
_Body = Body
__all__ = ["AgentCreate", "AgentPatch", "ConversationPatch", "TokenCreate", "_Body",
           "_services", "body_as", "routes"]


@routes.get("/api/me")
@requires("agent")
async def me(request: web.Request) -> web.Response:
    body = agent_json(request["agent"])
    if request["session"] is not None:
        body["csrf_token"] = request["session"]["csrf"]
    return web.json_response(body)


@routes.get("/api/platforms")
@requires("agent")
async def list_platforms(request: web.Request) -> web.Response:
    return web.json_response({"items": platforms()})


@routes.get("/api/conversations")
@requires("agent")
async def list_conversations(request: web.Request) -> web.Response:
    q = request.query
    status = q.get("status") or None
    if status and status not in CONVERSATION_STATUSES:
        raise ApiError(400, "validation", f"status: one of {', '.join(CONVERSATION_STATUSES)}",
                       field="status")
    assignee = q.get("assignee") or None
    if assignee == "me":
        assignee = str(request["agent"]["_id"])
    if q.get("sort") == "sla":  # breaching soonest (web/api_measures.py)
        from web.api_measures import breaching_soonest

        docs, cursor = await breaching_soonest(request, status=status, assignee=assignee,
                                               platform=q.get("platform") or None,
                                               limit=_limit(request),
                                               cursor=q.get("cursor") or None)
        return web.json_response({"items": await _conversation_page(request, docs),
                                  "next_cursor": cursor})
    if q.get("sort") not in (None, "", "activity"):
        raise ApiError(400, "validation", "sort: activity or sla", field="sort")
    docs, cursor = await _services(request).store.list_conversations(
        status=status, platform=q.get("platform") or None, assignee=assignee,
        limit=_limit(request), cursor=q.get("cursor") or None)
    return web.json_response({"items": await _conversation_page(request, docs),
                              "next_cursor": cursor})


@routes.get("/api/conversations/{id}")
@requires("agent")
async def get_conversation(request: web.Request) -> web.Response:
    doc = await _services(request).store.get_conversation(request.match_info["id"])
    return web.json_response((await _conversation_page(request, [doc]))[0])


@routes.patch("/api/conversations/{id}")
@requires("agent")
async def patch_conversation(request: web.Request) -> web.Response:
    body = await body_as(request, ConversationPatch)
    fields = body.model_fields_set
    for key in ("status", "team_id", "labels", "priority"):
        if key in fields and getattr(body, key) is None:
            raise ApiError(400, "validation", f"{key}: cannot be null", field=key)
    if not fields:
        raise ApiError(400, "validation", "nothing to change: send status or assignee_id")
    if "assignee_id" in fields and body.assignee_id is not None:
        try:
            await _services(request).agents.get(body.assignee_id)
        except NotFound:
            raise ApiError(400, "validation", "assignee_id: no such agent",
                           field="assignee_id") from None
    from web.api_conversation import apply_patch  # team work: counters, queues, labels

    doc = await apply_patch(request, request.match_info["id"], body)
    return web.json_response((await _conversation_page(request, [doc]))[0])


@routes.post("/api/conversations/{id}/read")
@requires("agent")
async def read_conversation(request: web.Request) -> web.Response:
    doc = await _services(request).store.mark_read(request.match_info["id"])
    return web.json_response((await _conversation_page(request, [doc]))[0])


@routes.get("/api/conversations/{id}/messages")
@requires("agent")
async def list_messages(request: web.Request) -> web.Response:
    docs, cursor = await _services(request).store.list_messages(
        request.match_info["id"], limit=_limit(request), cursor=request.query.get("cursor"))
    return web.json_response({"items": [message_json(d) for d in docs], "next_cursor": cursor})


# agents (admin)


@routes.get("/api/agents")
@requires("agent")
async def list_agents(request: web.Request) -> web.Response:
    """Every agent may list agents (to assign conversations); only admins change them."""
    docs = await _services(request).agents.list()
    return web.json_response({"items": [agent_json(d) for d in docs]})


@routes.post("/api/agents")
@requires("admin")
async def create_agent(request: web.Request) -> web.Response:
    body = await body_as(request, AgentCreate)
    services = _services(request)
    try:
        doc = await services.agents.create(
            body.login, display_name=body.display_name, password=body.password,
            title=body.title, role=body.role, timezone=body.timezone, locale=body.locale)
    except AgentExists as exc:
        raise ApiError(409, "duplicate", str(exc)) from None
    await services.store.audit(request["agent"]["login"], "agent.create", doc["login"],
                               address=client_address(request),
                               details={"role": doc["role"], "display_name": doc["display_name"]})
    return web.json_response(agent_json(doc), status=201)


@routes.patch("/api/agents/{id}")
@requires("admin")
async def patch_agent(request: web.Request) -> web.Response:
    body = await body_as(request, AgentPatch)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    for key in ("display_name", "role", "active", "password"):
        if key in changes and changes[key] is None:
            raise ApiError(400, "validation", f"{key}: cannot be null", field=key)
    if not changes:
        raise ApiError(400, "validation", "nothing to change")
    services = _services(request)
    if "name_parts" in changes and changes["name_parts"] is not None:
        changes["name_parts"] = body.name_parts.model_dump(exclude_none=True)  # type: ignore[union-attr]
    from web.api_conversation import agent_changed, check_agent_names

    await check_agent_names(request, request.match_info["id"], changes)
    doc = await services.agents.update(request.match_info["id"], changes)
    await agent_changed(request, doc, changes)
    shown = {k: v for k, v in changes.items() if k != "password"}
    if "password" in changes:
        shown["password"] = "changed"  # noqa: S105 - the audit says that, not what
    await services.store.audit(request["agent"]["login"], "agent.update", doc["login"],
                               address=client_address(request), details=shown)
    return web.json_response(agent_json(doc))


# API tokens: an agent manages their own


@routes.get("/api/tokens")
@requires("agent")
async def list_tokens(request: web.Request) -> web.Response:
    docs = await _services(request).agents.tokens_of(str(request["agent"]["_id"]))
    return web.json_response({"items": [token_json(d) for d in docs]})


@routes.post("/api/tokens")
@requires("agent")
async def create_token(request: web.Request) -> web.Response:
    body = await body_as(request, TokenCreate)
    services = _services(request)
    token, doc = await services.agents.create_token(str(request["agent"]["_id"]), body.name)
    await services.store.audit(request["agent"]["login"], "token.create", str(doc["_id"]),
                               address=client_address(request))
    return web.json_response({"id": str(doc["_id"]), "name": body.name, "token": token},
                             status=201)


@routes.delete("/api/tokens/{id}")
@requires("agent")
async def revoke_token(request: web.Request) -> web.Response:
    services = _services(request)
    agent = request["agent"]
    found = await services.agents.token(request.match_info["id"])
    if found is None or (found["agent_id"] != str(agent["_id"]) and agent["role"] != "admin"):
        raise NotFound(request.match_info["id"])
    await services.agents.revoke_token(request.match_info["id"])
    await services.store.audit(agent["login"], "token.revoke", request.match_info["id"],
                               address=client_address(request))
    return web.Response(status=204)


@routes.get("/api/audit")
@requires("admin")
async def audit_log(request: web.Request) -> web.Response:
    docs, cursor = await _services(request).store.list_audit(
        limit=_limit(request, 100), cursor=request.query.get("cursor") or None)
    return web.json_response({"next_cursor": cursor, "items": [audit_json(d) for d in docs]})
