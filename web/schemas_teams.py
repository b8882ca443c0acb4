"""Models of the team-work API: teams, routing rules, labels, notes, contacts, search, the
name policy, presence. Registered with web/schemas.py's lists (one OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from web.schemas import Availability, Body, Conversation, Message, Out, Priority

Kind = Literal["dm", "group", "comment_thread", "mention"]


# ---------------------------------------------------------------------- teams


class BusinessHours(BaseModel):
    """Checked in full by teams/hours.py (which names the wrong field)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    weekly: dict[str, list[list[str]]] = Field(
        default_factory=dict, description='mon … sun → spans like [["09:00", "18:00"]]')
    holidays: str | None = Field(None, description="a country code (CN, DE, US-CA …): its "
                                 "public holidays close, its make-up working days open")
    closed_dates: list[str] = Field(default_factory=list)
    open_dates: list[str] = Field(default_factory=list)
    makeup_hours_from: str = Field("mon", description="the weekday whose hours a make-up "
                                                      "working day has")


class TeamCreate(Body):
    name: str | SkipJsonSchema[None] = Field(None, max_length=64)
    names: dict[str, str] = Field(default_factory=dict, description="locale → name (售后)")
    title: str | None = Field(None, max_length=64, description="shown to customers")
    members: list[str] = Field(default_factory=list, max_length=500)
    leads: list[str] = Field(default_factory=list, max_length=50, description="team leads "
                             "(edit the team's shared canned replies)")
    business_hours: BusinessHours | None = None
    fallback_team_id: str | None = None
    overflow_after_s: float | None = Field(None, ge=0, le=604800)
    max_open: int | None = Field(None, ge=0, le=1000)
    member_caps: dict[str, int] = Field(default_factory=dict)
    reassign_on_away: bool = Field(False, description="hand an agent's open conversations "
                                   "back to the team when they go away or offline")


class TeamPatch(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    name: str | SkipJsonSchema[None] = Field(None, max_length=64)
    names: dict[str, str] | SkipJsonSchema[None] = None
    title: str | None = Field(None, max_length=64)
    members: list[str] | SkipJsonSchema[None] = Field(None, max_length=500)
    leads: list[str] | SkipJsonSchema[None] = Field(None, max_length=50)
    business_hours: BusinessHours | None = None
    fallback_team_id: str | None = None
    overflow_after_s: float | None = Field(None, ge=0, le=604800)
    max_open: int | None = Field(None, ge=0, le=1000)
    member_caps: dict[str, int] | SkipJsonSchema[None] = None
    reassign_on_away: bool | SkipJsonSchema[None] = None


class Team(Out):
    id: str
    name: str
    names: dict[str, str]
    title: str | None
    members: list[str]
    leads: list[str] = Field(default_factory=list)
    business_hours: dict[str, Any] | None
    fallback_team_id: str | None
    overflow_after_s: float | None
    max_open: int | None
    member_caps: dict[str, int]
    reassign_on_away: bool
    open_now: bool = Field(description="inside its business hours now")
    queue_length: int


class TeamList(Out):
    items: list[Team]


class QueueEntry(Out):
    conversation_id: str
    position: int
    since: str | None
    priority: Priority


class TeamQueue(Out):
    team_id: str
    items: list[QueueEntry]


# ---------------------------------------------------------------------- routing rules


class RuleConditions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str | None = None
    account_id: str | None = None
    kind: Kind | None = None
    language: str | None = Field(None, description="zh matches zh-CN and zh-hans")
    keywords: list[str] = Field(default_factory=list, description="any of them, found inside "
                                "the first message (no spaces needed)")
    in_business_hours: bool | None = Field(None, description="of the team the rule assigns "
                                                             "to")
    labels: list[str] = Field(default_factory=list, description="the customer has any")


class RuleActions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team_id: str | None = None
    labels: list[str] = Field(default_factory=list)
    priority: Priority | None = None


class RuleCreate(Body):
    name: str = Field(min_length=1, max_length=80)
    position: int | SkipJsonSchema[None] = None
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    actions: RuleActions


class RulePatch(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    name: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=80)
    position: int | SkipJsonSchema[None] = None
    conditions: RuleConditions | SkipJsonSchema[None] = None
    actions: RuleActions | SkipJsonSchema[None] = None


class RoutingRule(Out):
    id: str
    name: str
    position: int
    conditions: dict[str, Any]
    actions: dict[str, Any]


class RuleList(Out):
    items: list[RoutingRule]


class RuleTest(Body):
    platform: str | None = None
    account_id: str | None = None
    kind: Kind | None = None
    language: str | None = None
    text: str = Field("", max_length=20_000)
    labels: list[str] = Field(default_factory=list, max_length=50)


class RuleTestResult(Out):
    rule_id: str | None
    team_id: str | None
    labels: list[str]
    priority: Priority | None
    rule_name: str | None = None
    team_name: str | None = None
    matched: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""


# ---------------------------------------------------------------------- labels, agents


class LabelCreate(Body):
    name: str = Field(min_length=1, max_length=40)
    color: str = Field("#6b7280", pattern=r"^#[0-9a-fA-F]{6}$")


class LabelPatch(Body):
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class Label(Out):
    name: str
    color: str


class LabelList(Out):
    items: list[Label]


class MePatch(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    availability: Availability


# ---------------------------------------------------------------------- notes, contacts


class NoteCreate(Body):
    text: str = Field(min_length=1, max_length=20_000)


class Identity(Out):
    platform: str | None
    account_id: str | None
    handle: str | None


class ContactConversation(Out):
    id: str
    platform: str | None
    account_id: str | None
    created_at: str | None
    agent_id: str | None


class ContactDetail(Out):
    id: str
    name: str | None
    handle: str | None
    labels: list[str]
    identities: list[Identity]
    conversations: list[ContactConversation] = Field(
        description="earlier conversations on every channel, newest first")


class ContactPatch(Body):
    labels: list[str] = Field(max_length=50)


class PresenceBody(Body):
    state: Literal["viewing", "typing", "left"]


# ---------------------------------------------------------------------- search


class SearchHit(Out):
    type: Literal["conversation", "message"]
    conversation: Conversation | None
    message_id: str | None
    snippet: str
    direction: str | None = None
    author: str | None = None
    at: str | None


class SearchPage(Out):
    items: list[SearchHit]
    next_cursor: str | None


class FailedPage(Out):
    items: list[Message]
    next_cursor: str | None
    count: int = Field(description="how many replies are failed now (up to 1000)")


# ---------------------------------------------------------------------- the name policy


class NamePolicyBody(Body):
    team_id: str | None = None
    group: str | None = Field(None, description="a customer label (VIP): the policy applies "
                              "to conversations with customers in this group")
    kind: Literal["template", "role"] = "template"
    template: str | None = Field(None, max_length=80, description="{surname}客服, "
                                 "{team_title} {name} …")
    role_name: str | None = Field(None, max_length=40, description="a fixed role name "
                                  "(客服专员) for teams that answer as a role")
    show_title: bool = False
    shared: bool | None = Field(None, description="true: several agents may show the same "
                                "name (role names are shared unless said otherwise)")
    max_length: int | None = Field(32, ge=1, le=128)
    dry_run: bool = Field(False, description="check and preview without saving")


class NamePolicyPatch(NamePolicyBody):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    kind: Literal["template", "role"] | SkipJsonSchema[None] = None  # type: ignore[assignment]
    show_title: bool | SkipJsonSchema[None] = None  # type: ignore[assignment]
    max_length: int | None = Field(None, ge=1, le=128)


class NameProblem(Out):
    agent_id: str | None = None
    login: str | None = None
    name: str | None = None
    problem: str
    other_agent_id: str | None = None


class ChannelPreview(Out):
    account_id: str
    account_name: str | None
    platform: str
    ok: bool
    problem: str | None
    shown_name: str | None = None
    username: str | None = None
    text: str | None = None
    sender: str | None = None
    used: int | None = None
    limit: int | None = None
    unit: str | None = None


class ProducedName(Out):
    agent_id: str
    login: str
    name: str | None
    ok: bool
    channels: list[ChannelPreview]


class NamePolicy(Out):
    id: str
    team_id: str | None
    group: str | None
    kind: Literal["template", "role"]
    template: str | None
    role_name: str | None
    show_title: bool
    shared: bool
    max_length: int | None
    names: list[ProducedName] = Field(default_factory=list)
    problems: list[NameProblem] = Field(default_factory=list)
    saved: bool = True


class NamePolicyList(Out):
    items: list[NamePolicy]


class AgentName(Out):
    id: str
    agent_id: str
    name: str
    brand: str
    policies: list[str]
    created_at: str | None
    reviewed_at: str | None
    reviewed_by: str | None


class AgentNameList(Out):
    items: list[AgentName]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    TeamCreate, TeamPatch, RuleCreate, RulePatch, RuleTest, LabelCreate, LabelPatch, MePatch,
    NoteCreate, ContactPatch, PresenceBody, NamePolicyBody, NamePolicyPatch)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Team, TeamList, TeamQueue, RoutingRule, RuleList, RuleTestResult, Label, LabelList,
    ContactDetail, SearchPage, FailedPage, NamePolicy, NamePolicyList, AgentName, AgentNameList)
