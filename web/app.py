"""The aiohttp application: the composition root of Switchboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pymongo import AsyncMongoClient

from connectors.channels import Channels
from connectors.hosting import InboundHost
from connectors.runtime import EventRouter, HostRuntime
from inbox.accounts import AccountStore
from inbox.agents import Agents
from inbox.blobs import Blobs
from inbox.clock import DbClock
from inbox.db import Database, Doc
from inbox.embedded import EmbeddedServer
from inbox.secrets import CredentialBox
from inbox.store import Store
from web import (
    api,
    api_accounts,
    api_auto,
    api_canned,
    api_measures,
    api_names,
    api_replies,
    api_search,
    api_teams,
    webhooks,
)
from web.auth import auth_middleware
from web.errors import error_middleware
from web.openapi import openapi_document
from web.settings import Settings

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter("switchboard_webhooks_total", "Webhook requests by outcome",
                                ["platform", "status"], registry=self.registry)
        self.webhook_seconds = Histogram(
            "switchboard_webhook_seconds", "Webhook handling time", ["platform"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.deliveries = Counter("switchboard_deliveries_total", "Reply delivery outcomes",
                                  ["platform", "outcome"], registry=self.registry)


@dataclass
class Health:
    """Whether the database answers; watched by a background task."""

    db_ok: bool = True
    embedded: EmbeddedServer | None = None
    last_error: str | None = None
    restarts: int = 0

    def snapshot(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok" if self.db_ok else "unavailable",
                                "database": "ok" if self.db_ok else "unavailable",
                                "process": os.getpid()}
        if self.embedded is not None:
            body["embedded_database"] = "running" if self.embedded.alive() else "stopped"
            body["embedded_restarts"] = self.restarts
        if self.last_error and not self.db_ok:
            body["error"] = self.last_error
        return body


@dataclass
class Services:
    settings: Settings
    client: AsyncMongoClient[Doc]
    db: Database
    store: Store
    agents: Agents
    box: CredentialBox
    accounts: AccountStore
    blobs: Blobs
    clock: DbClock
    router: EventRouter
    hosting: InboundHost
    channels: Channels
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=Health)
    outbox: Any = None
    worker: Any = None
    events: Any = None
    changes: Any = None  # inbox.changes.ChangeFeed: the process's one change stream
    webhooks: Any = None
    teams: Any = None  # teams.service.TeamWork
    measures: Any = None  # measures.service.Measures
    answers: Any = None  # measures.answers.StandardAnswers
    background: list[asyncio.Task[Any]] = field(default_factory=list)


def build_services(settings: Settings, client: AsyncMongoClient[Doc], secret_key: str) -> Services:
    db = client[settings.database.name]
    store = Store(db)
    box = CredentialBox(secret_key)
    accounts = AccountStore(db)
    blobs = Blobs(db)
    clock = DbClock(db)
    router = EventRouter(store)
    hosting = InboundHost(accounts, clock)

    def runtime(account_id: str) -> HostRuntime:
        return HostRuntime(account_id, sink=router, accounts=accounts, box=box, blobs=blobs,
                           clock=clock, store=store)

    channels = Channels(accounts, box, settings.server.public_url, runtime, hosting)
    services = Services(settings=settings, client=client, db=db, store=store,
                        agents=Agents(db), box=box, accounts=accounts, blobs=blobs,
                        clock=clock, router=router, hosting=hosting, channels=channels)
    services.webhooks = webhooks.Webhooks(services)
    from teams.service import TeamWork

    services.teams = TeamWork(db, settings.teams, settings.identity.brand, clock,
                              summaries=store.ingestor.summaries)
    from measures.service import Measures

    services.measures = Measures(db, clock, settings.sla, settings.csat, settings.identity,
                                 teams=services.teams, routing=settings.teams.routing)
    services.measures.channels, services.measures.store = channels, store
    from measures.answers import StandardAnswers

    services.answers = StandardAnswers(db, services.teams, settings.identity, clock)
    return services


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    return response


async def healthz(request: web.Request) -> web.Response:
    health: Health = request.app["services"].health
    return web.json_response(health.snapshot(), status=200 if health.db_ok else 503)


async def metrics(request: web.Request) -> web.Response:
    services: Services = request.app["services"]
    return web.Response(body=generate_latest(services.metrics.registry),
                        content_type="text/plain", charset="utf-8")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def create_app(services: Services) -> web.Application:
    app = web.Application(
        client_max_size=services.settings.server.max_body_bytes,
        middlewares=[security_headers, error_middleware, auth_middleware])
    app["services"] = services
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/openapi.json", openapi)
    webhooks.setup(app)
    app.router.add_routes(api_teams.routes)  # before api's: /api/agents/me is not an {id}
    app.router.add_routes(api_search.routes)
    app.router.add_routes(api_names.routes)
    app.router.add_routes(api_measures.routes)
    app.router.add_routes(api.routes)
    app.router.add_routes(api_accounts.routes)
    app.router.add_routes(api_replies.routes)
    app.router.add_routes(api_canned.routes)
    app.router.add_routes(api_auto.routes)
    with contextlib.suppress(ImportError):
        from web import ui

        ui.setup(app)
    return app
