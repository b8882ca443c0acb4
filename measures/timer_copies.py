"""The SLA clocks the measures follower keeps, so that a batch of messages needs no read of its
conversations' clocks.

Why: under steady ingest into existing conversations the follower read every batch's clocks
(`sla_timers`, in `$in` lists of 64) only to find, for nearly all of them, that a customer's
next message changes nothing (measured: 129–141 reads, ~10 % of the database's time in the
ingest benchmark's workload (b)).

A copy is as current as the follower's change feed at the batch it handles (every write of a
clock is an insert or a whole-document replace, so each change carries the clock), or newer:
the follower's own writes are kept as it makes them, and a feed event older than the copy (a
lower `v`) does not set it back. A clock changed elsewhere since (a status change in another
process) differs from its copy only by what the feed has not brought yet: a write based on the
copy loses its compare-and-set on `v` and reads the clock again (measures/sla.py), with the
team and agent read again from the conversation (its copy may be as old as the clock's: a
reassignment moves the conversation, then the clock), and a decision that nothing changes is
the one the clock's state as of the feed's position gives — the order the database stored
those changes in. An update event (no production writer makes
one) drops the copy: the next batch reads it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from inbox.db import Doc
from inbox.doc_cache import copy_tree


class TimerCopies:
    """Clocks by conversation id, least recently kept out first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[Any, Doc] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()

    def get(self, conv_id: str) -> Doc | None:
        """The kept clock (None: none), not to be changed: `SlaClocks.apply` works on a copy
        of what it is given."""
        return self._kept.get(conv_id)

    def keep(self, timer: Doc) -> None:
        """A clock as read or written now, handed over (the caller changes it no more); an
        older one than the copy is not taken."""
        conv_id = timer.get("_id")
        kept = self._kept.get(conv_id)
        if kept is None or int(timer.get("v", 0)) >= int(kept.get("v", 0)):
            self._kept[conv_id] = timer
            self._kept.move_to_end(conv_id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def follow(self, change: Mapping[str, Any]) -> None:
        """One change of `sla_timers`, in feed order (the event is shared with the feed's
        other subscribers: its clock is copied)."""
        doc_id = (change.get("documentKey") or {}).get("_id")
        full = change.get("fullDocument")
        if change.get("operationType") in ("insert", "replace") and full:
            self.keep(copy_tree(full))
        else:
            self._kept.pop(doc_id, None)
