"""The OpenAPI 3.1 description of /api, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_NULLABLE_STR = {"type": ["string", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, **extra}
    if required:
        schema["required"] = required
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return _obj({"items": {"type": "array", "items": _ref(item)},
                 "next_cursor": _NULLABLE_STR}, ["items", "next_cursor"])


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: dict[str, Any], *, role: str = "agent", body: dict[str, Any] | None
        = None, params: list[dict[str, Any]] | None = None, status: str = "200",
        errors: tuple[str, ...] = ("400", "401", "403", "404")) -> dict[str, Any]:
    # every operation can meet an unavailable database (web/errors.py: 503 + Retry-After), and
    # every one with a body can meet the size limit (413)
    more = ("413", "503") if body is not None else ("503",)
    op: dict[str, Any] = {"summary": summary, "x-required-role": role,
                          "responses": {status: ok, **{e: _ERROR for e in (*errors, *more)}}}
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": {"type": "string"}, "message": {"type": "string"}},
                                 ["code", "message"])}, ["error"]),
    "Contact": {"type": ["object", "null"], "properties": {
        "id": {"type": "string"}, "name": _NULLABLE_STR, "handle": _NULLABLE_STR}},
    "Conversation": _obj({
        "id": {"type": "string"}, "platform": {"type": "string"},
        "account_id": {"type": "string"},
        "kind": {"enum": ["dm", "group", "comment_thread", "mention"]},
        "status": {"enum": ["open", "pending", "snoozed", "resolved"]},
        "assignee_id": _NULLABLE_STR, "title": _NULLABLE_STR, "contact": _ref("Contact"),
        "last_message_at": _NULLABLE_STR, "preview": {"type": "string"},
        "unread": {"type": "integer"}},
        ["id", "platform", "account_id", "kind", "status", "assignee_id", "contact",
         "last_message_at", "preview", "unread"]),
    "Message": _obj({
        "id": {"type": "string"}, "conversation_id": {"type": "string"},
        "direction": {"enum": ["in", "out"]}, "text": {"type": "string"},
        "rendered_text": _NULLABLE_STR,
        "author": _obj({"name": _NULLABLE_STR, "handle": _NULLABLE_STR}),
        "agent_id": _NULLABLE_STR, "agent_name": _NULLABLE_STR, "external_id": _NULLABLE_STR,
        "reply_to": _NULLABLE_STR, "forwarded_from": _NULLABLE_STR,
        "platform_ts": _NULLABLE_STR, "edited": {"type": "boolean"},
        "attachments": {"type": "array", "items": {"type": "object"}},
        "delivery": {"type": ["object", "null"], "properties": {
            "state": {"enum": ["queued", "sending", "sent", "retry_wait", "failed"]},
            "attempts": {"type": "integer"}, "error": {"type": ["object", "null"]},
            "possibly_duplicated": {"type": "boolean", "description": (
                "an earlier attempt's outcome was unknown (its worker died or stalled past "
                "its lease), so the customer may have received this reply twice")}}}},
        ["id", "direction", "text", "author", "agent_name", "external_id", "platform_ts",
         "attachments", "delivery"]),
    "Account": _obj({
        "id": {"type": "string"}, "platform": {"type": "string"}, "name": {"type": "string"},
        "mode": _NULLABLE_STR, "api_base_url": _NULLABLE_STR, "platform_id": _NULLABLE_STR,
        "username": _NULLABLE_STR, "display_name": _NULLABLE_STR, "status": {"type": "string"},
        "webhook_url": _NULLABLE_STR, "last_inbound_at": _NULLABLE_STR,
        "last_error": _NULLABLE_STR, "created_at": _NULLABLE_STR},
        ["id", "platform", "name", "webhook_url"], additionalProperties=False),
    "AccountCreate": _obj({
        "platform": {"type": "string"}, "name": {"type": "string"},
        "credentials": {"type": "object", "additionalProperties": {"type": "string"}},
        "api_base_url": _NULLABLE_STR, "mode": _NULLABLE_STR, "options": {"type": "object"}},
        ["platform", "name", "credentials"]),
    "Agent": _obj({
        "id": {"type": "string"}, "login": {"type": "string"},
        "display_name": {"type": "string"}, "title": _NULLABLE_STR,
        "role": {"enum": ["admin", "agent"]}, "active": {"type": "boolean"},
        "timezone": _NULLABLE_STR, "locale": _NULLABLE_STR, "csrf_token": {"type": "string"}},
        ["id", "login", "display_name", "role", "active"]),
    "AgentCreate": _obj({
        "login": {"type": "string", "pattern": "^[A-Za-z0-9._@-]{2,64}$"},
        "display_name": {"type": "string", "minLength": 1, "maxLength": 64},
        "title": _NULLABLE_STR, "role": {"enum": ["admin", "agent"]},
        "password": {"type": "string", "minLength": 8, "maxLength": 256},
        "timezone": _NULLABLE_STR, "locale": {"enum": ["en", "zh-CN", None]}},
        ["login", "display_name", "password"], additionalProperties=False),
    "AgentPatch": _obj({
        "display_name": {"type": "string", "minLength": 1, "maxLength": 64},
        "title": _NULLABLE_STR, "role": {"enum": ["admin", "agent"]},
        "active": {"type": "boolean"},
        "password": {"type": "string", "minLength": 8, "maxLength": 256},
        "timezone": _NULLABLE_STR, "locale": {"enum": ["en", "zh-CN", None]}},
        additionalProperties=False, minProperties=1),
    "ConversationPatch": _obj({
        "status": {"enum": ["open", "pending", "snoozed", "resolved"]},
        "assignee_id": _NULLABLE_STR}, additionalProperties=False, minProperties=1),
    "ReplyCreate": _obj({"text": {"type": "string", "minLength": 1}}, ["text"],
                        additionalProperties=False),
    "AuditEntry": _obj({
        "id": {"type": "string"}, "at": {"type": "string"}, "actor": _NULLABLE_STR,
        "action": {"type": "string"}, "target": _NULLABLE_STR, "address": _NULLABLE_STR,
        "details": {"type": "object"}}, ["id", "at", "action", "details"]),
    "Platform": _obj({
        "platform": {"type": "string"}, "modes": {"type": "array", "items": {"type": "string"}},
        "text_limit": {"type": "integer"},
        "credentials": {"type": "array", "items": _obj({
            "name": {"type": "string"}, "label": {"type": "string"},
            "secret": {"type": "boolean"}, "required": {"type": "boolean"},
            "pattern": _NULLABLE_STR, "help": {"type": "string"}})}},
        ["platform", "modes", "text_limit", "credentials"]),
    "Compose": _obj({
        "agent_name": {"type": "string"}, "agent_title": _NULLABLE_STR,
        "brand": {"type": "string"}, "platform": {"type": "string"},
        "text_limit": {"type": "integer"}, "first_reply": {"type": "boolean"},
        "before": {"type": "string"}, "after": {"type": "string"},
        "overhead": {"type": "integer"}, "username": _NULLABLE_STR},
        ["agent_name", "platform", "text_limit", "before", "after", "overhead"]),
    "Token": _obj({"id": {"type": "string"}, "name": {"type": "string"},
                   "created_at": {"type": "string"}, "token": {"type": "string"}},
                  ["id", "name"]),
}

_PAGING = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
           _query("cursor", {"type": "string"})]


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/me": {"get": _op("The agent making the request", _json(_ref("Agent")))},
        "/api/conversations": {"get": _op(
            "Conversations, newest activity first", _json(_page("Conversation")),
            params=[_query("status", {"enum": ["open", "pending", "snoozed", "resolved"]}),
                    _query("platform", {"type": "string"}),
                    _query("assignee", {"type": "string",
                                        "description": "an agent id, 'me' or 'none'"}),
                    *_PAGING])},
        "/api/conversations/{id}": {
            "get": _op("One conversation", _json(_ref("Conversation")), params=[_ID]),
            "patch": _op("Change status or assignee", _json(_ref("Conversation")),
                         params=[_ID], body=_ref("ConversationPatch"))},
        "/api/conversations/{id}/read": {"post": _op(
            "Mark a conversation read", _json(_ref("Conversation")), params=[_ID])},
        "/api/conversations/{id}/messages": {
            "get": _op("Messages, newest first; next_cursor pages to older ones",
                       _json(_page("Message")), params=[_ID, *_PAGING]),
            "post": _op("Reply as the calling agent; queued for delivery",
                        _json(_ref("Message"), "Accepted"), params=[
                            _ID, {"name": "Idempotency-Key", "in": "header",
                                  "required": False, "schema": {"type": "string"}}],
                        body=_ref("ReplyCreate"), status="202",
                        errors=("400", "401", "403", "404", "409", "422"))},
        "/api/messages/{id}/retry": {"post": _op(
            "Queue a failed reply again", _json(_ref("Message"), "Accepted"), params=[_ID],
            status="202", errors=("400", "401", "403", "404", "409"))},
        "/api/accounts": {
            "get": _op("Channel accounts", _json(_obj({"items": {
                "type": "array", "items": _ref("Account")}})), role="admin"),
            "post": _op("Connect a channel account (credentials are checked first)",
                        _json(_ref("Account"), "Created"), role="admin",
                        body=_ref("AccountCreate"), status="201",
                        errors=("400", "401", "403", "409", "422", "502"))},
        "/api/accounts/test": {"post": _op(
            "Check credentials without saving", _json(_obj({"ok": {"type": "boolean"}})),
            role="admin", body=_ref("AccountCreate"),
            errors=("400", "401", "403", "422", "502"))},
        "/api/accounts/{id}": {
            "get": _op("One channel account", _json(_ref("Account")), role="admin",
                       params=[_ID]),
            "delete": _op("Disconnect a channel account", {"description": "Deleted"},
                          role="admin", params=[_ID], status="204")},
        "/api/agents": {
            "get": _op("Agents", _json(_obj({"items": {"type": "array",
                                                       "items": _ref("Agent")}}))),
            "post": _op("Add an agent", _json(_ref("Agent"), "Created"), role="admin",
                        body=_ref("AgentCreate"), status="201",
                        errors=("400", "401", "403", "409"))},
        "/api/agents/{id}": {"patch": _op("Change an agent", _json(_ref("Agent")),
                                          role="admin", params=[_ID],
                                          body=_ref("AgentPatch"))},
        "/api/tokens": {
            "get": _op("The caller's API tokens", _json(_obj({"items": {
                "type": "array", "items": _ref("Token")}}))),
            "post": _op("Create an API token (shown once)", _json(_ref("Token"), "Created"),
                        body=_obj({"name": {"type": "string", "maxLength": 64}},
                                  additionalProperties=False), status="201")},
        "/api/tokens/{id}": {"delete": _op("Revoke an API token", {"description": "Revoked"},
                                           params=[_ID], status="204")},
        "/api/audit": {"get": _op("Audit log, newest first; next_cursor pages to older ones",
                                  _json(_page("AuditEntry")), role="admin", params=_PAGING)},
        "/api/platforms": {"get": _op(
            "The platforms this server can connect, with their credential fields",
            _json(_obj({"items": {"type": "array", "items": _ref("Platform")}}, ["items"])))},
        "/api/conversations/{id}/compose": {"get": _op(
            "What the customer will see around the agent's text (signature, greeting)",
            _json(_ref("Compose")), params=[_ID])},
        "/api/messages/{id}/attachments/{index}": {"get": _op(
            "The file behind an attachment, fetched from the platform by the server",
            {"description": "The file", "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in (
                    "application/octet-stream", "image/jpeg", "image/png", "image/gif",
                    "image/webp")}},
            params=[_ID, {"name": "index", "in": "path", "required": True,
                          "schema": {"type": "string"}}],
            errors=("400", "401", "403", "404", "502"))},
        "/api/events": {"get": _op(
            "Server-sent events: conversation and message changes, as they happen",
            {"description": "An endless text/event-stream",
             "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            params=[_query("types", {"type": "string",
                                     "description": "comma-separated: conversation,message"}),
                    _query("conversation", {"type": "string"}),
                    _query("since", {"type": "string",
                                     "description": "resume after this event id (or send "
                                                    "Last-Event-ID)"})])},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard API", "version": "0.1.0",
                 "description": "Errors are JSON {\"error\": {\"code\", \"message\"}}."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {"Error": _json(_ref("Error"), "Error")},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie",
                                            "name": "sb_session"}},
        },
        "security": [{"bearer": []}, {"session": []}],
    }
