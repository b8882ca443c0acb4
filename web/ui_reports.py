"""Service-measure pages: reports with charts and the CSV link (admins and team leads), the
team leads' notifications, SLA policies and team leads (admins), and the SLA helper the inbox
rows use. Roles are enforced here on the server; every form carries the CSRF token."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from bson import ObjectId

from measures.reports import COLUMNS, GROUPS, report
from teams.rules import PRIORITIES
from web.api_measures import _clean_policy, nav_extras, notification_json, policy_json
from web.errors import ApiError
from web.pages import form, page, render


def _zone(name: str, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError):
        return ZoneInfo(default)


def _day(value: str, default: date) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return default
    return day if date(1971, 1, 1) <= day <= date(9998, 12, 31) else default


async def _names(request: web.Request, group_by: str) -> dict[str, str]:
    services = request.app["services"]
    if group_by == "team":
        return {k: str(v.get("name") or k) for k, v in (await services.teams.store.teams()).items()}
    if group_by == "agent":
        return {str(a["_id"]): str(a.get("display_name") or a.get("login"))
                for a in await services.agents.list()}
    return {}


@page()
async def reports_page(request: web.Request) -> web.StreamResponse:
    await nav_extras(request)
    if not request["is_lead"]:
        return render(request, "error.html", status=403, code=403,
                      message_key="error.forbidden")
    services = request.app["services"]
    q = request.query
    agent_tz = request["agent"].get("timezone") or services.settings.ui.default_timezone
    zone = _zone(q.get("tz", ""), agent_tz)
    today = datetime.now(UTC).astimezone(zone).date()
    end = _day(q.get("to", ""), today)
    start = _day(q.get("from", ""), end - timedelta(days=13))
    group_by = q.get("group_by") if q.get("group_by") in GROUPS else "day"
    error = None
    try:
        body = await report(services.db, start, end, zone, group_by)
    except ValueError as exc:
        error, body = str(exc), {"rows": [], "approximate": False}
    names = await _names(request, group_by)
    params = {"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by,
              "tz": zone.key}
    return render(request, "reports.html", active="reports", rows=body["rows"],
                  approximate=body["approximate"], columns=COLUMNS, groups=GROUPS,
                  params=params, error=error, names=names,
                  csv_url="/api/reports?" + urlencode({**params, "format": "csv"}))


@page()
async def notifications_page(request: web.Request) -> web.StreamResponse:
    await nav_extras(request)
    db = request.app["services"].db
    docs = await db.notifications.find({"agent_id": str(request["agent"]["_id"])}).sort(
        "at", -1).limit(100).to_list()
    return render(request, "notifications.html", active="notifications",
                  items=[notification_json(d) | {"at_dt": d.get("at")} for d in docs])


@page()
async def notifications_read(request: web.Request) -> web.StreamResponse:
    await form(request)
    await request.app["services"].db.notifications.update_many(
        {"agent_id": str(request["agent"]["_id"]), "read": False}, {"$set": {"read": True}})
    raise web.HTTPFound("/notifications")


def sla_left(sla: dict[str, Any] | None) -> tuple[str, bool, int, int] | None:
    """The inbox row's SLA badge: (state, overdue, hours, minutes) to the earliest due
    target, or None without a running clock."""
    if not sla or sla.get("state") in (None, "done"):
        return None
    if sla["state"] == "paused" or not sla.get("due_at"):
        return "paused", False, 0, 0
    due = datetime.fromisoformat(str(sla["due_at"]).replace("Z", "+00:00"))
    seconds = int((due - datetime.now(UTC)).total_seconds())
    minutes = abs(seconds) // 60
    return sla["state"], seconds < 0, minutes // 60, minutes % 60


# ---------------------------------------------------------------------- SLA policies, leads


async def _sla_page(request: web.Request, *, status: int = 200,
                    error: str | None = None) -> web.Response:
    services = request.app["services"]
    await nav_extras(request)
    teams = sorted((await services.teams.store.teams()).values(),
                   key=lambda t: t.get("name") or "")
    policies = [policy_json(p) for p in await services.measures.clocks.policies()]
    agents = [a for a in await services.agents.list() if a.get("active")]
    return render(request, "admin_sla.html", status=status, active="sla", policies=policies,
                  teams=teams, agents=agents, priorities=PRIORITIES, error=error,
                  team_names={str(t["_id"]): t.get("name") for t in teams},
                  notice=request.query.get("notice"))


@page("admin")
async def sla_page(request: web.Request) -> web.StreamResponse:
    return await _sla_page(request)


def _minutes(value: str) -> int | None:
    value = value.strip()
    return int(value) * 60 if value.isdigit() and 0 < int(value) <= 527_040 else None


@page("admin")
async def sla_save(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    db = request.app["services"].db
    policy_id = request.match_info.get("id")
    if policy_id:
        if ObjectId.is_valid(policy_id):
            await db.sla_policies.delete_one({"_id": ObjectId(policy_id)})
        raise web.HTTPFound("/admin/sla?notice=deleted")
    labels = [v.strip() for v in data.get("labels", "").replace("，", ",").split(",")
              if v.strip()]
    values = {"name": data.get("name", "").strip()[:100],
              "applies_to": {"team_id": data.get("team_id") or None, "labels": labels,
                             "priority": data.get("priority") or None},
              "first_response_s": _minutes(data.get("first_response_min", "")),
              "next_response_s": _minutes(data.get("next_response_min", "")),
              "resolution_s": _minutes(data.get("resolution_min", "")),
              "business_hours": bool(data.get("business_hours"))}
    if not values["name"]:
        return await _sla_page(request, status=400, error="name")
    try:
        values = await _clean_policy(request, values)
    except ApiError as exc:
        return await _sla_page(request, status=400, error=exc.message)
    await db.sla_policies.insert_one({"_id": ObjectId(), **values,
                                      "created_at": datetime.now(UTC)})
    raise web.HTTPFound("/admin/sla?notice=saved")


@page("admin")
async def leads_save(request: web.Request) -> web.StreamResponse:
    post = await request.post()
    await form(request)
    services = request.app["services"]
    team = await services.teams.store.team(request.match_info["id"])
    known = {str(a["_id"]) for a in await services.agents.list()}
    leads = [str(v) for v in post.getall("leads", []) if str(v) in known]
    choice = str(post.get("csat_enabled", ""))
    await services.db.teams.update_one({"_id": team["_id"]}, {"$set": {
        "leads": leads, "csat_enabled": {"yes": True, "no": False}.get(choice)}})
    services.teams.store._forget()
    raise web.HTTPFound("/admin/sla?notice=saved")


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/sla", sla_page)
    app.router.add_post("/admin/sla", sla_save)
    app.router.add_post("/admin/sla/{id}", sla_save)
    app.router.add_post("/admin/sla/teams/{id}", leads_save)
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/notifications", notifications_page)
    app.router.add_post("/notifications/read", notifications_read)
