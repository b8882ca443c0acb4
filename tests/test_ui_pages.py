"""Pages over HTTP: CSP-clean markup, CSRF on every form, admin flows, write-only secrets."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from aiohttp.test_utils import TestClient

from connectors.telegram.sandbox import TelegramSandbox
from tests.conftest import ADMIN_PASSWORD, AGENT_PASSWORD, BOT_TOKEN
from tests.helpers import inbound, ingest_settled
from tests.test_login import csrf_of, log_in
from web.app import Services


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=…>")
        if tag == "script" and not values.get("src") and \
                values.get("type") != "application/json":
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style>")
        for attr in ("href", "src", "action"):
            if (values.get(attr) or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: {attr}")
        if tag == "form":
            self.forms.append({"method": (values.get("method") or "get").lower(),
                               "action": values.get("action"), "csrf": False})
        if tag == "input" and values.get("name") == "csrf" and self.forms and values.get("value"):
            self.forms[-1]["csrf"] = True


def check_markup(html: str) -> Markup:
    markup = Markup()
    markup.feed(html)
    assert markup.problems == []
    for form in markup.forms:
        assert form["csrf"], f"form {form['action']} has no CSRF token"
    return markup


async def test_pages_are_csp_clean_and_every_form_has_a_csrf_token(
        client: TestClient, services: Services, admin: dict[str, Any]) -> None:
    result = await ingest_settled(services.store, inbound(1, text="hello"))
    await log_in(client, "boss", ADMIN_PASSWORD)
    for path in ("/", f"/conversations/{result.conversation_id}", "/admin/accounts",
                 "/admin/agents", "/admin/audit", "/logout"):
        resp = await client.get(path)
        assert resp.status == 200, path
        csp = resp.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"] == "no-store"
        markup = check_markup(await resp.text())
        assert markup.forms, path
    client.session.cookie_jar.clear()
    check_markup(await (await client.get("/login")).text())


async def test_static_files_are_served(client: TestClient) -> None:
    for name, kind in (("app.js", "javascript"), ("app.css", "css")):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200 and kind in resp.headers["Content-Type"]
    js = await (await client.get("/static/app.js")).text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js


async def test_unknown_page_is_a_404_page_but_the_api_stays_json(client: TestClient) -> None:
    page = await client.get("/nothing/here")
    assert page.status == 404 and "text/html" in page.headers["Content-Type"]
    api = await client.get("/api/nothing")
    assert api.status == 404 and (await api.json())["error"]["code"] == "not_found"


async def test_status_and_assignment_forms(
        client: TestClient, services: Services, admin: dict[str, Any],
        agent: dict[str, Any]) -> None:
    conv = (await ingest_settled(services.store, inbound(1))).conversation_id
    await log_in(client, "zhang", AGENT_PASSWORD)
    page = await client.get(f"/conversations/{conv}")
    csrf = csrf_of(await page.text())
    for status in ("resolved", "pending", "open"):
        resp = await client.post(f"/conversations/{conv}/status",
                                 data={"csrf": csrf, "status": status}, allow_redirects=False)
        assert resp.status == 302
        assert (await services.store.get_conversation(conv))["status"] == status
    await client.post(f"/conversations/{conv}/assign", data={"csrf": csrf, "assignee_id": "me"})
    assert (await services.store.get_conversation(conv))["assignee_id"] == \
        str(agent["doc"]["_id"])
    boss = str(admin["doc"]["_id"])
    await client.post(f"/conversations/{conv}/assign", data={"csrf": csrf, "assignee_id": boss})
    assert (await services.store.get_conversation(conv))["assignee_id"] == boss
    mine = await client.get("/?who=mine")
    assert f'data-id="{conv}"' not in await mine.text()
    await client.post(f"/conversations/{conv}/assign", data={"csrf": csrf, "assignee_id": "none"})
    assert (await services.store.get_conversation(conv))["assignee_id"] is None
    unassigned = await client.get("/?who=unassigned&status=all")
    assert f'data-id="{conv}"' in await unassigned.text()
    forged = await client.post(f"/conversations/{conv}/status",
                               data={"csrf": "nope", "status": "resolved"})
    assert forged.status == 403
    assert (await services.store.get_conversation(conv))["status"] == "open"


async def test_inbox_filters(client: TestClient, services: Services,
                             admin: dict[str, Any]) -> None:
    store = services.store
    a = (await ingest_settled(store, inbound(1, thread="a", user="a", text="甲"))).conversation_id
    b = (await ingest_settled(store, inbound(2, thread="b", user="b", text="乙"))).conversation_id
    await services.store.update_conversation(b, {"status": "resolved"})
    await log_in(client, "boss", ADMIN_PASSWORD)
    open_page = await (await client.get("/")).text()
    assert f'data-id="{a}"' in open_page and f'data-id="{b}"' not in open_page
    resolved = await (await client.get("/?status=resolved")).text()
    assert f'data-id="{b}"' in resolved and f'data-id="{a}"' not in resolved
    both = await (await client.get("/?status=all")).text()
    assert both.index(f'data-id="{b}"') < both.index(f'data-id="{a}"')  # newest first
    telegram = await (await client.get("/?channel=telegram")).text()
    assert f'data-id="{a}"' in telegram
    unknown = await (await client.get("/?channel=nope")).text()
    assert f'data-id="{a}"' in unknown  # an unknown channel filter falls back to all
    assert (await client.get("/?status=bogus")).status == 200


async def test_admin_manages_agents_and_deactivation_locks_out(
        client: TestClient, services: Services, admin: dict[str, Any]) -> None:
    await log_in(client, "boss", ADMIN_PASSWORD)
    page = await client.get("/admin/agents")
    csrf = csrf_of(await page.text())
    resp = await client.post("/admin/agents", data={
        "csrf": csrf, "login": "wang", "password": "a good password", "display_name": "王客服",
        "title": "售后", "role": "agent", "timezone": "Asia/Shanghai", "locale": "zh-CN"},
        allow_redirects=False)
    assert resp.status == 302
    wang = await services.agents.by_login("wang")
    assert wang is not None and wang["display_name"] == "王客服" and wang["title"] == "售后"
    assert wang["timezone"] == "Asia/Shanghai" and wang["locale"] == "zh-CN"
    token, _ = await services.agents.create_token(str(wang["_id"]))
    session, _ = await services.agents.create_session(str(wang["_id"]), 1)

    resp = await client.post(f"/admin/agents/{wang['_id']}", data={
        "csrf": csrf, "action": "save", "display_name": "王小二", "title": "", "role": "admin",
        "timezone": "", "locale": ""}, allow_redirects=False)
    assert resp.status == 302
    wang = await services.agents.get(str(wang["_id"]))
    assert (wang["display_name"], wang["title"], wang["role"]) == ("王小二", None, "admin")

    resp = await client.post(f"/admin/agents/{wang['_id']}",
                             data={"csrf": csrf, "action": "deactivate"}, allow_redirects=False)
    assert resp.status == 302
    assert await services.agents.agent_for_token(token) is None
    assert await services.agents.session(session) is None
    audit = [d["action"] async for d in services.db.audit_log.find({})]
    assert audit.count("agent.update") == 2 and "agent.create" in audit

    bad = await client.post("/admin/agents", data={
        "csrf": csrf, "login": "x", "password": "short", "display_name": ""})
    assert bad.status == 400
    tz = await client.post(f"/admin/agents/{wang['_id']}", data={
        "csrf": csrf, "action": "save", "display_name": "王小二", "role": "admin",
        "timezone": "Mars/Olympus"})
    assert tz.status == 400 and "Unknown time zone" in await tz.text()
    me = await client.post(f"/admin/agents/{admin['doc']['_id']}",
                           data={"csrf": csrf, "action": "deactivate"})
    assert me.status == 400  # an admin cannot lock themselves out
    assert (await services.agents.get(str(admin["doc"]["_id"])))["active"] is True


async def test_agents_get_403_on_admin_forms(
        client: TestClient, services: Services, agent: dict[str, Any],
        admin: dict[str, Any]) -> None:
    await log_in(client, "zhang", AGENT_PASSWORD)
    csrf = csrf_of(await (await client.get("/")).text())
    for path in ("/admin/accounts", "/admin/agents", f"/admin/agents/{admin['doc']['_id']}",
                 "/admin/accounts/000000000000000000000000/delete"):
        resp = await client.post(path, data={"csrf": csrf, "action": "deactivate",
                                             "login": "evil", "password": "x" * 10,
                                             "display_name": "evil"})
        assert resp.status == 403, path
    for path in ("/admin", "/admin/accounts", "/admin/agents", "/admin/audit"):
        assert (await client.get(path)).status == 403, path
    assert (await services.agents.get(str(admin["doc"]["_id"])))["active"] is True
    assert await services.agents.by_login("evil") is None


async def test_account_secrets_are_write_only(
        client: TestClient, services: Services, admin: dict[str, Any],
        tg: TelegramSandbox) -> None:
    await log_in(client, "boss", ADMIN_PASSWORD)
    page = await client.get("/admin/accounts")
    csrf = csrf_of(await page.text())
    bad_token = "123456:" + "B" * 32
    bad = await client.post("/admin/accounts", data={
        "csrf": csrf, "platform": "telegram", "name": "机器人", "mode": "webhook",
        "cred.telegram.bot_token": bad_token, "api_base_url": tg.base_url, "action": "save"})
    assert bad.status == 422
    html = await bad.text()
    assert "refused these credentials" in html and bad_token not in html
    assert 'value="机器人"' in html  # non-secret fields are kept

    tested = await client.post("/admin/accounts", data={
        "csrf": csrf, "platform": "telegram", "name": "机器人", "mode": "webhook",
        "cred.telegram.bot_token": BOT_TOKEN, "api_base_url": tg.base_url, "action": "test"})
    html = await tested.text()
    assert tested.status == 200 and "The connection works: acme_support_bot" in html
    assert BOT_TOKEN not in html and await services.db.accounts.count_documents({}) == 0

    saved = await client.post("/admin/accounts", data={
        "csrf": csrf, "platform": "telegram", "name": "机器人", "mode": "webhook",
        "cred.telegram.bot_token": BOT_TOKEN, "api_base_url": tg.base_url, "action": "save"},
        allow_redirects=False)
    assert saved.status == 302
    shown = await client.get(saved.headers["Location"])
    html = await shown.text()
    doc = await services.db.accounts.find_one({})
    webhook = f"http://127.0.0.1:8080/webhooks/telegram/{doc['_id']}"
    assert webhook in html and 'id="created-webhook"' in html
    secret_bits = [BOT_TOKEN, BOT_TOKEN.split(":")[1][:8], doc["webhook_secret"]]
    for bit in secret_bits:
        assert bit not in html
    assert not re.search(r"[•*]{4,}", html)  # not even masked
    assert tg.webhook_info(BOT_TOKEN)["url"] == webhook

    delete = await client.post(f"/admin/accounts/{doc['_id']}/delete", data={"csrf": csrf},
                               allow_redirects=False)
    assert delete.status == 302
    assert await services.db.accounts.count_documents({}) == 0
    actions = [d["action"] async for d in services.db.audit_log.find({})]
    assert "account.create" in actions and "account.delete" in actions
