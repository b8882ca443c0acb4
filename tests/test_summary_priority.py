"""A busy inbox's updates yield to acknowledgements, and stop yielding once a message has
waited `STALE_AFTER` for its round (new chats do not wait for rounds at all:
tests/test_created_before_ack.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from inbox import summaries as summaries_module
from inbox.conversation_docs import Delta
from inbox.store import Store


async def test_updates_stop_yielding_once_a_message_waited_stale_after(store: Store) -> None:
    summaries = store.ingestor.summaries
    summaries.acks.writing(True)  # an insert batch is always in flight: a saturated inbox
    summaries._last_round = 10.0  # an expensive last round: the longest yield, BUSY_WAIT_MAX
    try:
        now = datetime.now(UTC)
        summaries._pending = {"recent": Delta(now, now)}
        started = time.monotonic()
        await summaries._yield_to_acks()
        waited_fresh = time.monotonic() - started
        stale = datetime.now(UTC) - timedelta(seconds=summaries_module.STALE_AFTER + 0.5)
        summaries._pending = {"stale": Delta(stale, stale)}
        started = time.monotonic()
        await summaries._yield_to_acks()
        waited_stale = time.monotonic() - started
        nearly = datetime.now(UTC) - timedelta(seconds=summaries_module.STALE_AFTER - 0.3)
        summaries._pending = {"nearly": Delta(nearly, nearly)}
        started = time.monotonic()
        await summaries._yield_to_acks()
        waited_nearly = time.monotonic() - started
    finally:
        summaries._pending = {}
        summaries.acks.writing(False)
    assert waited_fresh >= summaries_module.BUSY_WAIT_MAX - 0.1
    assert waited_stale < 0.05
    assert 0.15 < waited_nearly < 0.6
