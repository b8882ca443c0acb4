"""Ingest is idempotent and concurrency-safe, threads by (account, thread_key), keeps summaries."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from inbox.ingest import UnstorableMessage
from inbox.models import AccountId, Attachment, Author, InboundMessage
from inbox.store import Store

ACCOUNT = AccountId("acc1")
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def inbound(n: int, *, thread: str = "chat-1", user: str = "u1", text: str | None = None,
            account: AccountId = ACCOUNT) -> InboundMessage:
    return InboundMessage(
        account_id=account, platform="telegram", external_id=f"{thread}:{n}",
        thread_key=thread, kind="dm", author=Author(user_id=user, name="王小明", handle="xiaoming"),
        text=text if text is not None else f"message {n}", platform_ts=T0 + timedelta(seconds=n))


async def test_same_message_fifty_times_concurrently_is_stored_once(store: Store) -> None:
    results = await asyncio.gather(*[store.ingest(inbound(1)) for _ in range(50)])
    assert len({r.message_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await store.db.messages.count_documents({}) == 1
    await store.settle()  # summaries follow the acknowledgement (inbox/summaries.py)
    conv = await store.db.conversations.find_one({})
    assert conv is not None and conv["unread"] == 1 and conv["message_count"] == 1


async def test_redelivery_after_the_batch_is_a_duplicate_not_an_error(store: Store) -> None:
    first = await store.ingest(inbound(1))
    again = await store.ingest(inbound(1))
    assert first.created and not again.created
    assert again.message_id == first.message_id
    assert again.conversation_id == first.conversation_id
    assert await store.db.messages.count_documents({}) == 1


async def test_threads_by_account_and_thread_key(store: Store) -> None:
    a = await store.ingest(inbound(1, thread="chat-1"))
    b = await store.ingest(inbound(2, thread="chat-1"))
    c = await store.ingest(inbound(1, thread="chat-2", user="u2"))
    d = await store.ingest(inbound(1, thread="chat-1", account=AccountId("acc2")))
    assert a.conversation_id == b.conversation_id
    assert len({a.conversation_id, c.conversation_id, d.conversation_id}) == 3
    await store.settle()  # conversations and contacts are created behind the acknowledgement
    assert await store.db.conversations.count_documents({}) == 3
    assert await store.db.contacts.count_documents({}) == 3


async def test_many_concurrent_messages_across_conversations(store: Store) -> None:
    msgs = [inbound(i, thread=f"chat-{i % 7}", user=f"u{i % 7}") for i in range(140)]
    results = await asyncio.gather(*[store.ingest(m) for m in msgs])
    assert all(r.created for r in results)
    assert await store.db.messages.count_documents({}) == 140
    await store.settle()
    assert await store.db.conversations.count_documents({}) == 7
    for conv in await store.db.conversations.find({}).to_list():
        assert conv["unread"] == 20 and conv["message_count"] == 20
    assert store.ingestor.batches < 140


async def test_summary_preview_and_reopen(store: Store) -> None:
    r = await store.ingest(inbound(1, text="first"))
    await store.settle()
    await store.update_conversation(r.conversation_id, {"status": "resolved", "unread": 0})
    await store.ingest(inbound(2, text="  second\nline "))
    await store.settle()
    conv = await store.get_conversation(r.conversation_id)
    assert conv["status"] == "open"
    assert conv["preview"] == "second line"
    assert conv["unread"] == 1


async def test_attachment_only_message_previews_its_type(store: Store) -> None:
    msg = replace(inbound(1, text=""), attachments=(Attachment(type="photo", file_id="f1"),))
    r = await store.ingest(msg)
    await store.settle()
    conv = await store.get_conversation(r.conversation_id)
    assert conv["preview"] == "[photo]"


async def test_edit_updates_text_and_marks_edited(store: Store) -> None:
    r = await store.ingest(inbound(1, text="helo"))
    edit = replace(inbound(1, text="hello"), edited_at=T0 + timedelta(minutes=1))
    e = await store.ingest(edit)
    assert e.edited and not e.created and e.message_id == r.message_id
    stale = replace(inbound(1, text="older edit"), edited_at=T0 + timedelta(seconds=30))
    await store.ingest(stale)
    doc = await store.get_message(r.message_id)
    assert doc["text"] == "hello" and doc["edited"] is True
    assert await store.db.messages.count_documents({}) == 1


async def test_edit_of_an_unseen_message_stores_it(store: Store) -> None:
    edit = replace(inbound(5, text="edited before we saw it"), edited_at=T0)
    r = await store.ingest(edit)
    assert r.created
    assert (await store.get_message(r.message_id))["edited"] is True


async def test_the_acknowledgement_waits_for_the_message_only(store: Store) -> None:
    """The conversation and contact are made behind it, filled in, and listed."""
    r = await store.ingest(inbound(1, text="first words"))
    assert await store.db.messages.count_documents({}) == 1
    await store.settle()
    conv = await store.get_conversation(r.conversation_id)
    assert conv["message_count"] == 1 and conv["unread"] == 1
    assert conv["preview"] == "first words" and conv["status"] == "open"
    contact = await store.db.contacts.find_one({"_id": ObjectId(conv["contact_id"])})
    assert contact is not None and contact["name"] == "王小明"
    listed, _ = await store.list_conversations(status="open")
    assert [str(c["_id"]) for c in listed] == [r.conversation_id]


async def test_ids_are_the_same_in_every_process(db: Any) -> None:
    one, two = Store(db), Store(db)
    await one.setup()
    await two.setup()
    a, b = await asyncio.gather(one.ingest(inbound(1)), two.ingest(inbound(1)))
    assert a.message_id == b.message_id and a.conversation_id == b.conversation_id
    assert sum((a.created, b.created)) == 1
    await one.settle()
    await two.settle()
    assert await db.conversations.count_documents({}) == 1
    conv = await db.conversations.find_one({})
    assert conv["message_count"] == 1
    await one.close()
    await two.close()


async def test_an_unstorable_message_fails_alone(store: Store) -> None:
    bad = replace(inbound(1, thread="chat-bad"), raw={"x": 2**70})
    deep: dict[str, Any] = {}
    for _ in range(200):
        deep = {"a": deep}
    deeper = replace(inbound(2, thread="chat-deep"), raw=deep)
    results = await asyncio.gather(store.ingest(bad), store.ingest(inbound(3)),
                                   store.ingest(deeper), return_exceptions=True)
    assert isinstance(results[0], UnstorableMessage)
    assert isinstance(results[2], UnstorableMessage)
    assert not isinstance(results[1], Exception) and results[1].created
    await store.settle()
    assert await store.db.conversations.count_documents({}) == 1
