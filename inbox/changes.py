"""One change stream per process, shared by every component that follows the database.

The embedded server reads its whole oplog once per open change stream on every poll (and, with
`updateLookup`, looks up each updated document of the stream's scope before any `$match`), so
five components each with their own stream cost it five scans of every write. `ChangeFeed`
opens one database-level stream over the collections the process follows, without
`updateLookup` (inserts carry their document; a consumer that needs an updated document reads
it, once per batch), and hands each change to the subscriptions that want its collection and
kind.

A subscription that starts from a saved resume token (`after`) first reads what it missed from
a short stream of its own, while the shared one keeps its new changes aside; when the private
stream reaches the present the two are joined without a gap or a change twice (resume tokens
are ordered, `token_order`: what the shared stream brings up to the private one's last change
is dropped). A token the database no longer has
surfaces as `HistoryLost` from `next_batch`, once: the consumer recovers its own way (a sweep,
a re-read since a watermark) and subscribes again.

Each batch comes with the token to save after applying it (`Batch.token`): the position just
past the batch, or past idle stretches when nothing matched, so a saved token never skips a
change that was not yet applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import bson
from pymongo.errors import OperationFailure, PyMongoError

from inbox.db import Database, Doc
from inbox.tasks import cancel_and_wait

log = logging.getLogger(__name__)

HISTORY_LOST = (286, 9, 280)  # ChangeStreamHistoryLost, FailedToParse (a bad token), fatal
OPS = frozenset({"insert", "update", "replace", "delete"})
START_TIMEOUT = 10.0


class HistoryLost(Exception):
    """The subscription's resume point is gone: what happened since cannot be replayed."""


@dataclass(slots=True)
class Batch:
    changes: list[Doc]
    token: Doc | None


@dataclass(eq=False)
class Subscription:
    name: str
    collections: frozenset[str]
    ops: frozenset[str]
    ops_of: dict[str, frozenset[str]] = field(default_factory=dict)  # a collection's own
    _items: list[Doc] = field(default_factory=list)
    _token: Doc | None = None
    _held: list[Doc] = field(default_factory=list)
    _catching_up: bool = False
    _lost: bool = False
    _floor: tuple[int, int | str] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    # how far the catch-up from `after` has read: what lies at or before it is a replay (a
    # consumer may have applied it already, e.g. before a crash that kept its token behind)
    replayed_through: tuple[int, int | str] | None = None

    def wants(self, change: Doc) -> bool:
        coll = (change.get("ns") or {}).get("coll")
        return coll in self.collections \
            and change.get("operationType") in self.ops_of.get(coll, self.ops)

    @property
    def all_ops(self) -> frozenset[str]:
        return self.ops.union(*self.ops_of.values())

    def _behind(self, token: Doc) -> bool:
        """After a catch-up the shared stream may still be behind the private one: what it
        brings up to the private one's last change was delivered already."""
        if self._floor is None:
            return False
        order = token_order(token)
        if order is not None and order <= self._floor:
            return True
        self._floor = None
        return False

    def _deliver(self, change: Doc) -> None:
        if self._catching_up:
            self._held.append(change)
            return
        if self._behind(change["_id"]):
            return
        self._items.append(change)
        self._token = change["_id"]
        self._wake.set()

    def _advance(self, token: Doc) -> None:
        """The feed moved past changes this subscription does not want."""
        if self._catching_up or self._behind(token):
            return
        self._token = token  # no wake: a consumer saves a moved token on its own schedule

    def _lose(self) -> None:
        self._lost = True
        self._wake.set()

    @property
    def token(self) -> Doc | None:
        return self._token

    @property
    def catching_up(self) -> bool:
        """Still reading from `after` on a private stream (see ChangeFeed._catch_up)."""
        return self._catching_up

    async def next_batch(self, timeout: float | None = None) -> Batch:
        """The changes delivered since the last batch, waiting up to `timeout` for one (an
        empty batch when it passes; its token may still have moved past changes this
        subscription does not want). Raises HistoryLost once."""
        if not self._items and not self._lost:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        if self._lost:
            self._lost = False
            self._items.clear()
            raise HistoryLost(self.name)
        items, self._items = self._items, []
        return Batch(items, self._token)


class ChangeFeed:
    def __init__(self, db: Database, collections: Iterable[str], *,
                 max_await_ms: int = 300) -> None:
        self.db = db
        self.collections = sorted(set(collections))
        self.max_await_ms = max_await_ms
        self.subscriptions: set[Subscription] = set()
        self.streams_opened = 0
        self._token: Doc | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._catch_ups: set[asyncio.Task[None]] = set()

    @property
    def pipeline(self) -> list[Doc]:
        return [{"$match": {"ns.coll": {"$in": self.collections},
                            "operationType": {"$in": sorted(OPS)}}},
                {"$project": {"fullDocument.raw": 0, "fullDocument.credentials": 0}}]

    @property
    def token(self) -> Doc | None:
        """The position of the shared stream (None before it has one)."""
        return self._token

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="switchboard-changes")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), START_TIMEOUT)

    async def stop(self) -> None:
        await cancel_and_wait([self._task, *self._catch_ups])
        self._task = None
        self._catch_ups.clear()

    def subscribe(self, name: str, collections: Iterable[str],
                  ops: Iterable[str] = OPS, *, after: Doc | None = None,
                  ops_of: Mapping[str, Iterable[str]] | None = None) -> Subscription:
        """Follow `collections` from now, or from just after the token `after`: the changes
        of kind `ops`, or for a collection named in `ops_of`, of the kinds it names."""
        wanted = frozenset(collections)
        unknown = wanted - set(self.collections)
        if unknown:
            raise ValueError(f"the change feed does not follow {sorted(unknown)}")
        sub = Subscription(name, wanted, frozenset(ops),
                           {c: frozenset(o) for c, o in (ops_of or {}).items()})
        sub._token = after if after is not None else self._token
        self.subscriptions.add(sub)
        if after is not None:
            sub._catching_up = True
            task = asyncio.create_task(self._catch_up(sub, after), name=f"changes-{name}")
            self._catch_ups.add(task)
            task.add_done_callback(self._catch_ups.discard)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.discard(sub)

    # ------------------------------------------------------------------ the shared stream

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await self.db.watch(self.pipeline, resume_after=self._token,
                                               max_await_time_ms=self.max_await_ms) as stream:
                    self.streams_opened += 1
                    if self._token is None:
                        self._token = stream.resume_token
                    self._ready.set()
                    while True:
                        change = await stream.try_next()
                        if change is None:
                            if not stream.alive:  # closed by the server: reopen, after a pause
                                break  # (growing, while it keeps being closed)
                            delay = 0.5  # a round trip that worked: the next outage starts over
                            token = stream.resume_token
                            if token is not None and token != self._token:
                                self._token = token
                                for sub in list(self.subscriptions):
                                    sub._advance(token)
                            continue
                        self._token = change["_id"]
                        delay = 0.5
                        for sub in list(self.subscriptions):
                            if sub.wants(change):
                                sub._deliver(change)
                            else:
                                sub._advance(change["_id"])
            except asyncio.CancelledError:
                raise
            except OperationFailure as exc:
                if exc.code in HISTORY_LOST and self._token is not None:
                    log.warning("change feed: its position is gone (%s); subscribers recover",
                                exc.code)
                    self._token = None
                    for sub in list(self.subscriptions):
                        sub._lose()
                    continue
                log.warning("change feed failed (%s); retrying", exc.code)
            except PyMongoError as exc:
                log.warning("change feed interrupted (%s); resuming", type(exc).__name__)
            self._ready.set()  # subscribers start; their changes come once it resumes
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _catch_up(self, sub: Subscription, after: Doc) -> None:
        """What `sub` missed since `after`, from a stream of its own, then the shared one."""
        pipeline = [{"$match": {"ns.coll": {"$in": sorted(sub.collections)},
                                "operationType": {"$in": sorted(sub.all_ops)}}},
                    self.pipeline[1]]
        token = after
        delay = 0.5
        while True:
            try:
                async with await self.db.watch(pipeline, resume_after=token,
                                               max_await_time_ms=50) as stream:
                    self.streams_opened += 1
                    while True:
                        change = await stream.try_next()
                        if change is None:
                            break
                        token = change["_id"]
                        sub.replayed_through = token_order(token)
                        sub._token = token
                        if not sub.wants(change):  # another collection's kind
                            continue
                        sub._items.append(change)
                        sub._wake.set()
                        if len(sub._items) >= 1024:
                            await asyncio.sleep(0)  # let the consumer take a batch
                break
            except asyncio.CancelledError:
                raise
            except OperationFailure as exc:
                if exc.code in HISTORY_LOST:
                    log.warning("change feed: %s cannot resume (%s)", sub.name, exc.code)
                    sub._catching_up = False
                    sub._held.clear()
                    sub._lose()
                    return
                log.warning("change feed: %s catch-up failed (%s); retrying", sub.name,
                            exc.code)
            except PyMongoError as exc:
                log.warning("change feed: %s catch-up interrupted (%s)", sub.name,
                            type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        # joined in one step (no await): what the shared stream held past the private one's
        # last change comes next, in order, then live changes
        held, sub._held = sub._held, []
        sub._catching_up = False
        sub._floor = token_order(token)  # the shared stream may be behind that point
        for change in held:  # those up to the floor were read by the private stream
            sub._deliver(change)
        sub._wake.set()


def token_order(token: Doc) -> tuple[int, int | str] | None:
    """Where a resume token lies in the stream, comparable with other tokens of the same
    database: the embedded server's `_data` is a hex BSON document holding its oplog sequence
    (`s`); MongoDB's is a hex KeyString, ordered as a string. None when neither."""
    data = token.get("_data") if isinstance(token, dict) else None
    if not isinstance(data, str):
        return None
    try:
        inner = bson.decode(bytes.fromhex(data))
    except (ValueError, bson.errors.BSONError):
        return (1, data)
    seq = inner.get("s")
    return (0, int(seq)) if isinstance(seq, int) else (1, data)


__all__ = ["Batch", "ChangeFeed", "HistoryLost", "Subscription"]
