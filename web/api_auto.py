"""A team's automatic messages (measures/auto.py): `GET, PATCH /api/teams/{id}/auto-messages`,
admins only."""

from __future__ import annotations

from aiohttp import web

from web import schemas_canned as sc
from web.api_base import _services, body_as
from web.auth import client_address, requires
from web.errors import ApiError

routes = web.RouteTableDef()


async def _audit(request: web.Request, action: str, target: str, **details: object) -> None:
    await _services(request).store.audit(request["agent"]["login"], action, target,
                                         address=client_address(request), details=details)


@routes.get("/api/teams/{id}/auto-messages")
@requires("admin")
async def get_auto(request: web.Request) -> web.Response:
    services = _services(request)
    await services.teams.store.team(request.match_info["id"])
    doc = await services.answers.auto.settings_of(request.match_info["id"])
    return web.json_response({"team_id": request.match_info["id"], **doc})


@routes.patch("/api/teams/{id}/auto-messages")
@requires("admin")
async def patch_auto(request: web.Request) -> web.Response:
    services = _services(request)
    team_id = request.match_info["id"]
    await services.teams.store.team(team_id)
    body = await body_as(request, sc.AutoSettings)
    changes = {k: getattr(body, k).model_dump() for k in body.model_fields_set
               if getattr(body, k) is not None}
    if not changes:
        raise ApiError(400, "validation", "nothing to change")
    try:
        doc = await services.answers.auto.save_settings(team_id, changes)
    except ValueError as exc:
        raise ApiError(400, "validation", str(exc)) from None
    await _audit(request, "auto.update", team_id, kinds=sorted(changes))
    return web.json_response({"team_id": team_id, **doc})
