"""Admin pages: channel accounts, agents, audit log. Every route needs the admin role.

Secrets are write-only: the account form is built from the connector's credential schema and
never filled back in, not even masked; the account list shows the webhook URL and health only.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import ValidationError

from connectors.channels import AccountError, platforms
from inbox.agents import AgentExists
from inbox.paging import BadCursor
from web.api_accounts import account_view
from web.auth import client_address
from web.errors import ApiError, account_api_error
from web.pages import form, page, render
from web.schemas import AgentCreate, AgentPatch

ACCOUNT_ERRORS = {"invalid_auth", "cannot_connect", "unknown", "duplicate", "validation",
                  "unknown_platform", "other_account"}


def _audit(request: web.Request, action: str, target: str, **details: Any) -> Any:
    return request.app["services"].store.audit(
        request["agent"]["login"], action, target, address=client_address(request),
        details=details)


# ---------------------------------------------------------------------- accounts


async def _accounts_page(request: web.Request, *, status: int = 200, error: dict[str, str]
                         | None = None, values: dict[str, str] | None = None,
                         ) -> web.Response:
    services = request.app["services"]
    accounts = [await account_view(services, d) for d in await services.accounts.list()]
    created = request.query.get("created", "")
    schemas = platforms()
    return render(request, "admin_accounts.html", status=status, accounts=accounts,
                  schemas=schemas, error=error, values=values or {},
                  credentials_of={s["platform"]: s["credentials"] for s in schemas},
                  updated=request.query.get("updated", ""),
                  created=next((a for a in accounts if a["id"] == created), None))


@page("admin")
async def accounts(request: web.Request) -> web.StreamResponse:
    return await _accounts_page(request)


def account_body(data: dict[str, str],
                 schemas: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The API body from the form: `cred.<platform>.<field>` inputs become `credentials`,
    `opt.<platform>.<field>` inputs `options`, typed as the connector declares them (an
    unticked checkbox sends nothing, so a boolean option absent from the form is false)."""
    platform = data.get("platform", "")
    prefix = f"cred.{platform}."
    creds = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
    schema = next((p for p in schemas if p["platform"] == platform), {}) if schemas else {}
    options = {o["name"]: _option_value(o, data.get(f"opt.{platform}.{o['name']}"))
               for o in schema.get("options") or ()}
    body: dict[str, Any] = {"platform": platform, "name": data.get("name", "").strip(),
                            "mode": data.get("mode") or None,
                            "api_base_url": data.get("api_base_url", "").strip() or None,
                            "credentials": creds}
    if options:
        body["options"] = options
    return body


def _option_value(option: dict[str, Any], raw: str | None) -> Any:
    if option.get("type") == "bool":
        return raw in ("on", "true", "1")
    raw = (raw or "").strip()
    if option.get("type") in ("int", "float") and raw:
        try:
            number = float(raw)
        except ValueError:
            return raw  # the account service refuses it with a message naming the field
        return int(number) if option["type"] == "int" and number.is_integer() else number
    return raw or None


def _kept(data: dict[str, str]) -> dict[str, str]:
    """What the form may show again after an error: never a credential."""
    kept = {k: data.get(k, "") for k in ("platform", "name", "mode", "api_base_url")}
    return kept | {k: v for k, v in data.items() if k.startswith("opt.")}


@page("admin")
async def account_create(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    data = await form(request)
    body = account_body(data, platforms())
    try:
        if data.get("action") == "test":
            info = await services.channels.test(body)
            return await _accounts_page(request, values=_kept(data), error={
                "code": "ok", "message": info.username or info.display_name or ""})
        doc = await services.channels.create(body, str(request["agent"]["_id"]))
    except (ApiError, AccountError) as exc:
        err = account_api_error(exc) if isinstance(exc, AccountError) else exc
        if err.code not in ACCOUNT_ERRORS and not isinstance(exc, AccountError):
            raise
        return await _accounts_page(request, status=err.status, values=_kept(data),
                                    error={"code": err.code, "message": err.message})
    await _audit(request, "account.create", str(doc["_id"]), platform=doc["platform"],
                 name=doc["name"])
    raise web.HTTPFound(f"/admin/accounts?created={doc['_id']}")


@page("admin")
async def account_credentials(request: web.Request) -> web.StreamResponse:
    """New credentials for an account (what `needs_reauth` asks for): tested first, they must
    be the same platform account's; the replies that waited for them go out."""
    services = request.app["services"]
    data = await form(request)
    account_id = request.match_info["id"]
    doc = await services.accounts.get(account_id)
    prefix = f"cred.{doc['platform']}."
    creds = {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix) and v}
    try:
        if not creds:
            raise AccountError("validation", "enter the new credentials")
        await services.channels.update(account_id, {"credentials": creds})
    except AccountError as exc:
        err = account_api_error(exc)
        return await _accounts_page(request, status=err.status,
                                    error={"code": err.code, "message": err.message,
                                           "platform": doc["platform"]})
    if services.worker is not None:
        services.worker.wake()
    await _audit(request, "account.update", account_id, credentials="changed")
    raise web.HTTPFound(f"/admin/accounts?updated={account_id}")


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
    if any(key in changes and changes[key] is None for key in ("display_name", "role")):
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
    app.router.add_post("/admin/accounts/{id}/credentials", account_credentials)
    app.router.add_get("/admin/agents", agents)
    app.router.add_post("/admin/agents", agent_create)
    app.router.add_post("/admin/agents/{id}", agent_update)
    app.router.add_get("/admin/audit", audit)
