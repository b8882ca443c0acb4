"""Conversations and their summaries: a new chat's conversation created before its webhook is
answered, every summary written behind it, and all rebuilt after a crash.

Ingest stores the messages (the truth) first (inbox/ingest.py). A conversation that a stored
batch opens is then created at once, filled in (with its contact, and the aliases of its
thread), and the batch's acknowledgement waits for that, up to `LISTED_WITHIN` (past it the
creation goes on behind the answer): a new chat is listed when its webhook is answered
(measured on a saturated inbox: p99 13–37 ms after the acknowledgement, against 1.4–1.5 s when
it was created by a round behind it). One that does not exist after all (another process made
it, or this one before a restart: its duplicate key tells) joins the updates.

Everything else follows in rounds: each conversation that exists gets one pipeline update with
all that the round adds to it (activity time and `sk`, preview, unread, message_count,
reopen), for the `CHUNK` that waited longest, one statement per chunk. A round also creates
whatever of it does not exist yet (a batch whose insert failed half-way and was recovered, a
creation that failed and was rebuilt).

Why rounds, and why they wait: on the embedded server an update costs more than an insert (it
rewrites every index entry of the document), and the database is one busy core. So
acknowledgements come first: a round waits while an insert batch is in flight (longer while
the inbox is busy, in proportion to what the last round cost, never once a message has waited
`STALE_AFTER` for it), and the busier the inbox, the more messages each round coalesces. Idle,
a round follows its batch within milliseconds; `settle()` waits for the rounds.

Crash safety: each process keeps a heartbeat document in `meta` listing `dirty`, the
conversations with messages it stored and has not summarised yet, and `recent`, those a round
summarised in the last `STICKY` seconds. Before each insert batch the conversations listed in
neither are marked in `summary_marks` (one small insert; a busy conversation costs it once,
not once per batch); the heartbeat is rewritten every second as rounds land and then drops the
marks it has taken in. Marks are inserts, not pushes onto the heartbeat: on the embedded
server an update costs in proportion to the document, and the heartbeat of a busy process
lists thousands of conversations (a `$push` onto one listing 1,600–3,400 cost 12–23 ms, on the
acknowledgement's path, against ~2 ms for the insert). When a process is gone (heartbeat
older than `DEAD_AFTER`, or its pid no longer runs on this host), another one rebuilds each of
its listed conversations from the messages themselves: created if missing, counters
recounted, times merged, preview and status set. A restarted process repairs its
predecessor's `dirty` before it takes traffic, and its `recent` right after, behind the start.
A round whose write fails is retried
as the same statement, made idempotent by a per-round tag.

Another layer may fill in conversations as they are created (`CreationHooks`: the router
writes a new customer's routing decision into the insert instead of updating it after);
what its hooks have not finished stays listed in the heartbeat as `recent`, and a repair of
a dead process's heartbeat hands them back to the hooks (`recovered`).

Needs MongoDB 5.0 or later (`$getField`) when not on the embedded server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bson import ObjectId
from pymongo.errors import PyMongoError

from inbox.conversation_docs import (
    Delta,
    insert_ignoring_duplicates,
    insert_new,
    new_contact,
    new_conversation,
    preview_of_doc,
    retrying,
    round_pipeline,
)
from inbox.db import Database, Doc, find_in
from inbox.ids import alias_oid
from inbox.priority import AckWindow

log = logging.getLogger(__name__)

CHUNK = 64  # conversations per statement: larger $in lists cost more per document on the server
HEARTBEAT_EVERY = 5.0
DIRTY_EVERY = 1.0
# s a summarised conversation stays listed (as `recent`), so that its next batch needs no
# write before the insert: a busy conversation is marked once, not once per batch
STICKY = 10.0
DEAD_AFTER = timedelta(seconds=30)
REPAIR_EVERY = 15.0
ENSURE_AFTER = 10.0  # s: a redelivery's conversation still missing by then is rebuilt
BUSY_WAIT_MAX = 2.0  # s: the longest a round of updates yields
BUSY_SHARE = 0.35  # a saturated inbox spends about this share of database time on rounds
# s: a round of updates stops yielding once a message has waited this long for it (so the
# inbox's order and previews trail a saturated ingest by about this, not by its backlog)
STALE_AFTER = 2.0
_HOST = socket.gethostname()

# (the conversation about to be inserted, its first message, its contact when this round
# created that contact too, else None)
NewConversation = tuple[Doc, Doc, Doc | None]


class CreationHooks(Protocol):
    """What another layer adds to conversations as they are created, without a write of its
    own after them (teams/router.py: a routing decision that needs nothing but the first
    message and a new contact; on the embedded server the update that would record it later
    costs more than the insert itself)."""

    async def prefill(self, new: list[NewConversation]) -> None:
        """Add fields to the conversations before their insert (those inserted by another
        process meanwhile are dropped whatever they were given)."""

    def created(self, new: list[NewConversation]) -> None:
        """These conversations, as prefilled, were inserted by this process."""

    def unfinished(self) -> set[str]:
        """Conversations created here whose hook work is not done yet: the heartbeat lists
        them (as `recent`) until it is, so that a repair after a crash finds them."""

    async def recovered(self, conv_ids: list[str]) -> None:
        """A dead process's conversations were rebuilt: finish what it may not have."""


class _Seen:
    """Conversation ids known to exist (a bounded set)."""

    def __init__(self, size: int = 200_000) -> None:
        self._data: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __contains__(self, key: str) -> bool:
        if key in self._data:
            self._data.move_to_end(key)
            return True
        return False

    def add(self, key: str) -> None:
        self._data[key] = None
        if len(self._data) > self._size:
            self._data.popitem(last=False)


class Summariser:
    """Creates and summarises the conversations of one process's ingests."""

    def __init__(self, db: Database, acks: AckWindow) -> None:
        self.db = db
        self.acks = acks  # the ingestor's: rounds yield to its insert batches
        self.owner = str(ObjectId())
        self.hooks: CreationHooks | None = None
        self._pending: dict[str, Delta] = {}
        self._in_flight: dict[str, Delta] = {}
        # conversations being created before their batch's acknowledgement → that creation
        self._creating: dict[str, asyncio.Task[None]] = {}
        self._rebuilding: Counter[str] = Counter()
        self._inserting: Counter[str] = Counter()  # conversation → batches being inserted
        self._marked: set[str] = set()  # the heartbeat's `dirty` and `recent`, as written
        self._recent: dict[str, float] = {}  # conversation → when a round last summarised it
        self._repairing: set[str] = set()  # dead heartbeats whose `recent` is being rebuilt
        self._exists = _Seen()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._registered = False
        self._mark_seq = 0  # marks of this process are `<heartbeat id>#<seq>`
        self._marks_dropped = 0
        # one heartbeat at a time: an older list landing after a newer one's marks were
        # dropped would leave those conversations listed nowhere
        self._beating = asyncio.Lock()
        self._dirty_written = 0.0
        self._last_round = 0.0
        self._floor_written: str | None = None
        self._round = 0
        self.rounds = 0
        self.summarised = 0
        self.created = 0
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
        written stays listed as dirty: the next start rebuilds it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settle(), timeout)
        for task in (self._background, self._task, *self._checks):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._registered and not self._dirty():
            with contextlib.suppress(PyMongoError, TimeoutError):
                async with asyncio.timeout(2):
                    if self._unfinished():  # left listed for the next start's repair
                        await self._heartbeat()
                        return
                    await self.db.summary_marks.delete_many(_marks_of(self._meta_id))
                    await self.db.meta.delete_one({"_id": self._meta_id})

    async def settle(self) -> None:
        """Wait until every acknowledged message is reflected in its conversation."""
        while self._pending or self._in_flight or self._creating or (
                self._task and not self._task.done()):
            if self._creating:
                await asyncio.wait(set(self._creating.values()))
            await self._idle.wait()
            await asyncio.sleep(0)

    @property
    def _meta_id(self) -> str:
        return f"ingestor:{self.owner}"

    def _dirty(self) -> set[str]:
        return {*self._pending, *self._in_flight, *self._inserting, *self._creating,
                *self._rebuilding}

    def _unfinished(self) -> set[str]:
        return self.hooks.unfinished() if self.hooks is not None else set()

    def _mark_id(self, seq: int) -> str:
        return f"{self._meta_id}#{seq:012d}"

    async def _heartbeat(self) -> None:
        async with self._beating:
            await self._beat()

    async def _beat(self) -> None:
        taken_in = self._mark_seq  # every mark up to here names ids listed below
        dirty = self._dirty()
        cutoff = time.monotonic() - STICKY
        for conv_id in [c for c, at in self._recent.items() if at < cutoff]:
            del self._recent[conv_id]
        recent = (set(self._recent) | self._unfinished()) - dirty
        await self.db.meta.update_one(
            {"_id": self._meta_id},
            {"$set": {"kind": "ingestor", "host": _HOST, "pid": os.getpid(),
                      "dirty": sorted(dirty), "recent": sorted(recent),
                      "alive_at": datetime.now(UTC)}}, upsert=True)
        self._marked = dirty | recent
        self._dirty_written = time.monotonic()
        self._registered = True
        if taken_in > self._marks_dropped:
            await self.db.summary_marks.delete_many(
                {"_id": {"$gt": f"{self._meta_id}#", "$lte": self._mark_id(taken_in)}})
            self._marks_dropped = taken_in

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

    async def inserting(self, at: datetime, docs: list[Doc]) -> None:
        """A batch is about to be inserted: list its conversations as dirty first."""
        ids = {d["conversation_id"] for d in docs}
        self._inserting.update(ids)
        new = ids - self._marked
        if new or not self._registered:
            try:
                if not self._registered:
                    await self._heartbeat()  # lists `ids`, which are inserting
                else:
                    self._mark_seq += 1
                    await self.db.summary_marks.insert_one(
                        {"_id": self._mark_id(self._mark_seq), "ids": sorted(new)})
            except BaseException:
                self._inserting.subtract(ids)
                self._inserting += Counter()  # drop the zeros
                raise
            self._marked |= new

    def inserted(self, at: datetime, stored: list[Doc], *,
                 failed: bool = False) -> asyncio.Task[None] | None:
        """The batch is stored (or failed, perhaps half-way): schedule its summaries. Returns
        the creation of the conversations it opens, which its acknowledgement waits for."""
        ids = {d["conversation_id"] for d in stored}
        if failed:
            self._recover_later(stored, ids)
            return None
        self._inserting.subtract(ids)
        self._inserting += Counter()
        return self._create_now(stored)

    def _create_now(self, stored: list[Doc]) -> asyncio.Task[None] | None:
        """Create the conversations a stored batch opens, at once: not behind a round of
        updates, nor yielding to acknowledgements (this is one). Those known to exist, or
        waiting in a round, or being rebuilt, go to the rounds."""
        fresh: dict[str, list[Doc]] = {}
        rest: list[Doc] = []
        for doc in stored:
            cid = doc["conversation_id"]
            if cid in fresh or (cid not in self._exists and cid not in self._pending
                                and cid not in self._in_flight and cid not in self._creating
                                and not self._rebuilding[cid]):
                fresh.setdefault(cid, []).append(doc)
            else:
                rest.append(doc)
        self.add(rest)
        if not fresh:
            return None
        task = asyncio.create_task(self._create_direct(fresh), name="summaries-create")
        self._creating.update(dict.fromkeys(fresh, task))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _create_direct(self, fresh: dict[str, list[Doc]]) -> None:
        deltas: dict[str, Delta] = {}
        for cid, docs in fresh.items():
            delta = deltas[cid] = Delta(docs[0]["received_at"], docs[0]["received_at"])
            for doc in docs:
                delta.add(doc)
        self._round += 1
        chunk = dict(deltas)
        try:
            await self._learn_aliases(chunk)
            await self._create_missing(chunk, f"{self.owner}:{self._round}")
        except Exception:
            # perhaps half-way (created, not yet told apart): rebuilt from the messages, as a
            # round that fails is; they stay dirty meanwhile
            log.exception("summaries: creating %d conversations failed; rebuilding them",
                          len(fresh))
            self._rebuilding.update(list(fresh))
            self._done_creating(fresh, set(fresh))
            try:
                async with self._lock:
                    await self._rebuild_each(list(fresh))
            finally:
                self._rebuilding.subtract(list(fresh))
                self._rebuilding += Counter()
            return
        finally:
            self._done_creating(fresh, set(chunk))
        # those that existed (another process made them, or this one before a restart): their
        # messages are added by the rounds
        self.add([doc for cid in chunk for doc in fresh[cid]])

    def _done_creating(self, ids: Iterable[str], not_created: set[str]) -> None:
        now = time.monotonic()
        for cid in ids:
            if self._creating.pop(cid, None) is not None and cid not in not_created:
                self._recent[cid] = now

    def ensure(self, conv_ids: set[str]) -> None:
        """Redelivered messages: their conversations must exist. One the first delivery's
        crash left unmade (stored, not acknowledged, not listed as dirty) is rebuilt."""
        unknown = [c for c in conv_ids if c not in self._exists]
        if not unknown:
            return

        async def check() -> None:
            # the process that stored the first delivery may be alive and about to create
            # the conversation: give its round time, then make only what is still missing
            await asyncio.sleep(ENSURE_AFTER)
            found = {str(d["_id"]) async for d in self.db.conversations.find(
                {"_id": {"$in": [ObjectId(c) for c in unknown]}}, {"_id": 1})}
            for conv_id in unknown:
                if conv_id in found:
                    self._exists.add(conv_id)
                elif conv_id not in self._pending and conv_id not in self._in_flight \
                        and conv_id not in self._creating:
                    await self.rebuild(conv_id)

        task = asyncio.create_task(check())
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def add(self, stored: list[Doc]) -> None:
        for doc in stored:
            delta = self._pending.get(doc["conversation_id"])
            if delta is None:
                delta = self._pending[doc["conversation_id"]] = Delta(doc["received_at"],
                                                                       doc["received_at"])
            delta.add(doc)
        if self._pending and (self._task is None or self._task.done()):
            self._idle.clear()
            self._task = asyncio.create_task(self._run())

    def _recover_later(self, docs: list[Doc], ids: set[str]) -> None:
        """The insert failed, perhaps half-way: summarise whatever of it did get stored."""
        async def recover() -> None:
            delay = 0.1
            while True:
                try:
                    found = await self.db.messages.find(
                        {"_id": {"$in": [d["_id"] for d in docs]}}, {"_id": 1}).to_list()
                    break
                except Exception:  # the database is still away: try again
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            have = {f["_id"] for f in found}
            self._inserting.subtract(ids)
            self._inserting += Counter()
            self.add([d for d in docs if d["_id"] in have])

        task = asyncio.create_task(recover())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # ------------------------------------------------------------------ rounds

    def _behind(self) -> float:
        """Seconds the oldest message waiting for its round has waited."""
        oldest = min((d.since for d in itertools.islice(self._pending.values(), CHUNK)),
                     default=datetime.now(UTC))
        return (datetime.now(UTC) - oldest).total_seconds()

    async def _yield_to_acks(self) -> None:
        """Wait while an insert batch is in flight, longer the more the last round cost (a busy
        inbox coalesces more), never once a message has waited `STALE_AFTER` for its round."""
        if not self.acks.busy:
            return
        budget = min(BUSY_WAIT_MAX, STALE_AFTER - self._behind(),
                     self._last_round * (1 - BUSY_SHARE) / BUSY_SHARE)
        if budget > 0:
            await self.acks.wait_idle(max(budget, 0.01))

    def _take(self) -> dict[str, Delta]:
        """The `CHUNK` conversations that waited longest, out of `_pending`, but none that is
        being created: its messages wait for that creation, and then update it in order (a
        round that created it first would have the older messages land last, with their
        preview)."""
        taken = dict(itertools.islice(((cid, d) for cid, d in self._pending.items()
                                       if cid not in self._creating), CHUNK))
        for cid in taken:
            del self._pending[cid]
        return taken

    async def _run(self) -> None:
        try:
            while self._pending:
                if all(cid in self._creating for cid in self._pending):
                    await asyncio.wait({self._creating[cid] for cid in self._pending})
                    continue
                await self._yield_to_acks()
                async with self._lock:
                    self._in_flight = self._take()
                    if not self._in_flight:
                        continue
                    self._round += 1
                    started = time.monotonic()
                    try:
                        await self._apply_round(f"{self.owner}:{self._round}")
                    except Exception:
                        # not a passing outage (those are retried): rebuild what this round
                        # touched, conversation by conversation
                        log.exception("summaries: a round failed; rebuilding %d conversations",
                                      len(self._in_flight))
                        await self._rebuild_each(list(self._in_flight))
                    self._last_round = time.monotonic() - started
                    self.rounds += 1
                    self.summarised += sum(d.n for d in self._in_flight.values())
                    now = time.monotonic()
                    self._recent.update((cid, now) for cid in self._in_flight)
                    self._in_flight = {}
                if time.monotonic() - self._dirty_written >= DIRTY_EVERY:
                    with contextlib.suppress(PyMongoError):
                        await self._heartbeat()
        finally:
            self._idle.set()

    async def _apply_round(self, tag: str) -> None:
        remaining = dict(self._in_flight)
        await self._learn_aliases(remaining)
        await self._create_missing(remaining, tag)  # all at once: inserts take no `$in`
        items = [(cid, d) for cid, d in remaining.items() if cid in self._exists]
        for start in range(0, len(items), CHUNK):
            existing = dict(items[start:start + CHUNK])
            table = {cid: d.row(cid) for cid, d in existing.items()}
            flt = {"_id": {"$in": [ObjectId(cid) for cid in existing]},
                   "sum_round": {"$ne": tag}}
            await retrying(lambda f=flt, t=table: self.db.conversations.update_many(
                f, round_pipeline(t, tag)))

    async def _learn_aliases(self, chunk: dict[str, Delta]) -> None:
        """The further thread keys messages named (an email's own Message-ID, which the
        customer's next mail will reference) map to their conversation from now on."""
        aliases = [{"_id": alias_oid(d.first["account_id"], key), "conversation_id": cid,
                    "account_id": d.first["account_id"]}
                   for cid, d in chunk.items() if len(d.keys) > 1 and d.first is not None
                   for key in d.keys]
        await insert_ignoring_duplicates(self.db.thread_aliases, aliases)
        for cid, delta in chunk.items():  # the References of the mails we send name them
            if len(delta.keys) > 1 and cid in self._exists:
                await self.db.conversations.update_one(
                    {"_id": ObjectId(cid)}, {"$addToSet": {"thread_keys": {"$each": delta.keys}}})

    async def _create_missing(self, chunk: dict[str, Delta], tag: str) -> None:
        """Create (filled in) the conversations of `chunk` not known to exist, with their
        contacts and aliases; those that did exist (another process created them, or this
        one before a restart) are told by their duplicate key, and join the update. No read
        first: on a busy database each command waits its turn, and a new chat is listed only
        once its round is through."""
        new = {cid: d for cid, d in chunk.items() if cid not in self._exists
               and d.first is not None}
        if not new:
            return
        contacts = {str(c["_id"]): c for c in (new_contact(d.first) for d in new.values()
                                               if d.first is not None)}
        existed = await insert_ignoring_duplicates(self.db.contacts, list(contacts.values()))
        fresh = {cid for i, cid in enumerate(contacts) if i not in existed}
        docs = [new_conversation(cid, delta, tag) for cid, delta in new.items()]
        items: list[NewConversation] = [
            (doc, delta.first, contacts[doc["contact_id"]] if doc["contact_id"] in fresh
             else None) for doc, delta in zip(docs, new.values(), strict=True)
            if delta.first is not None]
        hooks = self.hooks  # the same for the whole round, whoever changes it meanwhile
        if hooks is not None:
            try:
                await hooks.prefill(items)
            except Exception:  # the conversation is worth more than what a hook adds
                log.exception("summaries: a creation hook failed; created without it")
        taken, retried = await insert_new(self.db.conversations, docs)
        if taken and retried:  # the first try may have inserted some: those are ours
            ours = await self._created_by(tag, [docs[i]["_id"] for i in taken])
            taken = {i for i in taken if docs[i]["_id"] not in ours}
        created = [d for i, d in enumerate(docs) if i not in taken]
        if hooks is not None and created:
            mine = {id(d) for d in created}
            hooks.created([item for item in items if id(item[0]) in mine])
        # those in `taken` existed already: this round's messages are added to them as updates
        for doc in docs:
            self._exists.add(str(doc["_id"]))
        if created:
            self.created += len(created)
            floor = min(d["sk"] for d in created)
            if self._floor_written is None or floor < self._floor_written:
                await self.db.meta.update_one(
                    {"_id": "inbox"}, {"$min": {"floor_sk": floor}}, upsert=True)
                self._floor_written = floor  # the stored floor is at most this from now on
        for doc in created:  # created with this round's messages already counted
            chunk.pop(str(doc["_id"]), None)

    async def _created_by(self, tag: str, ids: list[ObjectId]) -> set[ObjectId]:
        """Which of `ids` the round `tag` inserted (read until the database answers)."""
        found: list[Doc] = []

        async def read() -> None:
            found[:] = await find_in(self.db.conversations, ids, {"created_round": tag},
                                     {"_id": 1})

        await retrying(read)
        return {d["_id"] for d in found}

    async def _rebuild_each(self, conv_ids: list[str]) -> None:
        for conv_id in conv_ids:
            try:
                await self.rebuild(conv_id)
            except Exception:
                log.exception("summaries: conversation %s could not be rebuilt", conv_id)

    # ------------------------------------------------------------------ crash repair

    async def repair(self) -> int:
        """Rebuild the conversations that processes which died left unsummarised."""
        async with self._lock:  # never beside one of our own rounds: see rebuild
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
            if hb["_id"] in self._repairing:
                continue
            marked = [c async for m in self.db.summary_marks.find(_marks_of(hb["_id"]))
                      for c in m.get("ids") or []]
            dirty = list(dict.fromkeys(str(c) for c in [*(hb.get("dirty") or []), *marked]))
            for conv_id in dirty:
                await self.rebuild(conv_id)
            done += len(dirty)
            if dirty:
                log.warning("summaries: rebuilt %d conversations a stopped process left",
                            len(dirty))
            await self.db.summary_marks.delete_many(_marks_of(hb["_id"]))
            recent = [str(c) for c in hb.get("recent") or [] if str(c) not in set(dirty)]
            # the hooks still see the rebuilt ones (behind the start, outside the lock: a
            # hook may wait for a round), so they move to `recent` until that is done
            keep = dirty if self.hooks is not None else []
            if recent or keep:  # perhaps written to in its last second: rebuilt behind
                await self.db.meta.update_one(  # the start
                    {"_id": hb["_id"]}, {"$set": {"dirty": [], "recent": [*recent, *keep]}})
                self._rebuild_later(hb["_id"], recent, keep)
            else:
                await self.db.meta.delete_one({"_id": hb["_id"]})
        self.repaired += done
        return done

    def _rebuild_later(self, hb_id: str, conv_ids: list[str], rebuilt: list[str]) -> None:
        """The conversations a dead process summarised in its last `STICKY` seconds: one of
        them may have had messages stored in the moment before it died that no round wrote.
        Its heartbeat stays until they are done, so a process that dies meanwhile leaves them
        to the next one."""
        self._repairing.add(hb_id)

        async def rebuild_all() -> None:
            try:
                for conv_id in conv_ids:
                    async with self._lock:
                        await self.rebuild(conv_id)
                await self._recovered([*conv_ids, *rebuilt])
                await self.db.meta.delete_one({"_id": hb_id})
                self.repaired += len(conv_ids)
            finally:
                self._repairing.discard(hb_id)

        task = asyncio.create_task(rebuild_all(), name="summaries-repair")
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _recovered(self, conv_ids: list[str]) -> None:
        if self.hooks is not None and conv_ids:
            await self.hooks.recovered(conv_ids)

    async def rebuild(self, conv_id: str) -> None:
        """A conversation's summary from its messages alone (created when missing). Never
        beside its creation before an acknowledgement: both would count the same messages."""
        self._rebuilding[conv_id] += 1
        try:
            while conv_id in self._creating:
                await asyncio.wait({self._creating[conv_id]})
            await self._rebuild(conv_id)
        finally:
            self._rebuilding[conv_id] -= 1

    async def _rebuild(self, conv_id: str) -> None:
        newest = await self.db.messages.find({"conversation_id": conv_id}, {"raw": 0}).sort(
            "sk", -1).limit(1).to_list()
        if not newest:
            return
        oldest = await self.db.messages.find({"conversation_id": conv_id}, {"raw": 0}).sort(
            "sk", 1).limit(1).to_list()
        total = await self.db.messages.count_documents({"conversation_id": conv_id})
        last, first = newest[0], oldest[0]
        delta = Delta(last.get("received_at") or last.get("created_at") or datetime.now(UTC),
                       first.get("received_at") or datetime.now(UTC))
        delta.newest_sk, delta.preview = last["sk"], preview_of_doc(last)
        delta.first_sk, delta.first = first["sk"], first
        delta.keys = list(first.get("thread_keys") or [first.get("thread_key")])
        conv = await self.db.conversations.find_one({"_id": ObjectId(conv_id)}, {"read_at": 1})
        unread_flt: Doc = {"conversation_id": conv_id, "direction": "in"}
        if conv is not None and conv.get("read_at") is not None:
            unread_flt["received_at"] = {"$gt": conv["read_at"]}
        unread = await self.db.messages.count_documents(unread_flt)
        mine = self._pending.get(conv_id)  # our own next round still adds these
        if mine is not None:
            total, unread = total - mine.n, unread - mine.n_in
        tag = f"repair:{ObjectId()}"
        if conv is None:
            if first.get("direction", "in") != "in" or "author" not in first:
                return  # only replies: nothing to build a conversation from
            delta.n, delta.n_in = max(total, 0), max(unread, 0)
            await insert_ignoring_duplicates(self.db.contacts, [new_contact(first)])
            doc = new_conversation(conv_id, delta, tag)
            if await insert_ignoring_duplicates(self.db.conversations, [doc]):
                return await self._rebuild(conv_id)  # created meanwhile: update it instead
            self._exists.add(conv_id)
            await self.db.meta.update_one({"_id": "inbox"}, {"$min": {"floor_sk": doc["sk"]}},
                                          upsert=True)
            return None
        pipeline = round_pipeline({conv_id: delta.row(conv_id)}, tag)
        pipeline[1]["$set"].update({"unread": max(unread, 0), "message_count": max(total, 0)})
        await self.db.conversations.update_one({"_id": ObjectId(conv_id)}, pipeline)
        return None



def _marks_of(heartbeat_id: str) -> Doc:
    return {"_id": {"$gt": f"{heartbeat_id}#", "$lt": f"{heartbeat_id}$"}}


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
