"""What a conversation change means for team work: the assignee's counter and the team's
queue follow a status or assignee change (teams/assign.py), an admin may move it to a team,
labels and priority are set, and the search index learns the labels."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inbox.store import NotFound
from teams.store import Invalid
from web.api_base import _services
from web.errors import ApiError


async def apply_patch(request: web.Request, conv_id: str, body: Any) -> dict[str, Any]:
    services = _services(request)
    work = services.teams
    agent = request["agent"]
    me = str(agent["_id"])
    fields = body.model_fields_set
    doc = await services.store.get_conversation(conv_id)
    plain: dict[str, Any] = {}
    if "labels" in fields:
        try:
            plain["labels"] = await work.store.check_labels(body.labels)
        except Invalid as exc:
            raise ApiError(400, "validation", str(exc), field="labels") from None
    if "priority" in fields:
        plain["priority"] = body.priority
    if "team_id" in fields:
        if agent.get("role") != "admin":
            raise ApiError(403, "forbidden", "moving a conversation to a team needs the admin "
                                             "role")
        try:
            await work.store.team(body.team_id)
        except NotFound:
            raise ApiError(400, "validation", "team_id: no such team", field="team_id") from None
    if plain:
        doc = await services.store.update_conversation(conv_id, plain)
        if "labels" in plain:
            await work.reindex_conversation(conv_id)
    if "team_id" in fields and body.team_id != doc.get("team_id"):
        doc = await work.assigner.move_to_team(conv_id, body.team_id, by=me)
    if "assignee_id" in fields:
        doc = await work.assigner.set_assignee(conv_id, body.assignee_id, by=me)
    if "status" in fields:
        changes = {"status": body.status}
        doc = await set_status(request, conv_id, body.status, changes)
    return dict(doc)


async def set_status(request: web.Request, conv_id: str, status: str,
                     changes: dict[str, Any]) -> dict[str, Any]:
    """The store's `update_conversation` rules (status_changed_at) through the assigner, so the
    assignee's counter and the team's queue follow."""
    from datetime import UTC, datetime

    services = _services(request)
    before = (await services.store.get_conversation(conv_id)).get("status")
    changes = {**changes, "status_changed_at": datetime.now(UTC)}
    result: dict[str, Any] = await services.teams.assigner.set_status(conv_id, status, changes)
    await services.teams.status_changed(result, status)  # observers: a closing message
    # SLA clocks pause, resume or stop; a resolve sends the survey (measures/service.py)
    await services.measures.status_changed(conv_id, before, result, request["agent"])
    return result


async def check_agent_names(request: web.Request, agent_id: str,
                            changes: dict[str, Any]) -> None:
    """Refuse a profile change that would give the agent a name the policies cannot use (a
    name another agent shows under the same brand)."""
    if not {"display_name", "name_parts", "title", "active"} & set(changes):
        return
    from web.api_names import resync_agent_names

    current = await _services(request).agents.get(agent_id)
    plan = await resync_agent_names(request, {**current, **changes}, dry_run=True)
    if plan.conflicts:
        raise ApiError(409, "name_conflict", "; ".join(c["problem"] + f" ({c['name']})"
                                                       for c in plan.conflicts),
                       problems=plan.conflicts)


async def agent_changed(request: web.Request, doc: dict[str, Any],
                        changes: dict[str, Any]) -> None:
    work = _services(request).teams
    if {"display_name", "name_parts", "title", "active"} & set(changes):
        from web.api_names import resync_agent_names

        await resync_agent_names(request, doc, dry_run=False)
    if "max_open" in changes:
        await work.assigner.cap_changed(str(doc["_id"]))
