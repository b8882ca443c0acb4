"""The event hub behind `GET /api/events` (web/events.py): database changes → SSE frames.

One `EventHub` per process follows `conversations`, `messages` and `presence` on the process's
change feed (inbox/changes.py; updated documents read once per batch) and fans each change
out to every connected client (a queue per client; one JSON encoding per change,
not per client). An event's `id` is the change's resume token, so a browser that reconnects
with `Last-Event-ID` gets what it missed:

- from the hub's ring buffer of recent events when the token is still in it (the usual case);
- otherwise (another process, a restart) from a short catch-up change stream opened at that
  token, spliced onto the live feed without gaps or duplicates;
- a token the database no longer has (error 286, ChangeStreamHistoryLost) or cannot parse
  gives a `reload` event: the page fetches the current state instead.

Pages call `hub.mark()` before they read what they render and pass that position as `since`,
so nothing that happens between the render and the stream opening is lost.

Events carry the JSON shapes of web/views.py (conversation summary, message with delivery
state) — never raw platform payloads or credentials.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo.errors import OperationFailure, PyMongoError

from inbox.changes import ChangeFeed, HistoryLost
from inbox.db import Database, Doc, find_in
from inbox.doc_cache import DocCache
from inbox.tasks import breathe
from web.errors import ApiError
from web.views import conversation_json, message_json

log = logging.getLogger(__name__)

COLLECTIONS = ("conversations", "messages", "presence")
KEPT = ("conversations", "messages")  # whose documents the hub keeps current (DocCache)
PIPELINE: list[Doc] = [
    {"$match": {"ns.coll": {"$in": list(COLLECTIONS)},
                "operationType": {"$in": ["insert", "update", "replace", "delete"]}}},
    {"$project": {"fullDocument.raw": 0, "fullDocument.credentials": 0,
                  "updateDescription": 0}},
]
HISTORY_LOST = 286
START_TIMEOUT = 10.0
TYPES = ("conversation", "message", "presence")
CLOSE = b""
PING = b":"
_ID_RE = re.compile(r"^(?:[0-9a-f]{2,1024}|~[A-Za-z0-9_-]{4,1400})$")


def encode_id(token: Doc) -> str:
    """A resume token as an SSE id: its hex `_data`, or `~` + base64url(BSON)."""
    data = token.get("_data")
    if set(token) == {"_data"} and isinstance(data, str) and re.fullmatch(r"[0-9a-f]+", data):
        return data
    return "~" + base64.urlsafe_b64encode(bson.encode(token)).decode().rstrip("=")


def decode_id(event_id: str) -> Doc | None:
    if not _ID_RE.match(event_id):
        return None
    if not event_id.startswith("~"):
        return {"_data": event_id}
    raw = event_id[1:]
    try:
        return bson.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, bson.errors.BSONError, ValueError):
        return None


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


@dataclass(slots=True)
class Event:
    id: str
    type: str
    conversation_id: str
    payload: bytes


@dataclass(eq=False)
class Subscriber:
    types: frozenset[str]
    conversation_id: str | None
    queue: asyncio.Queue[bytes]
    catching_up: bool = False
    held: list[Event] = field(default_factory=list)
    overflowed: bool = False

    def wants(self, event: Event) -> bool:
        if event.type not in self.types:
            return False
        return self.conversation_id is None or event.conversation_id in ("",
                                                                         self.conversation_id)

    def push(self, data: bytes) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            # a client too slow to keep up is disconnected; it reconnects with Last-Event-ID
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSE)


class EventHub:
    def __init__(self, db: Database, *, buffer_size: int = 4096, queue_size: int = 1024,
                 max_await_ms: int = 500, catch_up_limit: int = 10_000,
                 heartbeat: float = 15.0, feed: ChangeFeed | None = None) -> None:
        self.db = db
        self.feed = feed
        self._own_feed: ChangeFeed | None = None
        self.heartbeat = heartbeat
        self.buffer_size = buffer_size
        self.queue_size = queue_size
        self.max_await_ms = max_await_ms
        self.catch_up_limit = catch_up_limit
        self.subscribers: set[Subscriber] = set()
        self.streams_opened = 0  # catch-up streams for clients the buffer cannot serve
        self._buffer: deque[tuple[int, str, Event | None]] = deque()
        self._index: dict[str, int] = {}
        self._seq = 0
        self._position: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._beat: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._contacts: OrderedDict[str, Doc | None] = OrderedDict()
        self._docs = DocCache()  # conversations and messages as the feed leaves them
        self.docs_read = 0  # updated documents read back (those the cache could not bring)
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Follow the change feed (once); returns when it is watching."""
        if self._stopped:
            raise RuntimeError("event hub stopped")
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._watch(), name="switchboard-events")
        if self._beat is None or self._beat.done():
            self._beat = asyncio.create_task(self._heartbeat(), name="switchboard-sse-beat")
        if self._ready.is_set():
            return
        waiter = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=START_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if self._task in done:
                self._task.result()  # re-raises why the watcher died
            raise ApiError(503, "unavailable", "live updates are unavailable; try again")

    def close_clients(self) -> None:
        for sub in list(self.subscribers):
            sub.push(CLOSE)

    async def stop(self) -> None:
        self._stopped = True
        self.close_clients()
        for task in (self._task, self._beat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._beat = None

    async def _heartbeat(self) -> None:
        """One timer for every client (not a timeout per client): each gets a ping marker."""
        while True:
            await asyncio.sleep(self.heartbeat)
            for sub in list(self.subscribers):
                if not sub.overflowed:
                    with contextlib.suppress(asyncio.QueueFull):
                        sub.queue.put_nowait(PING)

    # ------------------------------------------------------------------ clients

    async def mark(self) -> str | None:
        """The current position, as an id a page passes to its event stream as `since`."""
        await self.start()
        position = self._position
        if position is not None and position not in self._index:
            self._remember(position, None)
        return position

    async def subscribe(self, *, types: frozenset[str] = frozenset(TYPES),
                        conversation_id: str | None = None,
                        since: str | None = None) -> Subscriber:
        await self.start()
        sub = Subscriber(types, conversation_id, asyncio.Queue(self.queue_size))
        if since is None or since == self._position:
            self.subscribers.add(sub)
            return sub
        start = self._index.get(since)
        if start is not None:  # replay from the buffer and go live in one step (no await)
            for seq, _, event in self._buffer:
                if seq > start and event is not None and sub.wants(event):
                    sub.push(event.payload)
            self.subscribers.add(sub)
            return sub
        token = decode_id(since)
        sub.catching_up = True
        self.subscribers.add(sub)
        if token is None:
            self._reload(sub)
        else:
            await self._catch_up(sub, token)
        sub.catching_up = False
        held, sub.held = sub.held, []
        for event in held:
            sub.push(event.payload)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _reload(self, sub: Subscriber) -> None:
        sub.held.clear()
        sub.push(frame("reload", {"reason": "history_lost"}))

    async def _catch_up(self, sub: Subscriber, token: Doc) -> None:
        """Events after `token` that the buffer no longer has, then the held live ones."""
        sent: set[str] = set()
        try:
            async with await self.db.watch(PIPELINE, full_document="updateLookup",
                                           resume_after=token,
                                           max_await_time_ms=50) as stream:
                self.streams_opened += 1
                while len(sent) < self.catch_up_limit:
                    change = await stream.try_next()
                    if change is None:
                        break
                    event_id = encode_id(change["_id"])
                    if event_id in self._index or any(e.id == event_id for e in sub.held):
                        self._splice(sub, event_id, sent)
                        return
                    event = await self._event(change, event_id)
                    sent.add(event_id)
                    if event is not None and sub.wants(event):
                        sub.push(event.payload)
                else:
                    self._reload(sub)
                    return
        except OperationFailure as exc:
            log.info("event stream resume refused (%s): asking the client to reload", exc.code)
            self._reload(sub)
            return
        except PyMongoError as exc:
            log.warning("event catch-up failed: %s", type(exc).__name__)
            self._reload(sub)
            return
        sub.held = [e for e in sub.held if e.id not in sent]

    def _splice(self, sub: Subscriber, event_id: str, sent: set[str]) -> None:
        """The catch-up stream reached events the hub already has: continue from the buffer."""
        start = self._index.get(event_id)
        if start is not None:
            for seq, eid, event in self._buffer:
                if seq >= start and event is not None and eid not in sent:
                    sent.add(eid)
                    if sub.wants(event):
                        sub.push(event.payload)
        sub.held = [e for e in sub.held if e.id not in sent]

    # ------------------------------------------------------------------ the watcher

    async def _watch(self) -> None:
        feed = self.feed
        if feed is None:  # a hub alone (tests): a feed of its own
            feed = self._own_feed = ChangeFeed(self.db, COLLECTIONS,
                                               max_await_ms=self.max_await_ms)
        await feed.start()
        sub = feed.subscribe("events", COLLECTIONS)
        try:
            if sub.token is not None:
                self._position = encode_id(sub.token)
            self._ready.set()
            while True:
                try:
                    batch = await sub.next_batch(None)
                except HistoryLost:
                    log.warning("event stream history lost; clients reload")
                    self._reset()
                    continue
                docs = await self._looked_up(batch.changes)
                await self._contacts_of(batch.changes, docs)
                for i, change in enumerate(batch.changes):
                    await breathe(i)
                    event_id = encode_id(change["_id"])
                    if change.get("operationType") == "update":  # a replace carries it
                        key = (change["ns"]["coll"], change["documentKey"]["_id"])
                        change = {**change, "fullDocument": docs.get(key)}
                    event = await self._event(change, event_id)
                    self._publish(event_id, event)
                    self._position = event_id
                if batch.token is not None:
                    self._position = encode_id(batch.token)
        finally:
            feed.unsubscribe(sub)
            if self._own_feed is not None:
                await self._own_feed.stop()
                self._own_feed = None

    async def _looked_up(self, changes: list[Doc]) -> dict[tuple[str, Any], Doc]:
        """The current documents of a batch's updates: brought up to date from the copies
        the hub keeps (inbox/doc_cache.py), the others read in one query per collection
        (what `updateLookup` would read one by one, for every update of every collection)."""
        wanted: dict[str, list[Any]] = {}
        found: dict[tuple[str, Any], Doc] = {}
        for change in changes:
            kept = change["ns"]["coll"] in KEPT
            doc = self._docs.follow(change) if kept else None
            if change.get("operationType") != "update":
                continue
            key = (change["ns"]["coll"], change["documentKey"]["_id"])
            if doc is not None and key not in found:
                found[key] = doc
            elif doc is None:
                found.pop(key, None)  # read below, after every change of the batch
                wanted.setdefault(key[0], []).append(key[1])
        for coll, ids in wanted.items():
            try:
                for doc in await find_in(self.db[coll], ids, projection={"raw": 0,
                                                                        "credentials": 0}):
                    self.docs_read += 1
                    found[(coll, doc["_id"])] = (self._docs.put(coll, doc) if coll in KEPT
                                                 else doc)
            except PyMongoError as exc:  # the events go out without their documents
                log.warning("event lookups failed: %s", type(exc).__name__)
        return found

    def _reset(self) -> None:
        self._docs.clear()  # changes were missed: the copies may be behind
        self._buffer.clear()
        self._index.clear()
        self._position = None
        for sub in list(self.subscribers):
            self._reload(sub)

    def _remember(self, event_id: str, event: Event | None) -> None:
        self._seq += 1
        self._buffer.append((self._seq, event_id, event))
        self._index[event_id] = self._seq
        while len(self._buffer) > self.buffer_size:
            old_seq, old, _ = self._buffer.popleft()
            if self._index.get(old) == old_seq:
                del self._index[old]

    def _publish(self, event_id: str, event: Event | None) -> None:
        if event_id in self._index:
            return
        self._remember(event_id, event)
        if event is None:
            return
        for sub in list(self.subscribers):
            if not sub.wants(event):
                continue
            if sub.catching_up:
                sub.held.append(event)
            else:
                sub.push(event.payload)

    async def _event(self, change: Doc, event_id: str) -> Event | None:
        coll = change.get("ns", {}).get("coll")
        op = change.get("operationType")
        key = str((change.get("documentKey") or {}).get("_id", ""))
        doc = change.get("fullDocument")
        if coll == "presence":  # who has a conversation open or is typing (collision)
            conv_id, _, agent_id = key.partition(":")
            body = {"conversation_id": conv_id, "agent_id": agent_id,
                    "agent_name": (doc or {}).get("agent_name"),
                    "state": "left" if op == "delete" else (doc or {}).get("state")}
            return Event(event_id, "presence", conv_id, frame("presence", body, event_id))
        if op == "delete":
            if coll == "conversations":
                return Event(event_id, "conversation", key,
                             frame("conversation_deleted", {"id": key}, event_id))
            return None
        if not doc:
            return None
        try:
            if coll == "conversations":
                contact = await self._contact(doc.get("contact_id"))
                body = conversation_json(doc, contact)
                return Event(event_id, "conversation", body["id"],
                             frame("conversation", body, event_id))
            if coll == "messages":
                body = message_json(doc)
                return Event(event_id, "message", body["conversation_id"],
                             frame("message", body, event_id))
        except Exception as exc:  # one odd document must not stop the stream
            log.warning("skipping an event for %s: %s", coll, type(exc).__name__)
        return None

    async def _contacts_of(self, changes: list[Doc],
                           docs: dict[tuple[str, Any], Doc]) -> None:
        """The contacts a batch's conversations name, read in one go into the cache (a burst
        of new chats would otherwise cost a read per conversation)."""
        wanted: set[str] = set()
        for change in changes:
            if (change.get("ns") or {}).get("coll") != "conversations":
                continue
            doc = change.get("fullDocument") or docs.get(
                ("conversations", (change.get("documentKey") or {}).get("_id"))) or {}
            contact_id = doc.get("contact_id")
            if contact_id and contact_id not in self._contacts and bson.ObjectId.is_valid(
                    str(contact_id)):
                wanted.add(str(contact_id))
        if not wanted:
            return
        try:
            found = {str(d["_id"]): d for d in await find_in(
                self.db.contacts, [bson.ObjectId(c) for c in wanted],
                projection={"name": 1, "handle": 1})}
        except PyMongoError:
            return  # each is read on its own, or goes out without the name
        for contact_id in wanted:
            if contact_id in found:  # one not there yet is read again when it is named
                self._remember_contact(contact_id, found[contact_id])

    def _remember_contact(self, contact_id: str, doc: Doc | None) -> None:
        self._contacts[contact_id] = doc
        if len(self._contacts) > 10_000:
            self._contacts.popitem(last=False)

    async def _contact(self, contact_id: str | None) -> Doc | None:
        if not contact_id:
            return None
        if contact_id in self._contacts:
            self._contacts.move_to_end(contact_id)
            return self._contacts[contact_id]
        try:
            doc = await self.db.contacts.find_one({"_id": bson.ObjectId(contact_id)},
                                                  {"name": 1, "handle": 1})
        except (bson.errors.InvalidId, TypeError):
            doc = None
        except PyMongoError:
            return None  # the summary goes out without the name rather than not at all
        if doc is not None:  # one not there yet is read again next time
            self._remember_contact(contact_id, doc)
        return doc
