"""The inbox store: the one object the rest of Switchboard reads and writes the inbox through."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from inbox.db import Database, Doc, ensure_indexes
from inbox.ids import alias_oid, contact_oid, conversation_oid, message_oid
from inbox.ingest import Ingestor, IngestResult
from inbox.models import (
    CONVERSATION_STATUSES,
    Author,
    InboundMessage,
    Interaction,
    MessageDeleted,
    ReactionChanged,
)
from inbox.paging import WINDOW_MARGIN, WindowedPager, decode_cursor, make_sk, sk_micros

UNASSIGNED = "none"


FLOOR_TTL = 10.0
PROFILE_WAIT = 5.0  # s a profile waits for its new contact and conversation to be created
_ALL = 10**16


class NotFound(LookupError):
    pass


def _message_window(conv: Doc, limit: int) -> int | None:
    """A time window expected to hold ~1.3 pages of this conversation's messages, from its
    average density (messages over its lifetime); None when there is nothing to go by."""
    count = int(conv.get("message_count") or 0)
    if count <= 0 or not conv.get("first_sk") or not conv.get("sk"):
        return None
    lifetime = sk_micros(conv["sk"]) - sk_micros(conv["first_sk"])
    if count <= limit or lifetime <= 0:
        return _ALL  # all of it, in one read
    return max(int(lifetime * (limit + 1) / count * WINDOW_MARGIN), 1_000_000)


def oid(value: str | ObjectId) -> ObjectId:
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(value)
    except (InvalidId, TypeError) as exc:
        raise NotFound(str(value)) from exc


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ingestor = Ingestor(db)
        self._pager = WindowedPager()
        self._floor: tuple[float, int] | None = None

    async def setup(self) -> None:
        """Indexes, then repair the conversation summaries a crashed process left behind."""
        self.ingestor.legacy = await ensure_indexes(self.db)
        await self.ingestor.summaries.start()

    async def close(self) -> None:
        """Write the summaries still pending (see inbox/summaries.py) and deregister."""
        await self.ingestor.summaries.close()

    async def ingest(self, msg: InboundMessage) -> IngestResult:
        """Store one inbound message; returns once it is durably stored.

        Its conversation's summary (activity, preview, unread, reopen) follows a moment later,
        behind the acknowledgement; `settle()` waits for it."""
        return await self.ingestor.ingest(msg)

    async def apply_delete(self, event: MessageDeleted) -> IngestResult | None:
        """Mark a customer's message deleted; its text stays for the record. None when the
        message was never stored (nothing to mark)."""
        mid = message_oid(event.account_id, event.external_id)
        res = await self.db.messages.update_one({"_id": mid},
                                                {"$set": {"deleted_at": event.deleted_at}})
        if not res.matched_count:
            return None
        doc = await self.db.messages.find_one({"_id": mid}, {"conversation_id": 1})
        return IngestResult(str(mid), doc["conversation_id"], created=False) if doc else None

    async def apply_reaction(self, event: ReactionChanged) -> IngestResult | None:
        mid = message_oid(event.account_id, event.external_id)
        entry = {"user_id": event.user_id, "reaction": event.reaction}
        change = {"$addToSet": {"reactions": entry}} if event.added else \
            {"$pull": {"reactions": entry}}
        res = await self.db.messages.update_one({"_id": mid}, change)
        if not res.matched_count:
            return None
        doc = await self.db.messages.find_one({"_id": mid}, {"conversation_id": 1})
        return IngestResult(str(mid), doc["conversation_id"], created=False) if doc else None

    async def apply_profile(self, account_id: str, author: Author, *,
                            message_id: str | None = None,
                            conversation_id: str | None = None) -> None:
        """A connector learned more about a customer after their message was stored (a Slack
        profile): the contact, that message's author and the conversation's locale follow.
        The contact and the conversation of a new customer are created from the message as
        first stored, before its acknowledgement or, when that took longer than
        `LISTED_WITHIN`, behind it (inbox/summaries.py): a profile that comes first waits for
        this process's summaries (bounded) and is applied after them."""
        fields: Doc = {"name": author.name}
        if author.avatar_url:
            fields["avatar_url"] = author.avatar_url
        if author.locale:
            fields["locale"] = author.locale
        if author.handle:
            fields["handle"] = author.handle
        if message_id:
            await self.db.messages.update_one(
                {"_id": oid(message_id)},
                {"$set": {f"author.{k}": v for k, v in author.as_doc().items() if v}})
        locale = author.locale if conversation_id else None
        contact = await self._profile_contact(account_id, author.user_id, fields)
        conversation = not locale or await self._set_locale(str(conversation_id), locale)
        if contact and conversation:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settle(), PROFILE_WAIT)
        if not contact:
            await self._profile_contact(account_id, author.user_id, fields)
        if not conversation and locale:
            await self._set_locale(str(conversation_id), locale)

    async def _profile_contact(self, account_id: str, user_id: str, fields: Doc) -> bool:
        """Whether the customer's contact took the profile (False: none yet)."""
        res = await self.db.contacts.update_one({"_id": contact_oid(account_id, user_id)},
                                                {"$set": fields})
        if not res.matched_count and self.ingestor.legacy:  # a contact from before derived ids
            res = await self.db.contacts.update_one(
                {"identities.account_id": account_id, "identities.user_id": user_id},
                {"$set": fields})
        return bool(res.matched_count)

    async def _set_locale(self, conversation_id: str, locale: str) -> bool:
        """Set the conversation's customer locale unless it has one; False: no conversation
        yet."""
        res = await self.db.conversations.update_one(
            {"_id": oid(conversation_id), "customer_locale": None},
            {"$set": {"customer_locale": locale}})
        return bool(res.matched_count) or await self.db.conversations.find_one(
            {"_id": oid(conversation_id)}, {"_id": 1}) is not None

    async def conversation_of_thread(self, account_id: str, thread_key: str) -> Doc | None:
        conv = await self.db.conversations.find_one(
            {"_id": conversation_oid(account_id, thread_key)})
        if conv is None:  # aliased, or from before derived ids
            alias = await self.db.thread_aliases.find_one({"_id": alias_oid(account_id,
                                                                            thread_key)})
            if alias is not None:
                conv = await self.db.conversations.find_one(
                    {"_id": oid(alias["conversation_id"])})
        if conv is None and self.ingestor.legacy:
            conv = await self.db.conversations.find_one({"account_id": account_id,
                                                         "thread_key": thread_key})
        return conv

    async def record_interaction(self, event: Interaction) -> IngestResult:
        """Keep a button press (a survey score) once; what it means is decided elsewhere."""
        conv = await self.conversation_of_thread(event.account_id, event.thread_key)
        entry_id = ObjectId()
        key = event.external_id or f"{event.thread_key}:{event.user_id}:{event.action}:" \
                                   f"{event.at.isoformat()}"
        try:
            await self.db.interactions.insert_one({
                "_id": entry_id, "account_id": event.account_id, "platform": event.platform,
                "external_id": key, "thread_key": event.thread_key, "user_id": event.user_id,
                "action": event.action, "value": event.value, "at": event.at,
                "conversation_id": str(conv["_id"]) if conv else None, "handled": False})
            created = True
        except DuplicateKeyError:
            created = False
        return IngestResult(str(entry_id), str(conv["_id"]) if conv else "", created=created)

    async def settle(self) -> None:
        """Wait until the conversation summaries reflect every message ingested so far."""
        await self.ingestor.summaries.settle()

    # conversations

    async def _inbox_floor(self) -> int:
        """The oldest `sk` a conversation can have: where the pager stops widening.

        Cached briefly: it only moves when a conversation older than every other one is created,
        and a new conversation's `sk` is "now", so a floor a few seconds old is still below it."""
        now = time.monotonic()
        if self._floor is not None and now - self._floor[0] < FLOOR_TTL:
            return self._floor[1]
        meta = await self.db.meta.find_one({"_id": "inbox"})
        floor = sk_micros(meta["floor_sk"]) if meta and "floor_sk" in meta else 0
        self._floor = (now, floor)
        return floor

    async def list_conversations(
        self, *, status: str | None = None, platform: str | None = None,
        assignee: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> tuple[list[Doc], str | None]:
        flt: Doc = {}
        if status:
            if status not in CONVERSATION_STATUSES:
                raise ValueError(f"status must be one of {', '.join(CONVERSATION_STATUSES)}")
            flt["status"] = status
        if platform:
            flt["platform"] = platform
        if assignee:
            flt["assignee_id"] = None if assignee == UNASSIGNED else assignee
        before = decode_cursor(cursor) if cursor else None
        # one learned window per filter (its values too: "open" and "resolved" differ)
        shape = "conv:" + ",".join(f"{k}={flt[k]}" for k in sorted(flt))
        docs, next_cursor, _ = await self._pager.page(
            self.db.conversations, flt, limit=limit, before=before,
            floor_us=await self._inbox_floor(), shape=shape)
        return docs, next_cursor

    async def get_conversation(self, conv_id: str) -> Doc:
        doc = await self.db.conversations.find_one({"_id": oid(conv_id)})
        if doc is None:
            raise NotFound(conv_id)
        return doc

    async def update_conversation(self, conv_id: str, changes: Doc) -> Doc:
        now = datetime.now(UTC)
        if changes.get("unread") == 0 and "read_at" not in changes:
            # a summary landing later counts only newer messages, and a crash repair recounts
            # unread from here (inbox/summaries.py)
            changes = {**changes, "read_at": now}
        if "status" in changes and "status_changed_at" not in changes:
            changes = {**changes, "status_changed_at": now}  # likewise for reopening
        doc = await self.db.conversations.find_one_and_update(
            {"_id": oid(conv_id)}, {"$set": changes}, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFound(conv_id)
        return doc

    async def mark_read(self, conv_id: str) -> Doc:
        return await self.update_conversation(conv_id, {"unread": 0})

    async def contacts_by_id(self, ids: list[str]) -> dict[str, Doc]:
        wanted = [oid(i) for i in set(ids) if i]
        if not wanted:
            return {}
        docs = await self.db.contacts.find({"_id": {"$in": wanted}}).to_list()
        return {str(d["_id"]): d for d in docs}

    # messages

    async def list_messages(self, conv_id: str, *, limit: int = 50, cursor: str | None = None,
                            conv: Doc | None = None) -> tuple[list[Doc], str | None]:
        """A page of a conversation's messages, newest first, with the cursor to older ones;
        `conv`, the conversation when the caller has read it already."""
        if conv is None or "sk" not in conv:
            conv = await self.db.conversations.find_one(
                {"_id": oid(conv_id)}, {"first_sk": 1, "sk": 1, "message_count": 1})
        if conv is None:
            raise NotFound(conv_id)
        before = decode_cursor(cursor) if cursor else None
        floor = sk_micros(conv["first_sk"]) if conv.get("first_sk") else 0
        docs, next_cursor, _ = await self._pager.page(
            self.db.messages, {"conversation_id": str(conv["_id"])}, limit=limit,
            before=before, floor_us=floor, shape="messages", projection={"raw": 0},
            width_us=_message_window(conv, limit),
            newest_us=sk_micros(conv["sk"]) if conv.get("sk") else None)
        return docs, next_cursor

    async def get_message(self, message_id: str) -> Doc:
        doc = await self.db.messages.find_one({"_id": oid(message_id)}, {"raw": 0})
        if doc is None:
            raise NotFound(message_id)
        return doc

    async def last_inbound(self, conv_id: str, conv: Doc | None = None) -> Doc | None:
        docs, _ = await self.list_messages(conv_id, limit=20, conv=conv)
        return next((d for d in docs if d["direction"] == "in"), None)

    # accounts

    async def list_accounts(self) -> list[Doc]:
        return await self.db.accounts.find({}).sort("name", 1).to_list()

    async def get_account(self, account_id: str) -> Doc:
        doc = await self.db.accounts.find_one({"_id": oid(account_id)})
        if doc is None:
            raise NotFound(account_id)
        return doc

    async def touch_account(self, account_id: str, **fields: Any) -> None:
        await self.db.accounts.update_one({"_id": oid(account_id)}, {"$set": fields})

    async def list_audit(self, *, limit: int = 100,
                         cursor: str | None = None) -> tuple[list[Doc], str | None]:
        before = decode_cursor(cursor) if cursor else None
        docs, next_cursor, _ = await self._pager.page(
            self.db.audit_log, {}, limit=limit, before=before, floor_us=0, shape="audit")
        return docs, next_cursor

    async def audit(self, actor: str | None, action: str, target: str, *,
                    address: str | None = None, details: Doc | None = None) -> None:
        entry_id = ObjectId()
        now = datetime.now(UTC)
        await self.db.audit_log.insert_one({
            "_id": entry_id, "sk": make_sk(now, entry_id), "at": now, "actor": actor,
            "action": action, "target": target, "address": address, "details": details or {}})
