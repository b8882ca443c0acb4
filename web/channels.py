"""Channel accounts: create (test credentials first), connector instances, pollers, delete.

Credentials are sealed with `CredentialBox` before they reach the database and are opened only to
build a connector; nothing here returns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from connectors.base import AccountContext, AccountInfo, ConnectError, Connector
from connectors.registry import CONNECTORS, build, connector_class
from inbox.db import Doc
from inbox.secrets import CredentialBox, Secret
from inbox.store import NotFound, Store
from web.errors import ApiError

log = logging.getLogger(__name__)

TOUCH_EVERY = 10.0


def credential_schema(platform: str) -> list[dict[str, Any]]:
    cls = connector_class(platform)
    return [{"name": f.name, "label": f.label, "secret": f.secret, "required": f.required,
             "pattern": f.pattern, "help": f.help} for f in cls.credential_fields]


def platforms() -> list[dict[str, Any]]:
    return [{"platform": name, "modes": list(cls.modes), "text_limit": cls.text_limit,
             "credentials": credential_schema(name)} for name, cls in sorted(CONNECTORS.items())]


class Channels:
    def __init__(self, store: Store, box: CredentialBox, public_url: str) -> None:
        self.store = store
        self.box = box
        self.public_url = public_url.rstrip("/")
        self._connectors: dict[str, Connector] = {}
        self._lock = asyncio.Lock()
        self._touched: dict[str, float] = {}

    def webhook_url(self, platform: str, account_id: str) -> str:
        return f"{self.public_url}/webhooks/{platform}/{account_id}"

    def context(self, doc: Doc) -> AccountContext:
        creds = self.box.open(doc["credentials"]) if doc.get("credentials") else {}
        return AccountContext(
            id=str(doc["_id"]), platform=doc["platform"], name=doc["name"], credentials=creds,
            api_base_url=doc.get("api_base_url"), mode=doc.get("mode", "webhook"),
            webhook_secret=Secret(doc["webhook_secret"]) if doc.get("webhook_secret") else None,
            webhook_url=self.webhook_url(doc["platform"], str(doc["_id"])),
            platform_id=doc.get("platform_id"), cursor=doc.get("cursor"),
            options=doc.get("options") or {})

    async def get(self, account_id: str) -> Connector:
        connector = self._connectors.get(account_id)
        if connector is not None:
            return connector
        async with self._lock:
            connector = self._connectors.get(account_id)
            if connector is None:
                doc = await self.store.get_account(account_id)
                connector = build(self.context(doc), self.store.ingest, self.store.db)
                self._connectors[account_id] = connector
        return connector

    def validate(self, body: Doc) -> tuple[type[Any], dict[str, str], str]:
        platform = body.get("platform")
        if platform not in CONNECTORS:
            raise ApiError(422, "unknown_platform",
                           f"unknown platform {platform!r}; known: {', '.join(sorted(CONNECTORS))}")
        cls = connector_class(platform)
        given = body.get("credentials")
        if not isinstance(given, dict):
            raise ApiError(400, "validation", "credentials: an object is required")
        creds: dict[str, str] = {}
        for field in cls.credential_fields:
            value = given.get(field.name)
            if value in (None, ""):
                if field.required:
                    raise ApiError(400, "validation", f"credentials.{field.name}: required")
                continue
            if not isinstance(value, str):
                raise ApiError(400, "validation", f"credentials.{field.name}: must be a string")
            if field.pattern and not re.fullmatch(field.pattern, value.strip()):
                raise ApiError(422, "invalid_auth",
                               f"credentials.{field.name}: does not look like a {field.label}")
            creds[field.name] = value.strip()
        mode = body.get("mode") or cls.modes[0]
        if mode not in cls.modes:
            raise ApiError(400, "validation", f"mode: must be one of {', '.join(cls.modes)}")
        return cls, creds, mode

    async def test(self, body: Doc) -> AccountInfo:
        """Check credentials against the platform without saving anything."""
        _, creds, mode = self.validate(body)
        ctx = AccountContext(id=str(ObjectId()), platform=body["platform"],
                             name=str(body.get("name") or ""),
                             credentials={k: Secret(v) for k, v in creds.items()},
                             api_base_url=body.get("api_base_url") or None, mode=mode)
        connector = build(ctx, self.store.ingest)
        try:
            return await connector.check()
        except ConnectError as exc:
            status = 422 if exc.code == "invalid_auth" else 502
            raise ApiError(status, exc.code, exc.message) from None
        finally:
            await connector.stop()

    async def create(self, body: Doc, actor: str | None) -> Doc:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "validation", "name: required")
        api_base_url = body.get("api_base_url") or None
        if api_base_url is not None and (not isinstance(api_base_url, str) or
                                         not api_base_url.startswith(("http://", "https://"))):
            raise ApiError(400, "validation", "api_base_url: must be an http(s) URL")
        _, creds, mode = self.validate(body)
        info = await self.test(body)
        oid = ObjectId()
        doc: Doc = {
            "_id": oid, "platform": body["platform"], "name": name.strip(),
            "credentials": self.box.seal(creds), "api_base_url": api_base_url, "mode": mode,
            "webhook_secret": secrets.token_urlsafe(32) if mode == "webhook" else None,
            "platform_id": info.platform_id, "username": info.username,
            "display_name": info.display_name, "options": body.get("options") or {},
            "cursor": None, "status": "active", "last_error": None, "last_inbound_at": None,
            "created_at": datetime.now(UTC), "created_by": actor, "poller": None}
        try:
            await self.store.db.accounts.insert_one(doc)
        except DuplicateKeyError as exc:
            which = "bot" if "platform_id" in str(exc) else "name"
            raise ApiError(409, "duplicate", f"this {which} is already connected"
                           if which == "bot" else "an account with this name already exists")\
                from None
        connector = await self.get(str(oid))
        try:
            if mode == "webhook":
                await connector.register_webhook()  # type: ignore[attr-defined]
            else:
                with contextlib.suppress(ConnectError):
                    await connector.remove_webhook()  # type: ignore[attr-defined]
                await connector.start()
        except ConnectError as exc:
            await self.delete(str(oid))
            raise ApiError(502, "cannot_connect", exc.message) from None
        return doc

    async def delete(self, account_id: str) -> None:
        doc = await self.store.get_account(account_id)
        connector = self._connectors.pop(account_id, None)
        if connector is not None:
            await connector.stop()
        await self.store.db.accounts.delete_one({"_id": doc["_id"]})

    async def start_all(self) -> None:
        """Start pollers for polling-mode accounts (webhook accounts need nothing)."""
        for doc in await self.store.db.accounts.find({"mode": "polling"}).to_list():
            try:
                connector = await self.get(str(doc["_id"]))
                await connector.start()
            except Exception as exc:
                log.warning("account %s could not start: %s", doc["_id"], type(exc).__name__)

    async def stop_all(self) -> None:
        connectors, self._connectors = list(self._connectors.values()), {}
        for connector in connectors:
            with contextlib.suppress(Exception):
                await connector.stop()

    async def touch(self, account_id: str) -> None:
        """Record inbound activity, at most every few seconds per account."""
        now = time.monotonic()
        if now - self._touched.get(account_id, 0.0) < TOUCH_EVERY:
            return
        self._touched[account_id] = now
        with contextlib.suppress(NotFound):
            await self.store.touch_account(account_id, last_inbound_at=datetime.now(UTC))
