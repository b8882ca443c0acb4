"""The outbox: a reply's queue entry in the `outbox` collection, shown as a `messages` doc.

The queue entry holds everything its send needs (the rendered reply and the conversation context)
and the delivery state; the reply's document in `messages` (`direction: "out"`) is what the
conversation shows, with a copy of the delivery state written after each change of the entry. So
the queue's indexes are the outbox's alone, and an inbound message's insert pays for none of
them (messages carry one secondary index). A new entry is written before its message: a crash
in between leaves a reply that is still sent, and whose message is written when it is. The end
of an attempt is written the other way round, message first: a crash in between leaves the entry
`sending`, and whoever takes it back when the lease expires finishes it from the message instead
of sending it again.

Life of a reply: `enqueue` inserts it `queued` (one durable `insert_one`) → `claim_many` takes
it `sending` under a lease, with as many others as the worker has free slots → `mark_sent`, or
`reschedule` (`retry_wait`, exponential back-off with full jitter, never sooner than the
platform's retry-after), or `mark_failed` (shown in the UI, re-queued by `retry`). Guarantee:
at-least-once. A duplicate needs a worker to send and then lose its lease before recording it (a
crash or a stall longer than the lease); the worker bounds a send's time below the lease, and a
late `mark_sent` records `possibly_duplicated`.

`delivery.due_at` is the one scheduling field: the next attempt time while `queued` /
`retry_wait`, the lease expiry while `sending`, and absent once `sent` / `failed`. So "due" is
`due_at <= now` whatever the state, and the index on it only holds pending messages' times.

Why not one `find_one_and_update` per claim, as usual with MongoDB: on the embedded SecantusDB
`findAndModify` took ~170 ms even by `_id` on a 10k-message collection (it grows with the
collection), while an indexed `find` plus `update_one` by `_id` took ~3 ms each. So a claim reads
due candidates and takes them with a compare-and-set `update_many` whose filter re-asserts the
state it read and that they are due: still atomic per reply, a racing process's claim simply
leaves out those it lost (a reply taken over from a dead worker is taken alone, by `_id`, state,
`due_at` and attempt count, and flagged as possibly duplicated).
The planner also scanned the collection for the claim query on a partial index and for one-sided
date ranges, hence the plain indexes and the `{$gte: EPOCH, $lte: ...}` ranges (see inbox/db.py).

In-order per conversation: after taking a message, the claimer looks for an earlier pending
(queued / sending / retry_wait) reply in the same conversation. If there is one, the message is
put back (`blocked_by` = that reply, due just after it) and the earlier reply, when it leaves
`sending`, releases its followers. A failed reply blocks nothing.

All times come from `self.clock`, the database server's clock (see `replies.timing`).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from connectors.base import StoreResult
from inbox.db import Database, Doc, drop_obsolete_indexes, find_in
from inbox.ids import alias_oid
from inbox.ingest import preview_of_doc
from inbox.models import (
    Delivery,
    DeliveryError,
    DeliveryReport,
    RateLimited,
    Rendered,
)
from inbox.paging import make_sk
from inbox.store import NotFound, oid
from replies.ordering import FOREVER, InConversationOrder, due_range
from replies.reply import ReplyContext, is_first_reply, keyed_id, outbound_of
from replies.settings import DeliverySettings
from replies.timing import Clock, DbClock, backoff_delay

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# what only the queue entry keeps: the shown message has no scheduling fields (and no index)
_QUEUE_FIELDS = frozenset({"due_at", "lease_id", "lease_until", "blocked_by",
                           "next_attempt_at"})
_QUEUE_ONLY = frozenset(f"delivery.{f}" for f in _QUEUE_FIELDS)
PENDING = ("queued", "sending", "retry_wait")
_CANDIDATES = 8
_ROUNDS = 3


__all__ = ["Claim", "NotRetryable", "Outbox", "ReplyContext", "is_first_reply", "outbound_of"]


class NotRetryable(Exception):
    """`retry` of a message that is not `failed` (the API answers 409)."""

    def __init__(self, message_id: str, state: str) -> None:
        super().__init__(f"message {message_id} is {state}, only a failed message can be retried")
        self.state = state


@dataclass(slots=True)
class Claim:
    """A message this process holds the lease on; pass it back to finish the attempt."""

    doc: Doc
    lease_id: str
    previous_state: str

    @property
    def message_id(self) -> str:
        return str(self.doc["_id"])

    @property
    def account_id(self) -> str:
        return str(self.doc["account_id"])

    @property
    def attempts(self) -> int:
        return int(self.doc["delivery"]["attempts"])


class Outbox(InConversationOrder):
    def __init__(self, db: Database, settings: DeliverySettings, *,
                 clock: Clock | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock: Clock = clock or DbClock()
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` (e.g. `DeliveryWorker.wake`) whenever something may have become due."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in self._listeners:
            callback()

    async def sync_clock(self) -> None:
        await self.clock.sync(self.db)

    @property
    def coll(self) -> Any:
        return self.db.outbox

    async def setup(self) -> None:
        """Once per database: replies still pending from a release whose queue lived in
        `messages` move to `outbox`; then the indexes that queue needed are dropped."""
        schema = await self.db.meta.find_one({"_id": "schema"}) or {}
        if not schema.get("outbox"):
            moved = 0
            async for doc in self.db.messages.find({"direction": "out",
                                                    "delivery.due_at": due_range(FOREVER)}):
                with contextlib.suppress(DuplicateKeyError):
                    await self.coll.insert_one(doc)
                    moved += 1
            if moved:
                log.warning("moved %d pending replies into the outbox collection", moved)
            await self.db.meta.update_one({"_id": "schema"}, {"$set": {"outbox": True}},
                                          upsert=True)
        await drop_obsolete_indexes(self.db)

    async def _show(self, mid: ObjectId, update: Doc, entry: Doc | None = None,
                    guard: Doc | None = None) -> None:
        """Copy a change of the queue entry's delivery state onto the message the UI shows;
        with `entry`, write that message first if a crash kept it from being stored; `guard`
        narrows which message states may be overwritten."""
        shown: Doc = {}
        for op in ("$set", "$unset", "$push"):  # attempts are copied when an attempt ends
            fields = {k: v for k, v in (update.get(op) or {}).items()
                      if k not in _QUEUE_ONLY}
            if fields:
                shown[op] = fields
        if not shown:
            return
        flt = {"_id": mid, **(guard or {})}
        res = await self.db.messages.update_one(flt, shown)
        if not res.matched_count and entry is not None:
            await self._store_message(entry)
            await self.db.messages.update_one(flt, shown)

    async def _update(self, flt: Doc, update: Doc, *, show: bool = True,
                      entry: Doc | None = None, shown_first: bool = False) -> bool:
        """Change a queue entry (compare-and-set by `flt`); mirrored when it matched (unless
        `show` is off: a state the conversation need not show, such as `sending`).

        `shown_first` writes the mirror before the entry: for the end of an attempt, so a crash
        between the two writes leaves the entry `sending` (taken again when its lease expires,
        and finished from the message by `_ended_before_crash`) rather than a message that
        shows `queued` for ever."""
        if shown_first and show:  # a late worker's outcome never overwrites a shown `sent`
            await self._show(flt["_id"], update, entry, {"delivery.state": {"$ne": "sent"}})
        res = await self.coll.update_one(flt, update)
        if res.modified_count != 1:
            return False
        if show and not shown_first:
            await self._show(flt["_id"], update, entry)
        return True

    # enqueue

    async def enqueue(self, conversation: Mapping[str, Any], *, agent_id: str, agent_name: str,
                      agent_title: str | None, text: str, rendered: Rendered,
                      context: ReplyContext | None = None,
                      idempotency_key: str | None = None,
                      automatic: str | None = None) -> tuple[Doc, bool]:
        """Store a reply, queued; `(doc, False)` when this idempotency key was already used.
        `agent_name` recorded is the name the customer sees (`rendered.shown_name`).
        `automatic` (the kind of an automatic message, measures/auto.py) is recorded on it,
        and such a message is no agent's response: it leaves `first_response_at` and
        `responders` as they were."""
        now = self.clock.now()
        ctx = context or ReplyContext()
        conv_id = str(conversation["_id"])
        mid = keyed_id(conv_id, idempotency_key) if idempotency_key else ObjectId()
        shown = rendered.shown_name or agent_name
        doc: Doc = {
            "_id": mid, "sk": make_sk(now, mid), "conversation_id": conv_id,
            "account_id": conversation["account_id"], "platform": conversation["platform"],
            "thread_key": conversation["thread_key"], "kind": conversation.get("kind"),
            "thread_aliases": list(conversation.get("thread_keys") or []),
            "subject": conversation.get("title"), "direction": "out",
            "agent_id": agent_id, "agent_name": shown, "agent_title": agent_title,
            "author": {"user_id": agent_id, "name": shown, "handle": None, "is_bot": False},
            "text": text, "rendered_text": rendered.text, "rendered": rendered.as_doc(),
            "entities": [{"type": e.type, "offset": e.offset, "length": e.length}
                         for e in rendered.entities],
            "username": rendered.username, "attachments": [], "reply_to": ctx.reply_to,
            "reply_to_author": ctx.reply_to_author, "target": ctx.target,
            "recipients": list(ctx.recipients), "references": list(ctx.references),
            "reply_route": ctx.reply_route,
            "external_id": None, "platform_ts": now, "created_at": now,
            "delivery": {"state": "queued", "attempts": 0, "due_at": now, "queued_at": now,
                         "next_attempt_at": now, "lease_id": None, "lease_until": None,
                         "error": None, "sent_at": None, "possibly_duplicated": False},
        }
        if idempotency_key:
            doc["idempotency_key"] = idempotency_key
        if automatic:
            doc["automatic"] = automatic
        try:
            await self.coll.insert_one(doc)
        except DuplicateKeyError:
            if not idempotency_key:
                raise
            first = await self.db.messages.find_one({"_id": mid}) or \
                await self.coll.find_one({"_id": mid})
            if first is None:
                raise
            return first, False
        await self._store_message(doc)
        await self._summarise(conversation, doc, agent_id, now, automatic=bool(automatic))
        self._notify()
        return doc, True

    async def _store_message(self, entry: Doc) -> None:
        """The reply as the conversation shows it (again after a crash: the same `_id`)."""
        shown = {k: v for k, v in entry.items() if k != "delivery"}
        shown["delivery"] = {k: v for k, v in entry["delivery"].items()
                             if k not in _QUEUE_FIELDS}
        with contextlib.suppress(DuplicateKeyError):
            await self.db.messages.insert_one(shown)

    async def _summarise(self, conversation: Mapping[str, Any], doc: Doc, agent_id: str,
                         now: datetime, *, automatic: bool = False) -> None:
        """One pipeline update: activity, preview, first response, who has replied.

        Like ingest, this runs after the message is stored; a crash in between leaves a stale
        preview, never a lost reply (the messages are the truth)."""
        conv_oid = oid(str(conversation["_id"]))
        summary: Doc = {
            "last_message_at": {"$max": ["$last_message_at", now]},
            "sk": {"$max": ["$sk", make_sk(now, conv_oid)]},
            "preview": preview_of_doc(doc), "preview_direction": "out",
            "message_count": {"$add": [{"$ifNull": ["$message_count", 0]}, 1]},
        }
        if not automatic:
            summary.update({
                "first_response_at": {"$ifNull": ["$first_response_at", now]},
                "last_outbound_at": now,
                "responders": {"$setUnion": [{"$ifNull": ["$responders", []]}, [agent_id]]}})
        await self.db.conversations.update_one({"_id": conv_oid}, [{"$set": summary}])

    # claim

    async def claim(self, *, exclude_accounts: Collection[str] = ()) -> Claim | None:
        """Take the most overdue deliverable reply, or None; skips `exclude_accounts`."""
        taken = await self.claim_many(1, exclude_accounts=exclude_accounts)
        return taken[0] if taken else None

    async def claim_many(self, limit: int, *, exclude_accounts: Collection[str] = (),
                         per_account: int | None = None,
                         busy: Mapping[str, int] | None = None) -> list[Claim]:
        """Take up to `limit` deliverable replies, most overdue first, in a few commands
        whatever their number; an account gets at most `per_account` minus its `busy` sends.

        Why in batches: under load every command waits behind ingest's writes, and one claim at
        a time (read, take, look for an earlier reply) capped delivery at a few replies per
        second however many send slots were free. A batch is read once, taken with one
        `update_many` per previous state (its filter re-asserts that state and that it is due,
        so a racing process's claim simply leaves it out), read back by its lease id, and
        checked for earlier pending replies with one read over its conversations."""
        taken: list[Claim] = []
        for _ in range(_ROUNDS):
            want = limit - len(taken)
            if want <= 0:
                break
            now = self.clock.now()
            flt: Doc = {"delivery.due_at": due_range(now)}
            if exclude_accounts:
                flt["account_id"] = {"$nin": list(exclude_accounts)}
            candidates = await self.coll.find(flt).sort("delivery.due_at", 1).limit(
                max(_CANDIDATES, 2 * want)).to_list()
            counts = Counter(busy or {})
            for claim in taken:
                counts[claim.account_id] += 1
            claims: list[Claim] = []
            try:
                tried = await self._take_from(candidates, want, per_account, counts, now,
                                              into=claims)
                if not tried:
                    break  # nothing due, or only for accounts without room
                if not claims:
                    continue  # every candidate went to another process: read the next ones
                ready = await self._settle(claims, now)
            except Exception:
                # the ones this round took are given back untried; those of earlier rounds
                # are ready and go to the caller
                await self._give_back(claims, now)
                if not taken:
                    raise
                log.warning("claiming replies stopped half-way; %d claimed", len(taken))
                return taken
            taken.extend(ready)
            if len(ready) == len(claims):
                break  # none was put aside: nothing more is due behind them for now
        return taken

    async def _take_from(self, candidates: list[Doc], want: int, per_account: int | None,
                         counts: Counter[str], now: datetime, *,
                         into: list[Claim]) -> bool:
        """Up to `want` claims from `candidates` in order, the next ones tried in place of
        those another process took, appended to `into` as they are taken (so a caller whose
        later command fails knows what it holds); whether any was tried."""
        claims = into
        tried = False
        while candidates and len(claims) < want:
            picked = _within_room(candidates, want - len(claims), per_account, counts)
            if not picked:
                break
            tried = True
            ids = {id(c) for c in picked}
            candidates = [c for c in candidates if id(c) not in ids]
            got = await self._take_many(picked, now)
            won = {c.doc["_id"] for c in got}
            for cand in picked:
                if cand["_id"] not in won:
                    counts[str(cand["account_id"])] -= 1
            claims.extend(got)
        return tried

    async def _take_many(self, picked: list[Doc], now: datetime) -> list[Claim]:
        """Take `picked` (as read) under one lease id; those another process took meanwhile
        are left out."""
        lease_id = uuid.uuid4().hex
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        claims: list[Claim] = []
        by_state: dict[str, list[Doc]] = {}
        for cand in picked:
            if cand["delivery"]["state"] == "sending":  # its worker died: flagged one by one
                claim = await self._take(cand, now)
                if claim is not None:
                    claims.append(claim)
            else:
                by_state.setdefault(cand["delivery"]["state"], []).append(cand)
        for state, group in by_state.items():
            res = await self.coll.update_many(
                {"_id": {"$in": [c["_id"] for c in group]}, "delivery.state": state,
                 "delivery.due_at": due_range(now)},
                {"$set": {"delivery.state": "sending", "delivery.due_at": lease_until,
                          "delivery.lease_id": lease_id, "delivery.lease_until": lease_until,
                          "delivery.last_attempt_at": now, "delivery.next_attempt_at": None},
                 "$inc": {"delivery.attempts": 1}, "$unset": {"delivery.blocked_by": ""}})
            if not res.modified_count:
                continue
            ids = [c["_id"] for c in group]
            got = {d["_id"]: d for d in await find_in(self.coll, ids,
                                                      {"delivery.lease_id": lease_id})}
            claims.extend(Claim(doc=got[i], lease_id=lease_id, previous_state=state)
                          for i in ids if i in got)
        return claims

    async def _give_back(self, claims: list[Claim], now: datetime) -> None:
        """Best effort: claims not yet sent, due again now (their attempt is not counted);
        one that cannot be given back is taken again when its lease expires."""
        for claim in claims:
            with contextlib.suppress(Exception):
                await self.defer(claim, now)

    async def _settle(self, claims: list[Claim], now: datetime) -> list[Claim]:
        """The claims that may be sent now: those whose attempt had ended before a crash, out
        of attempts or too old, or behind an earlier pending reply are dealt with and left
        out."""
        live: list[Claim] = []
        for claim in claims:
            if claim.previous_state == "sending" and await self._ended_before_crash(claim):
                continue
            if await self._expired(claim, now):
                continue
            live.append(claim)
        blockers = await self._blockers(live)
        ready: list[Claim] = []
        for claim in live:
            blocker = blockers.get(claim.message_id)
            if blocker is None:
                ready.append(claim)
            else:
                await self._defer_behind(claim, blocker)
        return ready

    async def next_due(self) -> datetime | None:
        """When the next pending reply comes due after now (None: none)."""
        found = await self.coll.find({"delivery.due_at": {"$gt": self.clock.now(),
                                                          "$lte": FOREVER}},
                                     {"delivery.due_at": 1}).sort("delivery.due_at", 1) \
            .limit(1).to_list()
        return found[0]["delivery"]["due_at"] if found else None

    async def _take(self, cand: Doc, now: datetime) -> Claim | None:
        d = cand["delivery"]
        lease_id = uuid.uuid4().hex
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        changes: Doc = {"delivery.state": "sending", "delivery.due_at": lease_until,
                        "delivery.lease_id": lease_id, "delivery.lease_until": lease_until,
                        "delivery.last_attempt_at": now, "delivery.next_attempt_at": None}
        if d["state"] == "sending":
            # Its worker died or stalled mid-send: the platform may already have the reply, so
            # the send we are about to make may be its second (the documented window).
            changes["delivery.possibly_duplicated"] = True
        # not shown: a reply goes from queued to sent (or to retry_wait) in the conversation,
        # one write fewer per send; the attempts are copied when the attempt ends
        taken = await self._update(
            {"_id": cand["_id"], "delivery.state": d["state"], "delivery.due_at": d["due_at"],
             "delivery.attempts": d["attempts"]},
            {"$set": changes, "$inc": {"delivery.attempts": 1},
             "$unset": {"delivery.blocked_by": ""}}, show=False)
        if not taken:
            return None
        cand["delivery"] = {**d, "state": "sending", "due_at": lease_until, "lease_id": lease_id,
                            "lease_until": lease_until, "attempts": d["attempts"] + 1,
                            "last_attempt_at": now, "next_attempt_at": None,
                            "possibly_duplicated": changes.get(
                                "delivery.possibly_duplicated", d.get("possibly_duplicated"))}
        cand["delivery"].pop("blocked_by", None)
        return Claim(doc=cand, lease_id=lease_id, previous_state=d["state"])

    async def _ended_before_crash(self, claim: Claim) -> bool:
        """A reply taken back from a worker that died (or stalled) mid-attempt: if its message
        already shows the attempt's end (the mirror is written first), the entry is finished
        from it instead of sent again."""
        shown = await self.db.messages.find_one(
            {"_id": claim.doc["_id"]}, {"delivery": 1, "external_id": 1, "platform_ts": 1})
        d = (shown or {}).get("delivery") or {}
        if d.get("state") not in ("sent", "failed"):
            return False
        done: Doc = {"delivery.state": d["state"], "delivery.lease_id": None,
                     "delivery.lease_until": None, "delivery.next_attempt_at": None,
                     "delivery.attempts": d.get("attempts", claim.attempts),
                     "delivery.error": d.get("error")}
        if d["state"] == "sent":
            done.update({"delivery.sent_at": d.get("sent_at"),
                         "delivery.possibly_duplicated": bool(d.get("possibly_duplicated")),
                         "external_id": shown.get("external_id") if shown else None,
                         "platform_ts": shown.get("platform_ts") if shown else None})
        else:
            done["delivery.failed_at"] = d.get("failed_at")
        finished = await self._update(
            {"_id": claim.doc["_id"], "delivery.lease_id": claim.lease_id},
            {"$set": done, "$unset": {"delivery.due_at": "", "delivery.blocked_by": ""}},
            show=False)
        if finished:
            log.warning("reply %s: its attempt had ended (%s) before its worker stopped",
                        claim.message_id, d["state"])
            await self._release_followers(claim.doc["conversation_id"], claim.message_id)
        return True

    async def _expired(self, claim: Claim, now: datetime) -> bool:
        """Fail a claim that is out of attempts (e.g. a worker kept crashing) or too old."""
        d = claim.doc["delivery"]
        too_old = now - d.get("queued_at", claim.doc["created_at"]) > timedelta(
            seconds=self.settings.max_age_seconds)
        if claim.attempts <= self.settings.max_attempts and not too_old:
            return False
        last = (d.get("error") or {}).get("message")
        reason = "the reply was not delivered in time" if too_old else "too many attempts"
        await self.mark_failed(claim, "gave_up", f"Gave up: {reason}" + (
            f" (last error: {last})" if last else ""))
        return True

    async def defer(self, claim: Claim, until: datetime, *, blocked_by: str | None = None) -> None:
        """Give a claim back untried (its attempt is not counted), due again at `until`."""
        state = "queued" if claim.previous_state == "queued" else "retry_wait"
        await self._update(
            {"_id": claim.doc["_id"], "delivery.lease_id": claim.lease_id},
            {"$set": {"delivery.state": state, "delivery.due_at": until,
                      "delivery.next_attempt_at": until, "delivery.lease_id": None,
                      "delivery.lease_until": None, "delivery.blocked_by": blocked_by},
             "$inc": {"delivery.attempts": -1}})

    async def mark_sent(self, claim: Claim, delivery: Delivery) -> bool:
        """Record the platform's id; False when our lease had been lost (possible duplicate)."""
        now = self.clock.now()
        done: Doc = {"delivery.state": "sent", "delivery.sent_at": now,
                     "delivery.error": None, "delivery.lease_id": None,
                     "delivery.lease_until": None, "delivery.next_attempt_at": None,
                     "external_id": delivery.external_id,
                     "platform_ts": delivery.platform_ts or now}
        gone = {"delivery.due_at": "", "delivery.blocked_by": ""}
        mid = claim.doc["_id"]
        done["delivery.attempts"] = claim.attempts
        done["delivery.possibly_duplicated"] = bool(
            claim.doc["delivery"].get("possibly_duplicated"))
        ours = await self._update({"_id": mid, "delivery.lease_id": claim.lease_id},
                                  {"$set": done, "$unset": gone}, entry=claim.doc,
                                  shown_first=True)
        if not ours:
            current = await self.coll.find_one({"_id": mid}, {"delivery": 1})
            if current is None:
                return False
            d = current["delivery"]
            log.warning("reply %s was sent after its lease was lost (state now %s)",
                        claim.message_id, d["state"])
            if d["state"] == "sent":
                await self._update({"_id": mid}, {
                    "$set": {"delivery.possibly_duplicated": True},
                    "$push": {"duplicate_external_ids": delivery.external_id}})
            else:  # whoever holds it now may send it again
                await self._update(
                    {"_id": mid, "delivery.state": d["state"],
                     "delivery.lease_id": d.get("lease_id")},
                    {"$set": {**done, "delivery.possibly_duplicated": d["state"] == "sending"},
                     "$unset": gone})
        if delivery.thread_alias:  # the customer's answer may name only this (our Message-ID)
            await self.db.conversations.update_one(
                {"_id": oid(claim.doc["conversation_id"])},
                {"$addToSet": {"thread_keys": delivery.thread_alias}})
            await self.db.thread_aliases.update_one(
                {"_id": alias_oid(claim.account_id, delivery.thread_alias)},
                {"$setOnInsert": {"conversation_id": str(claim.doc["conversation_id"]),
                                  "account_id": claim.account_id}}, upsert=True)
        await self._release_followers(claim.doc["conversation_id"], claim.message_id)
        return ours

    async def reschedule(self, claim: Claim, error: DeliveryError) -> str:
        """After a retryable failure: `retry_wait` with back-off, or `failed` when exhausted."""
        now = self.clock.now()
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        delay = backoff_delay(claim.attempts, base=self.settings.backoff_base_seconds,
                              cap=self.settings.backoff_cap_seconds, retry_after=retry_after)
        next_at = now + timedelta(seconds=delay)
        queued_at = claim.doc["delivery"].get("queued_at", claim.doc["created_at"])
        if claim.attempts >= self.settings.max_attempts or \
                next_at - queued_at > timedelta(seconds=self.settings.max_age_seconds):
            await self.mark_failed(claim, error.code, error.human)
            return "failed"
        await self._update(
            {"_id": claim.doc["_id"], "delivery.lease_id": claim.lease_id},
            {"$set": {"delivery.state": "retry_wait", "delivery.due_at": next_at,
                      "delivery.next_attempt_at": next_at, "delivery.lease_id": None,
                      "delivery.lease_until": None, "delivery.attempts": claim.attempts,
                      "delivery.error": {"code": error.code, "message": error.human}}},
            entry=claim.doc, shown_first=True)
        await self._release_followers(claim.doc["conversation_id"], claim.message_id)
        return "retry_wait"

    async def mark_failed(self, claim: Claim, code: str, human_message: str,
                          alternatives: tuple[str, ...] = ()) -> None:
        """Dead-letter: shown in the UI with `human_message` (and the other ways to send it,
        `alternatives`, e.g. "dm"); blocks nothing; `retry` re-queues."""
        now = self.clock.now()
        error: Doc = {"code": code, "message": human_message}
        if alternatives:
            error["alternatives"] = list(alternatives)
        await self._update(
            {"_id": claim.doc["_id"], "delivery.lease_id": claim.lease_id},
            {"$set": {"delivery.state": "failed", "delivery.failed_at": now,
                      "delivery.attempts": claim.attempts,
                      "delivery.lease_id": None, "delivery.lease_until": None,
                      "delivery.next_attempt_at": None, "delivery.error": error},
             "$unset": {"delivery.due_at": "", "delivery.blocked_by": ""}}, entry=claim.doc,
            shown_first=True)
        await self._release_followers(claim.doc["conversation_id"], claim.message_id)

    async def apply_report(self, report: DeliveryReport) -> StoreResult:
        """A platform said after the fact that a sent reply failed (an email bounce): the reply
        is marked failed with the platform's reason."""
        if not report.message_id:
            log.warning("account %s: a delivery report names no reply of ours (%s)",
                        report.account_id, report.outbound_external_id)
            return StoreResult(None, None, False)
        try:
            mid = oid(report.message_id)
        except NotFound:
            return StoreResult(None, None, False)
        now = self.clock.now()
        doc = await self.coll.find_one({"_id": mid, "account_id": report.account_id},
                                       {"conversation_id": 1, "delivery": 1, "external_id": 1})
        if doc is None or doc.get("external_id") != report.outbound_external_id:
            # not ours, or not what we sent: a report must name the reply's own platform id
            return StoreResult(None, None, False)
        await self._update(
            {"_id": mid}, {"$set": {
                "delivery.state": "failed", "delivery.failed_at": report.at or now,
                "delivery.error": {"code": report.code, "message": report.reason,
                                   "reported": True}},
                "$unset": {"delivery.due_at": ""}})
        return StoreResult(str(mid), doc["conversation_id"], False)

    async def retry(self, message_id: str, *, changes: Mapping[str, Any] | None = None) -> Doc:
        """Re-queue a failed reply with fresh attempts and age (and `changes`, e.g. another
        target, re-rendered); NotRetryable if not failed."""
        now = self.clock.now()
        mid = oid(message_id)
        update: Doc = {"$set": {**(changes or {}), "delivery.state": "queued",
                                "delivery.due_at": now, "delivery.next_attempt_at": now,
                                "delivery.queued_at": now, "delivery.attempts": 0,
                                "delivery.error": None, "delivery.failed_at": None}}
        retried = await self._update({"_id": mid, "delivery.state": "failed"}, update)
        doc = await self.db.messages.find_one({"_id": mid}, {"raw": 0})
        if doc is None or doc.get("direction") != "out":
            raise NotFound(message_id)
        if not retried:
            raise NotRetryable(message_id, doc["delivery"]["state"])
        self._notify()
        return doc


def _within_room(candidates: list[Doc], want: int, per_account: int | None,
                 counts: Counter[str]) -> list[Doc]:
    """The first `want` candidates, no account past `per_account` sends (counting `counts`)."""
    picked: list[Doc] = []
    for cand in candidates:
        if len(picked) >= want:
            break
        account = str(cand["account_id"])
        if per_account is not None and counts[account] >= per_account:
            continue
        counts[account] += 1
        picked.append(cand)
    return picked
