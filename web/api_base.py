"""What the API's route modules share: the services, reading a body, the page size, a page of
conversations as JSON, the audit entry of an admin change. Route modules import this, never
each other's routes (tests/test_web_imports.py)."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from teams.store import Invalid
from web.auth import client_address
from web.errors import ApiError, read_json
from web.views import conversation_json

M = TypeVar("M", bound=BaseModel)


async def body_as(request: web.Request, model: type[M]) -> M:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ApiError(400, "validation", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(400, "validation", f"{field}: {err['msg']}", field=field) from None


def _limit(request: web.Request, default: int = 50) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise ApiError(400, "validation", "limit: a whole number from 1 to 200", field="limit")
    return int(raw)


def _services(request: web.Request) -> Any:
    return request.app["services"]


async def _conversation_page(request: web.Request, docs: list[Any]) -> list[dict[str, Any]]:
    services = _services(request)
    contacts = await services.store.contacts_by_id([d.get("contact_id") for d in docs])
    waiting = [str(d["_id"]) for d in docs if d.get("queued_since")]
    places = await services.teams.assigner.positions(waiting) if waiting else {}
    slas = await services.measures.sla_of([str(d["_id"]) for d in docs])
    return [conversation_json(d, contacts.get(d.get("contact_id") or ""),
                              places.get(str(d["_id"]))) | {"sla": slas.get(str(d["_id"]))}
            for d in docs]


def invalid(exc: Invalid) -> ApiError:
    return ApiError(400, "validation", str(exc), field=exc.field)


async def _audit(request: web.Request, action: str, target: str, **details: Any) -> None:
    await _services(request).store.audit(request["agent"]["login"], action, target,
                                         address=client_address(request), details=details)
