"""Which summaries come first: a new chat is created before a backlog of updates is written,
new chats cannot starve the updates, and a busy inbox's updates stop yielding once a message
has waited `STALE_AFTER` for its round."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from inbox import summaries as summaries_module
from inbox.conversation_docs import Delta
from inbox.priority import AckWindow
from inbox.store import Store
from tests.test_ingest import inbound

CHATS = 4 * summaries_module.CHUNK


async def _existing_chats(store: Store) -> None:
    await asyncio.gather(*[store.ingest(inbound(1, thread=f"old-{i}", user=f"u{i}"))
                           for i in range(CHATS)])
    await store.settle()


def _record_rounds(store: Store, delay: float) -> list[tuple[str, set[str]]]:
    """Wrap the summariser's rounds: each is recorded as ("create" | "update", ids) and
    takes `delay` longer, like a round on a busy database."""
    summaries = store.ingestor.summaries
    rounds: list[tuple[str, set[str]]] = []
    apply = summaries._apply_round

    async def slow(tag: str) -> None:
        ids = set(summaries._in_flight)
        kind = "update" if all(i in summaries._exists for i in ids) else "create"
        rounds.append((kind, ids))
        await asyncio.sleep(delay)
        await apply(tag)

    summaries._apply_round = slow  # type: ignore[method-assign]
    return rounds


async def _conversation_of(store: Store, thread: str) -> dict[str, Any] | None:
    return await store.db.conversations.find_one({"thread_key": thread})


async def test_a_new_chat_is_created_before_a_backlog_of_updates(store: Store) -> None:
    await _existing_chats(store)
    rounds = _record_rounds(store, delay=0.2)
    await asyncio.gather(*[store.ingest(inbound(2, thread=f"old-{i}", user=f"u{i}"))
                           for i in range(CHATS)])
    await asyncio.sleep(0.05)  # the first chunk of updates is being written
    await store.ingest(inbound(1, thread="new-chat", user="newcomer"))
    for _ in range(100):
        if await _conversation_of(store, "new-chat") is not None:
            break
        await asyncio.sleep(0.02)
    assert await _conversation_of(store, "new-chat") is not None
    await store.settle()
    kinds = [kind for kind, _ in rounds]
    created = kinds.index("create")
    # created after at most the chunk being written (and one more that had started), with
    # the rest of the backlog still waiting
    assert kinds.count("create") == 1
    assert kinds[:created].count("update") <= 2 and kinds[created:].count("update") >= 2
    assert all(len(ids) <= summaries_module.CHUNK for kind, ids in rounds if kind == "update")
    counts = [c["message_count"] async for c in store.db.conversations.find(
        {"thread_key": {"$regex": "^old-"}})]
    assert counts == [2] * CHATS


async def test_a_stream_of_new_chats_does_not_starve_the_updates(store: Store) -> None:
    await _existing_chats(store)
    rounds = _record_rounds(store, delay=0.1)
    await asyncio.gather(*[store.ingest(inbound(2, thread=f"old-{i}", user=f"u{i}"))
                           for i in range(CHATS)])
    start = len(rounds)  # from here every update of the backlog is waiting or being written
    for n in range(8):  # one new chat after another, each as soon as the last is listed
        await store.ingest(inbound(1, thread=f"new-{n}", user=f"new-{n}"))
        while await _conversation_of(store, f"new-{n}") is None:
            await asyncio.sleep(0.01)
    await store.settle()
    kinds = [kind for kind, _ in rounds]
    last_update = len(kinds) - 1 - kinds[::-1].index("update")
    # while updates waited, never two creating rounds running
    assert "create,create" not in ",".join(kinds[start:last_update])
    assert kinds[start:].count("create") == 8
    assert kinds[start:last_update].count("create") >= 2  # new chats came while updates waited
    assert await store.db.conversations.count_documents({}) == CHATS + 8
    counts = [c["message_count"] async for c in store.db.conversations.find(
        {"thread_key": {"$regex": "^old-"}})]
    assert counts == [2] * CHATS


async def test_updates_stop_yielding_once_a_message_waited_stale_after(store: Store) -> None:
    summaries = store.ingestor.summaries
    summaries.acks.writing(True)  # an insert batch is always in flight: a saturated inbox
    summaries._last_round = 10.0  # an expensive last round: the longest yield, BUSY_WAIT_MAX
    try:
        now = datetime.now(UTC)
        summaries._pending = {"recent": Delta(now, now)}
        started = time.monotonic()
        await summaries._yield_to_acks(False)
        waited_fresh = time.monotonic() - started
        stale = datetime.now(UTC) - timedelta(seconds=summaries_module.STALE_AFTER + 0.5)
        summaries._pending = {"stale": Delta(stale, stale)}
        started = time.monotonic()
        await summaries._yield_to_acks(False)
        waited_stale = time.monotonic() - started
        nearly = datetime.now(UTC) - timedelta(seconds=summaries_module.STALE_AFTER - 0.3)
        summaries._pending = {"nearly": Delta(nearly, nearly)}
        started = time.monotonic()
        await summaries._yield_to_acks(False)
        waited_nearly = time.monotonic() - started
    finally:
        summaries._pending = {}
        summaries.acks.writing(False)
    assert waited_fresh >= summaries_module.BUSY_WAIT_MAX - 0.1
    assert waited_stale < 0.05
    assert 0.15 < waited_nearly < 0.6


class _AlwaysBusy(AckWindow):
    """An insert batch is always in flight (a saturated inbox); each wait's bound is kept,
    and the wait itself is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.bounds: list[float] = []

    def writing(self, busy: bool) -> None:
        pass

    @property
    def busy(self) -> bool:
        return True

    async def wait_idle(self, within: float) -> None:
        self.bounds.append(within)


Round = tuple[str, int, list[float]]  # kind, conversations, the waits' bounds before it


async def _two_new_chats(store: Store, *, stale_backlog: bool) -> list[Round]:
    """A backlog of updates on a saturated inbox; a new chat lands while the first chunk of
    them is written, and the next one while the first is being created."""
    await _existing_chats(store)
    summaries = store.ingestor.summaries
    window = _AlwaysBusy()
    summaries.acks = window
    summaries._last_round = 10.0  # an expensive last round: updates would yield the longest
    rounds: list[Round] = []
    seen = 0
    apply = summaries._apply_round
    later: list[asyncio.Task[Any]] = []

    async def recorded(tag: str) -> None:
        nonlocal seen
        ids = set(summaries._in_flight)
        kind = "update" if all(i in summaries._exists for i in ids) else "create"
        rounds.append((kind, len(ids), window.bounds[seen:]))
        seen = len(window.bounds)
        if kind == "create" and not later:  # the next new chat lands meanwhile
            later.append(asyncio.create_task(
                store.ingest(inbound(1, thread="second-new", user="second"))))
            await later[0]
        await asyncio.sleep(0.05)
        await apply(tag)

    summaries._apply_round = recorded  # type: ignore[method-assign]
    await asyncio.gather(*[store.ingest(inbound(2, thread=f"old-{i}", user=f"u{i}"))
                           for i in range(CHATS)])
    if stale_backlog:  # as if those messages had waited for their rounds a while already
        for delta in summaries._pending.values():
            delta.since -= timedelta(seconds=summaries_module.STALE_AFTER + 1)
    await asyncio.sleep(0.02)  # the first chunk of updates is being written
    await store.ingest(inbound(1, thread="first-new", user="first"))
    await store.settle()
    assert await _conversation_of(store, "second-new") is not None
    counts = [c["message_count"] async for c in store.db.conversations.find(
        {"thread_key": {"$regex": "^old-"}})]
    assert counts == [2] * CHATS
    return rounds


def _between_the_creates(rounds: list[Round]) -> tuple[list[Round], list[Round]]:
    first, second = (i for i, (kind, _, _) in enumerate(rounds) if kind == "create")
    return rounds[first + 1:second], rounds[second + 1:]


async def test_updates_that_a_new_chat_waits_behind_are_brief(store: Store) -> None:
    """A new chat that arrives while the last one is being created waits for one round of
    updates at most: a short one (`BEFORE_NEW`), which yields no longer than creating does."""
    between, after = _between_the_creates(await _two_new_chats(store, stale_backlog=False))
    assert [(kind, n) for kind, n, _ in between] == [("update", summaries_module.BEFORE_NEW)]
    waits = between[0][2]
    assert waits and all(w <= summaries_module.NEW_WITHIN for w in waits)
    # with no new chat waiting, the rest of the backlog goes in full chunks
    sizes = [n for kind, n, _ in after if kind == "update"]
    assert sizes and all(n == summaries_module.CHUNK for n in sizes[:-1])


async def test_a_stale_backlog_goes_in_full_chunks_even_with_a_new_chat_waiting(
        store: Store) -> None:
    """Once an update has waited `STALE_AFTER`, the updates go in full chunks and do not
    yield, new chats or not: a stream of new chats cannot slow them to short rounds."""
    between, _ = _between_the_creates(await _two_new_chats(store, stale_backlog=True))
    assert [(kind, n) for kind, n, _ in between] == [("update", summaries_module.CHUNK)]
    assert between[0][2] == []  # no wait: stale updates do not yield
