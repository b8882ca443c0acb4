"""A follower's long loop lets the event loop run what is ready (an acknowledgement) every
`BREATHE_EVERY` items, even when none of its own awaits suspends."""

from __future__ import annotations

import asyncio
import contextlib

from inbox.tasks import BREATHE_EVERY, breathe


async def _no_io() -> None:
    """An await that does not suspend: a coroutine with nothing to wait for."""


async def test_a_loop_without_io_lets_a_ready_task_run_every_so_many_items() -> None:
    done: list[int] = []
    ran_at: list[int] = []

    async def loop() -> None:
        for i in range(4 * BREATHE_EVERY):
            await breathe(i)
            await _no_io()
            done.append(i)

    async def acknowledgement() -> None:
        ran_at.append(len(done))

    looping = asyncio.create_task(loop())
    await asyncio.sleep(0)  # the loop has started (and breathed once)
    ready_at = len(done)
    waiting = asyncio.create_task(acknowledgement())
    await asyncio.gather(looping, waiting)
    assert 0 < ready_at < 4 * BREATHE_EVERY
    assert ran_at[0] - ready_at <= BREATHE_EVERY


async def test_without_breathing_the_same_loop_holds_the_event_loop_to_its_end() -> None:
    done: list[int] = []
    ran_at: list[int] = []

    async def loop() -> None:
        for i in range(4 * BREATHE_EVERY):
            await _no_io()
            done.append(i)

    async def acknowledgement() -> None:
        ran_at.append(len(done))

    looping = asyncio.create_task(loop())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(acknowledgement())
    await asyncio.gather(looping, waiting)
    assert ran_at == [4 * BREATHE_EVERY]


async def test_a_custom_stride_breathes_at_its_multiples_only() -> None:
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    before = turns
    for i in range(10):
        await breathe(i, every=4)
    counted = turns - before
    counter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await counter
    assert counted == 2  # at items 4 and 8; never at item 0
