"""English and 简体中文: complete catalogues, negotiation, dates, no English left in zh-CN."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from bson import ObjectId

from connectors.telegram.sandbox import TelegramSandbox
from inbox.paging import make_sk
from tests.conftest import ADMIN_PASSWORD, BOT_TOKEN
from tests.helpers import inbound, ingest_settled
from tests.test_login import log_in
from web.app import Services
from web.i18n import (
    LANG_COOKIE,
    babel_locale,
    catalog,
    choose_locale,
    format_datetime,
    from_accept_language,
    plural_forms,
    plural_keys,
    zone,
)

WEB = Path(__file__).resolve().parent.parent / "web"
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
# words that are names, not UI text: products, platforms, keys, sample values, test data
ALLOWED = {"Switchboard", "Telegram", "Slack", "Webhook", "API", "Ctrl", "Enter", "BotFather",
           "ABC", "DEF", "English", "Asia", "Shanghai", "https", "http", "org", "boss", "zhang",
           "acme_support_bot", "xiaoming", "Acme", "X", "Europe", "Berlin", "HTTPS"}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _singular(keys: dict[str, str]) -> set[str]:
    en = catalog("en")
    plural = {f"{base}.{c}" for base in plural_keys(en) for c in plural_forms(base, keys)}
    return set(keys) - plural


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    """Product and connector strings alike; a plural has exactly the forms its language's
    CLDR rules use (English one/other, Chinese other)."""
    en, zh = catalog("en"), catalog("zh-CN")
    assert _singular(en) == _singular(zh), (_singular(en) ^ _singular(zh))
    for key in _singular(en):
        assert en[key].strip() and zh[key].strip(), key
        assert placeholders(en[key]) == placeholders(zh[key]), key
    assert plural_keys(en), "no plurals found: the pattern is wrong"
    for base in plural_keys(en):
        for locale in ("en", "zh-CN"):
            texts = catalog(locale)
            tags = set(babel_locale(locale).plural_form.tags) | {"other"}
            assert plural_forms(base, texts) == tags, (locale, base)
            for category in tags:
                assert placeholders(texts[f"{base}.{category}"]) == placeholders(
                    en[f"{base}.other"]), (locale, base, category)


def test_every_key_the_templates_and_script_use_exists() -> None:
    en = catalog("en")
    used: set[str] = set()
    for path in (WEB / "templates").glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*'([a-z_.]+)'""", path.read_text()))
        used |= {f"{k}.other" for k in re.findall(r"""\bt\.plural\(\s*'([a-z_.]+)'""",
                                                   path.read_text())}
    js = (WEB / "static" / "app.js").read_text()
    used |= set(re.findall(r"""\bt\(\s*"([a-z_.]+)\"""", js))
    used |= {f"{k}.other" for k in re.findall(r"""\btn\(\s*"([a-z_.]+)\"""", js)}
    assert used, "found no keys: the patterns are wrong"
    missing = sorted(k for k in used if k not in en and not k.endswith("."))
    assert missing == []


def test_accept_language_and_the_sticky_choice() -> None:
    assert from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert from_accept_language("en-GB,en;q=0.9,zh;q=0.8") == "en"
    assert from_accept_language("fr-FR, zh-TW;q=0.5, en;q=0.4") == "en"  # Traditional
    assert from_accept_language("en;q=0.2, zh-Hans;q=0.9") == "zh-CN"
    assert from_accept_language("fr, de") is None
    assert from_accept_language("zh;q=0, en") == "en"
    assert choose_locale({}, "zh-CN", None, "en") == "zh-CN"
    assert choose_locale({LANG_COOKIE: "en"}, "zh-CN", None, "en") == "en"
    assert choose_locale({LANG_COOKIE: "en"}, "en", {"locale": "zh-CN"}, "en") == "zh-CN"
    assert choose_locale({}, None, None, "zh-CN") == "zh-CN"


def test_dates_in_the_agents_locale_and_time_zone() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    at = datetime(2026, 11, 24, 18, 5, tzinfo=UTC)  # 02:05 on the 25th in Shanghai
    shanghai, utc = zone("Asia/Shanghai"), zone("UTC")
    assert format_datetime(at, "zh-CN", shanghai, now=now) == "02:05"
    assert format_datetime(at, "en", utc, now=now) == "Nov 24, 18:05"
    assert format_datetime(at, "zh-CN", utc, now=now) == "11月24日 18:05"
    assert format_datetime(at, "en", utc, style="full") == "Nov 24, 2026, 18:05"
    assert format_datetime(at, "zh-CN", shanghai, style="full") == "2026年11月25日 02:05"
    old = datetime(2024, 3, 1, tzinfo=UTC)
    assert format_datetime(old, "en", utc, now=now) == "Mar 1, 2024"
    assert format_datetime("2026-11-25T11:00:00.123456Z", "en", utc, now=now) == "11:00"
    assert zone("Not/AZone").key == "UTC"


class TextScan(HTMLParser):
    """Visible text and human-facing attributes, outside <script>/<style> and translate="no"."""

    SKIP = frozenset({"script", "style", "code"})
    ATTRS = frozenset({"placeholder", "title", "aria-label", "alt", "data-confirm", "data-none",
                       "data-done", "data-template"})
    VOID = frozenset({"input", "img", "br", "meta", "link", "hr", "source"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        skip = (bool(self.stack) and self.stack[-1]) or tag in self.SKIP or \
            values.get("translate") == "no"
        if not skip:
            self.texts += [v for k, v in attrs if k in self.ATTRS and v]
        if tag not in self.VOID:
            self.stack.append(skip)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not (self.stack and self.stack[-1]) and data.strip():
            self.texts.append(data.strip())


def english_left(html: str) -> list[str]:
    """Text in a zh-CN page that is English: a catalogue's English value, or Latin words not
    in ALLOWED. A connector's own zh-CN strings are taken as they are: the names of a
    platform's settings ("Bot User OAuth Token", "Socket Mode") stay in the words of its
    English-only console, and that is the connector's call, checked in its own package."""
    scan = TextScan()
    scan.feed(html)
    found = []
    zh = catalog("zh-CN")
    english = {v for k, v in catalog("en").items() if k in zh and v != zh[k]}
    theirs = sorted({v for k, v in zh.items() if k.startswith("platform.")}, key=len,
                    reverse=True)
    for text in scan.texts:
        if text in english and text not in theirs:
            found.append(text)
            continue
        for phrase in theirs:
            text = text.replace(phrase, "")
        text = re.sub(r"https?://\S+|@\w+|\{\w+\}", "", text)
        words = re.findall(r"[A-Za-z][A-Za-z_]+", text)
        if any(w not in ALLOWED for w in words):
            found.append(text)
    return found


async def zh_pages(client: TestClient, services: Services, admin: dict[str, Any],
                   tg: TelegramSandbox) -> dict[str, str]:
    await log_in(client, "boss", ADMIN_PASSWORD, **ZH)
    create = await client.post("/api/accounts", headers=admin["headers"], json={
        "platform": "telegram", "name": "客服机器人", "mode": "webhook",
        "api_base_url": tg.base_url, "credentials": {"bot_token": BOT_TOKEN}})
    assert create.status == 201, await create.text()
    account = await create.json()
    result = await ingest_settled(services.store,
                                  inbound(1, account=account["id"], text="你好，在吗？"))
    conv_id = result.conversation_id
    out_id = ObjectId()
    await services.db.messages.insert_one({
        "_id": out_id, "sk": make_sk(datetime.now(UTC), out_id),
        "conversation_id": conv_id, "account_id": account["id"], "platform": "telegram",
        "direction": "out", "agent_id": str(admin["doc"]["_id"]), "agent_name": "李经理",
        "author": {"name": "李经理"}, "text": "您好！", "rendered_text": "您好！\n— 李经理",
        "attachments": [{"type": "photo", "file_id": "f1"}, {"type": "voice"}],
        "platform_ts": datetime.now(UTC),
        "delivery": {"state": "failed", "attempts": 1, "error": {
            "code": "blocked", "message": "The customer blocked the bot."}}})
    pages: dict[str, str] = {}
    for path in ("/", "/?status=all", "/?who=mine", f"/conversations/{conv_id}",
                 "/admin/accounts", f"/admin/accounts?created={account['id']}",
                 "/admin/agents", "/admin/audit", "/logout", "/no-such-page",
                 "/conversations/000000000000000000000000"):
        resp = await client.get(path, headers=ZH)
        pages[path] = await resp.text()
    bad = await client.post("/admin/accounts", headers=ZH, data={
        "csrf": csrf_from(pages["/admin/accounts"]), "platform": "telegram",
        "name": "坏令牌", "cred.telegram.bot_token": "123456:" + "A" * 30,
        "api_base_url": tg.base_url, "action": "save"})
    pages["accounts: bad token"] = await bad.text()
    assert "平台拒绝了这些凭据" in pages["accounts: bad token"]
    agent_error = await client.post("/admin/agents", headers=ZH, data={
        "csrf": csrf_from(pages["/admin/agents"]), "login": "boss", "password": "12345678",
        "display_name": "重复"})
    pages["agents: duplicate"] = await agent_error.text()
    client.session.cookie_jar.clear()
    pages["/login"] = await (await client.get("/login", headers=ZH)).text()
    wrong = await log_in(client, "boss", "wrong password", **ZH)
    pages["/login: wrong"] = await wrong.text()
    assert "账号或密码错误" in pages["/login: wrong"]
    return pages


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def test_zh_cn_pages_have_no_untranslated_text(
        client: TestClient, services: Services, admin: dict[str, Any],
        tg: TelegramSandbox) -> None:
    pages = await zh_pages(client, services, admin, tg)
    assert '<html lang="zh-CN">' in pages["/"]
    assert "收件箱" in pages["/"] and "客户已屏蔽机器人。" in pages[next(
        p for p in pages if p.startswith("/conversations/") and not p.endswith("0" * 24))]
    problems = {path: english_left(html) for path, html in pages.items()}
    assert {p: left for p, left in problems.items() if left} == {}


async def test_language_switch_sticks(client: TestClient, services: Services,
                                      admin: dict[str, Any]) -> None:
    await log_in(client, "boss", ADMIN_PASSWORD)
    page = await client.get("/")
    assert "Inbox" in await page.text()
    resp = await client.post("/locale", data={"locale": "zh-CN", "next": "/admin/agents",
                                              "csrf": csrf_from(await page.text())},
                             allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/admin/agents"
    assert resp.cookies[LANG_COOKIE].value == "zh-CN"
    assert "收件箱" in await (await client.get("/")).text()
    assert (await services.agents.get(str(admin["doc"]["_id"])))["locale"] == "zh-CN"
    # and back, from the login page too (no session: the pre-session token)
    client.session.cookie_jar.clear()
    login = await client.get("/login", headers={"Accept-Language": "en"})
    assert "Sign in" in await login.text()
    resp = await client.post("/locale", data={"locale": "zh-CN", "next": "/login",
                                              "csrf": csrf_from(await login.text())},
                             allow_redirects=False)
    assert resp.status == 302
    again = await client.get("/login", headers={"Accept-Language": "en"})
    assert "登录 Switchboard" in await again.text()
    forged = await client.post("/locale", data={"locale": "en", "csrf": "nope"},
                               allow_redirects=False)
    assert forged.status == 403
