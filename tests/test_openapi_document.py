"""/api/openapi.json without a server: a valid OpenAPI 3.1 document generated from the
pydantic models, every operation described as the chaos tests expect, and the JSON that
web/views.py builds valid against it (so a field added there without its model fails here).

tests/test_chaos_api_schema.py runs schemathesis against a real server with this document;
this file is what still checks the document when that server cannot run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from bson import ObjectId
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from web import schemas, schemas_canned, schemas_measures, schemas_teams, views
from web.openapi import component_schemas, openapi_document

DOC = openapi_document()
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
METHODS = {"get", "post", "patch", "put", "delete"}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in DOC["paths"].items()
            for method, op in ops.items() if method in METHODS]


def validator(name: str) -> Any:
    """A validator for components/schemas/<name>, its $refs resolved inside the document."""
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]})


def test_it_is_a_valid_openapi_3_1_document() -> None:
    assert DOC["openapi"] == "3.1.0"
    OPENAPI_31_VALIDATOR.validate(DOC)
    for name, schema in DOC["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_schemathesis_reads_every_operation() -> None:
    loaded = schemathesis.openapi.from_dict(DOC)
    found = {(r.ok().method.lower(), r.ok().path) for r in loaded.get_all_operations()}
    assert found == {(method, path) for path, method, _ in operations()}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + \
            [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_ref_resolves() -> None:
    refs = _refs(DOC)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = DOC
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]


def test_every_model_is_a_component_and_nothing_else_is() -> None:
    names = set(DOC["components"]["schemas"])
    for model in (*schemas.REQUEST_MODELS, *schemas.RESPONSE_MODELS,
                  *schemas_teams.REQUEST_MODELS, *schemas_teams.RESPONSE_MODELS,
                  *schemas_canned.REQUEST_MODELS, *schemas_canned.RESPONSE_MODELS,
                  *schemas_measures.REQUEST_MODELS, *schemas_measures.RESPONSE_MODELS):
        assert model.__name__ in names
    assert "$defs" not in str(DOC)
    assert all("title" not in prop for schema in component_schemas().values()
               for prop in schema.get("properties", {}).values())


@pytest.mark.parametrize(("path", "method", "op"), operations(),
                         ids=[f"{m.upper()} {p}" for p, m, _ in operations()])
def test_each_operation_says_its_role_and_the_errors_it_can_meet(
        path: str, method: str, op: dict[str, Any]) -> None:
    assert op["x-required-role"] in ("admin", "agent")
    responses = op["responses"]
    ok = [code for code in responses if code.startswith("2")]
    assert len(ok) == 1, responses
    for code in ("401", "403", "503"):
        assert responses[code] == {"$ref": "#/components/responses/Error"}, code
    if "requestBody" in op:
        assert "413" in responses and "400" in responses
    declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert declared == set(p[1:-1] for p in path.split("/") if p.startswith("{")), path


def test_the_new_operations() -> None:
    patch = DOC["paths"]["/api/accounts/{id}"]["patch"]
    assert patch["x-required-role"] == "admin"
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AccountPatch"}
    assert {"200", "400", "404", "422", "502"} <= set(patch["responses"])
    body = DOC["components"]["schemas"]["AccountPatch"]["properties"]
    assert set(body) == {"name", "credentials", "options", "api_base_url"}

    compose = DOC["paths"]["/api/conversations/{id}/compose"]["get"]
    assert any(p["name"] == "text" and p["in"] == "query" for p in compose["parameters"])
    shape = DOC["components"]["schemas"]["Compose"]
    assert set(shape["required"]) == {"used", "limit", "over"}
    assert {"agent_name", "brand", "before", "after", "shown_name", "unit", "fits",
            "text", "first_reply", "username", "agent_title", "platform"} <= set(
        shape["properties"])


def test_account_and_message_shapes() -> None:
    account = DOC["components"]["schemas"]["Account"]
    assert account["additionalProperties"] is False  # nothing else, credentials least of all
    assert account["properties"]["status"]["enum"] == ["active", "degraded", "needs_reauth",
                                                       "error"]
    for key in ("last_error", "notices", "webhook_url", "options", "info", "usage"):
        assert key in account["required"], key
    message = DOC["components"]["schemas"]["Message"]["properties"]
    for key in ("deleted_at", "reactions", "html", "full_text", "shown_name"):
        assert key in message, key
    delivery = DOC["components"]["schemas"]["Delivery"]["properties"]
    assert delivery["alternatives"]["items"] == {"type": "string"}


# ---------------------------------------------------------------------- views against it


def _conversation(**changes: Any) -> dict[str, Any]:
    return {"_id": ObjectId(), "platform": "telegram", "account_id": "a1", "kind": "dm",
            "status": "open", "assignee_id": None, "title": None, "contact_id": "c1",
            "last_message_at": NOW, "preview": "你好", "unread": 2, **changes}


def _message(**changes: Any) -> dict[str, Any]:
    return {"_id": ObjectId(), "conversation_id": "c1", "direction": "in", "text": "你好",
            "author": {"user_id": "42", "name": "小明", "handle": "xiaoming"},
            "external_id": "1:2", "platform_ts": NOW, **changes}


SAMPLES: list[tuple[str, Any]] = [
    ("Conversation", views.conversation_json(_conversation(), {
        "_id": ObjectId(), "name": "小明", "handle": "xiaoming"})),
    ("Conversation", views.conversation_json(_conversation(
        kind="group", title="Group", assignee_id="ag1", last_message_at=None), None)),
    ("Message", views.message_json(_message())),
    ("Message", views.message_json(_message(
        edited=True, deleted_at=NOW, reactions=[{"user_id": "7", "reaction": "👍"}],
        attachments=[{"type": "photo", "file_id": "f", "size": 10, "mime": "image/jpeg"},
                     {"type": "location", "extra": {"latitude": 1.5, "longitude": 2.5}}],
        html="<p>hi</p>", full_text="hi\n> earlier"))),
    ("Message", views.message_json(_message(
        direction="out", agent_id="ag1", agent_name="张客服", author={"name": "张客服"},
        rendered_text="hello\n— 张客服", rendered={"text": "hello", "shown_name": "张客服"},
        delivery={"state": "failed", "attempts": 3, "possibly_duplicated": True, "error": {
            "code": "blocked", "message": "The customer blocked the bot.",
            "alternatives": ["dm"]}}))),
    ("Message", views.message_json(_message(direction="out", delivery={
        "state": "queued", "attempts": 0, "error": None}))),
    ("Account", views.account_json({
        "_id": ObjectId(), "platform": "telegram", "name": "bot", "mode": "webhook",
        "status": "degraded", "created_at": NOW, "last_inbound_at": NOW, "options": {"x": 1},
        "info": {"can_join_groups": True},
        "last_error": {"code": "network", "message": "Telegram could not be reached.",
                       "at": NOW}}, "https://inbox.example/webhooks/telegram/1",
        notices=[{"key": "notice.polling", "level": "info", "text": "Polls.", "values": {}}],
        usage={"posts": 3})),
    ("Account", views.account_json({"_id": ObjectId(), "platform": "telegram", "name": "old",
                                    "mode": "polling", "last_error": "a sentence"}, None)),
    ("Agent", views.agent_json({"_id": ObjectId(), "login": "zhang", "display_name": "张客服",
                                "role": "agent", "active": True})),
    ("Me", views.agent_json({"_id": ObjectId(), "login": "boss", "display_name": "李经理",
                             "role": "admin", "active": True, "timezone": "Asia/Shanghai",
                             "locale": "zh-CN"}) | {"csrf_token": "t"}),
    ("Token", views.token_json({"_id": ObjectId(), "name": "ci", "created_at": NOW})),
    ("AuditEntry", views.audit_json({"_id": ObjectId(), "at": NOW, "actor": "boss",
                                     "action": "agent.update", "target": "zhang",
                                     "address": "203.0.113.7", "details": {"role": "admin"}})),
    ("Error", {"error": {"code": "too_long", "message": "…", "limit": 4096, "length": 5000}}),
    ("ConversationPage", {"items": [], "next_cursor": None}),
    ("Health", {"status": "ok", "database": "ok"}),
    ("Compose", {"used": 20, "limit": 4096, "over": 0, "fits": True, "unit": "utf16",
                 "before": "", "after": "\n— 张客服 · Acme", "shown_name": "张客服"}),
]


@pytest.mark.parametrize(("name", "value"), SAMPLES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(SAMPLES)])
def test_what_views_build_matches_the_document(name: str, value: Any) -> None:
    errors = [e.message for e in validator(name).iter_errors(value)]
    assert errors == [], (name, value)


def test_an_account_with_anything_extra_does_not_match() -> None:
    account = views.account_json({"_id": ObjectId(), "platform": "telegram", "name": "x"},
                                 None)
    assert validator("Account").is_valid(account)
    assert not validator("Account").is_valid(account | {"credentials": {"bot_token": "1:A"}})
    message = views.message_json(_message())
    assert not validator("Message").is_valid(message | {"raw": {}})


@pytest.mark.parametrize(("name", "body", "ok"), [
    ("ConversationPatch", {"status": "resolved"}, True),
    ("ConversationPatch", {"assignee_id": None}, True),
    ("ConversationPatch", {}, False),
    ("ConversationPatch", {"status": "closed"}, False),
    ("ConversationPatch", {"status": "open", "extra": 1}, False),
    ("AgentCreate", {"login": "li", "display_name": "李", "password": "12345678"}, True),
    ("AgentCreate", {"login": "li", "display_name": "李", "password": "short"}, False),
    ("AgentPatch", {"title": None}, True),
    ("TokenCreate", {}, True),
    ("ReplyCreate", {"text": "hi"}, True),
    ("ReplyCreate", {"text": ""}, False),
    ("AccountPatch", {"name": "new name", "credentials": {"bot_token": "1:A"}}, True),
])
def test_request_bodies_mean_the_same_to_the_document_and_the_models(
        name: str, body: dict[str, Any], ok: bool) -> None:
    assert validator(name).is_valid(body) is ok
    model = getattr(schemas, name)
    try:
        model.model_validate(body)
    except ValueError:
        accepted = False
    else:
        accepted = True
    # the models take {} for a patch (the handler answers "nothing to change"): the document
    # is the stricter side there, never the looser one
    assert accepted is ok or (accepted and body == {})
