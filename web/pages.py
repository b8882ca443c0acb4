"""What every server-rendered page needs: the Jinja environment, the template context, `render`,
the `page` guard, the CSRF-checked `form`, and the small text helpers templates call.

Its own module so the page modules (ui.py, ui_admin.py, login.py) import it and not each other:
before, login.py and ui_admin.py imported ui.py for `render` while ui.py imported them to
register their routes, a cycle held together by imports inside functions. This module imports
none of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from inbox.store import NotFound
from web.csrf import check_form_csrf, form_csrf, set_pre_csrf_cookie
from web.errors import ApiError
from web.i18n import (
    CONNECTOR_PREFIX,
    LANGUAGE_NAMES,
    LOCALES,
    Translator,
    choose_locale,
    format_datetime,
    zone,
)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
ENV_KEY: web.AppKey[jinja2.Environment] = web.AppKey("ui_env", jinja2.Environment)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# what app.js may say: keys under these prefixes go into the page as JSON
JS_PREFIXES = ("js.", "presence.", "live.", "status.", "delivery.", CONNECTOR_PREFIX, "attachment.",
               "accounts.error.", "accounts.test_ok", "conv.edited", "conv.as_sent",
               "conv.unassigned", "inbox.unread_count.", "canned.js.")
BLANK_CONVERSATION: dict[str, Any] = {
    "id": "", "platform": "", "account_id": "", "kind": "", "status": "", "assignee_id": None,
    "title": None, "contact": None, "last_message_at": None, "preview": "", "unread": 0}
BLANK_MESSAGE: dict[str, Any] = {
    "id": "", "conversation_id": "", "direction": "out", "text": "", "rendered_text": None,
    "author": {"name": "", "handle": None}, "agent_id": None, "agent_name": None,
    "platform_ts": None, "edited": False, "attachments": [], "deleted_at": None, "html": None,
    "full_text": None,
    "delivery": {"state": "", "attempts": 0, "error": None, "alternatives": []}}


def static_versions() -> dict[str, str]:
    """A short content hash per static file, for cache-busting `?v=` URLs."""
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
    versions = static_versions()
    env.globals["static"] = lambda name: f"/static/{name}?v={versions.get(name, '0')}"
    return env


# ---------------------------------------------------------------------- text helpers


def platform_key(platform: str, key: str) -> str:
    """Where a connector's string lives in the catalogue (see web/i18n.py)."""
    return f"{CONNECTOR_PREFIX}{platform}.{key}"


HUES = 8


def platform_hue(platform: str) -> int:
    """One of HUES badge colours (app.css), the same for a platform on every page and in
    app.js `hueOf`; derived from the name, so no stylesheet names a platform."""
    return sum(ord(c) for c in platform) % HUES


def platform_name(t: Translator, platform: str) -> str:
    """The connector's own name for its platform, or its registry name if it gave none."""
    return t.first([platform_key(platform, "name")], platform) if platform else ""


def _code_of(error: Any) -> tuple[str, str]:
    if isinstance(error, Mapping):
        return str(error.get("code") or ""), str(error.get("message") or "")
    return "", str(error or "")


def delivery_error(t: Translator, error: Any, platform: str = "") -> str:
    """A delivery failure in the agent's language: the connector's sentence for its code, then
    the generic one (timeouts, a removed account), else the stored message as it is."""
    code, message = _code_of(error)
    if not code:
        return message
    keys = [platform_key(platform, f"error.{code}")] if platform else []
    # a sentence may quote what the platform said ({reason}, {message}) or a figure it gave
    values: dict[str, Any] = {"reason": message, "message": message}
    if isinstance(error, Mapping):
        values.update({k: v for k, v in error.items() if isinstance(v, str | int | float)})
    try:
        return t.first([*keys, f"delivery.error.{code}"], message or code, **values)
    except (KeyError, IndexError, ValueError):  # a placeholder the error did not carry
        return message or code


def account_result(t: Translator, error: Mapping[str, str], platform: str = "") -> str:
    """The outcome of testing or saving an account: the connector's sentence for its error
    code first, then the generic account errors."""
    code = error.get("code", "")
    if code == "ok":
        return t("accounts.test_ok", name=error.get("message") or "")
    keys = [platform_key(platform, f"error.{code}")] if platform and code else []
    return t.first([*keys, f"accounts.error.{code}"],
                   t("accounts.error.other", message=error.get("message", "")))


def credential_text(t: Translator, platform: str, field: Mapping[str, Any], part: str) -> str:
    """A credential field's label (part "label") or help (part "help"), from the connector's
    strings, else as its schema declares it (English)."""
    key = platform_key(platform, f"cred.{field['name']}") + (".help" if part == "help" else "")
    return t.first([key], str(field.get(part) or ""))


def mode_text(t: Translator, platform: str, mode: str, part: str = "label") -> str:
    """A mode's label or help: the connector's words (its modes are its own vocabulary)."""
    suffix = ".help" if part == "help" else ""
    return t.first([platform_key(platform, f"mode.{mode}{suffix}")],
                   mode if part == "label" else "")


def notice_text(t: Translator, platform: str, notice: Mapping[str, Any]) -> str:
    """An account notice: the connector's string named by its key (filled with its values),
    else the API's text."""
    key = str(notice.get("key") or "")
    default = str(notice.get("text") or "")
    try:
        return t.first([platform_key(platform, key)] if key else [], default,
                       **dict(notice.get("values") or {}))
    except (KeyError, IndexError, ValueError):  # a string wanting a value the notice lacks
        return default


def human_size(size: int | None) -> str:
    if not size:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def _label(t: Translator, prefix: str, value: str) -> str:
    return t.first([f"{prefix}{value}"], value)


# ---------------------------------------------------------------------- rendering


def context(request: web.Request) -> dict[str, Any]:
    """The values every template may use: the agent, their language and time zone, helpers."""
    services = request.app["services"]
    agent = request.get("agent")
    ui = services.settings.ui
    locale = choose_locale(request.cookies, request.headers.get("Accept-Language"), agent,
                           ui.default_locale)
    tz = zone((agent or {}).get("timezone"), ui.default_timezone)
    t = Translator(locale)

    def fmt(value: Any, style: str = "short") -> str:
        return format_datetime(value, locale, tz, style="full" if style == "full" else "short")

    return {"t": t, "locale": locale, "tz": tz.key, "fmt": fmt, "agent": agent,
            "is_admin": bool(agent and agent.get("role") == "admin"),
            "csrf": form_csrf(request), "path": request.path_qs, "active": "",
            "languages": [(code, LANGUAGE_NAMES[code]) for code in LOCALES],
            "brand": services.settings.identity.brand,
            "failed_count": request.get("failed_count", 0),
            "is_lead": request.get("is_lead", False),
            "notice_count": request.get("notice_count", 0),
            "js_strings": t.subset(JS_PREFIXES),
            "blank_conversation": BLANK_CONVERSATION, "blank_message": BLANK_MESSAGE,
            "platform_name": lambda platform: platform_name(t, platform),
            "platform_hue": platform_hue,
            "platform_text": lambda platform, key, default="": t.first(
                [platform_key(platform, key)], default),
            "delivery_error": lambda err, platform="": delivery_error(t, err, platform),
            "cred_text": lambda platform, f, part: credential_text(t, platform, f, part),
            "mode_text": lambda platform, mode, part="label": mode_text(t, platform, mode, part),
            "notice_text": lambda platform, notice: notice_text(t, platform, notice),
            "account_result": lambda err, platform="": account_result(t, err, platform),
            "alternative_label": lambda platform, name: t.first(
                [platform_key(platform, f"alternative.{name}"), f"delivery.alternative.{name}"],
                name),
            "audit_action": lambda action: _label(t, "audit.action.", action),
            "attachment_label": lambda kind: t.first([f"attachment.{kind}"],
                                                     t("attachment.file")),
            "size": human_size}


def render(request: web.Request, template: str, *, status: int = 200,
           **values: Any) -> web.Response:
    env = request.app[ENV_KEY]
    ctx = context(request)
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
                raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")
            if role == "admin" and agent.get("role") != "admin":
                return render(request, "error.html", status=403, code=403,
                              message_key="error.forbidden")
            try:
                from web.api_search import failed_count  # the navigation's badge

                request["failed_count"] = await failed_count(request.app["services"])
                from web.api_measures import nav_extras  # reports link, notifications badge

                await nav_extras(request)
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


async def form(request: web.Request) -> dict[str, str]:
    """The posted form, after the CSRF check."""
    data = await request.post()
    check_form_csrf(request, str(data.get("csrf", "")))
    return {k: str(v) for k, v in data.items() if isinstance(v, str)}


def safe_next(value: str | None) -> str:
    """Only a path on this site: `/x`, never `//host` or `/\\host` or a scheme."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(c in value for c in "\r\n\t"):
        return "/"
    return value
