"""Idempotent, batched ingest of inbound messages (group commit).

Callers `await ingest(message)`; messages that arrive while a write is in flight are written
together in the next batch, one `insert_many` of the messages. `ingest` returns
only after its batch is acknowledged by the database, so "acknowledged to the platform" still
means "durably stored". The conversation summaries (activity, preview, unread, reopen) follow
behind the acknowledgement, coalesced per conversation: see `inbox.summaries`, which also repairs
them from the messages after a crash.

New conversations and contacts of a batch are found or created together too (one query, one
`insert_many` each), so a burst from many new customers costs a few statements per batch, not a
few per message.

Duplicates are decided by the unique index on (account_id, external_id): a duplicate key is
"already have it", never an error, whichever process stored it first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError

from inbox.db import Database, Doc
from inbox.models import InboundMessage
from inbox.paging import make_sk
from inbox.summaries import PREVIEW_CHARS, REOPEN_FROM, Summariser, preview_of_doc

log = logging.getLogger(__name__)

MAX_BATCH = 256
__all__ = ["MAX_BATCH", "PREVIEW_CHARS", "REOPEN_FROM", "IngestResult", "Ingestor",
           "message_doc", "preview_of_doc"]


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
        "html": msg.html,
        "full_text": msg.full_text,
        "reply_route": msg.reply_route,
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


@dataclass
class _Handover:
    """Whether a batch's summaries (or its recovery) were handed to the summariser."""

    done: bool = False


def _duplicates(exc: BulkWriteError) -> set[int]:
    """Indexes of the documents refused as duplicate keys; any other error is raised."""
    found: set[int] = set()
    for err in exc.details.get("writeErrors", []):
        if err.get("code") != 11000:
            raise exc
        found.add(int(err["index"]))
    return found


class Ingestor:
    """Batches concurrent `ingest` calls of one process into group commits."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.summaries = Summariser(db)
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
        await self.summaries.inserting(now)  # holds the crash-repair watermark before `now`
        handover = _Handover()
        try:
            fresh: list[int] = []
            for i, msg in enumerate(batch):
                if msg.is_edit:
                    edited = await self._apply_edit(msg)
                    if edited is not None:
                        results[i] = edited
                        continue
                fresh.append(i)
            if fresh:
                await self._insert([batch[i] for i in fresh], fresh, results, now, handover)
        finally:
            if not handover.done:
                self.summaries.add(now, [])
        return [r for r in results if r is not None]

    async def _insert(self, msgs: list[InboundMessage], slots: list[int],
                      results: list[IngestResult | None], now: datetime,
                      handover: _Handover) -> None:
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
        handover.done = True  # from here on the summaries are handed over, whatever happens
        try:
            await self.db.messages.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            try:
                duplicate_at = _duplicates(exc)
            except BulkWriteError:
                self._recover_later(now, docs)
                raise
        except Exception:
            self._recover_later(now, docs)
            raise
        self.summaries.add(now, [d for i, d in enumerate(docs) if i not in duplicate_at])
        existing = await self._existing_ids([docs[i] for i in duplicate_at])
        for msg, slot in zip(msgs, slots, strict=True):
            key = (msg.account_id, msg.external_id)
            doc = docs[first_of[key]]
            if first_of[key] in duplicate_at:
                mid, cid = existing[key]
                results[slot] = IngestResult(mid, cid, created=False)
            else:
                results[slot] = IngestResult(str(doc["_id"]), doc["conversation_id"],
                                             created=first_slot[key] == slot)

    def _recover_later(self, at: datetime, docs: list[Doc]) -> None:
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
            ids = {f["_id"] for f in found}
            self.summaries.add(at, [d for d in docs if d["_id"] in ids])

        task = asyncio.create_task(recover())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

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

    async def _apply_edit(self, msg: InboundMessage) -> IngestResult | None:
        """Update the stored text of an edited message; None when we never saw the original."""
        assert msg.edited_at is not None
        flt = {"account_id": msg.account_id, "external_id": msg.external_id, "direction": "in"}
        doc = await self.db.messages.find_one_and_update(
            {**flt, "edited_at": {"$lt": msg.edited_at}},
            {"$set": {"text": msg.text, "edited": True, "edited_at": msg.edited_at,
                      "html": msg.html, "full_text": msg.full_text,
                      "attachments": [a.as_doc() for a in msg.attachments]}},
            projection={"_id": 1, "conversation_id": 1})
        if doc is None:
            doc = await self.db.messages.find_one(flt, {"_id": 1, "conversation_id": 1})
            if doc is None:
                return None
        return IngestResult(str(doc["_id"]), doc["conversation_id"], created=False, edited=True)

    # ------------------------------------------------------------------ conversations, contacts

    async def _conversation_ids(self, msgs: list[InboundMessage], now: datetime) -> list[str]:
        """Each message's conversation: the one holding any of its thread keys, else new."""
        missing: dict[tuple[str, str], InboundMessage] = {}
        for msg in msgs:
            key: tuple[str, str] = (msg.account_id, msg.thread_key)
            if self._known(msg) is None and key not in missing:
                missing[key] = msg
        if missing:
            for found, conv_id in (await self._find_or_create_conversations(missing,
                                                                            now)).items():
                self._conversations.put(found, conv_id)
        out = []
        for msg in msgs:
            known = self._known(msg)
            assert known is not None
            out.append(known)
            if msg.thread_aliases:
                await self._learn_aliases(msg, known)
        return out

    def _known(self, msg: InboundMessage) -> str | None:
        for key in msg.thread_keys:
            conv_id = self._conversations.get((msg.account_id, key))
            if conv_id is not None:
                return conv_id
        return None

    async def _learn_aliases(self, msg: InboundMessage, conv_id: str) -> None:
        """The conversation takes the thread keys it did not hold yet (an email's own
        Message-ID, which the customer's next reply will reference)."""
        new = [k for k in msg.thread_keys
               if self._conversations.get((msg.account_id, k)) != conv_id]
        if not new:
            return
        await self.db.conversations.update_one(
            {"_id": ObjectId(conv_id)}, {"$addToSet": {"thread_keys": {"$each": new}}})
        for key in new:
            self._conversations.put((msg.account_id, key), conv_id)

    async def _find_conversations(self, wanted: list[InboundMessage],
                                  ) -> dict[tuple[str, str], str]:
        """(account, thread_key) → conversation for each message, by its primary key or by
        any of its aliases; every key a found conversation holds is returned too."""
        found: dict[tuple[str, str], str] = {}
        by_account: dict[str, set[str]] = {}
        aliased: dict[str, set[str]] = {}
        for msg in wanted:
            by_account.setdefault(msg.account_id, set()).add(msg.thread_key)
            if msg.thread_aliases:
                aliased.setdefault(msg.account_id, set()).update(msg.thread_keys)
        for account, threads in by_account.items():
            async for doc in self.db.conversations.find(
                    {"account_id": account, "thread_key": {"$in": sorted(threads)}},
                    {"_id": 1, "account_id": 1, "thread_key": 1}):
                found[(doc["account_id"], doc["thread_key"])] = str(doc["_id"])
        for account, keys in aliased.items():
            async for doc in self.db.conversations.find(
                    {"account_id": account, "thread_keys": {"$in": sorted(keys)}},
                    {"_id": 1, "account_id": 1, "thread_key": 1, "thread_keys": 1}):
                for key in [doc["thread_key"], *(doc.get("thread_keys") or [])]:
                    found.setdefault((account, key), str(doc["_id"]))
        for msg in wanted:  # a message found by an alias answers for its primary key too
            key = (msg.account_id, msg.thread_key)
            if key not in found:
                hit = next((found[(msg.account_id, k)] for k in msg.thread_keys
                            if (msg.account_id, k) in found), None)
                if hit is not None:
                    found[key] = hit
        return found

    async def _find_or_create_conversations(
            self, wanted: dict[tuple[str, str], InboundMessage],
            now: datetime) -> dict[tuple[str, str], str]:
        found = await self._find_conversations(list(wanted.values()))
        new = {key: msg for key, msg in wanted.items() if key not in found}
        if not new:
            return found
        contacts = await self._contact_ids(list(new.values()))
        docs: list[Doc] = []
        for (account, thread), msg in new.items():
            oid = ObjectId()
            docs.append({
                "_id": oid, "account_id": account, "thread_key": thread,
                "thread_keys": list(msg.thread_keys),
                "platform": msg.platform, "kind": msg.kind,
                "contact_id": contacts[(msg.account_id, msg.author.user_id)],
                "title": msg.thread_title, "status": "open", "assignee_id": None, "team": None,
                "labels": [], "created_at": now, "last_message_at": now, "sk": make_sk(now, oid),
                "first_sk": make_sk(msg.platform_ts, oid), "preview": "", "unread": 0,
                "message_count": 0, "first_response_at": None, "last_inbound_at": now,
                "customer_locale": msg.author.locale,
            })
        taken: set[int] = set()
        try:
            await self.db.conversations.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            taken = _duplicates(exc)  # another process created them first
        created = [d for i, d in enumerate(docs) if i not in taken]
        if created:
            await self.db.meta.update_one(
                {"_id": "inbox"}, {"$min": {"floor_sk": min(d["sk"] for d in created)}},
                upsert=True)
        for doc in created:
            for key in doc["thread_keys"]:
                found.setdefault((doc["account_id"], key), str(doc["_id"]))
            found[(doc["account_id"], doc["thread_key"])] = str(doc["_id"])
        if taken:
            found.update(await self._find_conversations([new[(docs[i]["account_id"],
                                                               docs[i]["thread_key"])]
                                                         for i in taken]))
        return found

    async def _find_contacts(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        by_account: dict[str, list[str]] = {}
        for account, user in keys:
            by_account.setdefault(account, []).append(user)
        for account, users in by_account.items():
            async for doc in self.db.contacts.find(
                    {"identities.account_id": account, "identities.user_id": {"$in": users}},
                    {"_id": 1, "identities": 1}):
                for ident in doc.get("identities", []):
                    if ident.get("account_id") == account and ident.get("user_id") in users:
                        found[(account, ident["user_id"])] = str(doc["_id"])
        return found

    async def _contact_ids(self, msgs: list[InboundMessage]) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        missing: dict[tuple[str, str], InboundMessage] = {}
        for msg in msgs:
            key: tuple[str, str] = (msg.account_id, msg.author.user_id)
            cached = self._contacts.get(key)
            if cached is not None:
                out[key] = cached
            elif key not in missing:
                missing[key] = msg
        if not missing:
            return out
        found = await self._find_contacts(list(missing))
        docs: list[Doc] = []
        for wanted, msg in missing.items():
            if wanted in found:
                continue
            identity = {"platform": msg.platform, "account_id": msg.account_id,
                        "user_id": msg.author.user_id, "handle": msg.author.handle}
            docs.append({"_id": ObjectId(), "name": msg.author.name,
                         "handle": msg.author.handle, "identities": [identity],
                         "locale": msg.author.locale, "avatar_url": msg.author.avatar_url,
                         "merged_into": None, "created_at": datetime.now(UTC)})
        taken: set[int] = set()
        if docs:
            try:
                await self.db.contacts.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                taken = _duplicates(exc)
        for i, doc in enumerate(docs):
            if i not in taken:
                ident: dict[str, Any] = doc["identities"][0]
                found[(ident["account_id"], ident["user_id"])] = str(doc["_id"])
        if taken:
            found.update(await self._find_contacts(
                [(docs[i]["identities"][0]["account_id"], docs[i]["identities"][0]["user_id"])
                 for i in taken]))
        for pair, contact_id in found.items():
            self._contacts.put(pair, contact_id)
            out[pair] = contact_id
        return out
