"""No secret leaves the server: a tour of every page and API read, the error paths that quote
platform errors (failed sends, failed file fetches, refused tokens, forged webhooks, wrong
passwords), then a grep of every response and of the server's whole log output for the bot
token, the webhook secret, API tokens, session ids, passwords and the secret key."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from connectors.telegram.sandbox import SECRET_HEADER, TelegramSandbox
from inbox.db import Database
from tests.chaos import (
    ADMIN_PASSWORD,
    AGENT_PASSWORD,
    FIXTURES,
    SECRET_KEY,
    Serve,
    make_updates,
    seed_people,
    wait_until,
    webhook_secret,
)
from tests.conftest import BOT_TOKEN

NEW_PASSWORD = "a brand new password 3"
MISTYPED_PASSWORD = "chaos admin passwrod 1"  # a near miss is as secret as the password
WRONG_TOKEN = "7000000009:AAwrong-token-for-the-leak-test-0123"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Recorder:
    """Every response the tour saw: (label, status, headers, body)."""

    http: aiohttp.ClientSession
    base: str
    seen: list[tuple[str, int, str, str]] = field(default_factory=list)

    async def request(self, method: str, path: str, *, exempt: bool = False,
                      **kwargs: Any) -> tuple[int, str]:
        async with self.http.request(method, f"{self.base}{path}", allow_redirects=False,
                                     **kwargs) as resp:
            body = await resp.text(errors="replace")
            headers = "\n".join(f"{k}: {v}" for k, v in resp.headers.items()
                                if k.lower() != "set-cookie")
            if not exempt:
                self.seen.append((f"{method} {path}", resp.status, headers, body))
            return resp.status, body


async def test_no_secret_in_any_response_or_log_line(mongo_uri: str, db: Database,
                                                     tmp_path: Path,
                                                     tg: TelegramSandbox) -> None:
    people = await seed_people(db)
    serve = Serve(tmp_path / "data", db.name, uri=mongo_uri, env_extra={
        "SWITCHBOARD_DELIVERY__BACKOFF_BASE_SECONDS": "0.05",
        "SWITCHBOARD_DELIVERY__BACKOFF_CAP_SECONDS": "0.2"})
    await serve.start()
    try:
        admin, agent = people.headers("admin"), people.headers("agent")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            rec = Recorder(http, serve.url)
            # accounts: a good token, a refused one (through the API and the test endpoint)
            status, body = await rec.request("POST", "/api/accounts", headers=admin, json={
                "platform": "telegram", "name": "leak bot", "api_base_url": tg.base_url,
                "credentials": {"bot_token": BOT_TOKEN}})
            assert status == 201, body
            account_id = json.loads(body)["id"]
            for path in ("/api/accounts", "/api/accounts/test"):
                status, _ = await rec.request("POST", path, headers=admin, json={
                    "platform": "telegram", "name": "wrong", "api_base_url": tg.base_url,
                    "credentials": {"bot_token": WRONG_TOKEN}})
                assert status == 422
            secret = await webhook_secret(db, account_id)

            # webhooks: a text and a document, then forged and malformed ones
            hook = f"/webhooks/telegram/{account_id}"
            signed = {SECRET_HEADER: secret, "Content-Type": "application/json"}
            for update in (make_updates(1)[0],
                           json.loads((FIXTURES / "message__document.json").read_text())):
                status, _ = await rec.request("POST", hook, headers=signed,
                                              data=json.dumps(update))
                assert status == 200
            await rec.request("POST", hook, headers={SECRET_HEADER: secret + "x"}, data="{}")
            await rec.request("POST", hook, headers=signed, data="{nope")

            # people: a password change shows up in the audit log as "changed"
            status, _ = await rec.request("PATCH", f"/api/agents/{people.agent_id}", headers=admin,
                                          json={"password": NEW_PASSWORD})
            assert status == 200
            await rec.request("POST", "/api/agents", headers=admin, json={
                "login": "x", "display_name": "x", "password": "short"})

            # replies: one refused by Telegram (401: the account needs new credentials, and the
            # reply waits for them), one while Telegram is unreachable
            convs = json.loads((await rec.request("GET", "/api/conversations",
                                                  headers=agent))[1])["items"]
            text_conv = next(c for c in convs if c["contact"]["handle"].startswith("load_"))
            doc_conv = next(c for c in convs if c is not text_conv)
            tg.fail(BOT_TOKEN, "sendMessage", 401, times=None)
            await rec.request("POST", f"/api/conversations/{text_conv['id']}/messages",
                              headers=agent, json={"text": "refused"})

            async def needs_reauth() -> bool:
                doc = await db.accounts.find_one({"status": "needs_reauth"})
                return doc is not None
            await wait_until(needs_reauth, 30, "the account to need new credentials")
            tg.clear_failures()
            status, _ = await rec.request("PATCH", f"/api/accounts/{account_id}", headers=admin,
                                          json={"credentials": {"bot_token": BOT_TOKEN}})
            assert status == 200

            async def sent() -> bool:
                doc = await db.messages.find_one({"text": "refused"})
                return bool(doc and doc["delivery"]["state"] == "sent")
            await wait_until(sent, 30, "the waiting reply to go out with the new credentials")
            messages = json.loads((await rec.request(
                "GET", f"/api/conversations/{doc_conv['id']}/messages", headers=agent))[1])
            document = next(m for m in messages["items"] if m["attachments"])
            tg.fail(BOT_TOKEN, "getFile", 400, description="Bad Request: invalid file_id")
            await rec.request("GET", document["attachments"][0]["url"], headers=agent)
            await tg.stop()  # Telegram unreachable from here on
            await rec.request("GET", document["attachments"][0]["url"], headers=agent)
            await rec.request("POST", f"/api/conversations/{doc_conv['id']}/messages",
                              headers=agent, json={"text": "unreachable"})

            async def retried() -> bool:
                doc = await db.messages.find_one({"text": "unreachable"})
                return bool(doc and doc["delivery"]["attempts"] >= 2)
            await wait_until(retried, 30, "the unreachable reply to be retried")

            # the browser: a wrong password, the right one, then every page
            _, page = await rec.request("GET", "/login")
            csrf = _CSRF.search(page)
            assert csrf is not None
            await rec.request("POST", "/login", data={"login": "chaos-admin",
                                                      "password": MISTYPED_PASSWORD,
                                                      "csrf": csrf.group(1), "next": "/"})
            _, page = await rec.request("GET", "/login")
            csrf = _CSRF.search(page)
            assert csrf is not None
            status, _ = await rec.request("POST", "/login", data={
                "login": "chaos-admin", "password": ADMIN_PASSWORD, "csrf": csrf.group(1),
                "next": "/"})
            assert status == 302
            session = http.cookie_jar.filter_cookies(URL(serve.url)).get("sb_session")
            assert session is not None
            for path in ("/", f"/conversations/{text_conv['id']}",
                         f"/conversations/{doc_conv['id']}", "/admin/accounts", "/admin/agents",
                         "/admin/audit"):
                status, _ = await rec.request("GET", path)
                assert status == 200, path
            _, page = await rec.request("GET", "/admin/accounts")
            csrf = _CSRF.search(page)
            assert csrf is not None
            await rec.request("POST", "/admin/accounts", data={
                "csrf": csrf.group(1), "platform": "telegram", "name": "form bot",
                "cred.telegram.bot_token": WRONG_TOKEN, "api_base_url": "http://127.0.0.1:9"})

            # every API read, as each role
            for headers in (admin, agent):
                for path in ("/api/me", "/api/agents", "/api/tokens", "/api/accounts",
                             f"/api/accounts/{account_id}", "/api/audit", "/api/conversations",
                             f"/api/conversations/{text_conv['id']}",
                             f"/api/conversations/{text_conv['id']}/messages",
                             f"/api/conversations/{doc_conv['id']}/messages",
                             f"/api/conversations/{text_conv['id']}/compose",
                             "/api/platforms", "/api/openapi.json", "/healthz", "/metrics"):
                    await rec.request("GET", path, headers=headers)
            status, _ = await rec.request("POST", "/api/tokens", headers=agent, exempt=True,
                                          json={"name": "shown once"})
            assert status == 201
    finally:
        await serve.stop()

    secrets = {
        "bot token": BOT_TOKEN, "bot token secret part": BOT_TOKEN.split(":")[1],
        "refused bot token": WRONG_TOKEN.split(":")[1], "webhook secret": secret,
        "admin API token": people.admin_token, "agent API token": people.agent_token,
        "admin password": ADMIN_PASSWORD, "agent password": AGENT_PASSWORD,
        "new password": NEW_PASSWORD, "mistyped password": MISTYPED_PASSWORD,
        "secret key": SECRET_KEY, "session id": session.value,
    }
    assert len(rec.seen) > 50
    for label, status, headers, body in rec.seen:
        for name, value in secrets.items():
            assert value not in body, f"{name} in the body of {label} ({status})"
            assert value not in headers, f"{name} in the headers of {label} ({status})"
    output = serve.output()
    for name, value in secrets.items():
        assert value not in output, f"{name} in the server's log output"
    assert "password_hash" not in json.dumps([s[3] for s in rec.seen])
    assert "token_hash" not in json.dumps([s[3] for s in rec.seen])
