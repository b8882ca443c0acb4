"""Login and logout for the browser UI.

- Failed attempts are recorded in `login_attempts` (TTL index) under two keys, the login and the
  client address; either reaching `security.login_attempts_per_15min` blocks further tries for
  that key for the rest of the window. The answer never says which part was wrong.
- A login always creates a new session id (the old cookie's session is ended: no fixation);
  logout deletes the session server-side, not only the cookie.
- The login form is protected against login CSRF with a double-submit cookie, since there is
  no session yet to hold a token.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from web.auth import SESSION_COOKIE, client_address
from web.csrf import (
    PRE_CSRF_COOKIE,
    check_form_csrf,
    cookie_secure,
    form_csrf,
    pre_csrf,
    set_pre_csrf_cookie,
)
from web.pages import render, safe_next

# the form CSRF helpers lived here; they are re-exported for the modules that import them
__all__ = ["PRE_CSRF_COOKIE", "WINDOW", "LoginLimiter", "check_form_csrf", "cookie_secure",
           "form_csrf", "pre_csrf", "safe_next", "set_pre_csrf_cookie", "setup"]

WINDOW = timedelta(minutes=15)


class LoginLimiter:
    def __init__(self, db: Any, limit: int) -> None:
        self.db = db
        self.limit = limit

    @staticmethod
    def keys(login: str, address: str) -> list[str]:
        return [f"login:{login.strip().lower()[:128]}", f"addr:{address}"]

    async def blocked(self, login: str, address: str) -> bool:
        since = datetime.now(UTC) - WINDOW
        for key in self.keys(login, address):
            count = await self.db.login_attempts.count_documents(
                {"key": key, "at": {"$gt": since}}, limit=self.limit)
            if count >= self.limit:
                return True
        return False

    async def failed(self, login: str, address: str) -> None:
        now = datetime.now(UTC)
        await self.db.login_attempts.insert_many(
            [{"key": key, "at": now} for key in self.keys(login, address)])

    async def succeeded(self, login: str) -> None:
        await self.db.login_attempts.delete_many({"key": self.keys(login, "")[0]})


async def login_page(request: web.Request) -> web.StreamResponse:
    if request["agent"] is not None and request.get("via") == "session":
        raise web.HTTPFound(safe_next(request.query.get("next")))
    return render(request, "login.html", next=safe_next(request.query.get("next")),
                  login="", error=None)


async def login_submit(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    form = await request.post()
    login = str(form.get("login", "")).strip()[:128]
    password = str(form.get("password", ""))[:1024]
    next_path = safe_next(str(form.get("next", "/")))
    given = str(form.get("csrf", ""))
    expected = request.cookies.get(PRE_CSRF_COOKIE, "")
    if not given or not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return render(request, "login.html", status=403, next=next_path, login=login,
                      error="login.error.expired")
    limiter = LoginLimiter(services.db, services.settings.security.login_attempts_per_15min)
    address = client_address(request)
    if await limiter.blocked(login, address):
        return render(request, "login.html", status=429, next=next_path, login=login,
                      error="login.error.too_many")
    agent = await services.agents.verify_password(login, password) if login and password \
        else None
    if agent is None:
        await limiter.failed(login, address)
        return render(request, "login.html", status=401, next=next_path, login=login,
                      error="login.error.wrong")
    await limiter.succeeded(login)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await services.agents.end_session(old)
    days = services.settings.security.session_days
    token, _ = await services.agents.create_session(str(agent["_id"]), days)
    await services.store.audit(agent["login"], "session.login", agent["login"], address=address)
    response = web.HTTPFound(next_path)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax",
                        secure=cookie_secure(request), path="/", max_age=days * 86400)
    response.del_cookie(PRE_CSRF_COOKIE, path="/")
    raise response


async def logout_page(request: web.Request) -> web.StreamResponse:
    """GET /logout changes nothing: it shows the button (a POST with the CSRF token)."""
    if request["agent"] is None:
        raise web.HTTPFound("/login")
    return render(request, "logout.html")


async def logout_submit(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    response = web.HTTPFound("/login")
    if request["agent"] is not None and request.get("via") == "session":
        form = await request.post()
        check_form_csrf(request, str(form.get("csrf", "")))
        await services.agents.end_session(request.cookies[SESSION_COOKIE])
        await services.store.audit(request["agent"]["login"], "session.logout",
                                   request["agent"]["login"], address=client_address(request))
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def setup(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_get("/logout", logout_page)
    app.router.add_post("/logout", logout_submit)
