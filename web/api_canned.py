"""Canned replies and suggestions: `/api/canned-replies` (search with `?q=`, pinyin included),
`…/{id}/use` (the filled text an agent inserts, counted), and
`/api/conversations/{id}/suggestions` (the three most similar to what the customer wrote)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from inbox.store import NotFound
from measures.canned import Forbidden, Invalid, Viewer, choose_body, fill
from measures.suggest import suggest
from web import schemas_canned as sc
from web.api_base import _services, body_as
from web.auth import client_address, requires
from web.errors import ApiError

routes = web.RouteTableDef()
LAST_MESSAGES = 3  # the customer's messages a suggestion reads: since the last reply, at most


async def viewer(request: web.Request) -> Viewer:
    teams = (await _services(request).teams.store.teams()).values()
    return Viewer.of(request["agent"], teams)


def canned_json(doc: Mapping[str, Any], who: Viewer | None = None, *,
                filled: tuple[str, str] | None = None,
                score: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(doc["_id"]), "shortcut": doc["shortcut"], "title": doc["title"],
        "body": dict(doc.get("body") or {}), "scope": doc["scope"],
        "team_id": doc.get("team_id"), "uses": int(doc.get("uses") or 0),
        "owner_id": doc.get("owner_id"), "examples": list(doc.get("examples") or []),
        "editable": bool(who and who.can_edit(doc))}
    if filled is not None:
        out["locale"], out["text"] = filled
    if score is not None:
        out["score"] = round(score, 3)
    return out


class Filler:
    """The values of one conversation's placeholders, read once per request."""

    def __init__(self, request: web.Request, conv: Mapping[str, Any],
                 last_inbound: Mapping[str, Any] | None) -> None:
        self.request, self.conv, self.last_inbound = request, conv, last_inbound
        self.values: dict[str, str | None] | None = None

    async def _values(self) -> dict[str, str | None]:
        if self.values is not None:
            return self.values
        services = _services(self.request)
        agent = self.request["agent"]
        from web.api_names import policy_name  # the name policy gives the agent's name

        try:
            policy = await policy_name(self.request, dict(self.conv))
            agent_name, team = policy.name, policy.team
        except ApiError:  # the reply would be refused; the text still reads sensibly
            agent_name, team = str(agent.get("display_name") or ""), None
        if team is None and self.conv.get("team_id"):
            found = (await services.teams.store.teams()).get(self.conv["team_id"]) or {}
            team = found.get("title") or found.get("name")
        customer = ((self.last_inbound or {}).get("author") or {}).get("name")
        if self.conv.get("contact_id"):
            contacts = await services.store.contacts_by_id([self.conv["contact_id"]])
            customer = (contacts.get(self.conv["contact_id"]) or {}).get("name") or customer
        self.values = {"customer_name": customer, "agent_name": agent_name,
                       "brand": services.settings.identity.brand, "team": team}
        return self.values

    def locale(self) -> str | None:
        author = (self.last_inbound or {}).get("author") or {}
        return self.conv.get("customer_locale") or author.get("locale")

    async def text(self, doc: Mapping[str, Any]) -> tuple[str, str]:
        settings = _services(self.request).settings
        locale, body = choose_body(doc.get("body") or {}, self.locale(),
                                   (settings.identity.greeting_default_locale,
                                    settings.ui.default_locale))
        return locale, fill(body, await self._values())


async def _filler(request: web.Request, conv_id: str) -> Filler:
    services = _services(request)
    conv = await services.store.get_conversation(conv_id)
    return Filler(request, conv, await services.store.last_inbound(conv_id, conv))


def _invalid(exc: Invalid) -> ApiError:
    return ApiError(400, "validation", str(exc), field=exc.field)


async def _audit(request: web.Request, action: str, target: str, **details: Any) -> None:
    await _services(request).store.audit(request["agent"]["login"], action, target,
                                         address=client_address(request), details=details)


@routes.get("/api/canned-replies")
@requires("agent")
async def list_canned(request: web.Request) -> web.Response:
    """Those the caller may see; with `q`, those it names (shortcut, title, pinyin and its
    initials, body), best first; with `conversation_id`, each with its filled text."""
    canned = _services(request).answers.canned
    who = await viewer(request)
    q = request.query.get("q", "")
    if len(q) > 100:
        raise ApiError(400, "validation", "q: at most 100 characters", field="q")
    raw = request.query.get("limit", "8")
    if not raw.isdigit() or not 1 <= int(raw) <= 50:
        raise ApiError(400, "validation", "limit: a whole number from 1 to 50", field="limit")
    if q.strip():
        docs = await canned.search(who, q, limit=int(raw))
    else:
        docs = [d for d, _ in await canned.visible(who)]
        docs.sort(key=lambda d: (d["scope"], d["shortcut"]))
    conv_id = request.query.get("conversation_id")
    filler = await _filler(request, conv_id) if conv_id else None
    items = [canned_json(d, who, filled=await filler.text(d) if filler else None)
             for d in docs]
    return web.json_response({"items": items})


@routes.post("/api/canned-replies")
@requires("agent")
async def create_canned(request: web.Request) -> web.Response:
    body = await body_as(request, sc.CannedCreate)
    who = await viewer(request)
    data = body.model_dump()
    if data.get("team_id") and data["team_id"] not in await _services(
            request).teams.store.teams():
        raise ApiError(400, "validation", "team_id: no such team", field="team_id")
    try:
        doc = await _services(request).answers.canned.create(who, data)
    except Invalid as exc:
        raise _invalid(exc) from None
    except Forbidden as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    if doc["scope"] != "personal":
        await _audit(request, "canned.create", str(doc["_id"]), shortcut=doc["shortcut"])
    return web.json_response(canned_json(doc, who), status=201)


@routes.patch("/api/canned-replies/{id}")
@requires("agent")
async def patch_canned(request: web.Request) -> web.Response:
    body = await body_as(request, sc.CannedPatch)
    who = await viewer(request)
    data = {k: getattr(body, k) for k in body.model_fields_set}
    if data.get("team_id") and data["team_id"] not in await _services(
            request).teams.store.teams():
        raise ApiError(400, "validation", "team_id: no such team", field="team_id")
    try:
        doc = await _services(request).answers.canned.update(who, request.match_info["id"],
                                                               data)
    except Invalid as exc:
        raise _invalid(exc) from None
    except Forbidden as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    if doc["scope"] != "personal":
        await _audit(request, "canned.update", str(doc["_id"]), fields=sorted(data))
    return web.json_response(canned_json(doc, who))


@routes.delete("/api/canned-replies/{id}")
@requires("agent")
async def delete_canned(request: web.Request) -> web.Response:
    who = await viewer(request)
    try:
        await _services(request).answers.canned.delete(who, request.match_info["id"])
    except Forbidden as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    await _audit(request, "canned.delete", request.match_info["id"])
    return web.Response(status=204)


@routes.post("/api/canned-replies/{id}/use")
@requires("agent")
async def use_canned(request: web.Request) -> web.Response:
    """The text to insert into a conversation's reply box (the customer's language, the
    placeholders filled); counts one use."""
    body = await body_as(request, sc.CannedUse)
    canned = _services(request).answers.canned
    who = await viewer(request)
    doc = await canned.get(request.match_info["id"])
    if not who.can_see(doc):
        raise NotFound(request.match_info["id"])
    filler = await _filler(request, body.conversation_id)
    filled = await filler.text(doc)
    await canned.used(str(doc["_id"]))
    doc = {**doc, "uses": int(doc.get("uses") or 0) + 1}
    return web.json_response(canned_json(doc, who, filled=filled))


async def customer_text(request: web.Request, conv_id: str) -> str:
    """What the customer wrote since the last reply (at most LAST_MESSAGES messages), or
    their last message."""
    docs, _ = await _services(request).store.list_messages(conv_id, limit=20)
    texts: list[str] = []
    for doc in docs:  # newest first
        if doc["direction"] == "out" and texts:
            break
        if doc["direction"] == "in" and doc.get("text"):
            texts.append(str(doc["text"]))
            if len(texts) == LAST_MESSAGES:
                break
    return "\n".join(reversed(texts))


@routes.get("/api/conversations/{id}/suggestions")
@requires("agent")
async def suggestions(request: web.Request) -> web.Response:
    conv_id = request.match_info["id"]
    filler = await _filler(request, conv_id)
    who = await viewer(request)
    docs = [d for d, _ in await _services(request).answers.canned.visible(who)]
    found = suggest(docs, await customer_text(request, conv_id))
    return web.json_response({"items": [
        canned_json(d, who, filled=await filler.text(d), score=score) for d, score in found]})
