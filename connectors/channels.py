"""Channel accounts' lifecycle: create (credentials tested first), update, delete; the connector
instances of this process and their long-lived inbound.

Credentials are sealed with `CredentialBox` before they reach the database and are opened only to
build a connector; nothing here returns them. Errors are `AccountError`s with a code; the HTTP
layer decides the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from connectors.account_fields import (
    AccountError,
    base_url_of,
    credential_schema,
    credentials_of,
    option_schema,
    options_of,
    platforms,
)
from connectors.base import (
    AccountContext,
    AccountInfo,
    ConnectError,
    Connector,
    ConnectorBase,
)
from connectors.hosting import InboundHost
from connectors.registry import CONNECTORS, connector_class
from connectors.runtime import HostRuntime
from inbox.accounts import AccountExists, AccountStore, month_key
from inbox.db import Doc
from inbox.secrets import CredentialBox, Secret
from inbox.store import NotFound

log = logging.getLogger(__name__)

RuntimeFactory = Callable[[str], HostRuntime]
__all__ = ["AccountError", "Channels", "credential_schema", "option_schema", "platforms"]


@dataclass
class _Directory:
    """The accounts of one platform, for app-level webhooks (`AccountDirectory`)."""

    channels: Channels
    platform: str

    async def connectors(self) -> list[Connector]:
        docs = await self.channels.accounts.list(self.platform)
        return [await self.channels.get(str(d["_id"])) for d in docs]

    async def by_platform_id(self, platform_id: str) -> Connector | None:
        doc = await self.channels.accounts.find(self.platform, platform_id=platform_id)
        return None if doc is None else await self.channels.get(str(doc["_id"]))


class Channels:
    def __init__(self, accounts: AccountStore, box: CredentialBox, public_url: str,
                 runtimes: RuntimeFactory, hosting: InboundHost) -> None:
        self.accounts = accounts
        self.box = box
        self.public_url = public_url.rstrip("/")
        self.runtimes = runtimes
        self.hosting = hosting
        self._connectors: dict[str, Connector] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ addresses

    def account_webhook_url(self, platform: str, account_id: str) -> str:
        return f"{self.public_url}/webhooks/{platform}/{account_id}"

    def app_webhook_url(self, platform: str) -> str:
        return f"{self.public_url}/webhooks/{platform}"

    def webhook_url(self, doc: Mapping[str, Any]) -> str | None:
        """The URL to give the platform for this account, or None when it needs none."""
        cls = CONNECTORS.get(doc["platform"])
        if cls is None or doc.get("mode") not in cls.webhook_modes:
            return None
        if cls.app_webhook:
            return self.app_webhook_url(doc["platform"])
        return self.account_webhook_url(doc["platform"], str(doc["_id"]))

    def directory(self, platform: str) -> _Directory:
        return _Directory(self, platform)

    # ------------------------------------------------------------------ connectors

    def context(self, doc: Doc) -> AccountContext:
        creds = self.box.open(doc["credentials"]) if doc.get("credentials") else {}
        return AccountContext(
            id=str(doc["_id"]), platform=doc["platform"], name=doc["name"], credentials=creds,
            api_base_url=doc.get("api_base_url"), mode=doc.get("mode", "webhook"),
            webhook_secret=Secret(doc["webhook_secret"]) if doc.get("webhook_secret") else None,
            webhook_url=self.account_webhook_url(doc["platform"], str(doc["_id"])),
            app_webhook_url=self.app_webhook_url(doc["platform"]),
            platform_id=doc.get("platform_id"), info=dict(doc.get("info") or {}),
            options=dict(doc.get("options") or {}))

    def _build(self, doc: Doc) -> Connector:
        cls = connector_class(doc["platform"])
        runtime = self.runtimes(str(doc["_id"]))
        connector: Connector = cls(self.context(doc), runtime)
        if type(connector).enrich_author is not ConnectorBase.enrich_author:
            runtime.enricher = connector.enrich_author
        return connector

    async def get(self, account_id: str) -> Connector:
        connector = self._connectors.get(account_id)
        if connector is not None:
            return connector
        async with self._lock:
            connector = self._connectors.get(account_id)
            if connector is None:
                connector = self._build(await self.accounts.get(account_id))
                self._connectors[account_id] = connector
        return connector

    def loaded(self) -> list[Connector]:
        return list(self._connectors.values())

    async def _forget(self, account_id: str) -> None:
        await self.hosting.stop(account_id)
        connector = self._connectors.pop(account_id, None)
        if connector is not None:
            with contextlib.suppress(Exception):
                await connector.close()

    # ------------------------------------------------------------------ checks

    def validate(self, body: Mapping[str, Any]) -> tuple[type[Any], dict[str, str], str,
                                                          dict[str, Any]]:
        platform = body.get("platform")
        if platform not in CONNECTORS:
            raise AccountError("unknown_platform", f"unknown platform {platform!r}; known: "
                               f"{', '.join(sorted(CONNECTORS))}", field="platform")
        cls = connector_class(platform)
        mode = body.get("mode") or cls.modes[0]
        if mode not in cls.modes:
            raise AccountError("validation", f"mode: must be one of {', '.join(cls.modes)}",
                               field="mode")
        creds = credentials_of(cls, body.get("credentials"), mode)
        return cls, creds, mode, options_of(cls, body.get("options"))

    async def _check(self, cls: type[Any], ctx: AccountContext) -> AccountInfo:
        connector = cls(ctx, self.runtimes(ctx.id))
        try:
            info: AccountInfo = await connector.check()
            return info
        except ConnectError as exc:
            raise AccountError(exc.code, exc.message) from None
        finally:
            with contextlib.suppress(Exception):
                await connector.close()

    async def test(self, body: Mapping[str, Any]) -> AccountInfo:
        """Check credentials against the platform without saving anything."""
        cls, creds, mode, options = self.validate(body)
        ctx = AccountContext(id=str(ObjectId()), platform=body["platform"],
                             name=str(body.get("name") or ""),
                             credentials={k: Secret(v) for k, v in creds.items()},
                             api_base_url=base_url_of(body.get("api_base_url")), mode=mode,
                             options=options)
        return await self._check(cls, ctx)

    # ------------------------------------------------------------------ lifecycle

    async def create(self, body: Mapping[str, Any], actor: str | None) -> Doc:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise AccountError("validation", "name: required", field="name")
        api_base_url = base_url_of(body.get("api_base_url"))
        cls, creds, mode, options = self.validate(body)
        info = await self.test(body)
        oid = ObjectId()
        doc: Doc = {
            "_id": oid, "platform": body["platform"], "name": name.strip(),
            "credentials": self.box.seal(creds), "api_base_url": api_base_url, "mode": mode,
            "webhook_secret": secrets.token_urlsafe(32) if mode in cls.webhook_modes else None,
            "platform_id": info.platform_id, "username": info.username,
            "display_name": info.display_name, "info": dict(info.extra), "options": options,
            "cursors": {}, "status": "active", "last_error": None, "last_inbound_at": None,
            "created_at": datetime.now(UTC), "created_by": actor, "lease": None, "pauses": {},
            "usage": {}}
        try:
            await self.accounts.insert(doc)
        except AccountExists as exc:
            if exc.which == "platform_id":
                raise AccountError("duplicate", "this account is already connected") from None
            raise AccountError("duplicate", "an account with this name already exists",
                               field="name") from None
        connector = await self.get(str(oid))
        try:
            await connector.on_create()
        except ConnectError as exc:
            await self.delete(str(oid))
            raise AccountError("cannot_connect" if exc.code == "unknown" else exc.code,
                               exc.message) from None
        await self.hosting.start(connector)
        return doc

    async def update(self, account_id: str, body: Mapping[str, Any]) -> Doc:
        """Change name, options, API base URL or credentials; new credentials are tested
        first and must belong to the same platform account. Clears `needs_reauth`."""
        doc = await self.accounts.get(account_id)
        cls = connector_class(doc["platform"])
        changes: Doc = {}
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                raise AccountError("validation", "name: required", field="name")
            changes["name"] = name.strip()
        if "api_base_url" in body:
            changes["api_base_url"] = base_url_of(body["api_base_url"])
        if "options" in body:
            changes["options"] = options_of(cls, body["options"], current=doc.get("options"))
        new_creds = None
        if body.get("credentials"):
            given = credentials_of(cls, body["credentials"], doc.get("mode", cls.modes[0]),
                                 partial=True)
            old = {k: v.get_secret_value() for k, v in self.box.open(doc["credentials"]).items()}
            new_creds = {**old, **given}
        if new_creds is not None or "api_base_url" in changes or "options" in changes:
            merged = {**doc, **changes}
            ctx = self.context(merged)
            if new_creds is not None:
                ctx = replace(ctx, credentials={k: Secret(v) for k, v in new_creds.items()})
            info = await self._check(cls, ctx)
            if doc.get("platform_id") and info.platform_id != doc["platform_id"]:
                raise AccountError("other_account", "these credentials belong to another "
                                   "account; add it as a new channel account instead")
            changes["info"] = {**(doc.get("info") or {}), **info.extra}
            changes["username"] = info.username
            changes["display_name"] = info.display_name
            changes["status"] = "active"
            changes["last_error"] = None
        if new_creds is not None:
            changes["credentials"] = self.box.seal(new_creds)
        if not changes:
            raise AccountError("validation", "nothing to change")
        try:
            updated = await self.accounts.update(account_id, changes)
        except AccountExists:
            raise AccountError("duplicate", "an account with this name already exists",
                               field="name") from None
        await self._forget(account_id)
        connector = await self.get(account_id)
        if new_creds is not None or "api_base_url" in changes:
            try:
                await connector.on_create()
            except ConnectError as exc:
                raise AccountError(exc.code, exc.message) from None
        await self.hosting.start(connector)
        return updated

    async def delete(self, account_id: str) -> None:
        doc = await self.accounts.get(account_id)
        connector = await self.get(account_id)
        await self.hosting.stop(account_id)
        try:
            await connector.on_delete()
        except Exception as exc:  # the platform may be gone; the account goes anyway
            log.warning("account %s: on_delete failed: %s", account_id, type(exc).__name__)
        await self._forget(account_id)
        await self.accounts.delete(str(doc["_id"]))

    async def start_all(self) -> None:
        """Build every account's connector and start its long-lived inbound, if it has one."""
        for doc in await self.accounts.list():
            try:
                await self.hosting.start(await self.get(str(doc["_id"])))
            except Exception as exc:
                log.warning("account %s could not start: %s", doc["_id"], type(exc).__name__)

    async def stop_all(self) -> None:
        await self.hosting.stop_all()
        connectors, self._connectors = list(self._connectors.values()), {}
        for connector in connectors:
            with contextlib.suppress(Exception):
                await connector.close()

    async def snapshot(self, doc: Doc) -> dict[str, Any]:
        """The account as its connector's `notices` sees it."""
        now = datetime.now(UTC)
        return {"info": dict(doc.get("info") or {}), "options": dict(doc.get("options") or {}),
                "mode": doc.get("mode"), "status": doc.get("status", "active"),
                "usage": dict((doc.get("usage") or {}).get(month_key(now)) or {}),
                "inbound_note": (doc.get("info") or {}).get("inbound_note")}

    async def notices(self, doc: Doc) -> list[Any]:
        try:
            connector = await self.get(str(doc["_id"]))
        except (NotFound, KeyError, ValueError):
            return []
        try:
            return list(connector.notices(await self.snapshot(doc)))
        except Exception as exc:
            log.warning("account %s: notices failed: %s", doc["_id"], type(exc).__name__)
            return []

