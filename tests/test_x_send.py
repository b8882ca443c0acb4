"""Replies and check() through tweepy against the X sandbox; every error class; the kit."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectError
from connectors.x.connector import XConnector
from connectors.x.sandbox import XSandbox
from inbox.models import (
    AgentIdentity,
    CredentialsRefused,
    PermanentError,
    RateLimited,
    RenderContext,
    TransientError,
)
from tests.kits.x import OUR_ID, FakeRuntime, account, outbound, replay, sandbox_account

API = Path(__file__).parent / "fixtures" / "x" / "api"


@pytest.fixture
async def world() -> AsyncIterator[tuple[XSandbox, XConnector, FakeRuntime, str]]:
    sandbox = XSandbox()
    base = await sandbox.start()
    sandbox_account(sandbox)
    customer = sandbox.add_user("li_na", "李娜", user_id="2222222222222222222")
    runtime = FakeRuntime()
    connector = XConnector(account(base), runtime)
    yield sandbox, connector, runtime, customer
    await connector.close()
    await sandbox.stop()


async def test_check_returns_the_account(world: Any) -> None:
    sandbox, connector, _, _ = world
    info = await connector.check()
    assert (info.platform_id, info.username) == (OUR_ID, "ExampleUser")
    assert info.display_name == "ExampleUser (brand)"
    assert sandbox.calls[-1]["path"] == "/2/users/me" and sandbox.calls[-1]["auth"] == "OAuth"


async def test_check_with_bad_keys_is_invalid_auth() -> None:
    sandbox = XSandbox()
    base = await sandbox.start()
    sandbox_account(sandbox)
    wrong = XConnector(account(base, app=2), FakeRuntime())  # keys X never issued
    try:
        with pytest.raises(ConnectError) as caught:
            await wrong.check()
        assert caught.value.code == "invalid_auth"
    finally:
        await wrong.close()
        await sandbox.stop()


async def test_check_unreachable_is_cannot_connect() -> None:
    connector = XConnector(account("http://127.0.0.1:9"), FakeRuntime())
    with pytest.raises(ConnectError) as caught:
        await connector.check()
    assert caught.value.code == "cannot_connect"
    await connector.close()


async def test_public_reply_threads_under_the_customers_latest_post(world: Any) -> None:
    sandbox, connector, runtime, customer = world
    first = sandbox.inject_mention(customer, "我的订单还没到")
    latest = sandbox.inject_post(customer, "@ExampleUser 订单号 20261203", in_reply_to=first)
    rendered = connector.render(AgentIdentity(name="Zhang Kai"), "正在为您查询。",
                                RenderContext(kind="mention"))
    delivery = await connector.send(outbound(rendered.text, reply_to=latest, thread_key=first))
    (sent,) = sandbox.sent("post")
    assert sent["in_reply_to"] == latest and sent["text"] == "正在为您查询。 ^ZK"
    assert delivery.external_id == sent["id"]
    assert sandbox.posts[sent["id"]].conversation_id == first
    assert runtime.counts["posts"] == 1


async def test_dm_goes_to_the_author(world: Any) -> None:
    sandbox, connector, runtime, customer = world
    delivery = await connector.send(outbound("Hi ^ZK", kind="dm", reply_to=None,
                                             thread_key=f"{OUR_ID}-{customer}"))
    (sent,) = sandbox.sent("dm")
    assert sent["participant_id"] == customer and delivery.external_id == sent["id"]
    no_author = outbound("Hi again ^ZK", kind="dm", reply_to_author=None,
                         thread_key=f"{OUR_ID}-{customer}")
    await connector.send(no_author)  # the participant comes from the conversation id
    assert sandbox.sent("dm")[-1]["participant_id"] == customer
    assert runtime.counts["dms"] == 2


async def test_reply_restriction_offers_a_dm_and_the_dm_works(world: Any) -> None:
    sandbox, connector, _, customer = world
    unsummoned = sandbox.inject_post(customer, "this product is bad")  # no @ExampleUser
    with pytest.raises(PermanentError) as caught:
        await connector.send(outbound("Sorry to hear that ^ZK", reply_to=unsummoned))
    err = caught.value
    assert err.code == "reply_restricted" and err.alternatives == ("dm",)
    assert "DM" in err.human and "mention" in err.human
    await connector.send(outbound("Sorry to hear that ^ZK", reply_to=unsummoned, target="dm"))
    assert sandbox.sent("dm")[0]["participant_id"] == customer and not sandbox.sent("post")


async def test_too_long_is_refused_before_any_call(world: Any) -> None:
    sandbox, connector, _, _ = world
    with pytest.raises(PermanentError) as caught:
        await connector.send(outbound("您好" * 71))
    assert caught.value.code == "too_long" and "4" in caught.value.human
    assert sandbox.calls == []


@pytest.mark.parametrize(("route", "status", "detail", "ptype", "kind", "expected", "code"), [
    ("tweets", 429, None, "about:blank", "mention", RateLimited, "rate_limited"),
    ("tweets", 503, None, "about:blank", "mention", TransientError, "server"),
    ("tweets", 401, None, "about:blank", "mention", CredentialsRefused, "credentials_refused"),
    ("tweets", 403, "You are not allowed to create a Tweet with duplicate content.",
     "about:blank", "mention", PermanentError, "duplicate"),
    ("tweets", 403, "Your client app is not configured with the appropriate oauth1 app "
     "permissions for this endpoint.", "https://api.twitter.com/2/problems/oauth1-permissions",
     "mention", PermanentError, "app_permissions"),
    ("dm_send", 403, "You cannot send messages to this user.", "about:blank", "dm",
     PermanentError, "dm_not_allowed"),
    ("dm_send", 429, None, "about:blank", "dm", RateLimited, "rate_limited"),
])
async def test_error_classes(world: Any, route: str, status: int, detail: str | None,
                             ptype: str, kind: str, expected: type, code: str) -> None:
    sandbox, connector, _, customer = world
    target = sandbox.inject_mention(customer, "help")
    connector.clock = lambda: sandbox.clock() - 0.0
    sandbox.fail(route, status, detail=detail, ptype=ptype)
    with pytest.raises(expected) as caught:
        await connector.send(outbound("On it ^ZK", kind=kind, reply_to=target))
    err = caught.value
    assert type(err) is expected and err.code == code
    if isinstance(err, RateLimited):
        assert 890 <= err.retry_after <= 900
        assert err.scope == ("dm" if kind == "dm" else "tweets")
    if isinstance(err, PermanentError) and not isinstance(err, CredentialsRefused):
        assert err.human and err.human[-1] == "." and err.alternatives == ()


async def test_real_rate_window_is_honoured(world: Any) -> None:
    sandbox, connector, _, _ = world
    sandbox.windows.take("dm_send", OUR_ID)  # another client of the account used one
    for n in range(14):
        await connector.send(outbound(f"reply {n}", kind="dm"))
    assert connector.limits["dm"].remaining == 0
    with pytest.raises(RateLimited) as caught:
        await connector.send(outbound("one too many", kind="dm"))
    assert caught.value.scope == "dm" and caught.value.retry_after > 800


async def test_a_failing_send_logs_no_secret(world: Any, caplog: pytest.LogCaptureFixture) -> None:
    sandbox, connector, _, _ = world
    sandbox.fail("tweets", 401)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CredentialsRefused):
        await connector.send(outbound("x"))
    for secret in ("sandbox-consumer-secret-1", "access-token-secret-1"):
        assert secret not in caplog.text


# --------------------------------------------------------------------------- API fixtures


def fixtures() -> list[Path]:
    return sorted(API.glob("*.json"))


def test_send_has_all_five_outcomes_and_check_its_three() -> None:
    names = {p.stem.split("__")[0] + "__" + p.stem.split("__")[1] for p in fixtures()}
    assert {f"send__{o}" for o in ("ok", "rate_limited", "transient", "permanent",
                                   "credentials_refused")} <= names
    assert {"check__ok", "check__invalid_auth", "check__cannot_connect"} <= names
    for path in fixtures():
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["source"] and isinstance(data["status"], int)


@pytest.mark.parametrize("path", fixtures(), ids=lambda p: p.stem)
async def test_replay_kit(path: Path) -> None:
    fixture = json.loads(path.read_bytes().decode())  # noqa: ASYNC240 - a small local file
    operation, outcome = path.stem.split("__")[:2]
    if outcome == "ok":
        result = await replay(operation, fixture)
        assert result is not None
        return
    expected: dict[str, Any] = {
        "rate_limited": RateLimited, "transient": TransientError, "permanent": PermanentError,
        "credentials_refused": CredentialsRefused, "invalid_auth": ConnectError,
        "cannot_connect": ConnectError}
    with pytest.raises(expected[outcome]) as caught:
        await replay(operation, fixture)
    if isinstance(caught.value, ConnectError):
        assert caught.value.code == outcome
    if path.stem.endswith("reply_restricted"):
        assert caught.value.alternatives == ("dm",)  # type: ignore[attr-defined]
