"""Pages for canned replies (every agent: their own, and the shared ones they may edit) and a
team's automatic messages (admins). Roles and scopes are enforced on the server (the same
`Viewer` rules as the API); every form carries the CSRF token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inbox.store import NotFound
from measures.auto import KINDS
from measures.canned import SCOPES, Forbidden, Invalid
from web.api_canned import viewer
from web.auth import client_address
from web.pages import form, page, render


def _audit(request: web.Request, action: str, target: str, **details: Any) -> Any:
    return request.app["services"].store.audit(
        request["agent"]["login"], action, target, address=client_address(request),
        details=details)


async def _canned_page(request: web.Request, *, status: int = 200,
                       error: str | None = None) -> web.Response:
    services = request.app["services"]
    who = await viewer(request)
    teams = await services.teams.store.teams()
    rows = []
    for doc, _ in await services.answers.canned.visible(who):
        rows.append({**doc, "editable": who.can_edit(doc)})
    rows.sort(key=lambda d: (SCOPES.index(d["scope"]), d["shortcut"]))
    shared_teams = teams if who.admin else {k: v for k, v in teams.items() if k in who.lead_of}
    scopes = [s for s in SCOPES if s == "personal" or (s == "team" and shared_teams)
              or (s == "everyone" and who.admin)]
    return render(request, "canned.html", status=status, active="canned", replies=rows,
                  scopes=scopes, error=error, notice=request.query.get("notice"),
                  team_choices=[(tid, str(t.get("name") or "")) for tid, t in shared_teams.items()],
                  team_names={tid: str(t.get("name") or "") for tid, t in teams.items()})


@page()
async def canned_page(request: web.Request) -> web.Response:
    return await _canned_page(request)


def _body_of(data: dict[str, str]) -> dict[str, Any]:
    body = {k[len("body_"):]: v.strip() for k, v in data.items()
            if k.startswith("body_") and v.strip()}
    examples = [line.strip() for line in data.get("examples", "").splitlines() if line.strip()]
    return {"shortcut": data.get("shortcut", ""), "title": data.get("title", ""), "body": body,
            "scope": data.get("scope") or "personal", "team_id": data.get("team_id") or None,
            "examples": examples}


@page()
async def canned_save(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    data = await form(request)
    who = await viewer(request)
    canned = services.answers.canned
    reply_id = request.match_info.get("id")
    body = _body_of(data)
    try:
        if body["team_id"] and body["team_id"] not in await services.teams.store.teams():
            raise Invalid("team_id", "no such team")
        if reply_id and data.get("action") == "delete":
            await canned.delete(who, reply_id)
            await _audit(request, "canned.delete", reply_id)
            raise web.HTTPSeeOther("/canned?notice=deleted")
        if reply_id:
            doc = await canned.update(who, reply_id, body)
        else:
            doc = await canned.create(who, body)
        if doc["scope"] != "personal":
            await _audit(request, "canned.save", str(doc["_id"]), shortcut=doc["shortcut"])
    except Invalid as exc:
        return await _canned_page(request, status=400, error=str(exc))
    except Forbidden as exc:
        return await _canned_page(request, status=403, error=str(exc))
    except NotFound:
        return await _canned_page(request, status=404, error=reply_id)
    raise web.HTTPSeeOther("/canned?notice=saved")


# ---------------------------------------------------------------------- automatic messages


@page("admin")
async def auto_page(request: web.Request) -> web.Response:
    services = request.app["services"]
    teams = sorted((await services.teams.store.teams()).values(),
                   key=lambda t: t.get("name") or "")
    wanted = request.query.get("team") or (str(teams[0]["_id"]) if teams else "")
    if teams and wanted not in {str(t["_id"]) for t in teams}:
        raise NotFound(wanted)
    settings = await services.answers.auto.settings_of(wanted) if wanted else {}
    return render(request, "admin_auto.html", active="auto", teams=teams, team_id=wanted,
                  kinds=KINDS, settings=settings, notice=request.query.get("notice"),
                  error=None)


@page("admin")
async def auto_save(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    team_id = request.match_info["id"]
    await services.teams.store.team(team_id)
    data = await form(request)
    changes: dict[str, Any] = {}
    for kind in KINDS:
        quiet = data.get(f"{kind}_quiet_s", "").strip()
        texts = {k[len(kind) + 1:]: v for k, v in data.items()
                 if k.startswith(f"{kind}_") and k[len(kind) + 1:] in ("zh-CN", "en")}
        changes[kind] = {"enabled": data.get(f"{kind}_enabled") == "1",
                         "quiet_s": int(quiet) if quiet.isdigit() else -1, "texts": texts}
    try:
        await services.answers.auto.save_settings(team_id, changes)
    except ValueError as exc:
        teams = sorted((await services.teams.store.teams()).values(),
                       key=lambda t: t.get("name") or "")
        return render(request, "admin_auto.html", status=400, active="auto", teams=teams,
                      team_id=team_id, kinds=KINDS,
                      settings=await services.answers.auto.settings_of(team_id),
                      notice=None, error=str(exc))
    await _audit(request, "auto.update", team_id, kinds=list(KINDS))
    raise web.HTTPSeeOther(f"/admin/auto-messages?team={team_id}&notice=saved")


def setup(app: web.Application) -> None:
    app.router.add_get("/canned", canned_page)
    app.router.add_post("/canned", canned_save)
    app.router.add_post("/canned/{id}", canned_save)
    app.router.add_get("/admin/auto-messages", auto_page)
    app.router.add_post("/admin/auto-messages/{id}", auto_save)
