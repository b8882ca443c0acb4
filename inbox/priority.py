"""Acknowledgements first: a follower's write waits, for a bounded time, while this process has
an acknowledgement's insert in flight.

The embedded database does its work on one core (a thread per connection under Python's GIL),
so a command that runs beside an acknowledgement's `insert_many` takes its share of that core
and the webhook waits longer for its answer. The followers behind ingest (summaries, the search
indexer, the service measures) can trail by a second without harm to anyone; a webhook's
answer cannot. Each follower gives its own bound (`within`), and a follower whose oldest item
has already waited that long does not wait at all: a saturated ingest delays followers by at
most their bound, and never starves them. Only this process's inserts are seen; with several
processes, each one's followers yield to its own webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib


class AckWindow:
    """Whether an acknowledgement's insert batch is in flight in this process."""

    def __init__(self) -> None:
        self._idle = asyncio.Event()
        self._idle.set()
        self.waited = 0  # waits that found an insert in flight

    def writing(self, busy: bool) -> None:
        if busy:
            self._idle.clear()
        else:
            self._idle.set()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    async def wait_idle(self, within: float) -> None:
        """Return once no insert is in flight, or after `within` seconds at the latest."""
        if self._idle.is_set() or within <= 0:
            return
        self.waited += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within)
