"""The JSON API's bodies and answers as pydantic models: one declaration, two uses.

Request bodies are validated with these models (web.api `body_as`), and /api/openapi.json is
generated from all of them (web/openapi.py), so the document cannot drift from what the server
accepts. Response models describe what web/views.py builds; a test validates views' output
against the generated schemas, so a field added there without its model here fails a test.

Response models forbid unknown fields: the document then says "nothing else comes back", which
is what keeps a credential from slipping into an answer unnoticed (schemathesis checks every
answer against it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from inbox.models import ConversationKind, ConversationStatus, DeliveryState

Role = Literal["admin", "agent"]
UILocale = Literal["en", "zh-CN"]
AccountStatus = Literal["active", "degraded", "needs_reauth", "error"]


# ---------------------------------------------------------------------- request bodies
# `X | SkipJsonSchema[None] = None`: the field may be left out but not sent as null (the
# handler answers 400 "cannot be null"), so the document does not offer null.


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Priority = Literal["low", "normal", "high", "urgent"]
Availability = Literal["online", "away", "offline"]


class ConversationPatch(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    status: ConversationStatus | SkipJsonSchema[None] = None
    assignee_id: str | None = None
    team_id: str | SkipJsonSchema[None] = Field(None, description="move it to this team "
                                                                 "(admin): routed inside it")
    labels: list[str] | SkipJsonSchema[None] = Field(None, max_length=50)
    priority: Priority | SkipJsonSchema[None] = None


class NameParts(Body):
    """The parts a name template may use ({surname}客服, {english_name} …)."""

    surname: str | None = Field(None, max_length=32)
    given_name: str | None = Field(None, max_length=32)
    english_name: str | None = Field(None, max_length=32)


class AgentCreate(Body):
    login: str = Field(pattern=r"^[A-Za-z0-9._@-]{2,64}$")
    display_name: str = Field(min_length=1, max_length=64)
    title: str | None = Field(None, max_length=64)
    role: Role = "agent"
    password: str = Field(min_length=8, max_length=256)
    timezone: str | None = Field(None, max_length=64)
    locale: UILocale | None = None


class AgentPatch(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    display_name: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=64)
    title: str | None = Field(None, max_length=64)
    role: Role | SkipJsonSchema[None] = None
    active: bool | SkipJsonSchema[None] = None
    password: str | SkipJsonSchema[None] = Field(None, min_length=8, max_length=256)
    timezone: str | None = Field(None, max_length=64)
    locale: UILocale | None = None
    max_open: int | None = Field(None, ge=0, le=1000, description="cap of open "
                                 "conversations (null: the team's or the server's)")
    name_parts: NameParts | SkipJsonSchema[None] = None


class TokenCreate(Body):
    name: str = Field("", max_length=64)


Target = Literal["thread", "dm"]


class ReplyCreate(Body):
    text: str = Field(min_length=1, max_length=100_000)
    target: Target = Field("thread", description="thread: where the customer wrote; dm: "
                                                 "privately instead, where the platform can")


class RetryBody(Body):
    """Optional: send a failed reply another way, one of its delivery's `alternatives`."""

    target: Target | None = None


class AccountCreate(BaseModel):
    """Checked by web.api `account_body` and the account service (which knows each
    connector's credential fields), so unknown keys are not refused here."""

    platform: str
    name: str
    credentials: dict[str, str]
    api_base_url: str | None = None
    mode: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class AccountPatch(BaseModel):
    """Only what is sent changes; new credentials are tested before they are kept."""

    name: str | SkipJsonSchema[None] = None
    credentials: dict[str, str] | SkipJsonSchema[None] = None
    options: dict[str, Any] | SkipJsonSchema[None] = None
    api_base_url: str | None = None


# ---------------------------------------------------------------------- answers


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. `field`, `limit`, `length`

    code: str
    message: str


class Error(Out):
    error: ErrorBody


class Contact(Out):
    id: str
    name: str | None
    handle: str | None
    avatar_url: str | None = None
    locale: str | None = None


class RoutingStep(Out):
    step: str = Field(description="routed, queued, assigned, overflowed, taken, handed_over, "
                                  "unassigned, moved")
    at: str | None
    team_id: str | None = None
    agent_id: str | None = None
    why: str | None = None


class RoutingDecision(Out):
    rule_id: str | None
    rule_name: str | None
    team_id: str | None
    agent_id: str | None
    labels: list[str]
    priority: Priority | None
    returning: bool = Field(description="assigned to the agent who served the customer last")
    matched: dict[str, Any] = Field(description="the conditions that matched, with the value")
    reason: str = Field(description="the decision in English words")
    at: str | None
    steps: list[RoutingStep]


# a conversation's SLA clock and satisfaction answer (measures/; their API: web/schemas_measures.py)
class SlaBreach(Out):
    target: Literal["first_response", "next_response", "resolution"]
    due_at: str | None
    at: str | None


class ConversationSla(Out):
    first_response_due_at: str | None
    next_response_due_at: str | None
    resolution_due_at: str | None
    breaches: list[SlaBreach]
    policy_id: str | None = None
    due_at: str | None = Field(None, description="the earliest running target's due time")
    state: Literal["ok", "amber", "red", "paused", "done"] = "ok"


class Csat(Out):
    score: int | None
    comment: str | None
    agent_id: str | None
    team_id: str | None = None
    at: str | None = None


class Conversation(Out):
    id: str
    platform: str
    account_id: str
    kind: ConversationKind
    status: ConversationStatus
    assignee_id: str | None
    title: str | None
    contact: Contact | None
    last_message_at: str | None
    preview: str
    unread: int
    customer_locale: str | None = Field(None, description="the customer's language, as "
                                                          "their channel gives it")
    team_id: str | None = None
    labels: list[str] = Field(default_factory=list)
    priority: Priority = "normal"
    queue_position: int | None = Field(None, description="1-based place in its team's queue "
                                       "while it waits for a free agent (lists and the "
                                       "conversation; null in live events)")
    routing: RoutingDecision | None = Field(None, description="the recorded routing decision")
    sla: ConversationSla | None = Field(None, description="its SLA targets' due times and "
                                        "breaches (web/schemas_measures.py)")
    csat: Csat | None = Field(None, description="the customer's satisfaction score")


class Author(Out):
    name: str | None
    handle: str | None
    avatar_url: str | None = None
    locale: str | None = None


class Attachment(Out):
    type: str
    name: str | None
    size: int | None
    mime: str | None
    url: str | None = Field(description="the file through this server; null when the "
                                        "platform keeps none")
    inline: bool = Field(False, description="shown inside the message body (a mail's "
                                            "cid: image, `attachment:<n>` in `html`)")
    extra: dict[str, Any]


class DeliveryError(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str | None = None
    message: str | None = None


class Delivery(Out):
    state: DeliveryState
    attempts: int
    error: DeliveryError | None
    possibly_duplicated: bool = Field(description=(
        "an earlier attempt's outcome was unknown (its worker died or stalled past its "
        "lease), so the customer may have received this reply twice"))
    alternatives: list[str] = Field(description="other ways to send a failed reply that the "
                                                "agent may choose, e.g. \"dm\"")


class Reaction(Out):
    user_id: str | None
    reaction: str | None


class Message(Out):
    id: str
    conversation_id: str
    direction: Literal["in", "out", "note"] = Field(
        description="note: a private note of an agent, never sent")
    text: str
    rendered_text: str | None
    author: Author
    agent_id: str | None
    agent_name: str | None
    external_id: str | None
    reply_to: str | None
    forwarded_from: str | None
    platform_ts: str | None
    edited: bool
    edited_at: str | None = None
    attachments: list[Attachment]
    delivery: Delivery | None
    deleted_at: str | None = Field(description="the customer deleted it; the text is kept")
    reactions: list[Reaction]
    html: str | None = Field(description="sanitised HTML, for channels that have it (mail)")
    full_text: str | None = Field(description="with quoted history and signature, when "
                                              "`text` is the folded version")
    shown_name: str | None = Field(description="the exact name the customer saw (replies)")
    automatic: str | None = Field(None, description="an automatic message's kind (welcome, "
                                  "queue, queue_update, after_hours, closing)")


class LastError(Out):
    code: str | None
    message: str
    at: str | None


class AccountNotice(Out):
    key: str = Field(description="names a string of the connector (the UI shows it in the "
                                 "agent's language, filled with `values`)")
    level: Literal["info", "warning", "error"]
    text: str = Field(description="in English")
    values: dict[str, Any] = Field(default_factory=dict)


class Account(Out):
    id: str
    platform: str
    name: str
    mode: str | None
    api_base_url: str | None
    platform_id: str | None
    username: str | None
    display_name: str | None
    status: AccountStatus
    webhook_url: str | None
    last_inbound_at: str | None
    last_error: LastError | None
    created_at: str | None
    status_at: str | None = Field(None, description="when `status` last changed")
    notices: list[AccountNotice]
    options: dict[str, Any]
    info: dict[str, Any] = Field(description="what the platform told us about the account; "
                                             "never a secret")
    usage: dict[str, int] = Field(description="this month's counters (billable reads, posts)")


class AccountTestResult(Out):
    ok: bool
    platform_id: str | None
    username: str | None
    display_name: str | None


class Agent(Out):
    id: str
    login: str
    display_name: str
    title: str | None
    role: Role
    active: bool
    timezone: str | None
    locale: str | None
    availability: Availability = "offline"
    max_open: int | None = None
    name_parts: dict[str, str] = Field(default_factory=dict)


class Me(Agent):
    csrf_token: str | SkipJsonSchema[None] = Field(
        None, description="with a session cookie: send it as X-CSRF-Token on changes")


class Token(Out):
    id: str
    name: str
    created_at: str


class TokenCreated(Out):
    id: str
    name: str
    token: str = Field(description="shown this once; only its hash is kept")


class AuditEntry(Out):
    id: str
    at: str
    actor: str | None
    action: str
    target: str | None
    address: str | None
    details: dict[str, Any]


class CredentialFieldInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    label: str
    secret: bool
    required: bool
    pattern: str | None = None
    help: str = ""
    modes: list[str] = Field(default_factory=list,
                             description="required only in these modes (empty: in every one)")


class OptionFieldInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    label: str
    type: Literal["str", "int", "float", "bool", "choice"]
    default: Any = None
    choices: list[str] = Field(default_factory=list)
    required: bool = False
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None


class Platform(BaseModel):
    """Built by the account service from the connector's declarations."""

    model_config = ConfigDict(extra="allow")

    platform: str
    modes: list[str]
    webhook_modes: list[str] = Field(default_factory=list)
    text_limit: int | SkipJsonSchema[None] = None
    credentials: list[CredentialFieldInfo]
    options: list[OptionFieldInfo] = Field(default_factory=list)


class Compose(BaseModel):
    """What the customer will see around the agent's text, measured by the connector."""

    model_config = ConfigDict(extra="allow")

    agent_name: str | None = None
    agent_title: str | None = None
    brand: str | None = None
    platform: str | None = None
    first_reply: bool | None = None
    before: str | None = Field(None, description="text the connector puts before the agent's")
    after: str | None = Field(None, description="text after it (the signature)")
    username: str | None = None
    shown_name: str | None = None
    subject: str | None = None
    used: int = Field(description="length of the whole reply, in `unit`")
    limit: int = Field(description="what the platform allows, in `unit`")
    unit: str | None = Field(None, description="utf16, weighted or characters")
    over: int = Field(description="by how much the reply is too long (0: it fits)")
    fits: bool | None = None
    text: str | None = Field(None, description="the whole reply as the customer will see it")
    overhead: int | None = Field(None, description="what the greeting and signature take, "
                                                   "in `unit`")
    text_limit: int | None = Field(None, description="the same as `limit` (older clients)")


class Health(BaseModel):
    """/healthz (not under /api, needs no credentials)."""

    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    embedded_database: Literal["running", "stopped"] | SkipJsonSchema[None] = None
    embedded_restarts: int | SkipJsonSchema[None] = None
    error: str | SkipJsonSchema[None] = None


class ConversationPage(Out):
    items: list[Conversation]
    next_cursor: str | None


class MessagePage(Out):
    items: list[Message]
    next_cursor: str | None


class AuditPage(Out):
    items: list[AuditEntry]
    next_cursor: str | None


class AccountList(Out):
    items: list[Account]


class AgentList(Out):
    items: list[Agent]


class TokenList(Out):
    items: list[Token]


class PlatformList(Out):
    items: list[Platform]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ConversationPatch, AgentCreate, AgentPatch, TokenCreate, ReplyCreate, RetryBody,
    AccountCreate, AccountPatch)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Error, Conversation, Message, Account, AccountTestResult, Agent, Me, Token, TokenCreated,
    AuditEntry, Platform, Compose, Health, ConversationPage, MessagePage, AuditPage,
    AccountList, AgentList, TokenList, PlatformList)
# the models of team work, standard answers and service measures (web/schemas_teams.py,
# web/schemas_canned.py, web/schemas_measures.py) are listed there; web/openapi.py takes all
