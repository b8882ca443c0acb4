"""schemathesis against /api/openapi.json on a real `switchboard serve`, as an admin and as an
agent: no 5xx, every response matches the document, no operation works without credentials,
and an agent never gets through an operation the document marks `x-required-role: admin`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connectors.telegram.sandbox import SECRET_HEADER, TelegramSandbox
from tests.chaos import LoopThread, People, Serve, make_updates, open_db, seed_people
from tests.conftest import BOT_ID, BOT_TOKEN
from web.openapi import openapi_document

STREAMS = {"/api/events"}  # endless responses: checked in test_events, not generated here
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection,
          ignored_auth]
# Examples per operation, role and mode; `make soak` raises it.
EXAMPLES = int(os.environ.get("CHAOS_SCHEMA_EXAMPLES", "4"))


@dataclass
class Api:
    url: str
    people: People
    serve: Serve
    responses: list[str]

    def headers(self, role: str) -> dict[str, str]:
        return self.people.headers(role)


@pytest.fixture(scope="module")
def api(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server with an account, a conversation, an inbound message and a reply in it."""
    loop = LoopThread()
    sandbox = TelegramSandbox(webhook_retry_delay=0.05)
    loop.run(sandbox.start())
    loop.call(sandbox.add_bot, BOT_TOKEN, BOT_ID, "acme_support_bot", "Acme Support")
    name = f"t_schema_{tmp_path_factory.getbasetemp().name[-6:]}"
    serve = Serve(tmp_path_factory.mktemp("schema") / "data", name, uri=mongo_uri)

    async def seed() -> People:
        client, db = open_db(mongo_uri, name)
        try:
            return await seed_people(db)
        finally:
            await client.close()

    people = loop.run(seed())
    loop.run(serve.start())
    try:
        created = requests.post(f"{serve.url}/api/accounts", headers=people.headers("admin"),
                                json={"platform": "telegram", "name": "schema bot",
                                      "api_base_url": sandbox.base_url,
                                      "credentials": {"bot_token": BOT_TOKEN}}, timeout=30)
        assert created.status_code == 201, created.text
        account = created.json()

        async def secret() -> str:
            from bson import ObjectId

            client, db = open_db(mongo_uri, name)
            try:
                doc = await db.accounts.find_one({"_id": ObjectId(account["id"])})
                return str(doc["webhook_secret"])  # type: ignore[index]
            finally:
                await client.close()

        hook = f"{serve.url}/webhooks/telegram/{account['id']}"
        update = make_updates(1)[0]
        assert requests.post(hook, data=json.dumps(update), timeout=10, headers={
            SECRET_HEADER: loop.run(secret())}).status_code == 200
        conv = None
        for _ in range(200):  # the conversation is made behind the acknowledgement
            items = requests.get(f"{serve.url}/api/conversations", timeout=10,
                                 headers=people.headers("agent")).json()["items"]
            if items:
                conv = items[0]
                break
            time.sleep(0.05)
        assert conv is not None, "the conversation was not listed within 10 s"
        assert requests.post(f"{serve.url}/api/conversations/{conv['id']}/messages",
                             json={"text": "hello"}, headers=people.headers("agent"),
                             timeout=10).status_code == 202
        yield Api(serve.url, people, serve, [])
    finally:
        loop.run(serve.stop())
        loop.run(sandbox.stop())
        loop.close()


@pytest.fixture(scope="module")
def api_schema(api: Api) -> Any:
    return schemathesis.openapi.from_url(f"{api.url}/api/openapi.json")


def check(case: Any, role: str, api: Api) -> None:
    response = case.call(base_url=api.url, headers=api.headers(role), timeout=30)
    api.responses.append(response.text)
    needed = case.operation.definition.raw.get("x-required-role", "agent")
    if role == "agent" and needed == "admin":
        assert response.status_code == 403, (case.method, case.path, response.status_code,
                                             response.text[:200])
    case.validate_response(response, checks=CHECKS, headers=api.headers(role))


def _items() -> list[Any]:
    """(method, path, role, mode) for every operation, collected from the document in the
    code so each is its own test item. Handlers do not look at the role once it is allowed,
    so invalid input is sent as the admin only; the agent sends valid input everywhere (and
    must be refused every admin operation)."""
    items = []
    for path, ops in openapi_document()["paths"].items():
        if path in STREAMS:
            continue
        for method in ops:
            for role in ("admin", "agent"):
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    if role == "agent" and mode == GenerationMode.NEGATIVE:
                        continue
                    items.append(pytest.param(method.upper(), path, role, mode,
                                              id=f"{method.upper()} {path}-{role}-{mode.value}"))
    return items


@pytest.mark.timeout(max(60, EXAMPLES * 2))
@pytest.mark.parametrize(("method", "path", "role", "mode"), _items())
def test_operation(api: Api, api_schema: Any, method: str, path: str, role: str,
                   mode: GenerationMode) -> None:
    operation = api_schema[path][method]
    examples = EXAMPLES
    if role == "agent" and operation.definition.raw.get("x-required-role") == "admin":
        examples = max(2, EXAMPLES // 3)

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        check(case, role, api)

    run()


def test_every_api_route_is_documented_with_its_real_role() -> None:
    """The document and the code agree: the same operations, and each operation's
    `x-required-role` is the role its handler enforces (`web.auth.requires`)."""
    from web import api as api_routes
    from web import (
        api_accounts,
        api_auto,
        api_canned,
        api_measures,
        api_names,
        api_replies,
        api_search,
        api_teams,
        events,
    )

    routes = {(r.method, r.path): r.handler for table in (
        api_routes.routes, api_accounts.routes, api_replies.routes, api_teams.routes,
        api_search.routes, api_names.routes, api_canned.routes, api_auto.routes,
        api_measures.routes) for r in table}
    routes[("GET", "/api/events")] = events.events
    doc = openapi_document()["paths"]
    documented = {(method.upper(), path) for path, ops in doc.items() for method in ops}
    assert documented == set(routes), (documented ^ set(routes))
    for (method, path), handler in routes.items():
        assert doc[path][method.lower()]["x-required-role"] == handler.required_role, \
            f"{method} {path}"


def test_every_operation_declares_a_role(api_schema: Any) -> None:
    for result in api_schema.get_all_operations():
        operation = result.ok()
        assert operation.definition.raw.get("x-required-role") in ("admin", "agent"), \
            operation.label


def test_no_response_carried_a_secret(api: Api) -> None:
    """Runs after the schemathesis tests in this module: none of their responses (nor the
    server's output) holds a credential. Token creation answers with the new token once; that
    one is the caller's own and is not among the secrets checked here."""
    secrets = [BOT_TOKEN, BOT_TOKEN.split(":")[1], api.people.admin_token,
               api.people.agent_token]
    for text in api.responses:
        for secret in secrets:
            assert secret not in text
    output = api.serve.output()
    for secret in secrets:
        assert secret not in output
