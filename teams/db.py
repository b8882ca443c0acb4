"""The collections team work adds, and their indexes: small ones beside the inbox's.

Nothing here adds an index to `conversations` or `messages`; the `outbox` (replies/outbox.py)
gets one partial index (failed replies, see `FAILED_INDEX`). Every list query is an equality
prefix plus a range on its sort key, like the inbox's (inbox/db.py).
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from inbox.db import Database

# Failed replies across every channel (GET /api/messages?delivery=failed): only replies that are
# `failed` now are in it, so it costs nothing for the others. The embedded server answers a
# partial index only when the query names it (`hint`), without the hint it returned no rows
# (measured, 0.7.0b3); every query on it passes `hint=FAILED_INDEX`.
FAILED_INDEX = "failed_replies"

INDEXES: dict[str, list[IndexModel]] = {
    # in the outbox, which holds every reply's delivery state (the messages only mirror it),
    # so an inbound message's insert pays for no index of it
    "outbox": [IndexModel([("delivery.failed_at", DESCENDING), ("_id", DESCENDING)],
                            name=FAILED_INDEX,
                            partialFilterExpression={"delivery.state": "failed"})],
    # a team's queue in the order it is served: priority first, then who waited longest
    "team_queue": [IndexModel([("team_id", ASCENDING), ("rank", DESCENDING),
                               ("since", ASCENDING)]),
                   IndexModel([("overflow_at", ASCENDING)])],
    # which process routes a new conversation (the first to insert its claim); kept a day
    "route_claims": [IndexModel([("at", ASCENDING)], expireAfterSeconds=86400)],
    # a contact's conversations on every channel, newest first (returning customers, history)
    "contact_history": [IndexModel([("contact_id", ASCENDING), ("created_at", DESCENDING)])],
    # search: a document per conversation and per bucket of messages (teams/search_buckets.py),
    # its terms in `t`; a bucket's oldest sort key, for an edit to find its message
    "search_index": [IndexModel([("t", ASCENDING), ("sk", DESCENDING)]),
                     IndexModel([("lo", ASCENDING)],
                                partialFilterExpression={"kind": "messages"})],
    "labels": [],
    "teams": [],
    "routing_rules": [],
    "agent_load": [],
    "name_policies": [],
    # the names the policies produce; the unique index is what keeps two agents from showing
    # customers the same name under one brand unless an admin allowed it (`shared` names use
    # their agent's id in `unique_key`)
    "agent_names": [IndexModel([("unique_key", ASCENDING)], unique=True),
                    IndexModel([("agent_id", ASCENDING)]),
                    IndexModel([("reviewed_at", ASCENDING)])],
    # who has a conversation open or is typing, expiring by itself
    "presence": [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
}


async def ensure_indexes(db: Database) -> None:
    for name, models in INDEXES.items():
        if models:
            await db[name].create_indexes(models)
