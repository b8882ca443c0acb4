"""The measures follower: new messages and button presses, behind the ingest acknowledgement,
into SLA clocks, surveys and report counters; and the checker that breaches what fell due.

One process at a time follows (a lease in `meta`, "measures_lease", renewed while it runs),
because the counters are `$inc`-ed: two followers would count every message twice. It reads
the process's change feed (inbox/changes.py: inserts into `messages`, a customer's message or
an agent's reply as the outbox shows it, and into `interactions`, presses), in batches, and
keeps the resume token in `meta` ("measures") after the batch it ends is applied. It also
follows every change of `conversations` into copies (inbox/doc_cache.py), and of `sla_timers`
(measures/timer_copies.py), so a batch's conversations and clocks are mostly known without a
read (measured: the conversations' read was ~6 % of the database's time under steady ingest,
the clocks' ~10 %); a copy is as current as the feed at the batch, one missing is read. A
crash between a batch's counters and its token counts that batch again on restart (at most
one batch); a token lost from the oplog (error 286) restarts the stream at "now", and what
happened in between is not counted (the SLA clocks catch up at the conversation's next event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from inbox.changes import OPS, Batch, ChangeFeed, HistoryLost
from inbox.db import Database, Doc
from inbox.doc_cache import DocCache
from inbox.priority import AckWindow
from inbox.tasks import BREATHE_EVERY, breathe, cancel_and_wait
from measures.timer_copies import TimerCopies

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=20)
RENEW_EVERY = 5.0
# messages handled together at most: each handling reads the clocks of its conversations and
# writes the report counters once (seven upserts, ~50 ms on a busy embedded server), so a busy
# inbox's follower does fewer, larger rounds of both
BATCH = 1024
SAVE_IDLE_EVERY = 5.0  # s between saves of a token that only moved past other changes
GATHER = 0.25  # s a batch may wait for more: each costs a few reads and writes of its own
# s a batch's writes may wait for this process's acknowledgements to finish (inbox/priority.py);
# a full batch (a backlog) does not wait
YIELD = 0.5
COLLECTIONS = ("messages", "interactions")
FOLLOWED = (*COLLECTIONS, "conversations", "sla_timers")
COPIES = 8192  # conversations kept, and as many clocks


class Follower:
    def __init__(self, db: Database, measures: Any, check_every: float,
                 feed: ChangeFeed | None = None, acks: AckWindow | None = None) -> None:
        self.db = db
        self.acks = acks
        self.measures = measures
        self.check_every = check_every
        self.feed = feed
        self._own_feed: ChangeFeed | None = None
        self.owner = str(ObjectId())
        self._tasks: list[asyncio.Task[None]] = []
        self._leading = asyncio.Event()
        self._ready = asyncio.Event()
        self.conversations = DocCache(COPIES)
        self.timers = TimerCopies(COPIES)

    async def start(self) -> None:
        if self.feed is None:  # alone (tests, tools): a feed of its own
            self.feed = self._own_feed = ChangeFeed(self.db, FOLLOWED)
            await self.feed.start()
        self._tasks = [asyncio.create_task(self._lease(), name="measures-lease"),
                       asyncio.create_task(self._check(), name="measures-check"),
                       asyncio.create_task(self._follow(), name="measures-follow")]
        with contextlib.suppress(TimeoutError):  # following, or another process leads
            await asyncio.wait_for(self._ready.wait(), 5)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._own_feed is not None:
            await self._own_feed.stop()
            self.feed = self._own_feed = None
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
                    self._ready.set()  # nothing to wait for: another process follows
            except PyMongoError as exc:
                log.warning("measures: lease round failed (%s)", type(exc).__name__)
            await asyncio.sleep(RENEW_EVERY)

    async def _follow(self) -> None:
        assert self.feed is not None
        delay = 0.5
        while True:
            await self._leading.wait()
            sub = None
            try:
                meta = await self.db.meta.find_one({"_id": "measures"}) or {}
                # `token` since the change feed; before it, one token per collection
                token = meta.get("token") or meta.get("messages_token")
                self._clear_copies()  # kept current by this subscription only
                sub = self.feed.subscribe("measures", FOLLOWED, ["insert"], after=token,
                                          ops_of={"conversations": OPS, "sla_timers": OPS})
                self._ready.set()
                delay = 0.5
                loop, saved = asyncio.get_running_loop(), 0.0
                while self._leading.is_set():
                    try:
                        got = await sub.next_batch(1.0)
                        if _counted(got) and len(got.changes) < BATCH:  # busy: fewer, larger
                            await asyncio.sleep(GATHER)                 # batches
                            more = await sub.next_batch(0)
                            got = Batch(got.changes + more.changes, more.token or got.token)
                    except HistoryLost:
                        self._clear_copies()
                        log.warning("measures: resume token lost; following from now")
                        await self.db.meta.update_one({"_id": "measures"},
                                                      {"$unset": {"token": "",
                                                                  "messages_token": ""}})
                        break
                    for i, change in enumerate(got.changes):
                        await breathe(i, 4 * BREATHE_EVERY)  # each of these costs little
                        if change["ns"]["coll"] == "conversations":
                            self.conversations.follow(change)
                        elif change["ns"]["coll"] == "sla_timers":
                            self.timers.follow(change)
                    if self.acks is not None and _counted(got) and len(got.changes) < BATCH:
                        await self.acks.wait_idle(YIELD)
                    for name in COLLECTIONS:
                        docs = [c["fullDocument"] for c in got.changes
                                if c["ns"]["coll"] == name and c.get("fullDocument")]
                        for i in range(0, len(docs), BATCH):
                            await self._apply(name, docs[i:i + BATCH])
                    idle_move = got.token != token and loop.time() - saved >= SAVE_IDLE_EVERY
                    if got.token is not None and (_counted(got) or idle_move):
                        token, saved = got.token, loop.time()
                        await self.db.meta.update_one(
                            {"_id": "measures"}, {"$set": {"token": token}}, upsert=True)
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                log.warning("measures: following failed (%s)", type(exc).__name__)
            finally:
                if sub is not None:
                    self.feed.unsubscribe(sub)
            self._ready.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _clear_copies(self) -> None:
        self.conversations.clear()
        self.timers.clear()

    async def _apply(self, name: str, batch: list[Doc]) -> None:
        try:
            if name == "messages":
                await self.measures.handle_messages(batch, known=self.conversations,
                                                    timer_copies=self.timers)
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


def _counted(batch: Batch) -> bool:
    """Whether the batch holds what the follower counts (not only conversations' changes)."""
    return any(c["ns"]["coll"] in COLLECTIONS for c in batch.changes)
