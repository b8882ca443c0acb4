"""X Activity API webhooks: CRC, signatures (forged → 401, nothing stored), account routing,
and the subscription lifecycle against the sandbox's signed deliveries."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from connectors.base import HttpRequest, HttpResponse
from connectors.x import activity
from connectors.x.connector import XConnector
from connectors.x.sandbox import XSandbox
from inbox.models import InboundMessage
from tests.kits.x import OUR_ID, FakeRuntime, account, sandbox_account

INBOUND = Path(__file__).parent / "fixtures" / "x" / "inbound"
SECRET_1 = "sandbox-consumer-secret-1"


class Directory:
    def __init__(self, connectors: list[XConnector]) -> None:
        self.items = connectors

    async def connectors(self) -> list[Any]:
        return list(self.items)

    async def by_platform_id(self, platform_id: str) -> Any:
        return next((c for c in self.items if c.account.platform_id == platform_id), None)


def request(method: str, body: bytes = b"", *, query: dict[str, str] | None = None,
            signature: str | None = None) -> HttpRequest:
    headers = CIMultiDict({"content-type": "application/json"})
    if signature is not None:
        headers[activity.SIGNATURE_HEADER] = signature
    return HttpRequest(method=method, path="/webhooks/x", query=query or {}, headers=headers,
                       body=body)


def connector(n: int = 1, platform_id: str = OUR_ID, base: str | None = None,
              app_webhook_url: str | None = None) -> XConnector:
    acc = account(base or "http://127.0.0.1:9", account_id=f"acc-x-{platform_id[-2:]}",
                  platform_id=platform_id, mode="activity", app=n,
                  app_webhook_url=app_webhook_url)
    return XConnector(acc, FakeRuntime(account_id=acc.id))


def test_crc_matches_the_documented_recipe() -> None:
    expected = base64.b64encode(hmac.new(SECRET_1.encode(), b"challenge", hashlib.sha256)
                                .digest()).decode()
    assert activity.crc_answer(SECRET_1, "challenge") == {"response_token": f"sha256={expected}"}


async def test_route_answers_the_crc_with_the_apps_secret() -> None:
    one = connector()
    answer = await XConnector.route_app_webhook(request("GET", query={"crc_token": "abc"}),
                                                Directory([one]))
    assert isinstance(answer, HttpResponse) and answer.status == 200
    assert json.loads(answer.body) == activity.crc_answer(SECRET_1, "abc")
    missing = await XConnector.route_app_webhook(request("GET"), Directory([one]))
    assert isinstance(missing, HttpResponse) and missing.status == 400


async def test_route_picks_the_app_named_in_the_url() -> None:
    one, two = connector(1), connector(2, "2222222222222222222")
    app2 = activity.app_fingerprint("sandbox-consumer-key-2")
    answer = await XConnector.route_app_webhook(
        request("GET", query={"crc_token": "t", "app": app2}), Directory([one, two]))
    assert isinstance(answer, HttpResponse)
    assert json.loads(answer.body) == activity.crc_answer("sandbox-consumer-secret-2", "t")


async def test_forged_post_is_refused_before_parsing_and_nothing_is_stored() -> None:
    one = connector()
    body = (INBOUND / "post.mention.create__text.json").read_bytes()
    for sig in (None, "sha256=AAAA", activity.sign("another-secret", body)):
        answer = await XConnector.route_app_webhook(request("POST", body, signature=sig),
                                                    Directory([one]))
        assert isinstance(answer, HttpResponse) and answer.status == 401
        direct = await one.handle_webhook(request("POST", body, signature=sig))
        assert direct.status == 401
    garbage = b"{not json"
    answer = await XConnector.route_app_webhook(request("POST", garbage, signature=None),
                                                Directory([one]))
    assert isinstance(answer, HttpResponse) and answer.status == 401
    assert one.runtime.stored == []  # type: ignore[attr-defined]


async def test_signed_post_names_the_account_which_stores_the_event() -> None:
    one, two = connector(1), connector(2, "2222222222222222222")
    body = (INBOUND / "post.mention.create__text.json").read_bytes()
    signed = request("POST", body, signature=activity.sign(SECRET_1, body))
    target = await XConnector.route_app_webhook(signed, Directory([two, one]))
    assert target is one
    answer = await one.handle_webhook(signed)
    assert answer.status == 200 and json.loads(answer.body)["stored"] == 1
    (stored,) = one.runtime.stored  # type: ignore[attr-defined]
    assert isinstance(stored, InboundMessage) and stored.kind == "mention"
    assert one.runtime.counts["post_reads"] == 1  # type: ignore[attr-defined]


async def test_an_app_cannot_deliver_into_another_apps_account() -> None:
    one, two = connector(1), connector(2, "2222222222222222222")
    body = (INBOUND / "post.mention.create__text.json").read_bytes()  # for OUR_ID (app 1)
    signed = request("POST", body, signature=activity.sign("sandbox-consumer-secret-2", body))
    answer = await XConnector.route_app_webhook(signed, Directory([one, two]))
    assert isinstance(answer, HttpResponse) and answer.status == 200
    assert json.loads(answer.body)["ignored"]


async def test_handle_webhook_bad_json_and_own_echo() -> None:
    one = connector()
    bad = b"[1, 2"
    answer = await one.handle_webhook(request("POST", bad, signature=activity.sign(SECRET_1, bad)))
    assert answer.status == 400
    own = (INBOUND / "dm.sent__own_echo.json").read_bytes()
    answer = await one.handle_webhook(request("POST", own, signature=activity.sign(SECRET_1, own)))
    assert answer.status == 200 and json.loads(answer.body)["ignored"] == "own message"
    crc = await one.handle_webhook(request("GET", query={"crc_token": "x"}))
    assert json.loads(crc.body) == activity.crc_answer(SECRET_1, "x")


# --------------------------------------------------------------------------- with the sandbox


@pytest.fixture
async def hosted() -> AsyncIterator[tuple[XSandbox, list[XConnector], str]]:
    """A tiny test-only host: `/webhooks/x` → route_app_webhook → handle_webhook."""
    connectors: list[XConnector] = []
    directory = Directory(connectors)

    async def serve(req: web.Request) -> web.Response:
        incoming = HttpRequest(req.method, req.path, dict(req.query), req.headers,
                               await req.read())
        answer = await XConnector.route_app_webhook(incoming, directory)
        if not isinstance(answer, HttpResponse):
            answer = await answer.handle_webhook(incoming)
        return web.Response(status=answer.status, body=answer.body,
                            content_type=answer.content_type)

    app = web.Application()
    app.router.add_route("*", "/webhooks/x", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sandbox = XSandbox()
    await sandbox.start()
    yield sandbox, connectors, f"http://127.0.0.1:{port}/webhooks/x"
    for c in connectors:
        await c.close()
    await sandbox.stop()
    await runner.cleanup()


async def test_subscribe_receive_and_unsubscribe(hosted: Any) -> None:
    sandbox, connectors, url = hosted
    sandbox_account(sandbox)
    second_id = sandbox_account(sandbox, 1, username="acme_cn", user_id="4444444444444444444")
    customer = sandbox.add_user("li_na", "李娜")
    one = connector(1, OUR_ID, sandbox.base_url, url)
    two = connector(1, second_id, sandbox.base_url, url)
    connectors.extend([one, two])
    await one.on_create()
    await two.on_create()  # same app: reuses the webhook (DuplicateUrlFailed → GET /2/webhooks)
    assert len(sandbox.webhooks) == 1 and len(sandbox.subscriptions) == 6
    info = one.runtime.info["activity"]  # type: ignore[attr-defined]
    assert set(info["subscriptions"]) == set(activity.EVENT_TYPES)
    await one.on_create()  # idempotent
    assert len(sandbox.subscriptions) == 6

    sandbox.inject_mention(customer, "我的快递三天没动了", to=OUR_ID)
    sandbox.inject_dm(customer, second_id, "你好，想咨询退货")
    await sandbox.idle()
    assert [d["status"] for d in sandbox.deliveries] == [200, 200]
    (mention,) = one.runtime.stored  # type: ignore[attr-defined]
    (dm,) = two.runtime.stored  # type: ignore[attr-defined]
    assert mention.kind == "mention" and "快递" in mention.text
    assert dm.kind == "dm" and dm.thread_key.endswith(second_id)

    one.account = dataclasses.replace(one.account, info={"activity": info})
    await one.on_delete()
    left = {s["filter"]["user_id"] for s in sandbox.subscriptions.values()}
    assert left == {second_id}


async def test_on_create_without_a_public_url_says_so(hosted: Any) -> None:
    from connectors.base import ConnectError

    sandbox, _, _ = hosted
    sandbox_account(sandbox)
    lonely = connector(1, OUR_ID, sandbox.base_url, None)
    with pytest.raises(ConnectError) as caught:
        await lonely.on_create()
    assert caught.value.code == "activity_setup"
    await lonely.close()
