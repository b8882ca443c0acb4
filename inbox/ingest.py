"""Idempotent, batched ingest of inbound messages (group commit).

Callers `await ingest(message)`; messages that arrive while a write is in flight are written
together in the next batch: one `insert_many` for the messages, one `bulk_write` with a single
update per touched conversation. `ingest` returns only after its batch is acknowledged by the
database, so "acknowledged to the platform" still means "durably stored".

Duplicates are decided by the unique index on (account_id, external_id): a duplicate key is
"already have it", never an error, whichever process stored it first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from inbox.db import Database, Doc
from inbox.models import InboundMessage
from inbox.paging import make_sk

log = logging.getLogger(__name__)

MAX_BATCH = 256
PREVIEW_CHARS = 140
REOPEN_FROM = ["resolved", "pending", "snoozed"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    message_id: str
    conversation_id: str
    created: bool  # False: the message was already stored (a redelivery) or only edited
    edited: bool = False


def message_doc(msg: InboundMessage, oid: ObjectId, conversation_id: str,
                received_at: datetime) -> Doc:
    return {
        "_id": oid,
        "sk": make_sk(msg.platform_ts, oid),
        "conversation_id": conversation_id,
        "account_id": msg.account_id,
        "platform": msg.platform,
        "external_id": msg.external_id,
        "direction": "in",
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


class Ingestor:
    """Batches concurrent `ingest` calls of one process into group commits."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[tuple[InboundMessage, asyncio.Future[IngestResult]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._conversations = _LRU()
        self._contacts = _LRU()
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
            try:
                results = await self._write([m for m, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            self.batched_messages += len(batch)
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def _write(self, batch: list[InboundMessage]) -> list[IngestResult]:
        now = datetime.now(UTC)
        results: list[IngestResult | None] = [None] * len(batch)
        fresh: list[int] = []
        for i, msg in enumerate(batch):
            if msg.is_edit:
                edited = await self._apply_edit(msg)
                if edited is not None:
                    results[i] = edited
                    continue
            fresh.append(i)
        if fresh:
            await self._insert([batch[i] for i in fresh], fresh, results, now)
        return [r for r in results if r is not None]

    async def _insert(self, msgs: list[InboundMessage], slots: list[int],
                      results: list[IngestResult | None], now: datetime) -> None:
        conv_ids = await self._conversation_ids(msgs, now)
        docs: list[Doc] = []
        first_of: dict[tuple[str, str], int] = {}
        first_slot: dict[tuple[str, str], int] = {}
        for msg, conv_id, slot in zip(msgs, conv_ids, slots, strict=True):
            key = (msg.account_id, msg.external_id)
            if key in first_of:  # the same message twice in one batch
                continue
            first_of[key] = len(docs)
            first_slot[key] = slot
            docs.append(message_doc(msg, ObjectId(), conv_id, now))
        duplicate_at: set[int] = set()
        if docs:
            try:
                await self.db.messages.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                for err in exc.details.get("writeErrors", []):
                    if err.get("code") != 11000:
                        raise
                    duplicate_at.add(int(err["index"]))
        existing = await self._existing_ids([docs[i] for i in duplicate_at])
        stored: list[Doc] = [d for i, d in enumerate(docs) if i not in duplicate_at]
        await self._summarise(stored, now)
        for msg, slot in zip(msgs, slots, strict=True):
            key = (msg.account_id, msg.external_id)
            doc = docs[first_of[key]]
            if first_of[key] in duplicate_at:
                mid, cid = existing[key]
                results[slot] = IngestResult(mid, cid, created=False)
            else:
                results[slot] = IngestResult(str(doc["_id"]), doc["conversation_id"],
                                             created=first_slot[key] == slot)

    async def _existing_ids(self, docs: list[Doc]) -> dict[tuple[str, str], tuple[str, str]]:
        found: dict[tuple[str, str], tuple[str, str]] = {}
        for doc in docs:
            old = await self.db.messages.find_one(
                {"account_id": doc["account_id"], "external_id": doc["external_id"],
                 "direction": "in"}, {"_id": 1, "conversation_id": 1})
            if old is None:  # pragma: no cover - the unique index said it exists
                raise RuntimeError(f"duplicate message {doc['external_id']} vanished")
            found[(doc["account_id"], doc["external_id"])] = (str(old["_id"]),
                                                              old["conversation_id"])
        return found

    async def _summarise(self, stored: list[Doc], now: datetime) -> None:
        """One update per touched conversation: activity, preview, unread, reopen."""
        by_conv: dict[str, list[Doc]] = {}
        for doc in stored:
            by_conv.setdefault(doc["conversation_id"], []).append(doc)
        if not by_conv:
            return
        ops = []
        for conv_id, docs in by_conv.items():
            newest = max(docs, key=lambda d: d["sk"])
            oid = ObjectId(conv_id)
            ops.append(UpdateOne({"_id": oid}, {
                "$inc": {"unread": len(docs), "message_count": len(docs)},
                "$max": {"last_message_at": now, "sk": make_sk(now, oid),
                         "last_inbound_at": now},
                "$min": {"first_sk": min(d["sk"] for d in docs)},
                "$set": {"preview": preview_of_doc(newest), "preview_direction": "in"},
            }))
        await self.db.conversations.bulk_write(ops, ordered=False)
        await self.db.conversations.update_many(
            {"_id": {"$in": [ObjectId(c) for c in by_conv]}, "status": {"$in": REOPEN_FROM}},
            {"$set": {"status": "open"}})

    async def _apply_edit(self, msg: InboundMessage) -> IngestResult | None:
        """Update the stored text of an edited message; None when we never saw the original."""
        assert msg.edited_at is not None
        flt = {"account_id": msg.account_id, "external_id": msg.external_id, "direction": "in"}
        doc = await self.db.messages.find_one_and_update(
            {**flt, "edited_at": {"$lt": msg.edited_at}},
            {"$set": {"text": msg.text, "edited": True, "edited_at": msg.edited_at,
                      "attachments": [a.as_doc() for a in msg.attachments]}},
            projection={"_id": 1, "conversation_id": 1})
        if doc is None:
            doc = await self.db.messages.find_one(flt, {"_id": 1, "conversation_id": 1})
            if doc is None:
                return None
        return IngestResult(str(doc["_id"]), doc["conversation_id"], created=False, edited=True)

    async def _conversation_ids(self, msgs: list[InboundMessage], now: datetime) -> list[str]:
        out: list[str] = []
        for msg in msgs:
            key = (msg.account_id, msg.thread_key)
            conv_id = self._conversations.get(key)
            if conv_id is None:
                conv_id = await self._find_or_create_conversation(msg, now)
                self._conversations.put(key, conv_id)
            out.append(conv_id)
        return out

    async def _find_or_create_conversation(self, msg: InboundMessage, now: datetime) -> str:
        flt = {"account_id": msg.account_id, "thread_key": msg.thread_key}
        found = await self.db.conversations.find_one(flt, {"_id": 1})
        if found is not None:
            return str(found["_id"])
        contact_id = await self._contact_id(msg)
        oid = ObjectId()
        doc: Doc = {
            "_id": oid, **flt, "platform": msg.platform, "kind": msg.kind,
            "contact_id": contact_id, "title": msg.thread_title, "status": "open",
            "assignee_id": None, "team": None, "labels": [], "created_at": now,
            "last_message_at": now, "sk": make_sk(now, oid), "first_sk": make_sk(
                msg.platform_ts, oid), "preview": "", "unread": 0, "message_count": 0,
            "first_response_at": None, "last_inbound_at": now,
        }
        try:
            await self.db.conversations.insert_one(doc)
        except DuplicateKeyError:
            found = await self.db.conversations.find_one(flt, {"_id": 1})
            assert found is not None
            return str(found["_id"])
        await self.db.meta.update_one({"_id": "inbox"}, {"$min": {"floor_sk": doc["sk"]}},
                                      upsert=True)
        return str(oid)

    async def _contact_id(self, msg: InboundMessage) -> str:
        key = (msg.account_id, msg.author.user_id)
        cached = self._contacts.get(key)
        if cached is not None:
            return cached
        flt = {"identities.account_id": msg.account_id,
               "identities.user_id": msg.author.user_id}
        found = await self.db.contacts.find_one(flt, {"_id": 1})
        if found is None:
            identity = {"platform": msg.platform, "account_id": msg.account_id,
                        "user_id": msg.author.user_id, "handle": msg.author.handle}
            oid = ObjectId()
            try:
                await self.db.contacts.insert_one({
                    "_id": oid, "name": msg.author.name, "handle": msg.author.handle,
                    "identities": [identity], "merged_into": None,
                    "created_at": datetime.now(UTC)})
                contact_id = str(oid)
            except DuplicateKeyError:
                found = await self.db.contacts.find_one(flt, {"_id": 1})
                assert found is not None
                contact_id = str(found["_id"])
        else:
            contact_id = str(found["_id"])
        self._contacts.put(key, contact_id)
        return contact_id


def preview_of_doc(doc: Doc) -> str:
    text = " ".join(str(doc.get("text") or "").split())
    if not text and doc.get("attachments"):
        text = f"[{doc['attachments'][0]['type']}]"
    return text[:PREVIEW_CHARS]

