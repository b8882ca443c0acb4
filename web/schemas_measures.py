"""Models of the service-measures API: SLA policies, the conversation's `sla` and `csat`,
reports, notifications, team leads. Registered with web/schemas.py's lists."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from web.schemas import Body, Out, Priority
from web.schemas_teams import BusinessHours

Target = Literal["first_response", "next_response", "resolution"]


class AppliesTo(Body):
    team_id: str | None = Field(None, max_length=64)
    labels: list[str] = Field(default_factory=list, max_length=50)
    priority: Priority | None = None


class SlaPolicyBody(Body):
    name: str = Field(min_length=1, max_length=100)
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    first_response_s: int | None = Field(None, ge=1, le=366 * 86400)
    next_response_s: int | None = Field(None, ge=1, le=366 * 86400)
    resolution_s: int | None = Field(None, ge=1, le=366 * 86400)
    business_hours: bool | BusinessHours = Field(
        False, description="count in the team's business hours (true), in these hours, or "
                           "in plain elapsed time (false)")


class SlaPolicyPatch(Body):
    name: str | None = Field(None, min_length=1, max_length=100)
    applies_to: AppliesTo | None = None
    first_response_s: int | None = Field(None, ge=1, le=366 * 86400)
    next_response_s: int | None = Field(None, ge=1, le=366 * 86400)
    resolution_s: int | None = Field(None, ge=1, le=366 * 86400)
    business_hours: bool | BusinessHours | None = None


class SlaAppliesTo(Out):
    team_id: str | None
    labels: list[str]
    priority: str | None


class SlaPolicy(Out):
    id: str
    name: str
    applies_to: SlaAppliesTo
    first_response_s: int | None
    next_response_s: int | None
    resolution_s: int | None
    business_hours: bool | BusinessHours


class SlaPolicyList(Out):
    items: list[SlaPolicy]


class ReportRow(Out):
    key: str
    opened: int
    resolved: int
    reopened: int
    first_response_p50_s: int | None
    first_response_p90_s: int | None
    resolution_p50_s: int | None
    sla_hit_rate: float | None
    csat_avg: float | None
    csat_response_rate: float | None
    messages_in: int
    messages_out: int


class Report(Out):
    rows: list[ReportRow]
    group_by: str
    from_: str = Field(alias="from")
    to: str
    tz: str
    approximate: bool = Field(description="true in a zone offset by a fraction of an hour "
                                          "(hour buckets straddle its midnight)")


class Notification(Out):
    id: str
    kind: Literal["sla_breach", "csat_low"]
    conversation_id: str
    team_id: str | None
    target: str | None = None
    score: int | None = None
    agent_id: str | None = None
    at: str | None
    read: bool


class NotificationList(Out):
    items: list[Notification]
    unread: int


class TeamLeads(Body):
    leads: list[str] = Field(max_length=100)
    csat_enabled: bool | None = Field(None, description="send surveys for this team's "
                                      "conversations (null: the [csat] setting decides)")


class TeamLeadsOut(Out):
    team_id: str
    leads: list[str]
    csat_enabled: bool | None = None


REQUEST_MODELS: tuple[type[BaseModel], ...] = (SlaPolicyBody, SlaPolicyPatch, TeamLeads)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    SlaPolicy, SlaPolicyList, Report, NotificationList, TeamLeadsOut)
