"""The documents behind the acknowledgement: a conversation created filled in, its contact, the
pipeline that adds a round to an existing one, and the idempotent writes that store them
(inbox/summaries.py decides when)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError, ConnectionFailure, PyMongoError, WriteConcernError

from inbox.db import Doc
from inbox.ids import contact_oid
from inbox.paging import make_sk

log = logging.getLogger(__name__)

REOPEN_FROM = ["resolved", "pending", "snoozed"]
PREVIEW_CHARS = 140
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def preview_of_doc(doc: Doc) -> str:
    text = " ".join(str(doc.get("text") or "").split())
    if not text and doc.get("attachments"):
        text = f"[{doc['attachments'][0]['type']}]"
    return text[:PREVIEW_CHARS]


@dataclass
class Delta:
    """Everything one round adds to one conversation (and what creating it would need)."""

    at: datetime
    since: datetime
    n: int = 0
    n_in: int = 0
    newest_sk: str = ""
    preview: str = ""
    first_sk: str | None = None
    first: Doc | None = None  # its earliest message here: kind, thread, title, author
    keys: list[str] = field(default_factory=list)

    def add(self, doc: Doc) -> None:
        self.n += 1
        self.n_in += doc.get("direction", "in") == "in"
        self.at = max(self.at, doc["received_at"])
        self.since = min(self.since, doc["received_at"])
        if doc["sk"] > self.newest_sk:
            self.newest_sk, self.preview = doc["sk"], preview_of_doc(doc)
        if self.first_sk is None or doc["sk"] < self.first_sk:
            self.first_sk = doc["sk"]
            if doc.get("direction", "in") == "in" or self.first is None:
                self.first = doc
        for key in doc.get("thread_keys") or ([doc["thread_key"]] if doc.get("thread_key")
                                             else []):
            if key not in self.keys:
                self.keys.append(key)

    def row(self, conv_id: str) -> Doc:
        return {"n": self.n, "i": self.n_in, "at": self.at, "sk": make_sk(self.at, conv_id),
                "f": self.first_sk, "p": self.preview}


def new_conversation(conv_id: str, delta: Delta, tag: str) -> Doc:
    """A conversation created by its first round, already summarised."""
    first = delta.first or {}
    author = first.get("author") or {}
    oid = ObjectId(conv_id)
    return {
        "_id": oid, "account_id": first.get("account_id"), "thread_key": first.get("thread_key"),
        "thread_keys": delta.keys, "platform": first.get("platform"),
        "kind": first.get("kind") or "dm",
        "contact_id": str(contact_oid(first["account_id"], str(author.get("user_id")))),
        "title": first.get("thread_title"), "status": "open", "assignee_id": None,
        "team": None, "labels": [], "created_at": delta.since, "last_message_at": delta.at,
        "sk": make_sk(delta.at, oid), "first_sk": delta.first_sk or make_sk(delta.since, oid),
        "preview": delta.preview, "preview_direction": "in", "unread": delta.n_in,
        "message_count": delta.n, "first_response_at": None, "last_inbound_at": delta.at,
        "customer_locale": author.get("locale"), "sum_round": tag, "created_round": tag,
    }


def new_contact(first: Doc) -> Doc:
    author = first.get("author") or {}
    identity = {"platform": first.get("platform"), "account_id": first.get("account_id"),
                "user_id": author.get("user_id"), "handle": author.get("handle")}
    return {"_id": contact_oid(first["account_id"], str(author.get("user_id"))),
            "name": author.get("name"), "handle": author.get("handle"),
            "identities": [identity], "locale": author.get("locale"),
            "avatar_url": author.get("avatar_url"), "merged_into": None,
            "created_at": first.get("received_at") or datetime.now(UTC)}


def round_pipeline(table: dict[str, Doc], tag: str) -> list[Doc]:
    """One update for many conversations: each finds its own change by `_id` in `table`."""
    mine = {"$getField": {"field": {"$toString": "$_id"}, "input": {"$literal": table}}}

    def after(field_name: str) -> Doc:
        return {"$gte": ["$_s.at", {"$ifNull": [f"${field_name}", _EPOCH]}]}

    newer = after("last_outbound_at")
    return [
        {"$set": {"_s": mine}},
        {"$set": {
            # a round that lands after an agent read or resolved the conversation counts and
            # reopens only for messages that arrived after that
            "unread": {"$add": [{"$ifNull": ["$unread", 0]},
                                {"$cond": [after("read_at"), "$_s.i", 0]}]},
            "message_count": {"$add": [{"$ifNull": ["$message_count", 0]}, "$_s.n"]},
            "last_message_at": {"$max": ["$last_message_at", "$_s.at"]},
            "last_inbound_at": {"$max": ["$last_inbound_at", "$_s.at"]},
            "sk": {"$max": ["$sk", "$_s.sk"]},
            "first_sk": {"$min": ["$first_sk", "$_s.f"]},
            # a reply stored after these messages keeps its preview (replies/outbox.py)
            "preview": {"$cond": [newer, "$_s.p", "$preview"]},
            "preview_direction": {"$cond": [newer, "in", "$preview_direction"]},
            "status": {"$cond": [{"$and": [{"$in": ["$status", REOPEN_FROM]},
                                           after("status_changed_at")]}, "open", "$status"]},
            "sum_round": tag,
        }},
        {"$unset": "_s"},
    ]


async def insert_ignoring_duplicates(coll: Any, docs: list[Doc]) -> set[int]:
    """insert_many that treats duplicate keys as "already there"; returns their indexes."""
    return (await insert_new(coll, docs))[0]


async def insert_new(coll: Any, docs: list[Doc]) -> tuple[set[int], bool]:
    """`insert_ignoring_duplicates`, and whether the insert was tried again after an outage
    (then the first try may have stored some of those it reports as already there)."""
    if not docs:
        return set(), False
    tries = 0

    def insert() -> Any:
        nonlocal tries
        tries += 1
        return coll.insert_many(docs, ordered=False)

    try:
        await retrying(insert)
    except BulkWriteError as exc:
        taken: set[int] = set()
        for err in exc.details.get("writeErrors", []):
            if err.get("code") != 11000:
                raise
            taken.add(int(err["index"]))
        return taken, tries > 1
    return set(), tries > 1


def transient(exc: PyMongoError) -> bool:
    return isinstance(exc, ConnectionFailure | WriteConcernError) or \
        exc.has_error_label("RetryableWriteError")


async def retrying(call: Any) -> None:
    """Retry one idempotent statement until the database is back; other errors raise."""
    delay = 0.05
    while True:
        try:
            await call()
            return
        except BulkWriteError:
            raise
        except PyMongoError as exc:
            if not transient(exc):
                raise
            log.warning("summaries: write failed (%s); retrying in %.1f s",
                        type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
