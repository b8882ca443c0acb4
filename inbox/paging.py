"""Keyset pages that read about a page of documents, even on the embedded server.

Every listed document carries `sk`, a string that sorts like (time, id): 16 digits of
microseconds since the epoch, a dot, the document id. It is unique, so a cursor is just the last
`sk` of a page. The embedded server fetches every document that matches a filter before it sorts
and limits, so `sk < cursor` alone would read the whole tail of a large inbox. Instead a page is
read through a time window below the cursor, widened until it holds a page or reaches the oldest
possible document (`floor`).

The width is estimated, not guessed: a full page tells how much time its `limit + 1` newest
documents spanned, and the next call of the same shape starts with that span times the margin
(so it usually holds ~1.3 pages and is read once, at any inbox size). The newest page measures
down from the newest document the shape had last time rather than from "now", so a quiet hour
costs nothing. A window that comes back short grows by what its own count suggests (2x to 8x).
Callers that know their density (a conversation's message count over its lifetime) pass
`width_us` instead.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

Doc = dict[str, Any]

_MAX_MICROS = 10**16 - 1
_START_WINDOW_US = 3_600 * 10**6
_GROWTH = 8  # the most a short window grows in one step
WINDOW_MARGIN = 1.3


class BadCursor(ValueError):
    pass


def micros(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1_000_000)


def make_sk(ts: datetime, oid: ObjectId | str) -> str:
    return f"{min(max(micros(ts), 0), _MAX_MICROS):016d}.{oid}"


def _bound(us: int) -> str:
    return f"{max(us, 0):016d}"


def sk_micros(sk: str) -> int:
    return int(sk[:16])


def encode_cursor(sk: str) -> str:
    return base64.urlsafe_b64encode(sk.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        int(raw[:16])
        ObjectId(raw[17:])
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError) as exc:
        raise BadCursor("cursor is not one this server issued") from exc
    if raw[16:17] != ".":
        raise BadCursor("cursor is not one this server issued")
    return raw


def _depth(now_us: int, hi_us: int | None) -> str:
    """Which hint a page learns and uses: activity is densest near "now", so the newest page
    and pages at each power-of-two age (in hours) below it keep their own window widths."""
    if hi_us is None:
        return "newest"
    hours = max(now_us - hi_us, 0) / 3_600_000_000
    return f"older:{int(math.log2(hours + 1))}"


class WindowedPager:
    """Reads newest-first pages of `coll` for one filter shape."""

    def __init__(self) -> None:
        self._hints: dict[str, int] = {}
        self._newest: dict[str, int] = {}

    async def page(
        self, coll: AsyncCollection[Doc], flt: Doc, *, limit: int, before: str | None,
        floor_us: int, shape: str, projection: Doc | None = None, width_us: int | None = None,
        newest_us: int | None = None,
    ) -> tuple[list[Doc], str | None, int]:
        """Return (documents newest first, next cursor or None, documents read).

        `newest_us`: about when the newest document is (default: now); the first window of
        the first page reaches down from there, and up without a bound."""
        hi = before if before is not None else _bound(_MAX_MICROS)
        hi_us = sk_micros(hi) if before is not None else None
        now_us = micros(datetime.now(UTC))
        shape = f"{shape}:{_depth(now_us, hi_us)}"
        width = width_us or self._hints.get(shape, _START_WINDOW_US)
        if hi_us is None and newest_us is None:
            # the newest document this shape had last time (activity only moves up): a quiet
            # stretch since then does not count against the window
            newest_us = self._newest.get(shape)
        found: list[Doc] = []
        reads = 0
        start_us: int | None = None
        while True:
            top_us = hi_us if hi_us is not None else (
                newest_us if newest_us is not None else now_us + 60_000_000)
            if start_us is None:
                start_us = top_us
            lo_us = top_us - width
            if lo_us <= floor_us:
                lo_us = -1
            rng: Doc = {"$lt": hi}
            if lo_us >= 0:
                rng["$gte"] = _bound(lo_us)
            want = limit + 1 - len(found)
            docs = await coll.find({**flt, "sk": rng}, projection).sort("sk", -1) \
                .limit(want).to_list()
            reads += 1
            found.extend(docs)
            if len(found) > limit or lo_us < 0:
                break
            hi, hi_us = _bound(lo_us), lo_us
            spanned = start_us - lo_us
            factor = WINDOW_MARGIN * (limit + 1) / len(found) if found else _GROWTH
            width = int(spanned * min(max(factor, 2.0), _GROWTH)) - spanned
        if len(found) > limit:
            top = start_us if hi_us is not None else sk_micros(found[0]["sk"])
            covered = top - sk_micros(found[limit]["sk"])
            self._hints[shape] = max(int(covered * WINDOW_MARGIN), 1_000_000)
            if hi_us is None:
                self._newest[shape] = sk_micros(found[0]["sk"])
            page = found[:limit]
            return page, encode_cursor(page[-1]["sk"]), reads
        return found, None, reads
