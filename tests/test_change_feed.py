"""The process's one change stream (inbox/changes.py): fan-out by collection and kind, resume
from a saved token without a gap or a change twice, a lost token surfaced once, and one
stream however many follow."""

from __future__ import annotations

import asyncio
import time

from inbox.changes import ChangeFeed, HistoryLost, Subscription, token_order
from inbox.db import Database, Doc
from web.app import Services
from web.events import hub_of


async def collect(sub: Subscription, n: int, timeout: float = 10.0) -> tuple[list[Doc], Doc]:
    got: list[Doc] = []
    token: Doc | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < n and loop.time() < deadline:
        batch = await sub.next_batch(0.5)
        got.extend(batch.changes)
        token = batch.token or token
    assert token is not None
    return got, token


def ids(changes: list[Doc]) -> list[object]:
    return [c["documentKey"]["_id"] for c in changes]


async def test_each_subscription_gets_its_collections_and_kinds(db: Database) -> None:
    feed = ChangeFeed(db, ["messages", "outbox"])
    await feed.start()
    try:
        inserts = feed.subscribe("inserts", ["messages"], ["insert"])
        everything = feed.subscribe("all", ["messages", "outbox"])
        await db.messages.insert_many([{"_id": i, "text": f"m{i}"} for i in range(3)])
        await db.messages.update_one({"_id": 1}, {"$set": {"text": "edited"}})
        await db.outbox.insert_one({"_id": "o1"})
        await db.contacts.insert_one({"_id": "not followed"})
        got, _ = await collect(inserts, 3)
        assert ids(got) == [0, 1, 2]
        assert all(c["fullDocument"]["text"].startswith("m") for c in got)
        got, _ = await collect(everything, 5)
        assert [(c["ns"]["coll"], c["operationType"]) for c in got] == [
            ("messages", "insert")] * 3 + [("messages", "update"), ("outbox", "insert")]
        assert got[3]["updateDescription"]["updatedFields"] == {"text": "edited"}
        assert (await inserts.next_batch(0.3)).changes == []  # the update was not an insert
        assert feed.streams_opened == 1
    finally:
        await feed.stop()


async def test_a_collection_can_have_kinds_of_its_own_live_and_on_catch_up(db: Database,
                                                                           ) -> None:
    feed = ChangeFeed(db, ["messages", "outbox"])
    await feed.start()
    try:
        start = feed.subscribe("start", ["messages"])
        await db.messages.insert_one({"_id": "first"})
        _, token = await collect(start, 1)
        feed.unsubscribe(start)

        async def writes(n: int) -> None:
            await db.messages.insert_one({"_id": n})
            await db.messages.update_one({"_id": n}, {"$set": {"text": "edited"}})
            await db.outbox.insert_one({"_id": n})
            await db.outbox.update_one({"_id": n}, {"$set": {"state": "sent"}})

        await writes(1)  # before the subscription: read by its catch-up
        mixed = feed.subscribe("mixed", ["messages", "outbox"], ["insert"], after=token,
                               ops_of={"outbox": ["insert", "update"]})
        await writes(2)
        got, _ = await collect(mixed, 6)
        assert [(c["ns"]["coll"], c["operationType"], c["documentKey"]["_id"]) for c in got] \
            == [(coll, op, n) for n in (1, 2) for coll, op in
                (("messages", "insert"), ("outbox", "insert"), ("outbox", "update"))]
        assert (await mixed.next_batch(0.3)).changes == []
    finally:
        await feed.stop()


async def test_a_saved_token_resumes_without_a_gap_or_a_repeat(db: Database) -> None:
    feed = ChangeFeed(db, ["messages"])
    await feed.start()
    try:
        first = feed.subscribe("first", ["messages"])
        await db.messages.insert_many([{"_id": i} for i in range(5)])
        got, token = await collect(first, 5)
        assert ids(got) == list(range(5))
        feed.unsubscribe(first)
        # a consumer away while these were stored, and live ones arriving as it catches up
        await db.messages.insert_many([{"_id": i} for i in range(5, 300)])
        later = feed.subscribe("later", ["messages"], after=token)
        await db.messages.insert_many([{"_id": i} for i in range(300, 320)])
        got, _ = await collect(later, 315)
        assert ids(got) == list(range(5, 320))
        await db.messages.insert_one({"_id": 320})
        got, _ = await collect(later, 1)
        assert ids(got) == [320]
    finally:
        await feed.stop()


async def test_the_batch_token_moves_past_changes_not_wanted(db: Database) -> None:
    feed = ChangeFeed(db, ["messages", "outbox"])
    await feed.start()
    try:
        sub = feed.subscribe("messages only", ["messages"])
        await db.messages.insert_one({"_id": "m"})
        _, token = await collect(sub, 1)
        await db.outbox.insert_many([{"_id": i} for i in range(10)])
        moved = token
        for _ in range(20):
            batch = await sub.next_batch(0.3)
            assert batch.changes == []
            if batch.token is not None and batch.token != token:
                moved = batch.token
                break
        assert token_order(moved) > token_order(token)  # type: ignore[operator]
        # resuming from the moved token brings nothing of the outbox, and nothing twice
        again = feed.subscribe("again", ["messages"], after=moved)
        await db.messages.insert_one({"_id": "n"})
        got, _ = await collect(again, 1)
        assert ids(got) == ["n"]
    finally:
        await feed.stop()


async def test_a_token_the_database_no_longer_has_is_reported_once(db: Database) -> None:
    feed = ChangeFeed(db, ["messages"])
    await feed.start()
    try:
        sub = feed.subscribe("stale", ["messages"], after={"_data": "00" * 12})
        try:
            await sub.next_batch(5.0)
        except HistoryLost:
            pass
        else:
            raise AssertionError("a token the database cannot resume from was accepted")
        fresh = feed.subscribe("fresh", ["messages"])
        await db.messages.insert_one({"_id": "after"})
        got, _ = await collect(fresh, 1)
        assert ids(got) == ["after"]
    finally:
        await feed.stop()


async def test_unknown_collections_are_refused(db: Database) -> None:
    feed = ChangeFeed(db, ["messages"])
    try:
        feed.subscribe("x", ["contacts"])
    except ValueError as exc:
        assert "contacts" in str(exc)
    else:
        raise AssertionError("a subscription to a collection the feed does not follow")


async def test_a_server_process_follows_the_database_through_one_stream(
        services: Services) -> None:
    """The event hub, the delivery worker, the router, the search indexer and the measures
    follower all read the process's one feed: adding a follower adds no stream."""
    app = {"services": services}  # what hub_of reads of an application
    await hub_of(app).start()  # type: ignore[arg-type]
    names: set[str] = set()
    for _ in range(50):
        names = {s.name for s in services.changes.subscriptions}
        if {"events", "delivery", "router", "search", "measures"} <= names:
            break
        await asyncio.sleep(0.1)
    assert {"events", "delivery", "router", "search", "measures"} <= names, names
    assert services.changes.streams_opened == 1


async def test_a_stream_the_server_closes_is_reopened_not_spun_on(db: Database) -> None:
    """Dropping the database invalidates the stream: the cursor is dead, and a loop asking it
    for more would spin a core forever (it did, in a test that failed before its teardown)."""
    feed = ChangeFeed(db, ["messages"], max_await_ms=50)
    await feed.start()
    try:
        sub = feed.subscribe("inserts", ["messages"], ["insert"])
        await db.messages.insert_one({"_id": 1})
        await collect(sub, 1)
        await db.client.drop_database(db.name)
        loop = asyncio.get_running_loop()
        cpu, wall = time.process_time(), loop.time()
        await asyncio.sleep(1.5)
        assert time.process_time() - cpu < 0.5 * (loop.time() - wall)
        for _ in range(100):
            if feed.streams_opened > 1:
                break
            await asyncio.sleep(0.1)
        assert feed.streams_opened > 1
    finally:
        await feed.stop()
