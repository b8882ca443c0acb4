"""Keyset pages that read about a page of documents, even on the embedded server.

Every listed document carries `sk`, a string that sorts like (time, id): 16 digits of
microseconds since the epoch, a dot, the document id. It is unique, so a cursor is just the last
`sk` of a page. The embedded server fetches every document that matches a filter before it sorts
and limits, so `sk < cursor` alone would read the whole tail of a large inbox. Instead a page is
read through a time window below the cursor, widened (x8) until it holds a page or reaches the
oldest possible document (`floor`). The width that last worked is remembered as the next start.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

Doc = dict[str, Any]

_MAX_MICROS = 10**16 - 1
_START_WINDOW_US = 3_600 * 10**6
_GROWTH = 8


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


class WindowedPager:
    """Reads newest-first pages of `coll` for one filter shape."""

    def __init__(self) -> None:
        self._hints: dict[str, int] = {}

    async def page(
        self, coll: AsyncCollection[Doc], flt: Doc, *, limit: int, before: str | None,
        floor_us: int, shape: str, projection: Doc | None = None,
    ) -> tuple[list[Doc], str | None, int]:
        """Return (documents newest first, next cursor or None, documents read)."""
        hi = before if before is not None else _bound(_MAX_MICROS)
        hi_us = sk_micros(hi) if before is not None else None
        width = self._hints.get(shape, _START_WINDOW_US)
        found: list[Doc] = []
        reads = 0
        start_us: int | None = None
        while True:
            top_us = hi_us if hi_us is not None else micros(datetime.now(UTC)) + 60_000_000
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
            width *= _GROWTH
        if len(found) > limit:
            span = start_us - lo_us if reads > 1 else width // 2
            self._hints[shape] = max(span, 1_000_000)
        if len(found) > limit:
            page = found[:limit]
            return page, encode_cursor(page[-1]["sk"]), reads
        return found, None, reads
