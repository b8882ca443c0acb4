"""The service-measures API: SLA policies, "breaching soonest", reports (JSON and CSV), the
team leads' notifications, and who leads a team."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from bson import ObjectId

from inbox.store import NotFound, oid
from measures.reports import as_csv as report_csv
from measures.reports import report
from teams import hours
from web import schemas_measures as sm
from web.api_base import _services, body_as
from web.auth import requires
from web.errors import ApiError
from web.views import iso

routes = web.RouteTableDef()
SLA_FIELDS = ("name", "applies_to", "first_response_s", "next_response_s", "resolution_s",
              "business_hours")


def policy_json(doc: dict[str, Any]) -> dict[str, Any]:
    cond = doc.get("applies_to") or {}
    return {"id": str(doc["_id"]), "name": doc.get("name") or "",
            "applies_to": {"team_id": cond.get("team_id"),
                           "labels": list(cond.get("labels") or []),
                           "priority": cond.get("priority")},
            "first_response_s": doc.get("first_response_s"),
            "next_response_s": doc.get("next_response_s"),
            "resolution_s": doc.get("resolution_s"),
            "business_hours": doc.get("business_hours", False)}


async def _clean_policy(request: web.Request, values: dict[str, Any]) -> dict[str, Any]:
    services = _services(request)
    cond = values.get("applies_to")
    if cond is not None:
        if cond.get("team_id"):
            try:
                await services.teams.store.team(cond["team_id"])
            except NotFound:
                raise ApiError(400, "validation", "applies_to.team_id: no such team",
                               field="applies_to.team_id") from None
        if cond.get("labels"):
            from teams.store import Invalid

            try:
                cond["labels"] = await services.teams.store.check_labels(
                    cond["labels"], "applies_to.labels")
            except Invalid as exc:
                raise ApiError(400, "validation", str(exc), field=exc.field) from None
    if isinstance(values.get("business_hours"), dict):
        try:
            values["business_hours"] = hours.validate(values["business_hours"])
        except hours.HoursError as exc:
            raise ApiError(400, "validation", f"business_hours.{exc}",
                           field="business_hours") from None
    return values


@routes.get("/api/sla-policies")
@requires("admin")
async def list_policies(request: web.Request) -> web.Response:
    docs = await _services(request).measures.clocks.policies()
    return web.json_response({"items": [policy_json(d) for d in docs]})


@routes.post("/api/sla-policies")
@requires("admin")
async def create_policy(request: web.Request) -> web.Response:
    body = await body_as(request, sm.SlaPolicyBody)
    values = await _clean_policy(request, body.model_dump(mode="json"))
    doc = {"_id": ObjectId(), **values, "created_at": datetime.now(UTC)}
    await _services(request).db.sla_policies.insert_one(doc)
    return web.json_response(policy_json(doc), status=201)


@routes.patch("/api/sla-policies/{id}")
@requires("admin")
async def patch_policy(request: web.Request) -> web.Response:
    body = await body_as(request, sm.SlaPolicyPatch)
    db = _services(request).db
    values = {k: v for k, v in body.model_dump(mode="json").items()
              if k in body.model_fields_set}
    if "name" in values and values["name"] is None:
        raise ApiError(400, "validation", "name: cannot be null", field="name")
    values = await _clean_policy(request, values)
    if values.get("business_hours") is None:
        values.pop("business_hours", None)
    if values.get("applies_to") is None:
        values.pop("applies_to", None)
    doc = await db.sla_policies.find_one({"_id": oid(request.match_info["id"])})
    if doc is None:
        raise NotFound(request.match_info["id"])
    if values:
        await db.sla_policies.update_one({"_id": doc["_id"]}, {"$set": values})
    return web.json_response(policy_json({**doc, **values}))


@routes.delete("/api/sla-policies/{id}")
@requires("admin")
async def delete_policy(request: web.Request) -> web.Response:
    result = await _services(request).db.sla_policies.delete_one(
        {"_id": oid(request.match_info["id"])})
    if result.deleted_count == 0:
        raise NotFound(request.match_info["id"])
    return web.Response(status=204)


# ---------------------------------------------------------------------- breaching soonest


def _cursor(value: str | None) -> tuple[datetime, str] | None:
    if not value:
        return None
    try:
        at, _, conv_id = base64.urlsafe_b64decode(value.encode()).decode().partition("|")
        return datetime.fromisoformat(at), conv_id
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "validation", "cursor: not one this list gave",
                       field="cursor") from None


async def breaching_soonest(request: web.Request, *, status: str | None,
                            assignee: str | None, platform: str | None, limit: int,
                            cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Conversations whose SLA clock runs, the earliest due (the most overdue) first: an
    indexed range on `sla_timers.due_at`, then the conversations by `_id`."""
    services = _services(request)
    after = _cursor(cursor)
    out: list[dict[str, Any]] = []
    last: tuple[datetime, str] | None = after
    while len(out) < limit:
        timers = await services.measures.clocks.soonest(limit=limit, after=last)
        if not timers:
            last = None
            break
        convs = {str(d["_id"]): d async for d in services.db.conversations.find(
            {"_id": {"$in": [ObjectId(t["_id"]) for t in timers]}}, {"raw": 0})}
        for timer in timers:
            due = timer["due_at"] if timer["due_at"].tzinfo else timer["due_at"].replace(
                tzinfo=UTC)
            last = (due, timer["_id"])
            conv = convs.get(timer["_id"])
            if conv is None or (status and conv.get("status") != status) or (
                    platform and conv.get("platform") != platform):
                continue
            if assignee and conv.get("assignee_id") != (None if assignee == "none"
                                                        else assignee):
                continue
            out.append(conv)
            if len(out) == limit:
                break
        if len(timers) < limit:
            if len(out) < limit:
                last = None
            break
    next_cursor = base64.urlsafe_b64encode(
        f"{last[0].isoformat()}|{last[1]}".encode()).decode() if last and out else None
    return out, next_cursor


# ---------------------------------------------------------------------- reports


async def is_lead(request: web.Request) -> bool:
    agent = request["agent"]
    if agent.get("role") == "admin":
        return True
    found = await _services(request).db.teams.find_one({"leads": str(agent["_id"])},
                                                        {"_id": 1})
    return found is not None


async def nav_extras(request: web.Request) -> None:
    """What the navigation shows for measures: the reports link (admins and team leads) and
    the count of unread notifications."""
    request["is_lead"] = await is_lead(request)
    request["notice_count"] = await request.app["services"].db.notifications.count_documents(
        {"agent_id": str(request["agent"]["_id"]), "read": False}, limit=100)


def _date(request: web.Request, name: str) -> date:
    raw = request.query.get(name, "")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        day = None
    if day is None or not date(1971, 1, 1) <= day <= date(9998, 12, 31):
        raise ApiError(400, "validation", f"{name}: a date like 2026-11-01", field=name)
    return day


@routes.get("/api/reports")
@requires("agent")
async def get_report(request: web.Request) -> web.Response:
    """Admins and team leads only (a lead is an agent, so the role check is here)."""
    if not await is_lead(request):
        raise ApiError(403, "forbidden", "reports are for admins and team leads")
    q = request.query
    services = _services(request)
    tz_name = q.get("tz") or services.settings.ui.default_timezone
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):
        raise ApiError(400, "validation", "tz: a time zone like Asia/Shanghai",
                       field="tz") from None
    group_by = q.get("group_by") or "day"
    try:
        body = await report(services.db, _date(request, "from"), _date(request, "to"), zone,
                            group_by)
    except ValueError as exc:
        raise ApiError(400, "validation", str(exc)) from None
    fmt = q.get("format") or "json"
    if fmt == "csv":
        name = f"report-{body['from']}-{body['to']}-{group_by}.csv"
        return web.Response(text=report_csv(body["rows"]), content_type="text/csv",
                            charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
    if fmt != "json":
        raise ApiError(400, "validation", "format: json or csv", field="format")
    return web.json_response(body)


# ---------------------------------------------------------------------- notifications, leads


def notification_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(doc["_id"]), "kind": doc.get("kind"),
            "conversation_id": doc.get("conversation_id"), "team_id": doc.get("team_id"),
            "target": doc.get("target"), "score": doc.get("score"),
            "agent_id": doc.get("subject_agent_id"), "at": iso(doc.get("at")),
            "read": bool(doc.get("read"))}


@routes.get("/api/notifications")
@requires("agent")
async def list_notifications(request: web.Request) -> web.Response:
    """The caller's own, newest first (a team lead's SLA breaches and low scores)."""
    db = _services(request).db
    me = str(request["agent"]["_id"])
    docs = await db.notifications.find({"agent_id": me}).sort("at", -1).limit(50).to_list()
    unread = sum(1 for d in docs if not d.get("read"))
    return web.json_response({"items": [notification_json(d) for d in docs],
                              "unread": unread})


@routes.post("/api/notifications/read")
@requires("agent")
async def read_notifications(request: web.Request) -> web.Response:
    db = _services(request).db
    me = str(request["agent"]["_id"])
    await db.notifications.update_many({"agent_id": me, "read": False},
                                       {"$set": {"read": True}})
    return await list_notifications(request)


@routes.put("/api/teams/{id}/leads")
@requires("admin")
async def set_leads(request: web.Request) -> web.Response:
    body = await body_as(request, sm.TeamLeads)
    services = _services(request)
    team = await services.teams.store.team(request.match_info["id"])
    for agent_id in body.leads:
        try:
            await services.agents.get(agent_id)
        except NotFound:
            raise ApiError(400, "validation", "leads: no such agent", field="leads") from None
    changes: dict[str, Any] = {"leads": list(dict.fromkeys(body.leads))}
    if "csat_enabled" in body.model_fields_set:
        changes["csat_enabled"] = body.csat_enabled
    await services.db.teams.update_one({"_id": team["_id"]}, {"$set": changes})
    services.teams.store._forget()  # its cached teams carry `csat_enabled`
    return web.json_response({"team_id": str(team["_id"]), "leads": changes["leads"],
                              "csat_enabled": changes.get("csat_enabled",
                                                          team.get("csat_enabled"))})
