"""Conversation summaries, written behind the acknowledgement, coalesced, repaired after a crash.

Why not in the acknowledged write: on the embedded server an update costs more than an insert
(each statement is its own synced commit and rewrites every index entry of the document), and a
burst spread over many conversations touches one conversation per message. So `ingest`
acknowledges once the messages (the truth) are stored, and the summary of each touched
conversation (activity time and `sk`, preview, unread, message_count, reopen) follows here: all
pending messages of a conversation coalesce into one change, and a round writes every touched
conversation with one pipeline `update_many` per chunk of conversations (one statement, one
commit). The busier the inbox, the more each round covers. Summaries trail the acknowledgement
by one round (milliseconds when idle, seconds when the database is saturated); `settle()` waits.

Crash safety without an extra write per batch: each process keeps a heartbeat document in `meta`
with the random part of its ObjectIds (bytes 4-8, the same for every id a process makes) and
`through`, a time before which all of its messages are summarised (the oldest message still
pending or being inserted). When a process is gone (heartbeat older than `DEAD_AFTER`, or its pid
no longer runs on this host), another one reads the messages with `_id` from `through` on
(through the `_id` index), keeps those the dead process made, and repairs their conversations
from the messages themselves: counters recounted, times merged with `$max`, preview set if
newer, reopened. A restarted process repairs its predecessor before it takes traffic. A round
whose write fails is retried as the same statement, made idempotent by a per-round tag.

Needs MongoDB 5.0 or later (`$getField`) when not on the embedded server.

What is exact: counters in normal operation, after a retried round and after a crash repair in a
single process (the embedded database allows one Switchboard per data dir). With several
processes on one replica set, a repair that races another live process's in-flight batch for the
same conversation can be off by that batch (only after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Binary, ObjectId
from pymongo.errors import ConnectionFailure, PyMongoError, WriteConcernError

from inbox.db import Database, Doc
from inbox.paging import make_sk

log = logging.getLogger(__name__)

CHUNK = 64  # conversations per statement: larger $in lists cost more per document on the server
HEARTBEAT_EVERY = 5.0
WATERMARK_EVERY = 1.0
DEAD_AFTER = timedelta(seconds=30)
REPAIR_EVERY = 15.0
MARGIN = timedelta(seconds=5)  # clock and ObjectId-second slack when reading from `through`
REOPEN_FROM = ["resolved", "pending", "snoozed"]
PREVIEW_CHARS = 140
_HOST = socket.gethostname()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def preview_of_doc(doc: Doc) -> str:
    text = " ".join(str(doc.get("text") or "").split())
    if not text and doc.get("attachments"):
        text = f"[{doc['attachments'][0]['type']}]"
    return text[:PREVIEW_CHARS]


def _oid_random(oid: ObjectId) -> bytes:
    return oid.binary[4:9]


@dataclass
class _Delta:
    """Everything one round adds to one conversation."""

    at: datetime
    since: datetime
    n: int = 0
    n_in: int = 0
    newest_sk: str = ""
    preview: str = ""
    first_sk: str | None = None
    mids: list[ObjectId] = field(default_factory=list)

    def add(self, doc: Doc) -> None:
        self.n += 1
        self.n_in += doc.get("direction", "in") == "in"
        self.at = max(self.at, doc["received_at"])
        self.since = min(self.since, doc["received_at"])
        if doc["sk"] > self.newest_sk:
            self.newest_sk, self.preview = doc["sk"], preview_of_doc(doc)
        self.first_sk = doc["sk"] if self.first_sk is None else min(self.first_sk, doc["sk"])
        self.mids.append(doc["_id"])

    def row(self, conv_id: str) -> Doc:
        return {"n": self.n, "i": self.n_in, "at": self.at, "sk": make_sk(self.at, conv_id),
                "f": self.first_sk, "p": self.preview}


def _round_pipeline(table: dict[str, Doc], tag: str) -> list[Doc]:
    """One update for many conversations: each finds its own change by `_id` in `table`."""
    mine = {"$getField": {"field": {"$toString": "$_id"}, "input": {"$literal": table}}}

    def after(field_name: str) -> Doc:
        return {"$gte": ["$_s.at", {"$ifNull": [f"${field_name}", _EPOCH]}]}

    newer = after("last_outbound_at")
    return [
        {"$set": {"_s": mine}},
        {"$set": {
            # a round that lands after an agent read or resolved the conversation counts and
            # reopens only for messages that arrived after that
            "unread": {"$add": [{"$ifNull": ["$unread", 0]},
                                {"$cond": [after("read_at"), "$_s.i", 0]}]},
            "message_count": {"$add": [{"$ifNull": ["$message_count", 0]}, "$_s.n"]},
            "last_message_at": {"$max": ["$last_message_at", "$_s.at"]},
            "last_inbound_at": {"$max": ["$last_inbound_at", "$_s.at"]},
            "sk": {"$max": ["$sk", "$_s.sk"]},
            "first_sk": {"$min": ["$first_sk", "$_s.f"]},
            # a reply stored after these messages keeps its preview (replies/outbox.py)
            "preview": {"$cond": [newer, "$_s.p", "$preview"]},
            "preview_direction": {"$cond": [newer, "in", "$preview_direction"]},
            "status": {"$cond": [{"$and": [{"$in": ["$status", REOPEN_FROM]},
                                           after("status_changed_at")]}, "open", "$status"]},
            "sum_round": tag,
        }},
        {"$unset": "_s"},
    ]


class Summariser:
    """Applies the summaries of one process's ingests; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.owner = str(ObjectId())
        self.random = _oid_random(ObjectId())
        self._pending: dict[str, _Delta] = {}
        self._in_flight: dict[str, _Delta] = {}
        self._inserting: Counter[datetime] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._registered = False
        self._written_at = 0.0
        self._round = 0
        self.rounds = 0
        self.summarised = 0
        self.repaired = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register this process, repair what dead ones left, keep both up to date."""
        await self._heartbeat()
        await self.repair()
        if self._background is None or self._background.done():
            self._background = asyncio.create_task(self._maintain(), name="summaries")

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (for up to `timeout`), then deregister. Whatever could not be
        written stays covered by the heartbeat: the next start repairs it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settle(), timeout)
        for task in (self._background, self._task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._registered and not self._pending and not self._in_flight \
                and not self._inserting:
            with contextlib.suppress(PyMongoError, TimeoutError):
                async with asyncio.timeout(2):
                    await self.db.meta.delete_one({"_id": self._meta_id})

    async def settle(self) -> None:
        """Wait until every acknowledged message is reflected in its conversation."""
        while self._pending or self._in_flight or (self._task and not self._task.done()):
            await self._idle.wait()
            await asyncio.sleep(0)

    @property
    def _meta_id(self) -> str:
        return f"ingestor:{self.owner}"

    def _through(self) -> datetime:
        times = [d.since for d in (*self._pending.values(), *self._in_flight.values())]
        times += list(self._inserting)
        return min(times) if times else datetime.now(UTC)

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        self._written_at = loop.time()
        await self.db.meta.update_one(
            {"_id": self._meta_id},
            {"$set": {"kind": "ingestor", "host": _HOST, "pid": os.getpid(),
                      "oid_random": Binary(self.random), "through": self._through(),
                      "alive_at": datetime.now(UTC)}}, upsert=True)
        self._registered = True

    async def _maintain(self) -> None:
        waited = 0.0
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            waited += HEARTBEAT_EVERY
            try:
                await self._heartbeat()
                if waited >= REPAIR_EVERY:
                    waited = 0.0
                    await self.repair()
            except PyMongoError as exc:
                log.warning("summaries: heartbeat or repair failed: %s", type(exc).__name__)

    # ------------------------------------------------------------------ the acknowledged path

    async def inserting(self, at: datetime) -> None:
        """A batch received at `at` is about to be inserted: hold the watermark before it."""
        if not self._registered:
            await self._heartbeat()
        self._inserting[at] += 1

    def add(self, at: datetime, stored: list[Doc]) -> None:
        """The batch of `at` is stored (or failed): schedule its summaries (never blocks)."""
        self._inserting[at] -= 1
        if self._inserting[at] <= 0:
            del self._inserting[at]
        for doc in stored:
            delta = self._pending.get(doc["conversation_id"])
            if delta is None:
                delta = self._pending[doc["conversation_id"]] = _Delta(doc["received_at"],
                                                                       doc["received_at"])
            delta.add(doc)
        if self._pending and (self._task is None or self._task.done()):
            self._idle.clear()
            self._task = asyncio.create_task(self._run())

    # ------------------------------------------------------------------ rounds

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                async with self._lock:
                    self._in_flight, self._pending = self._pending, {}
                    self._round += 1
                    try:
                        await self._apply_round(f"{self.owner}:{self._round}")
                    except Exception:
                        # not a passing outage (those are retried): recount what this round
                        # touched, conversation by conversation
                        log.exception("summaries: a round failed; recounting %d conversations",
                                      len(self._in_flight))
                        await self._recount_each(self._in_flight)
                    self.rounds += 1
                    self.summarised += sum(d.n for d in self._in_flight.values())
                    self._in_flight = {}
                if loop.time() - self._written_at >= WATERMARK_EVERY:
                    with contextlib.suppress(PyMongoError):
                        await self._heartbeat()
        finally:
            self._idle.set()

    async def _apply_round(self, tag: str) -> None:
        items = list(self._in_flight.items())
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            table = {cid: d.row(cid) for cid, d in chunk}
            flt = {"_id": {"$in": [ObjectId(cid) for cid, _ in chunk]},
                   "sum_round": {"$ne": tag}}
            await _retrying(lambda f=flt, t=table: self.db.conversations.update_many(
                f, _round_pipeline(t, tag)))

    async def _recount_each(self, deltas: dict[str, _Delta]) -> None:
        for conv_id, delta in deltas.items():
            try:
                await self._repair_conversation(conv_id, delta)
            except Exception:
                log.exception("summaries: conversation %s could not be recounted", conv_id)

    # ------------------------------------------------------------------ crash repair

    async def repair(self) -> int:
        """Summarise the messages of processes that died unsummarised; returns how many."""
        async with self._lock:  # never beside one of our own rounds: see _repair_conversation
            return await self._repair()

    async def _repair(self) -> int:
        cutoff = datetime.now(UTC) - DEAD_AFTER
        dead: list[Doc] = []
        async for hb in self.db.meta.find({"kind": "ingestor"}):
            if str(hb["_id"]) == self._meta_id:
                continue
            if hb.get("alive_at") is None or hb["alive_at"] < cutoff or (
                    hb.get("host") == _HOST and not _pid_alive(int(hb.get("pid") or 0))):
                dead.append(hb)
        done = 0
        for hb in dead:
            done += await self._repair_owner(hb)
            await self.db.meta.delete_one({"_id": hb["_id"]})
        return done

    async def _repair_owner(self, hb: Doc) -> int:
        through = hb.get("through") or _EPOCH
        random = bytes(hb.get("oid_random") or b"")
        lo = ObjectId.from_datetime(max(through - MARGIN, _EPOCH))
        deltas: dict[str, _Delta] = {}
        count = 0
        # a range on _id: only with the hint does the embedded server read it from the index
        async for doc in self.db.messages.find(
                {"_id": {"$gte": lo}, "direction": "in"},
                {"raw": 0}, hint=[("_id", 1)]):
            if _oid_random(doc["_id"]) != random or "received_at" not in doc:
                continue
            deltas.setdefault(doc["conversation_id"], _Delta(doc["received_at"],
                                                             doc["received_at"])).add(doc)
            count += 1
        for conv_id, delta in deltas.items():
            await self._repair_conversation(conv_id, delta)
        self.repaired += count
        if count:
            log.warning("summaries: checked %d conversations for %d messages left by a stopped "
                        "process", len(deltas), count)
        return count

    async def _repair_conversation(self, conv_id: str, delta: _Delta) -> None:
        """Counters recounted from the messages; times, preview and status merged."""
        oid = ObjectId(conv_id)
        conv = await self.db.conversations.find_one({"_id": oid}, {"read_at": 1})
        if conv is None:
            return
        total = await self.db.messages.count_documents({"conversation_id": conv_id})
        unread_flt: Doc = {"conversation_id": conv_id, "direction": "in"}
        if conv.get("read_at") is not None:
            unread_flt["received_at"] = {"$gt": conv["read_at"]}
        unread = await self.db.messages.count_documents(unread_flt)
        mine = self._pending.get(conv_id)  # our own next round still adds these (no round runs)
        if mine is not None:
            total, unread = total - mine.n, unread - mine.n_in
        pipeline = _round_pipeline({conv_id: delta.row(conv_id)}, f"repair:{ObjectId()}")
        pipeline[1]["$set"].update({"unread": max(unread, 0), "message_count": max(total, 0)})
        await self.db.conversations.update_one({"_id": oid}, pipeline)


def _transient(exc: PyMongoError) -> bool:
    return isinstance(exc, ConnectionFailure | WriteConcernError) or \
        exc.has_error_label("RetryableWriteError")


async def _retrying(call: Any) -> None:
    """Retry one idempotent statement until the database is back; other errors raise."""
    delay = 0.05
    while True:
        try:
            await call()
            return
        except PyMongoError as exc:
            if not _transient(exc):
                raise
            log.warning("summaries: write failed (%s); retrying in %.1f s",
                        type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
