"""Ids derived from what the platforms name, so ingest needs no lookup before it writes.

A message's `_id` comes from (account, platform message id), a conversation's from (account,
thread key), a contact's from (account, platform user id): the same inputs give the same id in
every process, so a redelivery collides on `_id` (no unique index of its own is needed), and a
message can be stored with its conversation's id before that conversation exists — the
summaries create it behind the acknowledgement (inbox/summaries.py).

Derived ids are ObjectIds in shape only: their bytes are a hash, not a time. Nothing may read a
time out of them; `sk` carries the time.
"""

from __future__ import annotations

import hashlib

from bson import ObjectId


def _derive(kind: str, *parts: str) -> ObjectId:
    data = "\0".join((kind, *parts)).encode("utf-8", "surrogatepass")
    return ObjectId(hashlib.sha256(data).digest()[:12])


def message_oid(account_id: str, external_id: str) -> ObjectId:
    return _derive("message", account_id, external_id)


def conversation_oid(account_id: str, thread_key: str) -> ObjectId:
    return _derive("conversation", account_id, thread_key)


def contact_oid(account_id: str, user_id: str) -> ObjectId:
    return _derive("contact", account_id, user_id)


def alias_oid(account_id: str, thread_key: str) -> ObjectId:
    """The `thread_aliases` entry that maps a further thread key to its conversation."""
    return _derive("alias", account_id, thread_key)
