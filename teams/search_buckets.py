"""Message search entries stored in buckets: one `search_index` document holds up to `SIZE`
messages indexed together, under the union of their terms.

Why: on the embedded server an insert costs about 0.27 ms per document plus 0.026 ms per
index entry, and a message entry was a document of its own with ~8–16 multikey entries
(measured: 0.46–0.69 ms a message, the largest single cost behind ingest with search on).
Messages indexed together share most of their bigrams ("您好", "订单"…): on the benchmarks'
texts a bucket of 32 carries 49–92 distinct terms where its messages carried 267–512 entries,
a bucket of 128 carries 115–145 where they carried 1,072–2,048. 128 it is: against 32, the
ingest benchmark's search-index time in (b) fell from 4.5 s to 1.6–1.9 s, and a search of a
busy inbox reads a quarter of the buckets (bench/fig_search.py; a rare term's page costs a
larger bucket's read, a few ms).
A quiet inbox gets buckets of one (the indexer writes what arrived within its coalescing
window), so nothing costs more than before; a busy one gets full buckets, where it matters.

A bucket: `kind: "messages"`, `sk` the newest entry's sort key (what the (t, sk) index
orders), `lo` the oldest one's (its own small index: how an edit finds the bucket of a
message), `t` the union, `e` the entries (each with its own `t`, checked by the query), `n`,
and `v`, bumped by every rewrite (compare-and-set: an edit never overwrites another
writer's). A bucket's entries lie within `SPAN_US` of each other, so a search window
[lo, hi) finds all of its entries in buckets whose `sk` is in [lo, hi + SPAN_US).

A message the indexer may have indexed already — re-read by a catch-up, or replayed from the
saved token (written before a crash, the token saved after) — goes through `rewrite`, which
replaces its copies; new ones are inserted without a look. Two holders of the indexer's lease
at once (one stalled past it) can still write one message twice: a search shows it once
(teams.search.Search keeps the first copy by id), an edit rewrites every copy.
Entries of the older layout (a document per message, `kind: "message"`) are still read, and
replaced by a bucket when their message is edited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo.errors import PyMongoError

from inbox.db import Database, Doc, find_in
from inbox.paging import sk_micros

SIZE = 128  # messages a bucket holds at most
TERMS = 1024  # distinct terms a bucket holds at most
SPAN_US = 5 * 10**6  # the widest a bucket's sort keys spread
_REWRITE_TRIES = 5


def _bound(us: int) -> str:
    return f"{min(max(us, 0), 10**16 - 1):016d}"


def upper_bound(hi: str) -> str:
    """The `sk` bound below which every bucket holding an entry under `hi` lies."""
    return _bound(sk_micros(hi) + SPAN_US + 1)


def make_buckets(entries: Iterable[Doc]) -> list[Doc]:
    """Entries (teams.search.message_entry) grouped, oldest first, into bucket documents."""
    out: list[Doc] = []
    group: list[Doc] = []
    union: dict[str, None] = {}
    for entry in sorted(entries, key=lambda e: e["sk"]):
        more = [t for t in entry["t"] if t not in union]
        if group and (len(group) >= SIZE or len(union) + len(more) > TERMS
                      or sk_micros(entry["sk"]) - sk_micros(group[0]["sk"]) > SPAN_US):
            out.append(_bucket(group))
            group, union = [], {}
            more = list(entry["t"])
        group.append(entry)
        union.update(dict.fromkeys(more))
    if group:
        out.append(_bucket(group))
    return out


def _bucket(entries: list[Doc], _id: Any = None, v: int = 0) -> Doc:
    entries = sorted(entries, key=lambda e: e["sk"])
    union = dict.fromkeys(t for e in entries for t in e["t"])
    return {"_id": _id if _id is not None else ObjectId(), "kind": "messages",
            "sk": entries[-1]["sk"], "lo": entries[0]["sk"], "n": len(entries),
            "t": list(union), "e": entries, "v": v}


def entries_of(docs: Iterable[Doc]) -> list[Doc]:
    """What documents read from `search_index` hold: a bucket's entries, or the document."""
    out: list[Doc] = []
    for doc in docs:
        if doc.get("kind") == "messages":
            out.extend(doc.get("e") or ())
        else:
            out.append(doc)
    return out


async def write_buckets(db: Database, entries: list[Doc]) -> None:
    """Insert `entries`, none of them indexed before, in new buckets."""
    if entries:
        await db.search_index.insert_many(make_buckets(entries), ordered=False)


async def rewrite(db: Database, messages: list[tuple[Doc, Doc | None]]) -> None:
    """Messages that may be indexed already (edited, or re-read by a catch-up or a replay),
    each with its entry (None: nothing to find): the entry replaces every copy, in buckets and
    in documents of the older layout; a message found nowhere gets a new bucket."""
    if not messages:
        return
    entries = {m["_id"]: e for m, e in messages}
    rest = await _replace_copies(db, entries, {m["_id"]: m["sk"] for m, _ in messages})
    # the older layout's documents of these messages (their `_id` is the message's)
    await db.search_index.delete_many({"_id": {"$in": list(entries)}, "kind": "message"})
    if rest:
        await db.search_index.insert_many(make_buckets(rest), ordered=False)


async def _replace_copies(db: Database, entries: dict[Any, Doc | None], sks: dict[Any, str],
                          ) -> list[Doc]:
    """Put each id's entry in the buckets holding that id (None: take it out); return the
    entries no bucket took."""
    placed: set[Any] = set()
    for bucket in await _buckets_near(db, sks):
        placed |= await _rewrite_bucket(db, bucket, entries)
    return [e for i, e in entries.items() if e is not None and i not in placed]


async def _buckets_near(db: Database, sks: dict[Any, str]) -> list[Doc]:
    """The buckets holding any of the ids of `sks` (id → its sort key): read by `lo`, one
    range per cluster of nearby keys, with that cluster's ids (a bucket's `lo` is at most
    SPAN_US below its entries')."""
    out: dict[Any, Doc] = {}
    clusters: list[list[tuple[str, Any]]] = []
    for sk, oid in sorted((sk, oid) for oid, sk in sks.items()):
        if clusters and sk_micros(sk) - sk_micros(clusters[-1][-1][0]) <= SPAN_US:
            clusters[-1].append((sk, oid))
        else:
            clusters.append([(sk, oid)])
    for cluster in clusters:
        flt = {"kind": "messages",
               "lo": {"$gte": _bound(sk_micros(cluster[0][0]) - SPAN_US), "$lte": cluster[-1][0]}}
        for doc in await find_in(db.search_index, [oid for _, oid in cluster], flt,
                                 field="e._id"):
            out[doc["_id"]] = doc
    return list(out.values())


async def _rewrite_bucket(db: Database, bucket: Doc, entries: dict[Any, Doc | None]) -> set[Any]:
    """Rewrite `bucket` with `entries` in place of its copies; the ids it now holds of them."""
    for _ in range(_REWRITE_TRIES):
        mine = {e["_id"] for e in bucket.get("e") or () if e["_id"] in entries}
        kept = [entries.get(e["_id"], e) for e in bucket.get("e") or ()]
        kept = [e for e in kept if e is not None]
        v = bucket.get("v", 0)
        if not kept:
            result = await db.search_index.delete_one({"_id": bucket["_id"], "v": v})
            if result.deleted_count:
                return mine
        else:
            result = await db.search_index.replace_one(
                {"_id": bucket["_id"], "v": v}, _bucket(kept, bucket["_id"], v + 1))
            if result.matched_count:
                return mine
        fresh = await db.search_index.find_one({"_id": bucket["_id"]})
        if fresh is None:
            return set()
        bucket = fresh
    raise PyMongoError(f"search bucket {bucket['_id']} kept changing under its rewrite")


__all__ = ["SIZE", "SPAN_US", "entries_of", "make_buckets", "rewrite", "upper_bound",
           "write_buckets"]
