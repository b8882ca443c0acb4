"""Hostile webhooks: mutated real fixtures through HTTP into the real store.

For every connector in the registry, correctly signed but malformed bodies (wrong types, huge
strings, deep nesting, invalid UTF-8, odd keys, bodies over the limit) must get a 4xx or a 200
(stored or ignored) — never a 5xx — and must never leave a partial write behind: a 4xx or an
ignored update changes nothing, a stored one adds one message with its conversation and contact.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.registry import CONNECTORS
from tests.helpers import ingest_settled
from tests.kits.webhooks import WebhookTarget
from web.app import Services

FIXTURES = Path(__file__).parent / "fixtures"
# `make soak` raises this; the fast suite keeps it small
EXAMPLES = int(os.environ.get("CHAOS_FUZZ_EXAMPLES", "120"))


def inbound_payloads(platform: str) -> dict[str, bytes]:
    folder = FIXTURES / platform / "inbound"
    return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.json"))
            if not p.name.endswith((".expected.json", ".headers.json"))}


def webhook_platforms() -> list[str]:
    """The platforms that take webhooks in some mode (their kit says how to sign one)."""
    return sorted(p for p, cls in CONNECTORS.items() if cls.webhook_modes)


def test_every_webhook_platform_has_a_target_and_fixtures() -> None:
    for platform in webhook_platforms():
        kit = importlib.import_module(f"tests.kits.{platform}")
        assert hasattr(kit, "webhook_target"), f"tests/kits/{platform}.py: add webhook_target"
        assert inbound_payloads(platform), f"no inbound fixtures for {platform}"


# ----------------------------------------------------------------------------- mutations

HUGE = 300_000
leaf = (st.none() | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, 0, -1])
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=12)
        | st.sampled_from(["\x00", "\ud800", "\udfff", "a\u0000b", "$where", "a.b", "\u202e",
                           "长" * 2000, "x" * HUGE]))
json_values = st.recursive(
    leaf, lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6) | st.sampled_from(["$set", "a.b", "\x00", "", "$"]),
                      children, max_size=4),
    max_leaves=12)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    if isinstance(node, dict):
        for key, child in node.items():
            out.append((*path, key))
            out.extend(_paths(child, (*path, key)))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out.append((*path, i))
            out.extend(_paths(child, (*path, i)))
    return out


def _nest(value: Any, depth: int, kind: str) -> Any:
    for _ in range(depth):
        value = {"a": value} if kind == "dict" else [value]
    return value


@st.composite
def mutated(draw: st.DrawFn, payloads: dict[str, bytes]) -> bytes:
    name = draw(st.sampled_from(sorted(payloads)))
    update = json.loads(payloads[name])
    for _ in range(draw(st.integers(1, 3))):
        try:
            paths = _paths(update)
        except RecursionError:
            break
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = update
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "nest", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "nest":
            depth = draw(st.sampled_from([5, 99, 100, 101, 150, 400, 900]))
            try:
                inner = copy.deepcopy(parent[path[-1]])
            except RecursionError:  # nested by an earlier mutation already: deep enough
                continue
            parent[path[-1]] = _nest(inner, depth, draw(st.sampled_from(["dict", "list"])))
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["$x", "a.b", "\x00k", "k\x00", "", "_id"]))] = \
                draw(json_values)
    try:
        text = json.dumps(update, ensure_ascii=draw(st.booleans()))
    except RecursionError:
        text = "[" * 5000 + "]" * 5000
    body = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:  # byte-level damage
        raw = bytearray(body)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, max(0, len(raw) - 1)))
            choice = draw(st.sampled_from(["flip", "cut", "utf8", "bom"]))
            if choice == "flip" and raw:
                raw[at] ^= 1 << draw(st.integers(0, 7))
            elif choice == "cut":
                del raw[at:]
            elif choice == "utf8":
                raw[at:at] = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80",
                                                   b"\xf4\x90\x80\x80", b"\x80"]))
            else:
                raw[0:0] = b"\xef\xbb\xbf"
        body = bytes(raw)
    return body


# ----------------------------------------------------------------------------- the target


class Target:
    def __init__(self, client: TestClient, services: Services, platform: str,
                 webhook: WebhookTarget) -> None:
        self.client = client
        self.services = services
        self.db = services.db
        self.platform = platform
        self.webhook = webhook
        self.url = webhook.path
        self.statuses: dict[int, int] = {}

    async def counts(self) -> dict[str, int]:
        return {name: await self.db[name].count_documents({})
                for name in ("messages", "conversations", "contacts")}

    async def post(self, body: bytes) -> None:
        before = await self.counts()
        headers = self.webhook.sign(body)
        resp = await self.client.post(self.url, data=body, headers=headers)
        text = await resp.text()
        self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
        assert resp.status < 500, f"{resp.status} for {body[:300]!r}: {text[:300]}"
        assert resp.status in (200, 400, 413, 415, 422), (resp.status, text[:300])
        await self.services.store.settle()  # conversations and contacts follow the ack
        after = await self.counts()
        stored = resp.status == 200 and after["messages"] > before["messages"]
        if not stored:
            assert after == before, f"{resp.status} but the store changed: {before} → {after}"
        else:
            assert after["messages"] - before["messages"] in (0, 1)
            assert after["conversations"] - before["conversations"] in (0, 1)
        await self.check_no_orphans()

    async def check_no_orphans(self) -> None:
        """Every conversation has a message and every contact a conversation."""
        with_messages = set(await self.db.messages.distinct("conversation_id"))
        async for conv in self.db.conversations.find({}, {"_id": 1, "contact_id": 1}):
            assert str(conv["_id"]) in with_messages, "a conversation without any message"
        contacts = set(await self.db.conversations.distinct("contact_id"))
        async for contact in self.db.contacts.find({}, {"_id": 1}):
            assert str(contact["_id"]) in contacts, "a contact without a conversation"


@pytest.fixture(params=webhook_platforms())
async def target(request: pytest.FixtureRequest, client: TestClient, services: Services,
                 admin: dict[str, Any]) -> AsyncIterator[Target]:
    platform = request.param
    async with contextlib.AsyncExitStack() as stack:
        kit = importlib.import_module(f"tests.kits.{platform}")
        webhook = await kit.webhook_target(client, admin["headers"], stack)
        yield Target(client, services, platform, webhook)


# ----------------------------------------------------------------------------- explicit cases


async def test_known_hostile_bodies(target: Target) -> None:
    payloads = inbound_payloads(target.platform)
    base = json.loads(next(iter(payloads.values())))
    limit = target.client.app["services"].settings.server.max_body_bytes
    bodies = [
        b"", b"null", b"[]", b'"x"', b"42", b"{", b"\xff\xfe\x00", b"\xef\xbb\xbf{}",
        b"[" * 200_000 + b"]" * 200_000,  # deep nesting the JSON parser cannot follow
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        json.dumps(_nest({}, 900, "dict")).encode(),
        json.dumps({**base, "extra": _nest(1, 150, "list")}).encode(),
        json.dumps({**base, "update_id": 2**80}).encode(),
        json.dumps({**base, "weird": {"\x00": 1, "$set": 2, "a.b": 3}}).encode(),
        json.dumps({**base, "text": "\ud800"}).encode(),
        b"x" * (limit + 1),
    ]
    for body in bodies:
        await target.post(body)
    assert target.statuses.get(413) == 1


@pytest.mark.timeout(max(60, EXAMPLES // 5))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
async def test_fuzz_mutated_fixtures(target: Target, data: st.DataObject) -> None:
    await target.post(data.draw(mutated(inbound_payloads(target.platform))))


async def test_ingest_refuses_an_unstorable_message_alone(store: Any) -> None:
    import asyncio
    from datetime import UTC, datetime

    from inbox.models import AccountId, Author, InboundMessage

    def message(n: int, raw: dict[str, Any]) -> InboundMessage:
        return InboundMessage(
            account_id=AccountId("acc1"), platform="telegram", external_id=f"{n}:1",
            thread_key=str(n), kind="dm", author=Author(user_id=str(n), name="Ann"),
            text="hi", platform_ts=datetime.now(UTC), raw=raw)

    bad, good = await asyncio.gather(ingest_settled(store, message(1, {"x": 2**70})),
                                     ingest_settled(store, message(2, {"x": 1})),
                                     return_exceptions=True)
    assert isinstance(bad, Exception) and not isinstance(good, Exception)
    await store.settle()
    assert await store.db.conversations.count_documents({"thread_key": "1"}) == 0
    assert await store.db.contacts.count_documents({"identities.user_id": "1"}) == 0
    assert await store.db.conversations.count_documents({"thread_key": "2"}) == 1
