"""CSRF for the server-rendered forms: the session's token, or a double-submit cookie.

Its own module (not login.py) because every page renders a form token, so the page helpers
(web/pages.py) need these functions, and login.py's handlers need the page helpers: keeping them
here is what lets the import graph run one way (csrf ← pages ← login, ui, ui_admin).
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from web.errors import ApiError

PRE_CSRF_COOKIE = "sb_pre"


def cookie_secure(request: web.Request) -> bool:
    """Cookies are `Secure` when the public URL is https (the scheme the browser sees)."""
    return str(request.app["services"].settings.server.public_url).startswith("https://")


def pre_csrf(request: web.Request) -> str:
    """The double-submit token for forms shown without a session (login, language)."""
    token = request.get("pre_csrf") or request.cookies.get(PRE_CSRF_COOKIE)
    if not token or len(token) < 16:
        token = secrets.token_urlsafe(24)
        request["pre_csrf_new"] = True
    request["pre_csrf"] = token
    return str(token)


def set_pre_csrf_cookie(request: web.Request, response: web.StreamResponse) -> None:
    if request.get("pre_csrf_new"):
        response.set_cookie(PRE_CSRF_COOKIE, request["pre_csrf"], httponly=True,
                            samesite="Lax", secure=cookie_secure(request), path="/")


def form_csrf(request: web.Request) -> str:
    """The token a page's forms carry: the session's, or the pre-session one."""
    session = request.get("session")
    if session is not None:
        return str(session["csrf"])
    return pre_csrf(request)


def check_form_csrf(request: web.Request, given: str | None) -> None:
    """Session forms: the session's token; forms without a session: the double-submit cookie."""
    if request.get("via") == "token":
        return
    session = request.get("session")
    expected = session["csrf"] if session is not None else request.cookies.get(PRE_CSRF_COOKIE)
    if not given or not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(403, "csrf", "missing or wrong CSRF token; reload the page")
