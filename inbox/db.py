"""Connection and indexes.

Every list query has an index whose equality prefix is the filter and whose last key is the sort
key `sk`, because the embedded server reads every matching document before sorting: see
`inbox.paging` for how a page is kept to about a page of reads.
"""

from __future__ import annotations

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
    "contacts": [
        IndexModel([("identities.account_id", ASCENDING), ("identities.user_id", ASCENDING)],
                   unique=True),
    ],
    "conversations": [
        IndexModel([("account_id", ASCENDING), ("thread_key", ASCENDING)], unique=True),
        IndexModel([("account_id", ASCENDING), ("thread_keys", ASCENDING)]),
        IndexModel([("sk", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("sk", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("platform", ASCENDING), ("sk", DESCENDING)]),
        IndexModel([("platform", ASCENDING), ("sk", DESCENDING)]),
        IndexModel([("assignee_id", ASCENDING), ("status", ASCENDING), ("sk", DESCENDING)]),
        IndexModel([("assignee_id", ASCENDING), ("status", ASCENDING), ("platform", ASCENDING),
                    ("sk", DESCENDING)]),
        IndexModel([("assignee_id", ASCENDING), ("sk", DESCENDING)]),
    ],
    "messages": [
        IndexModel([("account_id", ASCENDING), ("external_id", ASCENDING)], unique=True,
                   partialFilterExpression={"direction": "in"}),
        IndexModel([("conversation_id", ASCENDING), ("sk", DESCENDING)]),
        # outbox (replies/outbox.py): `delivery.due_at` exists only on pending replies. Plain,
        # not partial: the embedded server's planner scanned the collection instead of using a
        # partial (delivery.state, due_at) index for the claim query (measured, 0.7.0b3).
        IndexModel([("delivery.due_at", ASCENDING)]),
        IndexModel([("conversation_id", ASCENDING), ("delivery.due_at", ASCENDING)]),
        IndexModel([("conversation_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True,
                   partialFilterExpression={"idempotency_key": {"$type": "string"}}),
    ],
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


def connect(uri: str, *, timeout_ms: int = 5000) -> AsyncMongoClient[Doc]:
    return AsyncMongoClient(uri, serverSelectionTimeoutMS=timeout_ms, tz_aware=True,
                            connectTimeoutMS=timeout_ms, uuidRepresentation="standard")


async def ensure_indexes(db: Database) -> None:
    """Create every index; safe to run at each start-up and from several processes."""
    for name, models in INDEXES.items():
        await db[name].create_indexes(models)
