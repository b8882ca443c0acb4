"""Team work in one object for the composition root: the stores, the assigner, the router and
the search indexer, started and stopped with the process."""

from __future__ import annotations

import logging
from typing import Any

from inbox.clock import Clock
from inbox.db import Database, Doc
from inbox.summaries import Summariser
from teams import db as team_db
from teams.assign import Assigner
from teams.names import NamePolicies
from teams.router import Router
from teams.search import Indexer, Search, index_conversation, index_conversations
from teams.settings import TeamSettings
from teams.store import TeamStore

log = logging.getLogger(__name__)


class TeamWork:
    def __init__(self, db: Database, settings: TeamSettings, brand: str, clock: Clock, *,
                 summaries: Summariser | None = None) -> None:
        self.db = db
        self.settings = settings
        self.store = TeamStore(db)
        self.assigner = Assigner(db, self.store, clock, default_cap=settings.default_max_open)
        self.router = Router(db, self.store, self.assigner, clock, on_routed=self._routed)
        if summaries is not None and settings.routing:  # now: the summaries' repair at
            summaries.hooks = self.router  # start may already need `recovered`
        self.indexer = Indexer(db)
        self.search = Search(db)
        self.names = NamePolicies(db, self.store, brand)
        # what follows team work without changing it (measures/auto.py): objects with
        # `routed(conv, contact, decision)` and `status_changed(conv, status)`
        self.observers: list[Any] = []
        self.started = False

    async def _routed(self, routed: list[tuple[Doc, Doc | None, Doc]]) -> None:
        try:
            await index_conversations(self.db, [
                ({**conv, "labels": decision.get("labels") or []}, contact)
                for conv, contact, decision in routed])
        except Exception:  # search entries are not worth a batch's automatic messages
            log.exception("team work: search entries of routed conversations failed")
        for conv, contact, decision in routed:
            for observer in self.observers:
                try:
                    await observer.routed(conv, contact, decision)
                except Exception:  # an observer must not stop routing
                    log.exception("team work: an observer failed after routing")

    async def status_changed(self, conv: Doc, status: str) -> None:
        """Called by whoever changed a conversation's status through the assigner."""
        for observer in self.observers:
            try:
                await observer.status_changed(conv, status)
            except Exception:  # the status is changed; an observer's failure is its own
                log.exception("team work: an observer failed after a status change")

    async def setup(self) -> None:
        await team_db.ensure_indexes(self.db)

    async def start(self) -> None:
        await self.setup()
        if self.settings.routing:
            await self.router.start()
        if self.settings.search_indexing:
            await self.indexer.start()
        self.started = True

    async def stop(self) -> None:
        # the router stays the summaries' hook: stopped, it routes nothing at creation, and
        # what it could not finish keeps their heartbeat listed for the next start's repair
        await self.router.stop()
        await self.indexer.stop()
        self.started = False

    async def reindex_conversation(self, conv_id: str) -> None:
        from bson import ObjectId

        conv = await self.db.conversations.find_one({"_id": ObjectId(conv_id)})
        if conv is None:
            return
        contact = None
        if conv.get("contact_id") and ObjectId.is_valid(str(conv["contact_id"])):
            contact = await self.db.contacts.find_one({"_id": ObjectId(conv["contact_id"])})
        await index_conversation(self.db, conv, contact)
