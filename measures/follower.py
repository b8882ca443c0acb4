"""The measures follower: new messages and button presses, behind the ingest acknowledgement,
into SLA clocks, surveys and report counters; and the checker that breaches what fell due.

One process at a time follows (a lease in `meta`, "measures_lease", renewed while it runs),
because the counters are `$inc`-ed: two followers would count every message twice. It reads
the `messages` change stream (inserts: a customer's message, an agent's reply as the outbox
shows it) and the `interactions` one (inserts: presses), in batches, and keeps each stream's
resume token in `meta` ("measures") after the batch it ends is applied. A crash between a
batch's counters and its token counts that batch again on restart (at most one batch); a token
lost from the oplog (error 286) restarts the stream at "now", and what happened in between is
not counted (the SLA clocks catch up at the conversation's next event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from inbox.db import Database, Doc
from inbox.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=20)
RENEW_EVERY = 5.0
HISTORY_LOST = 286
BATCH = 256
PIPELINES: dict[str, list[Doc]] = {
    "messages": [{"$match": {"operationType": "insert"}},
                 {"$project": {"fullDocument.raw": 0, "fullDocument.html": 0,
                               "fullDocument.rendered": 0}}],
    "interactions": [{"$match": {"operationType": "insert"}},
                     {"$project": {"fullDocument.raw": 0}}],
}


class Follower:
    def __init__(self, db: Database, measures: Any, check_every: float) -> None:
        self.db = db
        self.measures = measures
        self.check_every = check_every
        self.owner = str(ObjectId())
        self._tasks: list[asyncio.Task[None]] = []
        self._leading = asyncio.Event()
        self._ready: dict[str, asyncio.Event] = {n: asyncio.Event() for n in PIPELINES}

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._lease(), name="measures-lease"),
                       asyncio.create_task(self._check(), name="measures-check"),
                       *(asyncio.create_task(self._follow(n), name=f"measures-{n}")
                         for n in PIPELINES)]
        with contextlib.suppress(TimeoutError):  # followers on, or another process leads
            await asyncio.wait_for(self._all_ready(), 5)

    async def _all_ready(self) -> None:
        for event in self._ready.values():
            await event.wait()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._leading.is_set():
            with contextlib.suppress(PyMongoError):
                await self.db.meta.update_one({"_id": "measures_lease", "owner": self.owner},
                                              {"$set": {"until": self.measures.clock.now()}})

    async def _lease(self) -> None:
        while True:
            try:
                now = self.measures.clock.now()
                with contextlib.suppress(DuplicateKeyError):  # another process holds it
                    await self.db.meta.update_one(
                        {"_id": "measures_lease",
                         "$or": [{"owner": self.owner}, {"until": {"$lt": now}}]},
                        {"$set": {"owner": self.owner, "until": now + LEASE}}, upsert=True)
                mine = (await self.db.meta.find_one({"_id": "measures_lease"}) or {}).get(
                    "owner") == self.owner
                if mine:
                    self._leading.set()
                else:
                    self._leading.clear()
                    for event in self._ready.values():
                        event.set()  # nothing to wait for: another process follows
            except PyMongoError as exc:
                log.warning("measures: lease round failed (%s)", type(exc).__name__)
            await asyncio.sleep(RENEW_EVERY)

    async def _follow(self, name: str) -> None:
        delay = 0.5
        while True:
            await self._leading.wait()
            meta = await self.db.meta.find_one({"_id": "measures"}) or {}
            token = meta.get(f"{name}_token")
            try:
                async with await self.db[name].watch(
                        PIPELINES[name], resume_after=token, max_await_time_ms=300) as stream:
                    self._ready[name].set()
                    delay = 0.5
                    while self._leading.is_set():
                        batch: list[Doc] = []
                        change = await stream.try_next()
                        while change is not None:
                            if change.get("fullDocument"):
                                batch.append(change["fullDocument"])
                            if len(batch) >= BATCH:
                                break
                            change = await stream.try_next()
                        if batch:
                            await self._apply(name, batch)
                        if stream.resume_token is not None and (
                                batch or stream.resume_token != token):
                            token = stream.resume_token
                            await self.db.meta.update_one(
                                {"_id": "measures"}, {"$set": {f"{name}_token": token}},
                                upsert=True)
            except asyncio.CancelledError:
                raise
            except OperationFailure as exc:
                if exc.code in (HISTORY_LOST, 9, 280):
                    log.warning("measures: %s resume token lost (%s); following from now",
                                name, exc.code)
                    await self.db.meta.update_one({"_id": "measures"},
                                                  {"$unset": {f"{name}_token": ""}})
                    continue
                log.warning("measures: %s change stream failed (%s)", name, exc.code)
            except PyMongoError as exc:
                log.warning("measures: %s change stream interrupted (%s)", name,
                            type(exc).__name__)
            self._ready[name].set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _apply(self, name: str, batch: list[Doc]) -> None:
        try:
            if name == "messages":
                await self.measures.handle_messages(batch)
            else:
                await self.measures.handle_interactions(batch)
        except PyMongoError as exc:
            log.warning("measures: a batch of %s failed (%s)", name, type(exc).__name__)

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(self.check_every)
            if not self._leading.is_set():
                continue
            try:
                await self.measures.check()
            except PyMongoError as exc:
                log.warning("measures: the SLA check failed (%s)", type(exc).__name__)
