"""Replies in one conversation go out in the order they were written.

After taking a reply, the claimer looks for an earlier pending (queued / sending /
retry_wait) reply in the same conversation. If there is one, the reply is put back
(`blocked_by` = that reply, due just after it), and the earlier reply, when it leaves
`sending`, releases its followers. A failed reply blocks nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from inbox.db import Doc, find_in

if TYPE_CHECKING:
    from replies.outbox import Claim

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
AFTER = timedelta(milliseconds=1)


def due_range(upto: datetime) -> Doc:
    """`delivery.due_at` up to `upto`, bounded on both sides: the embedded server's planner
    scanned the collection for a one-sided date range (measured)."""
    return {"$gte": EPOCH, "$lte": upto}


class InConversationOrder:
    """Part of the Outbox (replies/outbox.py): the queries and writes that keep the order."""

    coll: Any
    clock: Any
    if TYPE_CHECKING:
        async def _update(self, flt: Doc, update: Doc) -> bool: ...

        def _notify(self) -> None: ...

        async def defer(self, claim: Claim, until: datetime, *,
                        blocked_by: str | None = None) -> None: ...

    async def _pending_in(self, conversation_ids: list[str], projection: Doc) -> list[Doc]:
        # conversation_id + a bounded due_at range: the (conversation_id, delivery.due_at) index
        # reads only these conversations' pending replies; a range on sk here made it scan.
        return await find_in(self.coll, conversation_ids,
                             {"delivery.due_at": due_range(FOREVER)},
                             {"conversation_id": 1, **projection}, field="conversation_id")

    async def _blockers(self, claims: list[Claim]) -> dict[str, Doc]:
        """For each claim behind an earlier pending reply of its conversation, the latest such
        reply (by message id); one read for all their conversations."""
        if not claims:
            return {}
        pending: dict[str, list[Doc]] = {}
        for doc in await self._pending_in([c.doc["conversation_id"] for c in claims],
                                          {"sk": 1, "delivery.state": 1,
                                           "delivery.due_at": 1}):
            pending.setdefault(doc["conversation_id"], []).append(doc)
        out: dict[str, Doc] = {}
        for claim in claims:
            earlier = [p for p in pending.get(claim.doc["conversation_id"], [])
                       if p["sk"] < claim.doc["sk"] and p["_id"] != claim.doc["_id"]]
            if earlier:
                out[claim.message_id] = max(earlier, key=lambda p: p["sk"])
        return out

    async def _defer_behind(self, claim: Claim, blocker: Doc) -> None:
        await self.defer(claim, blocker["delivery"]["due_at"] + AFTER,
                         blocked_by=str(blocker["_id"]))
        # the blocker may have finished between our look and our write; then nobody would
        # release us before its old lease time, so look again
        again = await self.coll.find_one({"_id": blocker["_id"]}, {"delivery.due_at": 1})
        if again is None or "due_at" not in again.get("delivery", {}):
            await self._release_followers(claim.doc["conversation_id"], str(blocker["_id"]))

    async def _release_followers(self, conversation_id: str, message_id: str) -> None:
        """Make replies that waited for `message_id` due now."""
        now = self.clock.now()
        released = 0
        for doc in await self._pending_in([conversation_id], {"delivery": 1}):
            if doc["delivery"].get("blocked_by") != message_id:
                continue
            released += await self._update(
                {"_id": doc["_id"], "delivery.blocked_by": message_id,
                 "delivery.state": doc["delivery"]["state"]},
                {"$set": {"delivery.due_at": now, "delivery.next_attempt_at": now,
                          "delivery.blocked_by": None}})
        if released:
            self._notify()

    # finishing an attempt
