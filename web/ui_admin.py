"""Admin pages: channel accounts, agents, audit log. Every route needs the admin role.

Secrets are write-only: the account form is built from the connector's credential schema and
never filled back in, not even masked; the account list shows the webhook URL and health only.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import ValidationError

from inbox.agents import AgentExists
from inbox.paging import BadCursor
from web.api import AgentCreate, AgentPatch
from web.auth import client_address
from web.channels import platforms
from web.errors import ApiError
from web.ui import form, page, render
from web.views import account_json

ACCOUNT_ERRORS = {"invalid_auth", "cannot_connect", "unknown", "duplicate", "validation",
                  "unknown_platform"}


def _audit(request: web.Request, action: str, target: str, **details: Any) -> Any:
    return request.app["services"].store.audit(
        request["agent"]["login"], action, target, address=client_address(request),
        details=details)


# ---------------------------------------------------------------------- accounts


async def _accounts_page(request: web.Request, *, status: int = 200, error: dict[str, str]
                         | None = None, values: dict[str, str] | None = None,
                         ) -> web.Response:
    services = request.app["services"]
    docs = await services.store.list_accounts()
    accounts = [account_json(d, services.channels.webhook_url(d["platform"], str(d["_id"])))
                for d in docs]
    created = request.query.get("created", "")
    return render(request, "admin_accounts.html", status=status, accounts=accounts,
                  schemas=platforms(), error=error, values=values or {},
                  created=next((a for a in accounts if a["id"] == created), None))


@page("admin")
async def accounts(request: web.Request) -> web.StreamResponse:
    return await _accounts_page(request)


def account_body(data: dict[str, str]) -> dict[str, Any]:
    """The API body from the form: `cred.<platform>.<field>` inputs become `credentials`."""
    platform = data.get("platform", "")
    prefix = f"cred.{platform}."
    creds = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
    return {"platform": platform, "name": data.get("name", "").strip(),
            "mode": data.get("mode") or None,
            "api_base_url": data.get("api_base_url", "").strip() or None,
            "credentials": creds}


def _kept(data: dict[str, str]) -> dict[str, str]:
    """What the form may show again after an error: never a credential."""
    return {k: data.get(k, "") for k in ("platform", "name", "mode", "api_base_url")}


@page("admin")
async def account_create(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    data = await form(request)
    body = account_body(data)
    try:
        if data.get("action") == "test":
            info = await services.channels.test(body)
            return await _accounts_page(request, values=_kept(data), error={
                "code": "ok", "message": info.username or info.display_name or ""})
        doc = await services.channels.create(body, str(request["agent"]["_id"]))
    except ApiError as exc:
        if exc.code not in ACCOUNT_ERRORS:
            raise
        return await _accounts_page(request, status=exc.status, values=_kept(data),
                                    error={"code": exc.code, "message": exc.message})
    await _audit(request, "account.create", str(doc["_id"]), platform=doc["platform"],
                 name=doc["name"])
    raise web.HTTPFound(f"/admin/accounts?created={doc['_id']}")


@page("admin")
async def account_delete(request: web.Request) -> web.StreamResponse:
    await form(request)
    account_id = request.match_info["id"]
    await request.app["services"].channels.delete(account_id)
    await _audit(request, "account.delete", account_id)
    raise web.HTTPFound("/admin/accounts")


# ---------------------------------------------------------------------- agents


async def _agents_page(request: web.Request, *, status: int = 200,
                       error: str | None = None, notice: str | None = None,
                       values: dict[str, str] | None = None) -> web.Response:
    docs = await request.app["services"].agents.list()
    return render(request, "admin_agents.html", status=status, agents=docs, error=error,
                  notice=notice or request.query.get("notice"), values=values or {})


@page("admin")
async def agents(request: web.Request) -> web.StreamResponse:
    return await _agents_page(request)


def _bad_timezone(name: str | None) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return True
    return False


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'form'}: {err['msg']}"


@page("admin")
async def agent_create(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    data = await form(request)
    fields = {k: data.get(k, "").strip() for k in
              ("login", "display_name", "title", "role", "timezone", "locale")}
    try:
        body = AgentCreate.model_validate(
            {k: v for k, v in fields.items() if v} | {"password": data.get("password", "")})
    except ValidationError as exc:
        return await _agents_page(request, status=400, error=_validation_message(exc),
                                  values=fields)
    if _bad_timezone(body.timezone):
        return await _agents_page(request, status=400, error="agents.error.timezone",
                                  values=fields)
    try:
        doc = await services.agents.create(
            body.login, display_name=body.display_name, password=body.password,
            title=body.title, role=body.role, timezone=body.timezone, locale=body.locale)
    except AgentExists:
        return await _agents_page(request, status=409, error="agents.error.exists",
                                  values=fields)
    await _audit(request, "agent.create", doc["login"], role=doc["role"],
                 display_name=doc["display_name"])
    raise web.HTTPFound("/admin/agents?notice=created")


@page("admin")
async def agent_update(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    data = await form(request)
    target = await services.agents.get(request.match_info["id"])
    is_self = str(target["_id"]) == str(request["agent"]["_id"])
    changes: dict[str, Any] = {}
    action = data.get("action", "save")
    if action in ("deactivate", "activate"):
        changes["active"] = action == "activate"
    else:
        for key in ("display_name", "title", "role", "timezone", "locale"):
            if key in data:
                changes[key] = data[key].strip() or None
        if data.get("password"):
            changes["password"] = data["password"]
    try:
        patch = AgentPatch.model_validate(changes)
    except ValidationError as exc:
        return await _agents_page(request, status=400, error=_validation_message(exc))
    changes = {k: getattr(patch, k) for k in patch.model_fields_set}
    if _bad_timezone(changes.get("timezone")):
        return await _agents_page(request, status=400, error="agents.error.timezone")
    if changes.get("display_name", "x") is None or changes.get("role", "x") is None:
        return await _agents_page(request, status=400, error="agents.error.required")
    if is_self and (changes.get("active") is False or changes.get("role") == "agent"):
        return await _agents_page(request, status=400, error="agents.error.self")
    await services.agents.update(str(target["_id"]), changes)
    shown = {k: "changed" if k == "password" else v for k, v in changes.items()}
    await _audit(request, "agent.update", target["login"], **shown)
    raise web.HTTPFound("/admin/agents?notice=saved")


# ---------------------------------------------------------------------- audit


@page("admin")
async def audit(request: web.Request) -> web.StreamResponse:
    try:
        docs, older = await request.app["services"].store.list_audit(
            limit=100, cursor=request.query.get("cursor") or None)
    except BadCursor:
        raise web.HTTPFound("/admin/audit") from None
    return render(request, "admin_audit.html", entries=docs, older=older)


@page("admin")
async def admin_home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/admin/accounts")


def setup(app: web.Application) -> None:
    app.router.add_get("/admin", admin_home)
    app.router.add_get("/admin/accounts", accounts)
    app.router.add_post("/admin/accounts", account_create)
    app.router.add_post("/admin/accounts/{id}/delete", account_delete)
    app.router.add_get("/admin/agents", agents)
    app.router.add_post("/admin/agents", agent_create)
    app.router.add_post("/admin/agents/{id}", agent_update)
    app.router.add_get("/admin/audit", audit)
