"""Idempotent, batched ingest of inbound messages (group commit), acknowledged after one write.

Callers `await ingest(message)`; messages that arrive while a write is in flight are written
together in the next batch, one `insert_many`. `ingest` returns only once its batch is
acknowledged by the database, so "acknowledged to the platform" still means "durably stored".

Nothing else waits before that write. Ids are derived (inbox/ids.py): a message's `_id` from
(account, platform message id), so a redelivery is a duplicate `_id` — "already have it",
whichever process stored it first — and its conversation's id from (account, thread key), so
the message names a conversation that may not exist yet. A conversation the batch opens, with
its contact, is created right after the insert, and the acknowledgement waits for it (at most
`LISTED_WITHIN`): a new chat is listed when its webhook is answered. Every summary (activity,
preview, unread, reopen) follows behind the acknowledgement, coalesced: see `inbox.summaries`,
which also rebuilds them from the messages after a crash. The message document carries what
that needs (thread key, kind, title, the author).

Only a message whose thread has aliases (an email's References) is resolved first: the
conversation may be one that another key of the thread started (`thread_aliases`).

Each message document is checked before any write; one that the database could not store
fails alone, and the rest of its batch is stored and acknowledged.

Databases written before derived ids (`legacy`) keep their unique indexes and lookups: a
conversation found by (account, thread key) keeps its old id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bson
from bson import ObjectId
from pymongo.errors import BulkWriteError

from inbox.conversation_docs import PREVIEW_CHARS, REOPEN_FROM, preview_of_doc
from inbox.db import Database, Doc
from inbox.ids import alias_oid, contact_oid, conversation_oid, message_oid
from inbox.models import InboundMessage
from inbox.paging import make_sk
from inbox.priority import AckWindow
from inbox.summaries import Summariser

log = logging.getLogger(__name__)

MAX_BATCH = 256
MAX_DOC_BYTES = 8 * 1024 * 1024  # well inside MongoDB's 16 MB, with room for the summaries
MAX_DEPTH = 64
# s the acknowledgement waits, at most, for the conversations its batch opens to be created
# (the message is durable already: past this, they are created behind it)
LISTED_WITHIN = 0.5
__all__ = ["MAX_BATCH", "PREVIEW_CHARS", "REOPEN_FROM", "IngestResult", "Ingestor",
           "UnstorableMessage", "message_doc", "preview_of_doc"]


class UnstorableMessage(ValueError):
    """The database could not store this message as it is (it fails alone)."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    message_id: str
    conversation_id: str
    created: bool  # False: the message was already stored (a redelivery) or only edited
    edited: bool = False


def message_doc(msg: InboundMessage, conversation_id: str, received_at: datetime) -> Doc:
    oid = message_oid(msg.account_id, msg.external_id)
    doc: Doc = {
        "_id": oid,
        # the id part only orders messages of the same platform time: a fresh ObjectId keeps
        # the order they arrived in (a derived `_id` is a hash, in no order)
        "sk": make_sk(msg.platform_ts, ObjectId()),
        "conversation_id": conversation_id,
        "account_id": msg.account_id,
        "platform": msg.platform,
        "external_id": msg.external_id,
        "direction": "in",
        "thread_key": msg.thread_key,
        "kind": msg.kind,
        "author": msg.author.as_doc(),
        "text": msg.text,
        "attachments": [a.as_doc() for a in msg.attachments],
        "reply_to": msg.reply_to,
        "forwarded_from": msg.forwarded_from,
        "platform_ts": msg.platform_ts,
        "received_at": received_at,
        "edited": msg.is_edit,
        "edited_at": msg.edited_at or msg.platform_ts,
        "raw": msg.raw,
    }
    for key, value in (("thread_title", msg.thread_title), ("html", msg.html),
                       ("full_text", msg.full_text), ("reply_route", msg.reply_route)):
        if value is not None:
            doc[key] = value
    if msg.thread_aliases:
        doc["thread_keys"] = list(msg.thread_keys)
    return doc


def check_storable(doc: Doc) -> None:
    """Raise UnstorableMessage when the database would refuse `doc` (BSON cannot encode it:
    64-bit overflow, lone surrogates, NUL in keys; too large; nested too deeply)."""
    try:
        size = len(bson.encode(doc))
    except (bson.errors.InvalidDocument, OverflowError, UnicodeEncodeError, ValueError,
            RecursionError) as exc:
        raise UnstorableMessage(f"the message cannot be stored: {type(exc).__name__}") from None
    if size > MAX_DOC_BYTES:
        raise UnstorableMessage(f"the message is too large to store ({size} bytes)")
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnstorableMessage(f"the message nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


class _LRU:
    def __init__(self, size: int = 100_000) -> None:
        self._data: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._size = size

    def get(self, key: tuple[str, str]) -> str | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: tuple[str, str], value: str) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)


def _duplicates(exc: BulkWriteError) -> set[int]:
    """Indexes of the documents refused as duplicate keys; any other error is raised."""
    found: set[int] = set()
    for err in exc.details.get("writeErrors", []):
        if err.get("code") != 11000:
            raise exc
        found.add(int(err["index"]))
    return found


_Pending = tuple[InboundMessage, "asyncio.Future[IngestResult]"]


class Ingestor:
    """Batches concurrent `ingest` calls of one process into group commits."""

    def __init__(self, db: Database, *, legacy: bool = False) -> None:
        self.db = db
        self.legacy = legacy
        self.acks = AckWindow()  # followers' writes yield to the inserts below
        self.summaries = Summariser(db, self.acks)
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._conversations = _LRU()  # (account, thread key) → conversation id
        self.batches = 0
        self.batched_messages = 0

    async def ingest(self, msg: InboundMessage) -> IngestResult:
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._pending.append((msg, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self.acks.writing(True)
            try:
                await self._write(batch)
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            finally:
                self.acks.writing(bool(self._pending))
            self.batches += 1
            self.batched_messages += len(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        now = datetime.now(UTC)
        fresh: list[_Pending] = []
        for msg, fut in batch:
            if msg.is_edit:
                edited = await self._apply_edit(msg)
                if edited is not None:
                    fut.set_result(edited)
                    continue
            fresh.append((msg, fut))
        if not fresh:
            return
        conv_ids = await self._conversation_ids([m for m, _ in fresh])
        docs: list[Doc] = []
        waiting: list[tuple[int, _Pending]] = []  # the doc each future waits for
        seen: dict[str, int] = {}
        for (msg, fut), conv_id in zip(fresh, conv_ids, strict=True):
            doc = message_doc(msg, conv_id, now)
            key = str(doc["_id"])
            if key in seen:  # the same message twice in one batch
                waiting.append((seen[key], (msg, fut)))
                continue
            try:
                check_storable(doc)
            except UnstorableMessage as exc:
                fut.set_exception(exc)
                continue
            seen[key] = len(docs)
            docs.append(doc)
            waiting.append((seen[key], (msg, fut)))
        if not docs:
            return
        # the heartbeat lists the batch's conversations as dirty while the batch is inserted,
        # both before the acknowledgement: a crash after it can always rebuild them (and one
        # before it is delivered again; a redelivered duplicate checks its conversation)
        marking = asyncio.ensure_future(self.summaries.inserting(now, docs))
        duplicate_at: set[int] = set()
        try:
            try:
                await self.db.messages.insert_many(docs, ordered=False)
            finally:
                await marking
        except BulkWriteError as exc:
            try:
                duplicate_at = _duplicates(exc)
            except BulkWriteError:
                self.summaries.inserted(now, docs, failed=True)
                raise
        except Exception:
            self.summaries.inserted(now, docs, failed=True)
            raise
        stored = [d for i, d in enumerate(docs) if i not in duplicate_at]
        creating = self.summaries.inserted(now, stored)
        if creating is not None:  # a new chat is listed when its webhook is answered
            await asyncio.wait({creating}, timeout=LISTED_WITHIN)
        if duplicate_at:
            self.summaries.ensure({docs[i]["conversation_id"] for i in duplicate_at})
        existing = await self._existing([docs[i] for i in duplicate_at])
        first_waiter: set[int] = set()
        for index, (_, fut) in waiting:
            if fut.done():
                continue
            doc = docs[index]
            if index in duplicate_at:
                conv = existing.get(str(doc["_id"]), doc["conversation_id"])
                fut.set_result(IngestResult(str(doc["_id"]), conv, created=False))
            else:
                fut.set_result(IngestResult(str(doc["_id"]), doc["conversation_id"],
                                            created=index not in first_waiter))
                first_waiter.add(index)

    async def _existing(self, docs: list[Doc]) -> dict[str, str]:
        """The conversation each already-stored message is in (read by `_id`)."""
        if not docs:
            return {}
        found = await self.db.messages.find({"_id": {"$in": [d["_id"] for d in docs]}},
                                            {"conversation_id": 1}).to_list()
        return {str(d["_id"]): d["conversation_id"] for d in found}

    async def _apply_edit(self, msg: InboundMessage) -> IngestResult | None:
        """Update the stored text of an edited message; None when we never saw the original
        (then it is stored as a message of its own)."""
        assert msg.edited_at is not None
        oid: Any = message_oid(msg.account_id, msg.external_id)
        if self.legacy:  # the original may have an id from before derived ids
            old = await self.db.messages.find_one(
                {"account_id": msg.account_id, "external_id": msg.external_id,
                 "direction": "in"}, {"_id": 1})
            if old is not None:
                oid = old["_id"]
        res = await self.db.messages.update_one(
            {"_id": oid, "edited_at": {"$lt": msg.edited_at}},
            {"$set": {"text": msg.text, "edited": True, "edited_at": msg.edited_at,
                      "html": msg.html, "full_text": msg.full_text,
                      "attachments": [a.as_doc() for a in msg.attachments]}})
        doc = await self.db.messages.find_one({"_id": oid}, {"conversation_id": 1})
        if doc is None:  # never seen (an older or redelivered edit matched nothing either)
            return None
        del res
        return IngestResult(str(oid), doc["conversation_id"], created=False, edited=True)

    # ------------------------------------------------------------------ conversations

    async def _conversation_ids(self, msgs: list[InboundMessage]) -> list[str]:
        """Each message's conversation: derived from its thread key, unless a conversation
        already holds one of its aliases (or, in a legacy database, has an older id)."""
        unknown = [m for m in msgs if self._known(m) is None]
        aliased = [m for m in unknown if m.thread_aliases]
        if aliased:
            await self._resolve_aliases(aliased)
        if self.legacy:
            await self._resolve_legacy([m for m in unknown if self._known(m) is None])
        out = []
        for msg in msgs:
            conv_id = self._known(msg)
            if conv_id is None:
                conv_id = str(conversation_oid(msg.account_id, msg.thread_key))
                self._conversations.put((msg.account_id, msg.thread_key), conv_id)
            out.append(conv_id)
        return out

    def _known(self, msg: InboundMessage) -> str | None:
        for key in msg.thread_keys:
            conv_id = self._conversations.get((msg.account_id, key))
            if conv_id is not None:
                return conv_id
        return None

    async def _resolve_aliases(self, msgs: list[InboundMessage]) -> None:
        wanted = {alias_oid(m.account_id, k): (m.account_id, k) for m in msgs
                  for k in m.thread_keys}
        async for doc in self.db.thread_aliases.find({"_id": {"$in": list(wanted)}}):
            account, key = wanted[doc["_id"]]
            self._conversations.put((account, key), doc["conversation_id"])

    async def _resolve_legacy(self, msgs: list[InboundMessage]) -> None:
        by_account: dict[str, set[str]] = {}
        for msg in msgs:
            by_account.setdefault(msg.account_id, set()).add(msg.thread_key)
        for account, keys in by_account.items():
            async for doc in self.db.conversations.find(
                    {"account_id": account, "thread_key": {"$in": sorted(keys)}},
                    {"_id": 1, "thread_key": 1}):
                self._conversations.put((account, doc["thread_key"]), str(doc["_id"]))


def contact_id_of(doc: Doc) -> str:
    return str(contact_oid(doc["account_id"], str(doc["author"]["user_id"])))

