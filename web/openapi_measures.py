"""The service-measures part of the OpenAPI document (web/openapi.py merges it)."""

from __future__ import annotations

from typing import Any

from web import schemas_measures as sm


def measure_paths(_op: Any, _json: Any, _query: Any, _ID: Any) -> dict[str, Any]:
    """The paths, built with openapi.py's helpers (handed in, so neither imports the other)."""
    rw = ("400", "401", "403", "404")
    report_ok = _json(sm.Report)
    report_ok["content"]["text/csv"] = {"schema": {"type": "string"}}
    report = _op("Conversations opened, resolved and reopened, response and resolution "
                 "times, SLA hit rate, satisfaction and messages per day, channel, team or "
                 "agent, in the viewer's time zone (admins and team leads)", report_ok,
                 params=[{"name": "from", "in": "query", "required": True,
                          "schema": {"type": "string", "format": "date"}},
                         {"name": "to", "in": "query", "required": True,
                          "schema": {"type": "string", "format": "date"}},
                         _query("group_by", {"enum": ["day", "channel", "team", "agent"]}),
                         _query("tz", {"type": "string"}, "an IANA time zone"),
                         _query("format", {"enum": ["json", "csv"]})],
                 errors=("400", "401", "403"))
    return {
        "/api/sla-policies": {
            "get": _op("SLA policies, oldest first", _json(sm.SlaPolicyList), role="admin"),
            "post": _op("Add an SLA policy", _json(sm.SlaPolicy, "Created"), role="admin",
                        body=sm.SlaPolicyBody, status="201")},
        "/api/sla-policies/{id}": {
            "patch": _op("Change an SLA policy (running clocks keep the targets they started "
                         "with)", _json(sm.SlaPolicy), role="admin", params=[_ID],
                         body=sm.SlaPolicyPatch),
            "delete": _op("Remove an SLA policy", {"description": "Deleted"}, role="admin",
                          params=[_ID], status="204")},
        "/api/reports": {"get": report},
        "/api/notifications": {"get": _op(
            "The caller's notifications (a team lead's SLA breaches and low scores)",
            _json(sm.NotificationList))},
        "/api/notifications/read": {"post": _op(
            "Mark the caller's notifications read", _json(sm.NotificationList),
            errors=("401", "403"))},
        "/api/teams/{id}/leads": {"put": _op(
            "Who leads a team (sees reports, is notified of breaches and low scores), and "
            "whether its conversations get satisfaction surveys",
            _json(sm.TeamLeadsOut), role="admin", params=[_ID], body=sm.TeamLeads,
            errors=rw)},
    }
