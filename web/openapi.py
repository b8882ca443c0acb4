"""The OpenAPI 3.1 description of /api, served at /api/openapi.json.

The schemas are generated from the pydantic models in web/schemas.py (the same models that
validate the request bodies), so they are declared once. What is written here is the part a
model cannot say: the paths, their parameters, which status codes each can answer, and the
role each needs (`x-required-role`, checked against the handlers by a test).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from inbox.models import ConversationStatus
from web import schemas as s
from web import schemas_canned as sc
from web import schemas_measures as sm
from web import schemas_teams as st
from web.openapi_canned import canned_paths
from web.openapi_measures import measure_paths

REF = "#/components/schemas/{model}"
_ERROR = {"$ref": "#/components/responses/Error"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


class _Generator(GenerateJsonSchema):
    """pydantic's generator without a title on every property (noise in a published
    document; the models keep theirs)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _without_null_defaults(node: Any) -> Any:
    """Drop `"default": null`: an optional field is one that is not required, and a null
    default beside an enum that has no null only confuses generators and readers."""
    if isinstance(node, dict):
        return {k: _without_null_defaults(v) for k, v in node.items()
                if not (k == "default" and v is None)}
    if isinstance(node, list):
        return [_without_null_defaults(v) for v in node]
    return node


def _add(into: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    if name in into and into[name] != schema:
        # the same name from two models, or one model in both modes with different shapes:
        # a silent overwrite would document one of them wrongly
        raise ValueError(f"two different schemas are named {name!r}")
    into[name] = schema


@cache
def component_schemas() -> dict[str, Any]:
    """Every model's schema and the models they nest, keyed by model name."""
    found: dict[str, Any] = {}
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "validation") for m in (*s.REQUEST_MODELS, *st.REQUEST_MODELS,
                                      *sc.REQUEST_MODELS, *sm.REQUEST_MODELS)),
        *((m, "serialization") for m in (*s.RESPONSE_MODELS, *st.RESPONSE_MODELS,
                                         *sc.RESPONSE_MODELS, *sm.RESPONSE_MODELS))]
    for model, mode in models:
        schema = model.model_json_schema(ref_template=REF, mode=mode,
                                         schema_generator=_Generator)
        for name, nested in schema.pop("$defs", {}).items():
            _add(found, name, _without_null_defaults(nested))
        _add(found, model.__name__, _without_null_defaults(schema))
    return dict(sorted(found.items()))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str = "OK") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(model)}}}


def _op(summary: str, ok: dict[str, Any], *, role: str = "agent",
        body: type[BaseModel] | None = None, params: list[dict[str, Any]] | None = None,
        status: str = "200", errors: tuple[str, ...] = ("400", "401", "403", "404"),
        body_required: bool = True) -> dict[str, Any]:
    # every operation can meet an unavailable database (web/errors.py: 503 + Retry-After), and
    # every one with a body can meet the size limit (413)
    more = ("413", "503") if body is not None else ("503",)
    op: dict[str, Any] = {"summary": summary, "x-required-role": role,
                          "responses": {status: ok, **{e: _ERROR for e in (*errors, *more)}}}
    if body is not None:
        op["requestBody"] = {"required": body_required,
                             "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    return op


def _query(name: str, schema: dict[str, Any], description: str | None = None,
           ) -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


_PAGING = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
           _query("cursor", {"type": "string"})]
_ACCOUNT_ERRORS = ("400", "401", "403", "422", "502")
_FILE_TYPES = ("application/octet-stream", "image/jpeg", "image/png", "image/gif",
               "image/webp")


def _conversation_paths() -> dict[str, Any]:
    status_enum = {"enum": list(get_args(ConversationStatus))}
    return {
        "/api/conversations": {"get": _op(
            "Conversations, newest activity first", _json(s.ConversationPage),
            params=[_query("status", status_enum), _query("platform", {"type": "string"}),
                    _query("assignee", {"type": "string"}, "an agent id, 'me' or 'none'"),
                    _query("sort", {"enum": ["activity", "sla"]},
                           "sla: breaching soonest (running SLA clocks only)"),
                    *_PAGING])},
        "/api/conversations/{id}": {
            "get": _op("One conversation", _json(s.Conversation), params=[_ID]),
            "patch": _op("Change status or assignee", _json(s.Conversation), params=[_ID],
                         body=s.ConversationPatch)},
        "/api/conversations/{id}/read": {"post": _op(
            "Mark a conversation read", _json(s.Conversation), params=[_ID])},
        "/api/conversations/{id}/messages": {
            "get": _op("Messages, newest first; next_cursor pages to older ones",
                       _json(s.MessagePage), params=[_ID, *_PAGING]),
            "post": _op("Reply as the calling agent; queued for delivery",
                        _json(s.Message, "Accepted"), params=[
                            _ID, {"name": "Idempotency-Key", "in": "header",
                                  "required": False, "schema": {"type": "string"}}],
                        body=s.ReplyCreate, status="202",
                        errors=("400", "401", "403", "404", "409", "422"))},
        "/api/conversations/{id}/compose": {"get": _op(
            "What the customer will see around the agent's text (greeting, signature, the "
            "name shown) and its length as the platform counts it",
            _json(s.Compose), params=[
                _ID, _query("text", {"type": "string"},
                            "the draft to measure (empty: just the greeting and signature)"),
                _query("target", {"enum": ["thread", "dm"]})],
            errors=("400", "401", "403", "404", "422"))},
        "/api/messages/{id}/retry": {"post": _op(
            "Queue a failed reply again, or send it one of the other ways its failure offers",
            _json(s.Message, "Accepted"), params=[_ID], body=s.RetryBody, body_required=False,
            status="202", errors=("400", "401", "403", "404", "409", "422"))},
        "/api/messages/{id}/attachments/{index}": {"get": _op(
            "The file behind an attachment, fetched from the platform by the server",
            {"description": "The file", "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in _FILE_TYPES}},
            params=[_ID, {"name": "index", "in": "path", "required": True,
                          "schema": {"type": "string"}}],
            errors=("400", "401", "403", "404", "502"))},
    }


def _admin_paths() -> dict[str, Any]:
    return {
        "/api/accounts": {
            "get": _op("Channel accounts, with their health", _json(s.AccountList),
                       role="admin"),
            "post": _op("Connect a channel account (credentials are checked first)",
                        _json(s.Account, "Created"), role="admin", body=s.AccountCreate,
                        status="201", errors=(*_ACCOUNT_ERRORS, "409"))},
        "/api/accounts/test": {"post": _op(
            "Check credentials without saving", _json(s.AccountTestResult), role="admin",
            body=s.AccountCreate, errors=_ACCOUNT_ERRORS)},
        "/api/accounts/{id}": {
            "get": _op("One channel account", _json(s.Account), role="admin", params=[_ID]),
            "patch": _op("Rename an account, or change its credentials (tested first), "
                         "options or API base URL", _json(s.Account), role="admin",
                         params=[_ID], body=s.AccountPatch,
                         errors=(*_ACCOUNT_ERRORS, "404")),
            "delete": _op("Disconnect a channel account", {"description": "Deleted"},
                          role="admin", params=[_ID], status="204")},
        "/api/agents": {
            "get": _op("Agents", _json(s.AgentList)),
            "post": _op("Add an agent", _json(s.Agent, "Created"), role="admin",
                        body=s.AgentCreate, status="201",
                        errors=("400", "401", "403", "409"))},
        "/api/agents/{id}": {"patch": _op("Change an agent", _json(s.Agent), role="admin",
                                          params=[_ID], body=s.AgentPatch)},
        "/api/audit": {"get": _op("Audit log, newest first; next_cursor pages to older ones",
                                  _json(s.AuditPage), role="admin", params=_PAGING)},
    }


def _own_paths() -> dict[str, Any]:
    return {
        "/api/me": {"get": _op("The agent making the request", _json(s.Me))},
        "/api/platforms": {"get": _op(
            "The platforms this server can connect, with their credential fields",
            _json(s.PlatformList))},
        "/api/tokens": {
            "get": _op("The caller's API tokens", _json(s.TokenList)),
            "post": _op("Create an API token (shown once)", _json(s.TokenCreated, "Created"),
                        body=s.TokenCreate, status="201")},
        "/api/tokens/{id}": {"delete": _op("Revoke an API token", {"description": "Revoked"},
                                           params=[_ID], status="204")},
        "/api/events": {"get": _op(
            "Server-sent events: conversation and message changes, as they happen",
            {"description": "An endless text/event-stream",
             "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            params=[_query("types", {"type": "string"},
                           "comma-separated: conversation,message,presence"),
                    _query("conversation", {"type": "string"}),
                    _query("since", {"type": "string"},
                           "resume after this event id (or send Last-Event-ID)")])},
    }


def _team_paths() -> dict[str, Any]:
    t = st
    rw = ("400", "401", "403", "404")
    return {
        "/api/teams": {
            "get": _op("Teams (skill groups) with their hours and queue length",
                       _json(t.TeamList)),
            "post": _op("Add a team", _json(t.Team, "Created"), role="admin",
                        body=t.TeamCreate, status="201")},
        "/api/teams/{id}": {
            "patch": _op("Change a team", _json(t.Team), role="admin", params=[_ID],
                         body=t.TeamPatch),
            "delete": _op("Remove a team", {"description": "Deleted"}, role="admin",
                          params=[_ID], status="204")},
        "/api/teams/{id}/queue": {"get": _op(
            "Who waits in a team's queue, in the order they will be served",
            _json(t.TeamQueue), params=[_ID])},
        "/api/routing-rules": {
            "get": _op("Routing rules in the order they are tried", _json(t.RuleList),
                       role="admin"),
            "post": _op("Add a routing rule", _json(t.RoutingRule, "Created"), role="admin",
                        body=t.RuleCreate, status="201")},
        "/api/routing-rules/test": {"post": _op(
            "Which rule and team a conversation like this sample would get (nothing saved)",
            _json(t.RuleTestResult), role="admin", body=t.RuleTest, errors=rw)},
        "/api/routing-rules/{id}": {
            "patch": _op("Change a routing rule", _json(t.RoutingRule), role="admin",
                         params=[_ID], body=t.RulePatch),
            "delete": _op("Remove a routing rule", {"description": "Deleted"}, role="admin",
                          params=[_ID], status="204")},
        "/api/labels": {
            "get": _op("Labels (admin-defined, coloured)", _json(t.LabelList)),
            "post": _op("Add a label", _json(t.Label, "Created"), role="admin",
                        body=t.LabelCreate, status="201", errors=(*rw, "409"))},
        "/api/labels/{name}": {
            "patch": _op("Change a label's colour", _json(t.Label), role="admin",
                         params=[_NAME], body=t.LabelPatch),
            "delete": _op("Remove a label", {"description": "Deleted"}, role="admin",
                          params=[_NAME], status="204")},
        "/api/agents/me": {"patch": _op(
            "Set your availability: online agents get conversations", _json(s.Me),
            body=t.MePatch)},
        "/api/conversations/{id}/notes": {"post": _op(
            "Add a private note (listed among the messages as direction note; never sent)",
            _json(s.Message, "Created"), params=[_ID], body=t.NoteCreate, status="201")},
        "/api/conversations/{id}/presence": {"post": _op(
            "Tell other agents you have the conversation open or are typing (30 s)",
            {"description": "Noted"}, params=[_ID], body=t.PresenceBody, status="204")},
        "/api/contacts/{id}": {
            "get": _op("A contact: handles per channel, labels, earlier conversations",
                       _json(t.ContactDetail), params=[_ID]),
            "patch": _op("Set a contact's labels (their customer group)",
                         _json(t.ContactDetail), params=[_ID], body=t.ContactPatch)},
        "/api/search": {"get": _op(
            "Search conversations (customer name, handle, label:NAME) and messages (text), "
            "newest first", _json(t.SearchPage),
            params=[{"name": "q", "in": "query", "required": True,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
                    *_PAGING])},
        "/api/messages": {"get": _op(
            "Replies that ended failed, on every channel, newest first",
            _json(t.FailedPage), params=[
                {"name": "delivery", "in": "query", "required": True,
                 "schema": {"enum": ["failed"]}}, *_PAGING])},
        "/api/name-policies": {
            "get": _op("Name policies (进线名称): how customer-facing names are built",
                       _json(t.NamePolicyList), role="admin"),
            "post": _op("Add a name policy, after checking its names on every channel "
                        "(dry_run: only check and preview)", _json(t.NamePolicy, "Created"),
                        role="admin", body=t.NamePolicyBody, status="201",
                        errors=(*rw, "409"))},
        "/api/name-policies/{id}": {
            "patch": _op("Change a name policy ('default' is the one for every team)",
                         _json(t.NamePolicy), role="admin", params=[_ID],
                         body=t.NamePolicyPatch, errors=(*rw, "409")),
            "delete": _op("Remove a name policy", {"description": "Deleted"}, role="admin",
                          params=[_ID], status="204")},
        "/api/names": {"get": _op(
            "The names policies give agents; unreviewed_days lists those due for review",
            _json(t.AgentNameList), role="admin",
            params=[_query("unreviewed_days", {"type": "integer", "minimum": 0,
                                               "maximum": 36500})])},
        "/api/names/{id}/review": {"post": _op(
            "Mark a name reviewed", _json(t.AgentName), role="admin", params=[_ID])},
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard API", "version": "0.1.0",
                 "description": "Errors are JSON {\"error\": {\"code\", \"message\"}}."},
        "paths": {**_own_paths(), **_conversation_paths(), **_admin_paths(),
                  **_team_paths(), **canned_paths(_op, _json, _query, _ID),
                  **measure_paths(_op, _json, _query, _ID)},
        "components": {
            "schemas": copy.deepcopy(component_schemas()),
            "responses": {"Error": _json(s.Error, "Error")},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie",
                                            "name": "sb_session"}},
        },
        "security": [{"bearer": []}, {"session": []}],
    }
