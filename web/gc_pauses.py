"""Python's cyclic garbage collector, set for a process whose event loop answers webhooks.

A full collection (generation 2) walks every object the collector tracks, and the event loop
stands still while it does: every webhook in flight waits for it. Measured in the server
under the ingest benchmark's load (b), with the interpreter's defaults: a heap of 150,000
tracked objects after startup and 200,000–230,000 under load, 1–3 full collections every 5 s,
each 115–182 ms. They were the tail of the acknowledgements' latency: the event loop's
largest stall in each 5 s was 130–195 ms, the acknowledgement p99 200–300 ms.

Two settings, applied once the process serves (`tune`, from `web.runtime.run_app`):

- What startup made — the imported modules, their classes and functions, the settings, the
  application — lives as long as the process. `gc.freeze()` moves it out of the collector's
  sight (145,000 objects), so a full collection walks only what came after.
- Generation 0 is collected after `YOUNG` allocations instead of 700. A webhook's objects (its
  request, its documents, their futures) mostly die within the request; collected every 700
  allocations, more of them are still alive, get promoted, and promotions are what start the
  full collections.

Measured the same way after both: 55,000–77,000 tracked objects under load, no full
collection during the run, the event loop's largest stall in each 5 s 12–75 ms. Cyclic
garbage lives a little longer (until the next young collection); nothing is left uncollected.
Tests run with the defaults: only a serving process applies this.
"""

from __future__ import annotations

import gc

YOUNG = 10_000  # allocations between collections of generation 0 (the default is 700)


def tune() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG, older, oldest)
