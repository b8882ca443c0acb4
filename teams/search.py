"""Search without `$text`: an indexed token array in its own collection, built behind ingest.

`search_index` holds an entry per message and a document per conversation (`c:<id>`): `t`, the
terms; `sk`, the sort key (newest first, like the inbox); the snippet shown in results. Message
entries indexed together share a bucket document (teams/search_buckets.py: a busy inbox's
bigrams are mostly the same, and the embedded server pays per document and per index entry).
Terms are NFKC-normalised and case-folded: runs of Han, kana and Hangul become character
bigrams (Chinese has no spaces; a query "订单还没到" finds "我的订单还没到呢" when all of its
bigrams are there), other runs of letters and digits become words; conversation documents
also carry word prefixes of the customer's name and handle (`p:…`) and their labels
(`label:…`). The multikey index (t, sk) serves every query.

A query drives one term through the index (the one likeliest to be rare) in time windows on
`sk`, like the inbox pager (inbox/paging.py): the embedded server reads every document a filter
matches before it sorts, so each read is kept to about a page. The other terms are checked on
the documents read. A read budget bounds a query whose terms are all common: it then answers
what it found with a cursor to go on from where it stopped.

The index is written by one process at a time (`Indexer`, a lease in `meta`) from the
process's change feed (inbox/changes.py: message inserts, and edits of the text, whose new
text it reads once per batch), off the acknowledgement path; after
a lost resume token it re-reads the messages stored since its watermark (see `catch_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, PyMongoError

from inbox.changes import ChangeFeed, HistoryLost, token_order
from inbox.conversation_docs import insert_ignoring_duplicates
from inbox.db import Database, Doc, find_in
from inbox.paging import BadCursor, decode_cursor, encode_cursor, make_sk, micros, sk_micros
from inbox.priority import AckWindow
from inbox.tasks import cancel_and_wait
from teams.search_buckets import entries_of, rewrite, upper_bound, write_buckets

log = logging.getLogger(__name__)

MAX_TERMS = 400
SNIPPET = 160
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_RUNS = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_IS_CJK = re.compile(rf"[{_CJK}]")
# the commonest Chinese characters: a bigram holding one is a poor term to drive the index
_COMMON = set("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
              "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自"
              "二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日"
              "那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变"
              "条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
              "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指"
              "几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器"
              "压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安"
              "场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集"
              "温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连"
              "断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精"
              "值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属"
              "圆包火住调满县局照参红细引听该铁价严您吗呢吧啊哦嗯谢请")
TERM_PREFIXES = ("p:", "label:")


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").casefold()


def terms(text: str, *, limit: int = MAX_TERMS) -> list[str]:
    """The terms of a text, in order of first appearance, each once."""
    out: dict[str, None] = {}
    for run in _RUNS.findall(normalise(text)):
        if _IS_CJK.match(run):
            if len(run) == 1:
                out.setdefault(run, None)
            for i in range(len(run) - 1):
                out.setdefault(run[i:i + 2], None)
        elif len(run) <= 64:
            out.setdefault(run, None)
        if len(out) >= limit:
            break
    return list(out)[:limit]


def prefixes(text: str, *, shortest: int = 2, longest: int = 12) -> list[str]:
    """`p:` word prefixes of a name or handle ("xiaoming" → p:xi … p:xiaoming)."""
    out: dict[str, None] = {}
    for run in _RUNS.findall(normalise(text)):
        if _IS_CJK.match(run):
            continue
        for n in range(shortest, min(len(run), longest) + 1):
            out.setdefault(f"p:{run[:n]}", None)
    return list(out)


@dataclass(frozen=True, slots=True)
class Query:
    """What a search asks for: groups of terms, each group matching if any term in it is on
    a document (a word is itself or a name prefix); every group must match."""

    groups: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, q: str) -> Query:
        groups: list[tuple[str, ...]] = []
        for word in (q or "").split():
            if word.lower().startswith("label:") and len(word) > 6:
                groups.append((f"label:{normalise(word[6:])}",))
                continue
            for term in terms(word, limit=32):
                if _IS_CJK.match(term):
                    groups.append((term,))
                else:
                    groups.append((term, f"p:{term[:12]}") if len(term) >= 2 else (term,))
        unique = list(dict.fromkeys(groups))
        return cls(tuple(unique))

    def driver(self) -> tuple[str, ...]:
        """The group to read through the index: the likeliest to be rare."""
        def rarity(group: tuple[str, ...]) -> tuple[int, int]:
            term = group[0]
            if term.startswith("label:"):
                return (1, -len(term))
            if _IS_CJK.match(term):
                common = sum(ch in _COMMON for ch in term)
                return (2 + common, -len(term))
            digits = term.isdigit()
            return (0 if (digits and len(term) >= 4) or len(term) >= 6 else 3, -len(term))
        return min(self.groups, key=rarity)

    def accepts(self, doc_terms: Iterable[str]) -> bool:
        have = set(doc_terms)
        return all(any(t in have for t in group) for group in self.groups)


def message_entry(msg: Mapping[str, Any]) -> Doc | None:
    """The search document of a stored message, or None when it has nothing to find."""
    text = str(msg.get("text") or "")
    found = terms(text)
    if not found:
        return None
    author = (msg.get("author") or {}).get("name") or msg.get("agent_name")
    return {"_id": msg["_id"], "kind": "message", "sk": msg["sk"],
            "conversation_id": msg["conversation_id"], "direction": msg.get("direction"),
            "author": author, "snippet": " ".join(text.split())[:SNIPPET],
            "at": msg.get("platform_ts"), "t": found}


def conversation_entry(conv: Mapping[str, Any], contact: Mapping[str, Any] | None) -> Doc:
    """The search document of a conversation: the customer's name, handles and labels, and
    the conversation's labels."""
    contact = contact or {}
    names = [str(contact.get("name") or ""), str(contact.get("handle") or "")]
    names += [str(i.get("handle") or "") for i in contact.get("identities") or []]
    found: dict[str, None] = {}
    for name in names:
        for term in [*terms(name, limit=64), *prefixes(name)]:
            found.setdefault(term, None)
    for label in [*(conv.get("labels") or []), *(contact.get("labels") or [])]:
        found.setdefault(f"label:{normalise(str(label))}", None)
    created = conv.get("created_at") or datetime.now(UTC)
    return {"_id": f"c:{conv['_id']}", "kind": "conversation",
            "sk": make_sk(created, conv["_id"]), "conversation_id": str(conv["_id"]),
            "snippet": str(contact.get("name") or "")[:SNIPPET], "at": created,
            "t": list(found)[:MAX_TERMS]}


# ---------------------------------------------------------------------- searching

_START_US = 3600 * 10**6
_BUDGET = 10_000  # documents examined at most for one page
_PER_READ = 2_000  # documents of the driving term one window read should examine, about
_GROWTH = 8


class Search:
    def __init__(self, db: Database, *, budget: int = _BUDGET) -> None:
        self.db = db
        self.budget = budget
        self._width: OrderedDict[str, int] = OrderedDict()
        self.last_reads = 0
        self.last_examined = 0

    async def _floor(self) -> int:
        meta = await self.db.meta.find_one({"_id": "inbox"})
        return sk_micros(meta["floor_sk"]) if meta and meta.get("floor_sk") else 0

    async def page(self, q: str, *, limit: int = 20, cursor: str | None = None,
                   ) -> tuple[list[Doc], str | None]:
        """Search documents, newest first, and the cursor to older ones (None: no more)."""
        query = Query.parse(q)
        if not query.groups:
            return [], None
        driver = query.driver()
        flt: Doc = {"t": driver[0]} if len(driver) == 1 else {"t": {"$in": list(driver)}}
        hi = decode_cursor(cursor) if cursor else f"{10**16 - 1:016d}"
        start_us = sk_micros(hi) if cursor else micros(datetime.now(UTC)) + 60_000_000
        top_us = start_us
        floor = await self._floor()
        width = self._width.get(driver[0], _START_US)
        found: list[Doc] = []
        seen: set[Any] = set()  # a message indexed twice (see teams/search_buckets.py)
        self.last_reads = self.last_examined = 0
        while True:
            lo_us = top_us - width
            rng: Doc = {"$lt": hi}
            if lo_us > floor:
                rng["$gte"] = f"{lo_us:016d}"
            # buckets holding an entry of the window may sort up to SPAN_US above it
            read = {**rng, "$lt": upper_bound(hi)}
            read_docs = await self.db.search_index.find({**flt, "sk": read}).to_list()
            self.last_reads += 1
            self.last_examined += len(read_docs)  # what the server read: buckets count once
            lo = rng.get("$gte", "")
            hits = sorted((d for d in entries_of(read_docs) if lo <= d["sk"] < hi),
                          key=lambda d: d["sk"], reverse=True)
            for d in hits:
                if query.accepts(d.get("t") or ()) and d["_id"] not in seen:
                    seen.add(d["_id"])
                    found.append(d)
            if len(found) > limit:
                page = found[:limit]
                covered = start_us - sk_micros(page[-1]["sk"])
                self._learn(driver[0], max(int(covered * 1.3), 1_000_000))
                return page, encode_cursor(page[-1]["sk"])
            if "$gte" not in rng:
                return found, None
            left = self.budget - self.last_examined
            if left <= 0:
                # all common terms: answer what was found, go on from here next time
                return found, encode_cursor(rng["$gte"] + ".000000000000000000000000")
            hi, top_us = rng["$gte"], lo_us
            # the next window: as wide as should hold what is missing, but never more of the
            # driving term's documents than one read should examine (the embedded server reads
            # every document a window matches before it sorts)
            if not read_docs:
                width *= _GROWTH
                continue
            density = len(read_docs) / width
            wanted = (limit + 1 - len(found)) * 1.3 * (
                self.last_examined / len(found) if found else _GROWTH)
            width = max(int(min(wanted, _PER_READ, left) / density), 1_000_000)
            width = min(width, (start_us - lo_us) * _GROWTH)

    def _learn(self, term: str, width: int) -> None:
        self._width[term] = width
        self._width.move_to_end(term)
        while len(self._width) > 10_000:
            self._width.popitem(last=False)


def check_cursor(cursor: str | None) -> None:
    if cursor:
        decode_cursor(cursor)


# ---------------------------------------------------------------------- indexing

LEASE = timedelta(seconds=20)
RENEW_EVERY = 5.0
WRITE_AT_ONCE = 128  # messages (one full bucket) or conversations per insert
COALESCE = 0.5  # s: the longest a new message waits to be indexed (a search finds it after)
# s: the longest it waits while this process's acknowledgements are written (inbox/priority.py)
FOUND_WITHIN = 2.0
MARGIN = timedelta(seconds=10)
CATCH_UP_SETTLE = 1.0  # s: the longest a stored message takes to reach the change feed, about
_FIELDS = {"raw": 0, "html": 0, "full_text": 0, "rendered": 0}


class Indexer:
    """Keeps `search_index` up to date with the messages; one process at a time holds it."""

    def __init__(self, db: Database, feed: ChangeFeed | None = None) -> None:
        self.db = db
        self.feed = feed
        self._own_feed: ChangeFeed | None = None
        self.owner = str(ObjectId())
        self.indexed = 0
        self._task: asyncio.Task[None] | None = None
        self.holding = asyncio.Event()
        self.acks: AckWindow | None = None  # this process's acknowledgements: writes yield

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="search-indexer")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        if self._own_feed is not None:
            await self._own_feed.stop()
            self.feed = self._own_feed = None
        with contextlib.suppress(PyMongoError):
            await self.db.meta.update_one({"_id": "search", "owner": self.owner},
                                          {"$set": {"lease_until": datetime.now(UTC)}})

    async def _lease(self) -> Doc | None:
        now = datetime.now(UTC)
        with contextlib.suppress(PyMongoError):
            await self.db.meta.update_one(
                {"_id": "search"}, {"$setOnInsert": {"lease_until": now - LEASE, "owner": None,
                                                     "token": None, "through": now}},
                upsert=True)
        result = await self.db.meta.update_one(
            {"_id": "search", "$or": [{"owner": self.owner}, {"lease_until": {"$lt": now}}]},
            {"$set": {"owner": self.owner, "lease_until": now + LEASE}})
        if result.matched_count == 0:
            return None
        return await self.db.meta.find_one({"_id": "search"})

    async def _run(self) -> None:
        while True:
            try:
                meta = await self._lease()
                if meta is None:
                    self.holding.clear()
                    await asyncio.sleep(RENEW_EVERY)
                    continue
                self.holding.set()
                await self._follow(meta)
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                log.warning("search indexer: %s; retrying", type(exc).__name__)
                self.holding.clear()
                await asyncio.sleep(1.0)

    async def _follow(self, meta: Doc) -> None:
        token = meta.get("token")
        if self.feed is None:  # alone (tests, tools): a feed of its own
            self.feed = self._own_feed = ChangeFeed(self.db, ["messages"])
            await self.feed.start()
        # subscribed before the catch-up, so nothing stored while it reads is missed
        sub = self.feed.subscribe("search", ["messages"], ["insert", "update"], after=token)
        loop = asyncio.get_running_loop()
        batch: list[Doc] = []  # inserts not indexed before
        known: list[Doc] = []  # inserts that may be: replayed, or read by the catch-up too
        edits: list[str] = []
        first_at = 0.0
        caught_up: tuple[int, int | str] | None = None
        replays = token is not None  # whether inserts may still be ones indexed before
        try:
            if token is None:
                await self.catch_up(meta.get("through"))
                # what the catch-up read reaches the shared stream within a moment: changes
                # up to the stream's position a moment later may have been read by both
                await asyncio.sleep(CATCH_UP_SETTLE)
                caught_up = token_order(self.feed.token) if self.feed.token else None
                replays = caught_up is not None
            renewed = loop.time()
            while True:
                try:
                    got = await sub.next_batch(COALESCE)
                except HistoryLost:
                    log.warning("search indexer: resume token lost; re-reading since the "
                                "watermark")
                    await self.db.meta.update_one({"_id": "search", "owner": self.owner},
                                                  {"$set": {"token": None}})
                    return
                seen_by = max((p for p in (caught_up, sub.replayed_through) if p is not None),
                              default=None) if replays else None
                for change in got.changes:
                    if not batch and not known and not edits:
                        first_at = loop.time()
                    if change.get("operationType") == "insert":
                        again = False
                        if seen_by is not None:
                            order = token_order(change["_id"])
                            again = order is not None and order <= seen_by
                            # past the replay, in stream order: no later change is one
                            replays = again or sub.catching_up
                        (known if again else batch).append(change["fullDocument"])
                    elif "text" in ((change.get("updateDescription") or {})
                                    .get("updatedFields") or {}):
                        edits.append(change["documentKey"]["_id"])
                # gathered for up to COALESCE seconds (each statement costs the embedded
                # server a commit), written a bucket per statement: one large insert holds
                # up every acknowledgement queued behind it
                if (batch or known or edits) and (
                        len(batch) + len(known) + len(edits) >= 256
                        or loop.time() - first_at >= COALESCE):
                    # a holder stalled past its lease must not write beside the next one
                    if loop.time() - renewed >= RENEW_EVERY:
                        renewed = loop.time()
                        if not await self._renew(None, keep_token=True):
                            return
                    if self.acks is not None:
                        await self.acks.wait_idle(FOUND_WITHIN - (loop.time() - first_at))
                    for i in range(0, len(batch), WRITE_AT_ONCE):
                        await self.write(batch[i:i + WRITE_AT_ONCE])
                    if known:
                        await self.write(known, again=True)
                    if edits:
                        await self.write(await find_in(self.db.messages, edits,
                                                       projection=_FIELDS), again=True)
                    batch, known, edits = [], [], []
                if not batch and not known and not edits and (
                        loop.time() - renewed >= RENEW_EVERY
                        or (not got.changes and loop.time() - renewed >= 1.0)):
                    renewed = loop.time()
                    if not await self._renew(got.token):
                        return
        finally:
            self.feed.unsubscribe(sub)

    async def _renew(self, token: Doc | None, *, keep_token: bool = False) -> bool:
        now = datetime.now(UTC)
        fields: Doc = {"lease_until": now + LEASE}
        if not keep_token:
            fields.update(token=token, through=now - MARGIN)
        result = await self.db.meta.update_one({"_id": "search", "owner": self.owner},
                                               {"$set": fields})
        return result.matched_count == 1

    async def catch_up(self, through: datetime | None) -> int:
        """Index every message stored (or edited) since `through`.

        One pass over the collection in storage order: message ids are derived from the
        platform's ids (inbox/ids.py) and carry no time, and the `sk` index orders by the
        platform's time, which a late delivery (a poll after an outage) puts in the past. It
        runs only when the change stream's resume token is gone (first start, lost history),
        and behind ingest; what it meets may be indexed already, so it replaces copies."""
        since = (through or datetime.now(UTC)) - MARGIN
        flt = {"$or": [{"received_at": {"$gte": since}}, {"created_at": {"$gte": since}},
                       {"edited_at": {"$gte": since}}]}
        batch: list[Doc] = []
        count = 0
        async for doc in self.db.messages.find(flt, _FIELDS, hint={"$natural": 1},
                                               batch_size=256):
            batch.append(doc)
            if len(batch) >= 256:
                count += await self.write(batch, again=True)
                batch = []
        if batch:
            count += await self.write(batch, again=True)
        return count

    async def write(self, messages: list[Doc], *, again: bool = False) -> int:
        """Index `messages`: inserted when new; `again` when they may be indexed already
        (edited, replayed, re-read), their entries then replace every copy (and a message left
        with nothing to find leaves the index)."""
        messages = [m for m in messages if "sk" in m]
        if again:
            pairs = [(m, message_entry(m)) for m in messages]
            await rewrite(self.db, pairs)
            n = sum(1 for _, e in pairs if e is not None)
        else:
            entries = [e for e in (message_entry(m) for m in messages) if e]
            await write_buckets(self.db, entries)
            n = len(entries)
        self.indexed += n
        return n


async def write_entries(db: Database, entries: list[Doc], *, new: bool) -> None:
    """`new` entries are inserted (those indexed before, by a catch-up's re-read or another
    writer, are then replaced); the others replace theirs."""
    replace = entries
    if new:
        taken = await insert_ignoring_duplicates(db.search_index, entries)
        replace = [entries[i] for i in sorted(taken)]
    if replace:
        try:
            await db.search_index.bulk_write(
                [ReplaceOne({"_id": e["_id"]}, e, upsert=True) for e in replace],
                ordered=False)
        except BulkWriteError as exc:  # two upserts of one new _id: the other one won
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise


async def index_conversation(db: Database, conv: Mapping[str, Any],
                             contact: Mapping[str, Any] | None) -> None:
    await index_conversations(db, [(conv, contact)])


async def index_conversations(
        db: Database, items: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
        ) -> None:
    """Write conversations' search entries: inserted together when new (an insert costs the
    embedded server a fraction of an upsert), replaced when they are there."""
    entries = [dict(conversation_entry(conv, contact)) for conv, contact in items]
    for start in range(0, len(entries), WRITE_AT_ONCE):
        await write_entries(db, entries[start:start + WRITE_AT_ONCE], new=True)


__all__ = ["BadCursor", "Indexer", "Query", "Search", "conversation_entry", "index_conversation",
           "index_conversations", "message_entry", "terms"]
