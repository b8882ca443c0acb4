"""A made-up platform plugs in through the registry alone (tests/madeup_platform.py): a signed
GET challenge, XML answers, an app-level route, a long-lived session, replies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.registry import CONNECTORS
from inbox.db import Database
from tests.live import Live, listed_conversations, live_server, wait_for
from tests.madeup_platform import ParrotConnector, ParrotPlatform, signature, xml_message

KEY = "parrot-key-1"
SECRET = "parrot-app-secret"
ACCOUNT = "parrot-shop-7"


@pytest.fixture
async def parrot(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ParrotPlatform]:
    monkeypatch.setitem(CONNECTORS, "parrot", ParrotConnector)  # the one registry line
    platform = ParrotPlatform(KEY, ACCOUNT)
    await platform.start()
    yield platform
    await platform.stop()


@pytest.fixture
async def live(mongo_uri: str, db: Database, tmp_path: Path,
               parrot: ParrotPlatform) -> AsyncIterator[Live]:
    async with live_server(mongo_uri, db.name, tmp_path) as server:
        yield server


async def add(live: Live, parrot: ParrotPlatform, mode: str) -> dict[str, Any]:
    resp = await live.http.post(f"{live.url}/api/accounts", headers=live.headers, json={
        "platform": "parrot", "name": f"Parrot {mode}", "mode": mode,
        "api_base_url": parrot.base_url,
        "credentials": {"api_key": KEY, "app_secret": SECRET}})
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


def signed(echostr: str | None = None) -> dict[str, str]:
    params = {"timestamp": str(int(time.time())), "nonce": "n0nce"}
    params["signature"] = signature(SECRET, params["timestamp"], params["nonce"])
    if echostr is not None:
        params["echostr"] = echostr
    return params


async def texts(live: Live) -> list[str]:
    return [m["text"] for m in await live.services.db.messages.find(
        {"direction": "in"}).sort("external_id", 1).to_list()]


async def test_a_webhook_account_answers_the_challenge_and_takes_xml(
        live: Live, parrot: ParrotPlatform) -> None:
    account = await add(live, parrot, "webhook")
    assert account["webhook_url"] == f"{live.url}/webhooks/parrot"  # app-level
    hook = f"{live.url}/webhooks/parrot/{account['id']}"
    resp = await live.http.get(hook, params=signed("challenge-123"))
    assert resp.status == 200 and await resp.text() == "challenge-123"
    forged = {**signed("x"), "signature": "0" * 40}
    assert (await live.http.get(hook, params=forged)).status == 401

    resp = await live.http.post(hook, params=signed(),
                                data=xml_message(ACCOUNT, "cust-1", "你好，鹦鹉", "m1"))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/xml")
    assert "success" in await resp.text()
    assert await texts(live) == ["你好，鹦鹉"]


async def test_the_app_level_route_finds_the_account_from_the_payload(
        live: Live, parrot: ParrotPlatform) -> None:
    await add(live, parrot, "webhook")
    app_hook = f"{live.url}/webhooks/parrot"
    resp = await live.http.get(app_hook, params=signed("app-check"))
    assert resp.status == 200 and await resp.text() == "app-check"
    for n in (1, 2, 2):  # a redelivery is stored once
        resp = await live.http.post(app_hook, params=signed(),
                                    data=xml_message(ACCOUNT, "cust-2", f"msg {n}", f"a{n}"))
        assert resp.status == 200
    unknown = await live.http.post(app_hook, params=signed(),
                                   data=xml_message("someone-else", "c", "lost?", "z1"))
    assert unknown.status == 200  # not ours: acknowledged, nothing stored
    forged = await live.http.post(app_hook, params={**signed(), "signature": "f" * 40},
                                  data=xml_message(ACCOUNT, "cust-2", "forged", "f1"))
    assert forged.status == 401
    assert await texts(live) == ["msg 1", "msg 2"]


async def test_a_stream_account_is_run_by_the_host_and_acknowledges_after_storing(
        live: Live, parrot: ParrotPlatform) -> None:
    account = await add(live, parrot, "stream")
    assert account["webhook_url"] is None
    parrot.push("cust-3", "over the stream", "s1")
    await wait_for(lambda: _stored(live, "over the stream"), timeout=15)
    await wait_for(lambda: _acked(parrot, "s1"))
    runner = live.services.hosting.runners[account["id"]]
    assert runner.stats.owner and runner.stats.sessions == 1
    doc = await live.services.db.accounts.find_one({"name": "Parrot stream"})
    assert doc["status"] == "active" and doc["lease"]["owner"] == runner.owner


async def test_replies_go_out_through_the_made_up_connector(live: Live,
                                                            parrot: ParrotPlatform) -> None:
    account = await add(live, parrot, "webhook")
    await live.http.post(f"{live.url}/webhooks/parrot/{account['id']}", params=signed(),
                         data=xml_message(ACCOUNT, "cust-4", "can you help?", "r1"))
    (conv,) = await listed_conversations(live)
    compose = await (await live.http.get(f"{live.url}/api/conversations/{conv['id']}/compose",
                                         params={"text": "Sure"}, headers=live.headers)).json()
    assert compose["limit"] == 100 and compose["used"] == len(compose["text"])
    resp = await live.http.post(f"{live.url}/api/conversations/{conv['id']}/messages",
                                headers=live.headers, json={"text": "Sure, on it."})
    assert resp.status == 202
    await wait_for(lambda: _sent(parrot, 1))
    assert parrot.sent[0]["to"] == "cust-4"
    assert parrot.sent[0]["text"].startswith("Sure, on it.") and "李经理" in parrot.sent[0]["text"]
    too_long = await live.http.post(f"{live.url}/api/conversations/{conv['id']}/messages",
                                    headers=live.headers, json={"text": "x" * 100})
    assert too_long.status == 422
    assert (await too_long.json())["error"]["over"] > 0


async def _stored(live: Live, text: str) -> bool:
    return await live.services.db.messages.find_one({"text": text}) is not None


async def _acked(parrot: ParrotPlatform, msg_id: str) -> bool:
    return msg_id in parrot.acks


async def _sent(parrot: ParrotPlatform, n: int) -> bool:
    return len(parrot.sent) >= n
