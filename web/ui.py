"""The server-rendered UI: Jinja2 pages (autoescaped), static files, the language switch.

Pages read through the same store and services as the JSON API; state changes from pages are
forms carrying the session's CSRF token, or `fetch` calls to the API with `X-CSRF-Token`.
JavaScript (static/app.js) only adds live updates and the reply box; it writes customer text
with `textContent`, never as HTML.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from connectors.registry import CONNECTORS
from inbox.store import UNASSIGNED, NotFound
from web import events, login
from web.errors import ApiError
from web.i18n import (
    LANG_COOKIE,
    LANGUAGE_NAMES,
    LOCALES,
    Translator,
    choose_locale,
    format_datetime,
    normalise_locale,
    zone,
)
from web.login import check_form_csrf, form_csrf, safe_next, set_pre_csrf_cookie
from web.views import conversation_json, message_json

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
ENV_KEY: web.AppKey[jinja2.Environment] = web.AppKey("ui_env", jinja2.Environment)
STATUS_FILTERS = ("open", "pending", "resolved", "all")
WHO_FILTERS = ("", "mine", "unassigned")
PAGE_SIZE = 50

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static_versions() -> dict[str, str]:
    out = {}
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            out[path.relative_to(STATIC_DIR).as_posix()] = digest
    return out


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    versions = _static_versions()
    env.globals["static"] = lambda name: f"/static/{name}?v={versions.get(name, '0')}"
    return env


def _ctx(request: web.Request) -> dict[str, Any]:
    services = request.app["services"]
    agent = request.get("agent")
    ui = services.settings.ui
    locale = choose_locale(request.cookies, request.headers.get("Accept-Language"), agent,
                           ui.default_locale)
    tz = zone((agent or {}).get("timezone"), ui.default_timezone)
    t = Translator(locale)

    def fmt(value: Any, style: str = "short") -> str:
        return format_datetime(value, locale, tz, style=style)

    return {"t": t, "locale": locale, "tz": tz.key, "fmt": fmt, "agent": agent,
            "is_admin": bool(agent and agent.get("role") == "admin"),
            "csrf": form_csrf(request), "path": request.path_qs, "active": "",
            "languages": [(code, LANGUAGE_NAMES[code]) for code in LOCALES],
            "brand": services.settings.identity.brand,
            "js_strings": {k: v for k, v in t.messages.items() if k.startswith(JS_PREFIXES)},
            "blank_conversation": BLANK_CONVERSATION, "blank_message": BLANK_MESSAGE,
            "delivery_error": lambda err: delivery_error(t, err),
            "cred_text": lambda platform, f, part: credential_text(t, platform, f, part),
            "account_result": lambda err: account_result(t, err),
            "audit_action": lambda action: t(f"audit.action.{action}")
            if t.has(f"audit.action.{action}") else action,
            "attachment_label": lambda kind: t(f"attachment.{kind}")
            if t.has(f"attachment.{kind}") else t("attachment.file"),
            "size": human_size}


JS_PREFIXES = ("js.", "live.", "status.", "delivery.", "platform.", "attachment.",
               "accounts.error.", "accounts.test_ok", "conv.edited", "conv.as_sent",
               "conv.unassigned")
BLANK_CONVERSATION: dict[str, Any] = {
    "id": "", "platform": "", "account_id": "", "kind": "", "status": "", "assignee_id": None,
    "title": None, "contact": None, "last_message_at": None, "preview": "", "unread": 0}
BLANK_MESSAGE: dict[str, Any] = {
    "id": "", "conversation_id": "", "direction": "out", "text": "", "rendered_text": None,
    "author": {"name": "", "handle": None}, "agent_id": None, "agent_name": None,
    "platform_ts": None, "edited": False, "attachments": [],
    "delivery": {"state": "", "attempts": 0, "error": None}}


def delivery_error(t: Translator, error: Any) -> str:
    """A delivery failure in the agent's language when we know its code, else as stored."""
    if not error:
        return ""
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        if code and t.has(f"delivery.error.{code}"):
            return t(f"delivery.error.{code}")
        return str(error.get("message") or code)
    return str(error)


def credential_text(t: Translator, platform: str, field: dict[str, Any], part: str) -> str:
    key = f"cred.{platform}.{field['name']}" + (".help" if part == "help" else "")
    if t.has(key):
        return t(key)
    return str(field.get(part) or "")


def account_result(t: Translator, error: dict[str, str]) -> str:
    code = error.get("code", "")
    if code == "ok":
        return t("accounts.test_ok", name=error.get("message") or "")
    if t.has(f"accounts.error.{code}"):
        return t(f"accounts.error.{code}")
    return t("accounts.error.other", message=error.get("message", ""))


def human_size(size: int | None) -> str:
    if not size:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def render(request: web.Request, template: str, *, status: int = 200,
           **values: Any) -> web.Response:
    env = request.app[ENV_KEY]
    ctx = _ctx(request)
    ctx.update(values)
    html = env.get_template(template).render(ctx)
    response = web.Response(text=html, content_type="text/html", status=status,
                            headers={"Cache-Control": "no-store"})
    set_pre_csrf_cookie(request, response)
    return response


def page(role: str = "agent") -> Callable[[Handler], Handler]:
    """A page needing a login (redirect to /login) and maybe the admin role (403 page)."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            agent = request["agent"]
            if agent is None:
                raise web.HTTPFound(f"/login?next={_quote(request.path_qs)}")
            if role == "admin" and agent.get("role") != "admin":
                return render(request, "error.html", status=403, code=403,
                              message_key="error.forbidden")
            try:
                return await handler(request)
            except NotFound:
                return render(request, "error.html", status=404, code=404,
                              message_key="error.not_found")
            except ApiError as exc:
                if exc.code != "csrf":
                    raise
                return render(request, "error.html", status=403, code=403,
                              message_key="error.csrf")

        return guarded

    return wrap


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


async def form(request: web.Request) -> dict[str, str]:
    """The posted form, after the CSRF check."""
    data = await request.post()
    check_form_csrf(request, str(data.get("csrf", "")))
    return {k: str(v) for k, v in data.items() if isinstance(v, str)}


def platform_names() -> list[str]:
    return sorted(CONNECTORS)


# ---------------------------------------------------------------------- inbox


@page()
async def inbox(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    q = request.query
    status = q.get("status", "open")
    status = status if status in STATUS_FILTERS else "open"
    channel = q.get("channel", "")
    channel = channel if channel in CONNECTORS else ""
    who = q.get("who", "")
    who = who if who in WHO_FILTERS else ""
    me = str(request["agent"]["_id"])
    assignee = {"mine": me, "unassigned": UNASSIGNED}.get(who)
    since = await events.hub_of(request.app).mark()
    try:
        docs, next_cursor = await services.store.list_conversations(
            status=None if status == "all" else status, platform=channel or None,
            assignee=assignee, limit=PAGE_SIZE, cursor=q.get("cursor") or None)
    except ValueError:
        raise web.HTTPFound("/") from None
    contacts = await services.store.contacts_by_id([d.get("contact_id") for d in docs])
    rows = [conversation_json(d, contacts.get(d.get("contact_id") or "")) for d in docs]
    accounts = {str(a["_id"]): a["name"] for a in await services.store.list_accounts()}
    filters = {"status": status, "channel": channel, "who": who}
    return render(request, "inbox.html", rows=rows, accounts=accounts, filters=filters,
                  next_cursor=next_cursor, since=since or "", me=me,
                  statuses=STATUS_FILTERS, platforms=platform_names(),
                  first_page=not q.get("cursor"), query=_filter_query)


def _filter_query(filters: dict[str, str], **changes: str) -> str:
    from urllib.parse import urlencode

    merged = {**filters, **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v})


# ---------------------------------------------------------------------- conversation


@page()
async def conversation(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    conv_id = request.match_info["id"]
    since = await events.hub_of(request.app).mark()
    doc = await services.store.mark_read(conv_id)
    contacts = await services.store.contacts_by_id([doc.get("contact_id")])
    conv = conversation_json(doc, contacts.get(doc.get("contact_id") or ""))
    msgs, older = await services.store.list_messages(
        conv_id, limit=PAGE_SIZE, cursor=request.query.get("before") or None)
    messages = [message_json(m) for m in reversed(msgs)]
    try:
        account = await services.store.get_account(doc["account_id"])
    except NotFound:
        account = None
    everyone = await services.agents.list()
    agents = [a for a in everyone if a.get("active")]
    names = {str(a["_id"]): a["display_name"] for a in everyone}
    agent = request["agent"]
    cls = CONNECTORS.get(doc["platform"])
    compose = {
        "identity": f"{agent['display_name']} · {services.settings.identity.brand}",
        "text_limit": getattr(cls, "text_limit", 4096),
    }
    return render(request, "conversation.html", conv=conv, messages=messages,
                  older=older, account=account, agents=agents, names=names,
                  compose=compose, since=since or "", me=str(agent["_id"]))


@page()
async def conversation_status(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    status = data.get("status", "")
    if status not in ("open", "pending", "resolved"):
        raise ApiError(400, "validation", "status: open, pending or resolved")
    conv_id = request.match_info["id"]
    await request.app["services"].store.update_conversation(conv_id, {"status": status})
    raise web.HTTPFound(f"/conversations/{conv_id}")


@page()
async def conversation_assign(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    data = await form(request)
    target = data.get("assignee_id", "")
    conv_id = request.match_info["id"]
    if target == "me":
        assignee: str | None = str(request["agent"]["_id"])
    elif target in ("", "none"):
        assignee = None
    else:
        found = await services.agents.get(target)
        if not found.get("active"):
            raise ApiError(400, "validation", "assignee_id: this agent is deactivated")
        assignee = str(found["_id"])
    await services.store.update_conversation(conv_id, {"assignee_id": assignee})
    raise web.HTTPFound(f"/conversations/{conv_id}")


# ---------------------------------------------------------------------- language


async def switch_language(request: web.Request) -> web.StreamResponse:
    """The language switch: a cookie (sticks for the browser) and the agent's own setting."""
    data = await request.post()
    check_form_csrf(request, str(data.get("csrf", "")))
    locale = normalise_locale(str(data.get("locale", ""))) or "en"
    response = web.HTTPFound(safe_next(str(data.get("next", "/"))))
    response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, samesite="Lax",
                        httponly=True, path="/", secure=login.cookie_secure(request))
    agent = request["agent"]
    if agent is not None and request.get("via") == "session":
        await request.app["services"].agents.update(str(agent["_id"]), {"locale": locale})
    raise response


@web.middleware
async def html_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown pages get the UI's 404 page; API and webhook paths keep their JSON errors."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith(("/api/", "/webhooks/", "/static/")) or \
                request.method != "GET":
            raise
        return render(request, "error.html", status=404, code=404,
                      message_key="error.not_found")


def setup(app: web.Application) -> None:
    from web import ui_admin

    app[ENV_KEY] = make_env()
    app.middlewares.append(html_not_found)
    login.setup(app)
    events.setup(app)
    app.router.add_get("/", inbox)
    app.router.add_get("/conversations/{id}", conversation)
    app.router.add_post("/conversations/{id}/status", conversation_status)
    app.router.add_post("/conversations/{id}/assign", conversation_assign)
    app.router.add_post("/locale", switch_language)
    ui_admin.setup(app)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
