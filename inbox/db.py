"""Connection and indexes.

Every list query has an index whose equality prefix is the filter and whose last key is the sort
key `sk`, because the embedded server reads every matching document before sorting: see
`inbox.paging` for how a page is kept to about a page of reads.

Every index costs on every write (the embedded server rewrites all of a document's index entries
on any update), so the write-heavy collections carry only what their queries need. Messages and
conversations have derived ids (inbox/ids.py), which make their uniqueness `_id`'s; a database
written before derived ids (`legacy`, found at the first start) keeps the unique indexes that
made them unique then (`LEGACY_INDEXES`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]
Database = AsyncDatabase[Doc]

INDEXES: dict[str, list[IndexModel]] = {
    "accounts": [
        IndexModel([("platform", ASCENDING), ("name", ASCENDING)], unique=True),
        IndexModel([("platform", ASCENDING), ("platform_id", ASCENDING)], unique=True,
                   partialFilterExpression={"platform_id": {"$type": "string"}}),
    ],
    # contacts are found by their derived `_id` (inbox/ids.py)
    "contacts": [],
    # the inbox's lists: a status tab, mine / unassigned, each newest first; the channel filter
    # reads through them (a secondary filter, and one index fewer on every summary write)
    "conversations": [
        IndexModel([("sk", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("sk", DESCENDING)]),
        IndexModel([("assignee_id", ASCENDING), ("status", ASCENDING), ("sk", DESCENDING)]),
        IndexModel([("assignee_id", ASCENDING), ("sk", DESCENDING)]),
    ],
    "messages": [
        IndexModel([("conversation_id", ASCENDING), ("sk", DESCENDING)]),
    ],
    # the queue of replies (replies/outbox.py): `delivery.due_at` exists only on pending ones.
    # Plain, not partial: the embedded server's planner scanned the collection instead of using
    # a partial (delivery.state, due_at) index for the claim query (measured, 0.7.0b3).
    "outbox": [
        IndexModel([("delivery.due_at", ASCENDING)]),
        IndexModel([("conversation_id", ASCENDING), ("delivery.due_at", ASCENDING)]),
    ],
    "thread_aliases": [IndexModel([("account_id", ASCENDING)])],
    "account_cache": [IndexModel([("account_id", ASCENDING)]),
                      IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    "interactions": [IndexModel([("account_id", ASCENDING), ("external_id", ASCENDING)],
                                unique=True),
                     IndexModel([("account_id", ASCENDING), ("thread_key", ASCENDING),
                                 ("at", DESCENDING)])],
    "agents": [IndexModel([("login", ASCENDING)], unique=True)],
    "api_tokens": [IndexModel([("token_hash", ASCENDING)], unique=True),
                   IndexModel([("agent_id", ASCENDING)])],
    "sessions": [IndexModel([("token_hash", ASCENDING)], unique=True),
                 IndexModel([("agent_id", ASCENDING)]),
                 IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    "login_attempts": [IndexModel([("key", ASCENDING), ("at", DESCENDING)]),
                       IndexModel([("at", ASCENDING)], expireAfterSeconds=3600)],
    "audit_log": [IndexModel([("sk", DESCENDING)])],
}


# what a database written before derived ids keeps, and what it was unique by then
LEGACY_INDEXES: dict[str, list[IndexModel]] = {
    "messages": [IndexModel([("account_id", ASCENDING), ("external_id", ASCENDING)],
                            unique=True, partialFilterExpression={"direction": "in"})],
    "conversations": [IndexModel([("account_id", ASCENDING), ("thread_key", ASCENDING)],
                                 unique=True)],
    "contacts": [IndexModel([("identities.account_id", ASCENDING),
                             ("identities.user_id", ASCENDING)], unique=True)],
}
SCHEMA = 2
# indexes of earlier releases that nothing queries any more, dropped at start-up
OBSOLETE_INDEXES: dict[str, tuple[str, ...]] = {
    "messages": ("delivery.due_at_1", "conversation_id_1_delivery.due_at_1",
                 "conversation_id_1_idempotency_key_1"),
    "conversations": ("account_id_1_thread_keys_1", "status_1_platform_1_sk_-1",
                      "platform_1_sk_-1", "assignee_id_1_status_1_platform_1_sk_-1"),
}


# ms a pooled connection may stay unused before the driver closes it itself. The embedded
# server closes a connection idle for 300 s, and the async driver does not notice on checkout:
# the next command on it failed with AutoReconnect ("connection closed") — after a quiet spell,
# the first burst that needed more connections than the busy few (measured: the benchmark's
# reports figure after five idle minutes of its client).
MAX_IDLE_MS = 60_000


def connect(uri: str, *, timeout_ms: int = 5000, idle_ms: int = MAX_IDLE_MS,
            ) -> AsyncMongoClient[Doc]:
    return AsyncMongoClient(uri, serverSelectionTimeoutMS=timeout_ms, tz_aware=True,
                            connectTimeoutMS=timeout_ms, uuidRepresentation="standard",
                            maxIdleTimeMS=idle_ms)


async def schema(db: Database) -> dict[str, Any]:
    """The database's schema record, written at its first start: `legacy` when it already
    held messages from before derived ids."""
    found = await db.meta.find_one({"_id": "schema"})
    if found is not None:
        return dict(found)
    legacy = bool(await db.messages.find_one({}, {"_id": 1}) or
                  await db.conversations.find_one({}, {"_id": 1}))
    record: dict[str, Any] = {"_id": "schema", "version": SCHEMA, "legacy": legacy}
    await db.meta.update_one({"_id": "schema"}, {"$setOnInsert": record}, upsert=True)
    return dict(await db.meta.find_one({"_id": "schema"}) or record)


async def ensure_indexes(db: Database) -> bool:
    """Create every index; safe to run at each start-up and from several processes. Returns
    whether the database is a legacy one (see the module docstring)."""
    legacy = bool((await schema(db)).get("legacy"))
    for name, models in INDEXES.items():
        if models:
            await db[name].create_indexes(models)
    if legacy:
        for name, models in LEGACY_INDEXES.items():
            await db[name].create_indexes(models)
    return legacy


async def drop_obsolete_indexes(db: Database) -> None:
    for name, indexes in OBSOLETE_INDEXES.items():
        existing = {ix["name"] async for ix in await db[name].list_indexes()}
        for index in indexes:
            if index in existing:
                await db[name].drop_index(index)


IN_CHUNK = 64


async def find_in(coll: Any, values: Iterable[Any], filter_: Doc | None = None,
                  projection: Doc | None = None, *, field: str = "_id") -> list[Doc]:
    """The documents whose `field` is one of `values`, read in `$in` lists of `IN_CHUNK`.

    The embedded server checks each document it reads against the whole `$in` list, so one
    read of N ids costs it N × N comparisons (measured: the measures follower's reads of a
    256-conversation batch were 7 % of its time); in chunks the cost is N × 64."""
    wanted = list(dict.fromkeys(values))
    out: list[Doc] = []
    for i in range(0, len(wanted), IN_CHUNK):
        flt = {**(filter_ or {}), field: {"$in": wanted[i:i + IN_CHUNK]}}
        out.extend(await coll.find(flt, projection).to_list())
    return out
