"""Login and logout: cookies, CSRF, rate limits, no session fixation, server-side logout."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_PASSWORD, AGENT_PASSWORD, make_settings
from web.app import Services, create_app
from web.auth import SESSION_COOKIE
from web.login import PRE_CSRF_COOKIE, safe_next
from web.runtime import start_services, stop_services

WRONG = "Wrong login or password."


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


async def log_in(client: TestClient, login: str, password: str, next_path: str = "/",
                 **headers: str) -> Any:
    page = await client.get("/login", headers=headers)
    csrf = csrf_of(await page.text())
    return await client.post("/login", data={"login": login, "password": password,
                                             "csrf": csrf, "next": next_path},
                             allow_redirects=False, headers=headers)


def set_cookie(resp: Any, name: str) -> str:
    return next(v for v in resp.headers.getall("Set-Cookie", []) if v.startswith(name + "="))


async def test_login_sets_a_safe_session_cookie_and_redirects(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    resp = await log_in(client, "zhang", AGENT_PASSWORD, "/conversations/abc?x=1")
    assert resp.status == 302
    assert resp.headers["Location"] == "/conversations/abc?x=1"
    cookie = set_cookie(resp, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # public_url is http:// in tests
    page = await client.get("/")
    assert page.status == 200 and "张客服" in await page.text()
    audit = await services.db.audit_log.find_one({"action": "session.login"})
    assert audit is not None and audit["actor"] == "zhang"


async def test_cookie_is_secure_when_public_url_is_https(
        aiohttp_client: Any, mongo_uri: str, db: Any, tmp_path: Path) -> None:
    settings = make_settings(db.name, tmp_path, server={"public_url": "https://inbox.example"})
    services = await start_services(settings, mongo_uri)
    try:
        await services.agents.create("zhang", display_name="张客服", password=AGENT_PASSWORD)
        client = await aiohttp_client(create_app(services))
        page = await client.get("/login")
        pre = set_cookie(page, PRE_CSRF_COOKIE)
        assert "Secure" in pre
        # the test client speaks http, so it would not send a Secure cookie back by itself
        resp = await client.post("/login", data={
            "login": "zhang", "password": AGENT_PASSWORD, "csrf": csrf_of(await page.text())},
            headers={"Cookie": pre.split(";")[0]}, allow_redirects=False)
        assert resp.status == 302
        assert "Secure" in set_cookie(resp, SESSION_COOKIE)
    finally:
        await stop_services(services)


async def test_wrong_password_and_unknown_login_look_the_same(
        client: TestClient, agent: dict[str, Any]) -> None:
    wrong = await log_in(client, "zhang", "nope nope nope")
    unknown = await log_in(client, "nobody", "nope nope nope")
    for resp in (wrong, unknown):
        assert resp.status == 401
        body = await resp.text()
        assert WRONG in body
        assert SESSION_COOKIE not in resp.cookies
    assert 'value="zhang"' in await wrong.text()  # the login is kept, the password is not
    assert "nope nope nope" not in await wrong.text()


async def test_deactivated_agent_cannot_log_in(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    await services.agents.update(str(agent["doc"]["_id"]), {"active": False})
    resp = await log_in(client, "zhang", AGENT_PASSWORD)
    assert resp.status == 401 and WRONG in await resp.text()


async def test_attempts_are_limited_per_login(
        aiohttp_client: Any, mongo_uri: str, db: Any, tmp_path: Path) -> None:
    settings = make_settings(db.name, tmp_path,
                             security={"login_attempts_per_15min": 3})
    services = await start_services(settings, mongo_uri)
    try:
        await services.agents.create("zhang", display_name="张客服", password=AGENT_PASSWORD)
        client = await aiohttp_client(create_app(services))
        now = datetime.now(UTC)
        # three failures for this login from elsewhere (other addresses)
        await services.db.login_attempts.insert_many(
            [{"key": "login:zhang", "at": now} for _ in range(3)])
        resp = await log_in(client, "zhang", AGENT_PASSWORD)
        assert resp.status == 429
        assert "Too many attempts" in await resp.text()
        other = await log_in(client, "someone-else", "whatever-password")
        assert other.status == 401  # the address itself is not blocked
    finally:
        await stop_services(services)


async def test_attempts_are_limited_per_address(
        aiohttp_client: Any, mongo_uri: str, db: Any, tmp_path: Path) -> None:
    settings = make_settings(db.name, tmp_path,
                             security={"login_attempts_per_15min": 3})
    services = await start_services(settings, mongo_uri)
    try:
        await services.agents.create("zhang", display_name="张客服", password=AGENT_PASSWORD)
        client = await aiohttp_client(create_app(services))
        for name in ("a1", "a2", "a3"):
            assert (await log_in(client, name, "wrong-password")).status == 401
        blocked = await log_in(client, "zhang", AGENT_PASSWORD)
        assert blocked.status == 429
        keys = await services.db.login_attempts.distinct("key")
        assert "addr:127.0.0.1" in keys
    finally:
        await stop_services(services)


async def test_login_attempts_expire_by_ttl_index(services: Services) -> None:
    indexes = await services.db.login_attempts.index_information()
    assert any(spec.get("expireAfterSeconds") is not None for spec in indexes.values())


async def test_login_form_needs_its_csrf_cookie(
        client: TestClient, agent: dict[str, Any]) -> None:
    resp = await client.post("/login", data={"login": "zhang", "password": AGENT_PASSWORD,
                                             "csrf": "forged-token-value"},
                             allow_redirects=False)
    assert resp.status == 403
    assert SESSION_COOKIE not in resp.cookies
    assert "expired" in await resp.text()
    assert PRE_CSRF_COOKIE in {c.key for c in client.session.cookie_jar}


async def test_a_new_session_id_at_every_login(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    page = await client.get("/login")
    old, _ = await services.agents.create_session(str(agent["doc"]["_id"]), 1)
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: old})  # planted before login
    resp = await client.post("/login", data={"login": "zhang", "password": AGENT_PASSWORD,
                                             "csrf": csrf_of(await page.text())},
                             allow_redirects=False)
    assert resp.status == 302
    new = resp.cookies[SESSION_COOKIE].value
    assert new and new != old
    assert await services.agents.session(old) is None  # the planted session is ended
    assert await services.agents.session(new) is not None


async def test_logout_ends_the_session_on_the_server(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    resp = await log_in(client, "zhang", AGENT_PASSWORD)
    token = resp.cookies[SESSION_COOKIE].value
    page = await client.get("/logout")  # GET shows a button, changes nothing
    assert page.status == 200
    assert await services.agents.session(token) is not None
    forged = await client.post("/logout", data={"csrf": "wrong"}, allow_redirects=False)
    assert forged.status == 403
    assert await services.agents.session(token) is not None
    csrf = csrf_of(await page.text())
    out = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 302 and out.headers["Location"] == "/login"
    assert await services.agents.session(token) is None
    again = await client.get("/", allow_redirects=False)
    assert again.status == 302 and again.headers["Location"].startswith("/login")
    api = await client.get("/api/me", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert api.status == 401


async def test_deactivation_stops_open_sessions_at_once(
        client: TestClient, services: Services, agent: dict[str, Any],
        admin: dict[str, Any]) -> None:
    await log_in(client, "zhang", AGENT_PASSWORD)
    assert (await client.get("/", allow_redirects=False)).status == 200
    await services.agents.update(str(agent["doc"]["_id"]), {"active": False})
    assert (await client.get("/", allow_redirects=False)).status == 302
    assert (await client.get("/api/me", headers=agent["headers"])).status == 401


async def test_admin_login_then_admin_pages(client: TestClient, admin: dict[str, Any]) -> None:
    await log_in(client, "boss", ADMIN_PASSWORD)
    for path in ("/admin/accounts", "/admin/agents", "/admin/audit"):
        assert (await client.get(path)).status == 200, path


def test_next_only_goes_to_this_site() -> None:
    assert safe_next("/conversations/1") == "/conversations/1"
    for evil in ("//evil.example/", "/\\evil.example", "https://evil.example", "", None,
                 "javascript:alert(1)", "/ok\r\nSet-Cookie: x=1"):
        assert safe_next(evil) == "/"
