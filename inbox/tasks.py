"""Background tasks: ending those a component started (cancelled, then awaited, so a stop returns
only once they are gone; what they raise while ending is theirs, not the caller's), and letting
the event loop breathe in a follower's long loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None] | None]) -> None:
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# items a follower's loop handles between two turns of the event loop: a batch of a thousand
# changes handled in one go held the loop (and every webhook waiting on it) for 20–50 ms
BREATHE_EVERY = 32


async def breathe(i: int, every: int = BREATHE_EVERY) -> None:
    """Let the event loop run what is ready (acknowledgements) before item `i` of a long loop
    whose awaits do not suspend (an await of a coroutine that does no I/O runs straight on)."""
    if i and i % every == 0:
        await asyncio.sleep(0)
