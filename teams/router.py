"""The router: every new conversation, from whichever process created it, routed once.

One `Router` per process follows new conversations on the process's change feed
(inbox/changes.py: inserts into `conversations`), off the
acknowledgement path of ingest, which it knows nothing about. For each new conversation it
inserts a claim (`route_claims`, `_id` = the conversation): the first process to insert it
routes the conversation, the others skip it. It then waits for the first message (ingest stores
the conversation a moment before its messages), applies the routing rules and hands the
decision to the `Assigner`, whose compare-and-set on the conversation records it once.

A conversation whose decision needs nothing but its first message is routed as it is
created instead (`prefill`, a creation hook of inbox/summaries.py): a new contact has no
agent to return to, so a decision naming no team is final, and it is inserted with the
conversation, with no claim and no update after it (on the embedded server that update
rewrote every index entry of the conversation and cost four times its insert). What routing
does after the decision (the contact's history, the search entries, the observers) follows
in the creating process, from `created`; the change feed's copy of such an insert is skipped
everywhere. A decision naming a team, or a contact seen before (the agent who served them
last), goes through the claim as above.

The resume token is kept in `meta` ("router"), with `through`: the creation time before which
every conversation is known to be handled. On start, on a lost token (error 286) and every
`SWEEP_EVERY` seconds, conversations active since then that carry no routing decision are
swept up by a range on the `sk` index (a conversation's `sk` only moves forward from its
creation, so "created since T" is inside "sk since T"); a claim whose process died
(`CLAIM_LEASE`) is taken over. Conversations routed at creation are finished by their
creator (a failed batch is tried again) and by `stop`; until they are, the creator's
summaries heartbeat lists them (`unfinished`), so after a crash whoever repairs that
heartbeat — the restarted process, or another one — finishes them (`recovered`: those with
no contact history, which is written last).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError, PyMongoError

from inbox.changes import ChangeFeed, HistoryLost, Subscription
from inbox.clock import Clock
from inbox.db import Database, Doc, find_in
from inbox.paging import make_sk
from inbox.tasks import cancel_and_wait
from teams import hours
from teams.assign import Assigner, recorded
from teams.rules import Sample, decide, now_in_hours
from teams.store import TeamStore

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(seconds=30)
MARGIN = timedelta(seconds=10)
SWEEP_BACK = timedelta(minutes=2)
SWEEP_EVERY = 30.0
TICK_EVERY = 1.0
RECONCILE_EVERY = 30.0
FIRST_MESSAGE_WAIT = 5.0  # seconds a conversation waits for its first message to be stored
CONV_FIELDS = {"_id": 1, "account_id": 1, "platform": 1, "kind": 1, "contact_id": 1,
               "customer_locale": 1, "created_at": 1, "sk": 1, "title": 1}

Hook = Callable[[list[tuple[Doc, Doc | None, Doc]]], Any]  # (conversation, contact, decision)
RETRY_AFTER = 1.0  # s before a failed batch of conversations routed at creation is retried
FINISH_TRIES = 10  # then it is left to the repair after this process stops
STOP_WAIT = 5.0  # s `stop` spends finishing them
_NOT_DECISION = ("at", "agent_id", "returning", "steps", "by")


def routed_at_creation(conv: Doc) -> bool:
    return (conv.get("routing") or {}).get("by") == "creation"


def _decision_of(conv: Doc) -> Doc:
    return {k: v for k, v in (conv.get("routing") or {}).items() if k not in _NOT_DECISION}


def _sample(conv: Doc, first: Doc | None, contact: Doc | None) -> Sample:
    return Sample(platform=conv.get("platform"), account_id=conv.get("account_id"),
                  kind=conv.get("kind"),
                  language=conv.get("customer_locale")
                  or ((first or {}).get("author") or {}).get("locale"),
                  text=str((first or {}).get("text") or ""),
                  labels=tuple((contact or {}).get("labels") or ()))


class Router:
    def __init__(self, db: Database, teams: TeamStore, assigner: Assigner, clock: Clock, *,
                 on_routed: Hook | None = None, feed: ChangeFeed | None = None) -> None:
        self.db = db
        self.teams = teams
        self.assigner = assigner
        self.clock = clock
        self.owner = str(ObjectId())
        self.on_routed = on_routed
        self.feed = feed
        self._own_feed: ChangeFeed | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[str, Doc] = {}
        # routed at creation here, not finished yet: (conversation, the contact created with it)
        self._unfinished: dict[str, tuple[Doc, Doc | None]] = {}
        self._tries: dict[str, int] = {}  # of those, how often finishing failed
        self._stopped = False
        self._wake = asyncio.Event()
        self.routed = 0
        self.routed_at_creation = 0
        self.skipped = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._stopped = False
        meta = await self.db.meta.find_one({"_id": "router"})
        if meta is None:  # first start: conversations from before routing existed stay as
            await self.db.meta.update_one(  # they are
                {"_id": "router"}, {"$setOnInsert": {"through": self.clock.now() - MARGIN,
                                                     "token": None}}, upsert=True)
            meta = await self.db.meta.find_one({"_id": "router"}) or {}
        if self.feed is None:  # alone (tests, tools): a feed of its own
            self.feed = self._own_feed = ChangeFeed(self.db, ["conversations"])
            await self.feed.start()
        sub = self.feed.subscribe("router", ["conversations"], ["insert"],
                                  after=meta.get("token"))
        self._tasks = [asyncio.create_task(self._watch(sub), name="router-watch"),
                       asyncio.create_task(self._work(), name="router-work"),
                       asyncio.create_task(self._background(), name="router-tick")]
        await self.sweep(meta.get("through"))

    async def stop(self) -> None:
        self._stopped = True  # what is created from now on is routed after its insert
        await cancel_and_wait(self._tasks)
        self._tasks = []
        decided = [conv for conv, _ in self._unfinished.values()]  # queued, in a cancelled
        for doc in decided:  # batch, or waiting for another try
            self._pending.pop(str(doc["_id"]), None)
        if decided:  # else only a repair of this process's heartbeat would finish them
            with contextlib.suppress(PyMongoError, TimeoutError):
                async with asyncio.timeout(STOP_WAIT):
                    await self._finish(decided)
        if self._own_feed is not None:
            await self._own_feed.stop()
            self.feed = self._own_feed = None

    # ------------------------------------------------------------------ following inserts

    async def _watch(self, sub: Subscription) -> None:
        assert self.feed is not None
        saved = asyncio.get_running_loop().time()
        token: Doc | None = None
        while True:
            try:
                batch = await sub.next_batch(1.0)
            except HistoryLost:
                log.warning("router: resume token lost; sweeping")
                self.feed.unsubscribe(sub)
                sub = self.feed.subscribe("router", ["conversations"], ["insert"])
                try:
                    meta = await self.db.meta.find_one({"_id": "router"}) or {}
                    await self.sweep(meta.get("through"))
                except PyMongoError as exc:
                    log.warning("router: the sweep failed (%s)", type(exc).__name__)
                continue
            for change in batch.changes:
                doc = change.get("fullDocument")
                if doc and "routing" not in doc:  # routed at creation: its creator finishes it
                    self._pending[str(doc["_id"])] = doc
                    self._wake.set()
            token = batch.token or token
            loop_now = asyncio.get_running_loop().time()
            if token is not None and loop_now - saved > 1.0:
                saved = loop_now
                await self._save(token)

    async def _save(self, token: Doc) -> None:
        through = min([_aware(d.get("created_at")) for d in self._pending.values()
                       if not routed_at_creation(d)] + [self.clock.now()]) - MARGIN
        with contextlib.suppress(PyMongoError):
            await self.db.meta.update_one({"_id": "router"},
                                          {"$set": {"token": token, "through": through}},
                                          upsert=True)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.01)  # let a burst gather into one batch
            while self._pending:
                batch = list(self._pending.values())[:64]
                for doc in batch:
                    self._pending.pop(str(doc["_id"]), None)
                decided = [d for d in batch if routed_at_creation(d)]
                if decided:
                    try:
                        await self._finish(decided)
                    except PyMongoError as exc:
                        log.warning("router: finishing %d conversations failed (%s); trying "
                                    "again", len(decided), type(exc).__name__)
                        self._again(decided)
                rest = [d for d in batch if not routed_at_creation(d)]
                if rest:
                    try:
                        await self.handle(rest)
                    except PyMongoError as exc:
                        log.warning("router: a batch failed (%s); the sweep retries it",
                                    type(exc).__name__)

    def _again(self, docs: list[Doc]) -> None:
        """Queue conversations routed at creation once more, a moment from now (no sweep
        looks for them while this process runs); after `FINISH_TRIES` they stay listed
        as unfinished, for the repair once this process stops."""
        retry = []
        for doc in docs:
            conv_id = str(doc["_id"])
            tries = self._tries[conv_id] = self._tries.get(conv_id, 0) + 1
            if tries < FINISH_TRIES:
                retry.append(doc)
            else:
                log.error("router: conversation %s could not be finished; left to the repair",
                          conv_id)

        def requeue() -> None:
            if self._stopped:
                return  # `stop` took them
            for doc in retry:
                if str(doc["_id"]) in self._unfinished:
                    self._pending.setdefault(str(doc["_id"]), doc)
            self._wake.set()

        if retry:
            asyncio.get_running_loop().call_later(RETRY_AFTER, requeue)

    async def _background(self) -> None:
        loop = asyncio.get_running_loop()
        last_sweep = last_reconcile = loop.time()
        while True:
            await asyncio.sleep(TICK_EVERY)
            try:
                await self.assigner.tick()
                if loop.time() - last_sweep >= SWEEP_EVERY:
                    last_sweep = loop.time()
                    await self.sweep(self.clock.now() - SWEEP_BACK)
                if loop.time() - last_reconcile >= RECONCILE_EVERY:
                    last_reconcile = loop.time()
                    await self.assigner.reconcile_all()
            except PyMongoError as exc:
                log.warning("router: background round failed (%s)", type(exc).__name__)

    # ------------------------------------------------------------------ routing

    async def sweep(self, since: datetime | None) -> int:
        """Route conversations active since `since` that no process has routed."""
        since = _aware(since) if since else self.clock.now() - SWEEP_BACK
        lo = make_sk(since - MARGIN, ObjectId("0" * 24))
        docs = await self.db.conversations.find(
            {"sk": {"$gte": lo}, "routing": {"$exists": False}}, CONV_FIELDS,
            hint=[("sk", -1)]).to_list()
        fresh = [d for d in docs if _aware(d.get("created_at")) >= since - MARGIN]
        if fresh:
            await self.handle(fresh, sweeping=True)
        return len(fresh)

    async def _without_history(self, docs: list[Doc]) -> list[Doc]:
        """Those of `docs` (routed at creation) whose contact history is not written."""
        if not docs:
            return []
        have = {d["_id"] for d in await find_in(self.db.contact_history,
                                                [str(d["_id"]) for d in docs], None, {"_id": 1})}
        return [d for d in docs if str(d["_id"]) not in have]

    # ------------------------------------------------------------------ routed at creation

    async def prefill(self, new: list[tuple[Doc, Doc, Doc | None]]) -> None:
        """Route, before their insert, the new conversations whose decision is final: a
        contact created with the conversation (nobody served them before) and rules that
        name no team. The others get nothing and are routed after their insert."""
        items = [(conv, first, contact) for conv, first, contact in new
                 if contact is not None and first.get("direction", "in") == "in"]
        if not items or self._stopped:
            return
        rules = await self.teams.rules()
        teams = await self.teams.teams()
        now = self.clock.now()
        in_hours = now_in_hours(teams, now, hours.is_open)
        decided = [(conv, decide(rules, _sample(conv, first, contact), in_hours))
                   for conv, first, contact in items]
        for conv, decision in decided:
            if decision.team_id is not None:
                continue
            doc = decision.as_doc()
            fields = recorded(doc, None, now)  # what the router's update would have set
            fields["routing"]["by"] = "creation"
            conv.update(fields, labels=list(dict.fromkeys([*conv["labels"], *doc["labels"]])))

    def created(self, new: list[tuple[Doc, Doc, Doc | None]]) -> None:
        for conv, _, contact in new:
            conv_id = str(conv["_id"])
            if routed_at_creation(conv) and contact is not None:
                self._unfinished[conv_id] = (conv, contact)
                self._pending[conv_id] = conv
                self._wake.set()

    def unfinished(self) -> set[str]:
        return set(self._unfinished)

    async def recovered(self, conv_ids: list[str]) -> None:
        """Finish the conversations a dead process routed at creation and may not have."""
        oids = [ObjectId(c) for c in conv_ids if ObjectId.is_valid(c)]
        docs = await find_in(self.db.conversations, oids, {"routing.by": "creation"},
                             {**CONV_FIELDS, "routing": 1, "labels": 1})
        left = await self._without_history(docs)
        if left:
            await self._finish(left)

    async def _finish(self, docs: list[Doc]) -> None:
        """After a decision made at creation: the search entries and the observers (the
        hook), then the contact's history, which marks them finished (`recovered` redoes
        those without it; the hook's work is idempotent, and observers act on teams)."""
        ids = [str(d["_id"]) for d in docs]
        contacts = {i: self._unfinished[i][1] if i in self._unfinished else None for i in ids}
        read = await self._contacts(d.get("contact_id") for d, i in zip(docs, ids, strict=True)
                                    if contacts[i] is None)
        for doc, conv_id in zip(docs, ids, strict=True):
            contacts[conv_id] = contacts[conv_id] or read.get(str(doc.get("contact_id") or ""))
        await self._after([(d, contacts[i], _decision_of(d))
                           for d, i in zip(docs, ids, strict=True)])
        await self.assigner.history_many(docs)
        for conv_id in ids:
            self._unfinished.pop(conv_id, None)
            self._tries.pop(conv_id, None)
        self.routed += len(docs)
        self.routed_at_creation += len(docs)

    async def _claim(self, docs: list[Doc], *, sweeping: bool) -> list[Doc]:
        now = self.clock.now()
        claims = [{"_id": str(d["_id"]), "owner": self.owner, "at": now} for d in docs]
        taken: set[int] = set()
        try:
            await self.db.route_claims.insert_many(claims, ordered=False)
        except BulkWriteError as exc:
            taken = {int(e["index"]) for e in exc.details.get("writeErrors", [])
                     if e.get("code") == 11000}
            if len(taken) != len(exc.details.get("writeErrors", [])):
                raise
        mine = [d for i, d in enumerate(docs) if i not in taken]
        if sweeping and taken:  # a claim left by a process that died before routing
            for i in taken:
                result = await self.db.route_claims.update_one(
                    {"_id": claims[i]["_id"], "at": {"$lt": now - CLAIM_LEASE}},
                    {"$set": {"owner": self.owner, "at": now}})
                if result.modified_count == 1:
                    mine.append(docs[i])
        self.skipped += len(docs) - len(mine)
        return mine

    async def handle(self, docs: list[Doc], *, sweeping: bool = False) -> None:
        mine = await self._claim(docs, sweeping=sweeping)
        if not mine:
            return
        firsts = await self._first_messages([str(d["_id"]) for d in mine])
        contacts = await self._contacts(d.get("contact_id") for d in mine)
        rules = await self.teams.rules()
        teams = await self.teams.teams()
        in_hours = now_in_hours(teams, self.clock.now(), hours.is_open)
        routed: list[tuple[Doc, Doc | None, Doc]] = []
        for doc in mine:
            contact = contacts.get(str(doc.get("contact_id") or ""))
            sample = _sample(doc, firsts.get(str(doc["_id"])), contact)
            routed.append((doc, contact, decide(rules, sample, in_hours).as_doc()))
        outcomes = await self.assigner.route_many([(doc, d) for doc, _, d in routed])
        self.routed += sum(outcome != "taken" for outcome in outcomes)
        await self._after(routed)

    async def _after(self, routed: list[tuple[Doc, Doc | None, Doc]]) -> None:
        if self.on_routed is not None:
            try:
                await self.on_routed(routed)
            except Exception:  # indexing conversations must not stop routing
                log.exception("router: after-routing hook failed")

    async def _first_messages(self, conv_ids: list[str]) -> dict[str, Doc]:
        """The first customer message of each conversation, waiting a moment for ingest to
        store those that are not there yet."""
        found: dict[str, Doc] = {}
        waited, delay = 0.0, 0.02
        while True:
            missing = [c for c in conv_ids if c not in found]
            async for msg in self.db.messages.find(
                    {"conversation_id": {"$in": missing}, "direction": "in"},
                    {"conversation_id": 1, "text": 1, "sk": 1, "author": 1}):
                have = found.get(msg["conversation_id"])
                if have is None or msg["sk"] < have["sk"]:
                    found[msg["conversation_id"]] = msg
            if len(found) == len(conv_ids) or waited >= FIRST_MESSAGE_WAIT:
                return found
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)

    async def _contacts(self, ids: Iterable[Any]) -> dict[str, Doc]:
        wanted = list({ObjectId(str(i)) for i in ids if i and ObjectId.is_valid(str(i))})
        if not wanted:
            return {}
        return {str(c["_id"]): c async for c in self.db.contacts.find(
            {"_id": {"$in": wanted}}, {"name": 1, "handle": 1, "labels": 1, "identities": 1})}


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
