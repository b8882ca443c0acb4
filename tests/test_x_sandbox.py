"""The sandbox's HTTP control routes (what `switchboard demo` will drive) and its realism."""

from __future__ import annotations

import aiohttp

from connectors.x.connector import XConnector
from connectors.x.sandbox import XSandbox
from inbox.models import InboundMessage
from tests.kits.x import OUR_ID, FakeRuntime, account, credentials


async def test_demo_over_http_then_poll() -> None:
    sandbox = XSandbox()
    base = await sandbox.start()
    creds = {k: v.get_secret_value() for k, v in credentials().items()}
    runtime = FakeRuntime()
    connector = XConnector(account(base), runtime)
    try:
        async with aiohttp.ClientSession() as http:
            async def post(path: str, body: dict[str, object]) -> dict[str, object]:
                async with http.post(f"{base}/_sandbox/{path}", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.json()  # type: ignore[no-any-return]

            await post("apps", {"consumer_key": creds["consumer_key"],
                                "consumer_secret": creds["consumer_secret"]})
            await post("accounts", {"consumer_key": creds["consumer_key"],
                                    "access_token": creds["access_token"],
                                    "access_token_secret": creds["access_token_secret"],
                                    "username": "ExampleUser", "name": "Acme", "id": OUR_ID})
            seeded = await post("demo", {"account_id": OUR_ID})
            assert len(seeded["customers"]) == 3  # type: ignore[arg-type]
            async with http.post(f"{base}/_sandbox/mentions", json={"text": "x"}) as resp:
                assert resp.status == 400
        batch = await runtime.run_round(connector.inbound())
        texts = [e.text for e in batch.events if isinstance(e, InboundMessage)]
        assert any("闪退" in t for t in texts) and any("外包装" in t for t in texts)
        edited = [e for e in batch.events if isinstance(e, InboundMessage) and "8 days" in e.text]
        assert edited and edited[0].external_id == seeded["mentions"][1]  # type: ignore[index]
        thread = {e.thread_key for e in batch.events if "闪退" in e.text or "登录" in e.text}
        assert len(thread) == 1
        async with aiohttp.ClientSession() as http, http.get(f"{base}/_sandbox/calls") as resp:
            calls = await resp.json()
        assert {c["path"] for c in calls} >= {f"/2/users/{OUR_ID}/mentions", "/2/dm_events"}
    finally:
        await connector.close()
        await sandbox.stop()


async def test_unsigned_or_badly_signed_requests_get_401() -> None:
    sandbox = XSandbox()
    base = await sandbox.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/2/users/me") as resp:
                assert resp.status == 401
                assert (await resp.json())["title"] == "Unauthorized"
                assert "x-rate-limit-remaining" not in resp.headers
            async with http.get(f"{base}/2/users/me", headers={
                    "Authorization": 'OAuth oauth_consumer_key="nope", oauth_token="x"'}) as resp:
                assert resp.status == 401
    finally:
        await sandbox.stop()
