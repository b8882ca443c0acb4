"""Open-conversation counters per agent, kept so that a cap is never exceeded across processes.

`agent_load` holds one small document per agent: `open` (conversations assigned and not
resolved), `seq` (bumped by every change), `pending` (slots reserved for an assignment whose
compare-and-set on the conversation has not landed yet) and `last_assigned_at` (ties go to who
waited longest). An assignment first takes a slot with one conditional update,

    update_one({_id: agent, open: {$lt: cap}}, {$inc: {open: 1}, $push: {pending: conv}})

then sets the conversation's assignee with a compare-and-set, and gives the slot back if that
lost. No transaction: the embedded server blocks a killed client's documents for minutes.

The counter is also changed where Switchboard changes a conversation (resolve, reopen,
hand over). A conversation the ingest reopens (a resolved one the customer writes to again)
is counted by `reconcile`, which recounts from the conversations and writes the count only if
`seq` did not move meanwhile (it reads the conversations first, so a race can only overcount,
which never lets the cap be passed). A reservation older than `PENDING_TTL` whose assignment
never landed (a crashed process) is dropped by the recount.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError

from inbox.db import Database, Doc

PENDING_TTL = timedelta(seconds=60)
COUNTED = ["open", "pending", "snoozed"]


class Load:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def of(self, agent_ids: Iterable[str]) -> dict[str, Doc]:
        ids = list(dict.fromkeys(agent_ids))
        if not ids:
            return {}
        found = {d["_id"]: d async for d in self.db.agent_load.find({"_id": {"$in": ids}})}
        missing = [i for i in ids if i not in found]
        if missing:
            docs = [{"_id": i, "open": 0, "seq": 0, "pending": [], "last_assigned_at": None}
                    for i in missing]
            with contextlib.suppress(BulkWriteError):  # another process made them first
                await self.db.agent_load.insert_many(docs, ordered=False)
            async for d in self.db.agent_load.find({"_id": {"$in": missing}}):
                found[d["_id"]] = d
        return found

    async def reserve(self, agent_id: str, conversation_id: str, cap: int,
                      now: datetime) -> bool:
        """Take one of the agent's slots for this conversation, if one is free."""
        await self.of([agent_id])
        result = await self.db.agent_load.update_one(
            {"_id": agent_id, "open": {"$lt": cap}},
            {"$inc": {"open": 1, "seq": 1}, "$set": {"last_assigned_at": now},
             "$push": {"pending": {"c": conversation_id, "at": now}}})
        return result.modified_count == 1

    async def confirm(self, agent_id: str, conversation_id: str) -> None:
        await self.db.agent_load.update_one(
            {"_id": agent_id}, {"$pull": {"pending": {"c": conversation_id}}})

    async def undo(self, agent_id: str, conversation_id: str) -> None:
        """The assignment lost its compare-and-set: give the slot back."""
        await self.db.agent_load.update_one(
            {"_id": agent_id, "pending.c": conversation_id},
            {"$inc": {"open": -1, "seq": 1}, "$pull": {"pending": {"c": conversation_id}}})

    async def add(self, agent_id: str, now: datetime | None = None) -> None:
        """A conversation counted without a cap check (taken or handed over by hand,
        reopened by an agent)."""
        await self.of([agent_id])
        changes: Doc = {"$inc": {"open": 1, "seq": 1}}
        if now is not None:
            changes["$set"] = {"last_assigned_at": now}
        await self.db.agent_load.update_one({"_id": agent_id}, changes)

    async def release(self, agent_id: str) -> None:
        await self.db.agent_load.update_one({"_id": agent_id, "open": {"$gt": 0}},
                                            {"$inc": {"open": -1, "seq": 1}})

    async def reconcile(self, agent_id: str, now: datetime) -> int | None:
        """Recount one agent from the conversations; the count written, or None when a change
        raced the recount (the next one will do)."""
        ids = {str(d["_id"]) async for d in self.db.conversations.find(
            {"assignee_id": agent_id, "status": {"$in": COUNTED}}, {"_id": 1})}
        doc = (await self.of([agent_id]))[agent_id]
        live = {p["c"] for p in doc.get("pending") or [] if _aware(p["at"]) > now - PENDING_TTL}
        count = len(ids | live)
        result = await self.db.agent_load.update_one(
            {"_id": agent_id, "seq": doc.get("seq", 0)},
            {"$set": {"open": count}, "$inc": {"seq": 1},
             "$pull": {"pending": {"at": {"$lte": now - PENDING_TTL}}}})
        return count if result.modified_count == 1 else None

    async def reset(self, agent_id: str) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.db.agent_load.insert_one({"_id": agent_id, "open": 0, "seq": 0,
                                                 "pending": [], "last_assigned_at": None})


def _aware(value: Any) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
