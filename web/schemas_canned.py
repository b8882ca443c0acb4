"""Models of the canned-reply, suggestion and automatic-message API. Registered with
web/schemas.py's lists (one OpenAPI document); its bases are declared here, the same as
web/schemas.py's, so the two modules do not import each other."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


Scope = Literal["personal", "team", "everyone"]
AutoKind = Literal["welcome", "queue", "queue_update", "after_hours", "closing"]


class CannedCreate(Body):
    shortcut: str = Field(min_length=1, max_length=33, description="typed after / in the "
                          "reply box")
    title: str = Field(min_length=1, max_length=120)
    body: dict[str, str] = Field(description="locale → text; placeholders {customer_name} "
                                 "{agent_name} {brand} {team}")
    scope: Scope = "personal"
    team_id: str | None = None
    examples: list[str] = Field(default_factory=list, max_length=50,
                                description="questions it answers (for suggestions)")


class CannedPatch(Body):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    shortcut: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=33)
    title: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=120)
    body: dict[str, str] | SkipJsonSchema[None] = None
    scope: Scope | SkipJsonSchema[None] = None
    team_id: str | None = None
    examples: list[str] | SkipJsonSchema[None] = Field(None, max_length=50)


class CannedUse(Body):
    conversation_id: str = Field(min_length=1, max_length=64)


class CannedReply(Out):
    id: str
    shortcut: str
    title: str
    body: dict[str, str]
    scope: Scope
    team_id: str | None
    uses: int
    owner_id: str | None = None
    examples: list[str] = Field(default_factory=list)
    editable: bool = Field(False, description="the caller may change it")
    text: str | None = Field(None, description="with a conversation: the body in the "
                             "customer's language, placeholders filled")
    locale: str | None = None
    score: float | None = Field(None, description="suggestions: how similar (BM25)")


class CannedList(Out):
    items: list[CannedReply]


class AutoKindSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    quiet_s: int = Field(3600, ge=0, le=30 * 86400, description="never twice to the same "
                         "customer within this many seconds")
    texts: dict[str, str] = Field(default_factory=dict, description="locale → text")


class AutoSettings(Body):
    welcome: AutoKindSettings | SkipJsonSchema[None] = None
    queue: AutoKindSettings | SkipJsonSchema[None] = None
    queue_update: AutoKindSettings | SkipJsonSchema[None] = None
    after_hours: AutoKindSettings | SkipJsonSchema[None] = None
    closing: AutoKindSettings | SkipJsonSchema[None] = None


class AutoSettingsOut(Out):
    team_id: str
    welcome: AutoKindSettings
    queue: AutoKindSettings
    queue_update: AutoKindSettings
    after_hours: AutoKindSettings
    closing: AutoKindSettings


REQUEST_MODELS: tuple[type[BaseModel], ...] = (CannedCreate, CannedPatch, CannedUse,
                                               AutoSettings)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (CannedReply, CannedList, AutoSettingsOut)
