"""Channel accounts in the JSON API (admin): list, test, create, change, delete.

Secrets are write-only: the API takes credentials and never returns them; an account's JSON
shows its health (`status`, `last_error`), what its connector wants the admin to know
(`notices`), this month's usage and the webhook URL to give the platform.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connectors.base import Notice
from connectors.registry import CONNECTORS
from inbox.db import Doc
from web.auth import client_address, requires
from web.errors import ApiError, read_json
from web.views import account_json

routes = web.RouteTableDef()


async def account_body(request: web.Request) -> dict[str, Any]:
    """An account body with the types connectors.channels relies on: found by schemathesis,
    a list as `platform` reached a dict lookup and answered 500."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ApiError(400, "validation", "the body must be a JSON object")
    for key in ("platform", "name", "api_base_url", "mode"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ApiError(400, "validation", f"{key}: must be a string", field=key)
    for key in ("credentials", "options"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ApiError(400, "validation", f"{key}: must be an object", field=key)
    return data


def notice_text(platform: str, notice: Notice, locale: str = "en") -> str:
    """A connector's notice in words, from its own strings."""
    cls = CONNECTORS.get(platform)
    strings = getattr(cls, "strings", {}) or {}
    table = strings.get(locale) or strings.get("en") or {}
    text = table.get(notice.key) or strings.get("en", {}).get(notice.key) or notice.key
    try:
        return text.format_map(dict(notice.values))
    except (KeyError, ValueError):
        return text


async def account_view(services: Any, doc: Doc, locale: str = "en") -> dict[str, Any]:
    notices = await services.channels.notices(doc)
    snapshot = await services.channels.snapshot(doc)
    return account_json(doc, services.channels.webhook_url(doc), notices=[
        {"key": n.key, "level": n.level, "values": dict(n.values),
         "text": notice_text(doc["platform"], n, locale)} for n in notices],
        usage=snapshot["usage"])


def _services(request: web.Request) -> Any:
    return request.app["services"]


async def _audit(request: web.Request, action: str, target: str, **details: Any) -> None:
    await _services(request).store.audit(request["agent"]["login"], action, target,
                                         address=client_address(request), details=details)


@routes.get("/api/accounts")
@requires("admin")
async def list_accounts(request: web.Request) -> web.Response:
    services = _services(request)
    docs = await services.accounts.list()
    return web.json_response({"items": [await account_view(services, d) for d in docs]})


@routes.post("/api/accounts/test")
@requires("admin")
async def test_account(request: web.Request) -> web.Response:
    body = await account_body(request)
    info = await _services(request).channels.test(body)
    return web.json_response({"ok": True, "platform_id": info.platform_id,
                              "username": info.username, "display_name": info.display_name})


@routes.post("/api/accounts")
@requires("admin")
async def create_account(request: web.Request) -> web.Response:
    body = await account_body(request)
    services = _services(request)
    doc = await services.channels.create(body, str(request["agent"]["_id"]))
    await _audit(request, "account.create", str(doc["_id"]), platform=doc["platform"],
                 name=doc["name"])
    return web.json_response(await account_view(services, doc), status=201)


@routes.get("/api/accounts/{id}")
@requires("admin")
async def get_account(request: web.Request) -> web.Response:
    services = _services(request)
    doc = await services.accounts.get(request.match_info["id"])
    return web.json_response(await account_view(services, doc))


@routes.patch("/api/accounts/{id}")
@requires("admin")
async def patch_account(request: web.Request) -> web.Response:
    """Change the name, options, API base URL or credentials (tested first, and they must be
    the same platform account's); fixing the credentials clears `needs_reauth`, and the
    replies that waited for them go out."""
    body = await account_body(request)
    if "platform" in body or "mode" in body:
        raise ApiError(400, "validation", "platform and mode cannot change; add another "
                       "account instead")
    services = _services(request)
    doc = await services.channels.update(request.match_info["id"], body)
    if services.worker is not None:
        services.worker.wake()
    changed = sorted(k for k in body if k != "credentials")
    await _audit(request, "account.update", str(doc["_id"]), fields=changed,
                 credentials="changed" if body.get("credentials") else "unchanged")
    return web.json_response(await account_view(services, doc))


@routes.delete("/api/accounts/{id}")
@requires("admin")
async def delete_account(request: web.Request) -> web.Response:
    await _services(request).channels.delete(request.match_info["id"])
    await _audit(request, "account.delete", request.match_info["id"])
    return web.Response(status=204)
