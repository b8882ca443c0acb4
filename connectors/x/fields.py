"""Typed getters for X payloads: every wrong shape becomes `UnreadablePayload` with a place.

X returns every id as a decimal string ("to avoid complications with languages and tools that
cannot handle large integers", https://docs.x.com/x-api/fundamentals/data-dictionary), times as
ISO 8601 with milliseconds and `Z`; the legacy DM shape of the Activity API has
`created_timestamp` in epoch milliseconds, as a string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_ID = re.compile(r"^[0-9]{1,20}$")
_MAX_MS = 16_725_225_600_000  # year ~2500: keeps fromtimestamp away from OverflowError


class UnreadablePayload(ValueError):
    """The payload is not an X payload we can read (wrong shape or types)."""


def fail(where: str, problem: str) -> UnreadablePayload:
    return UnreadablePayload(f"{where}: {problem}")


def map_at(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, Mapping):
        raise fail(where, f"'{key}' must be an object, got {type(value).__name__}")
    return value


def maps_at(obj: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    """A list of objects, or [] when absent."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise fail(where, f"'{key}' must be a list of objects")
    return value


def opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise fail(where, f"'{key}' must be a string, got {type(value).__name__}")


def id_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not _ID.match(value):
        raise fail(where, f"'{key}' must be a numeric id string")
    return value


def strs_at(obj: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and _ID.match(v)
                                              for v in value):
        raise fail(where, f"'{key}' must be a list of id strings")
    return value


def iso_ts(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    value = opt_str(obj, key, where)
    if value is None:
        raise fail(where, f"'{key}' is missing (ask for it in tweet.fields / dm_event.fields)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(where, f"'{key}' is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise fail(where, f"'{key}' has no time zone")
    return parsed.astimezone(UTC)


def ms_ts(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    value = obj.get(key)
    if isinstance(value, str) and value.isdigit() and len(value) <= 17:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_MS:
        raise fail(where, f"'{key}' must be epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def dm_conversation_key(a: str, b: str) -> str:
    """A one-to-one DM conversation's id as X forms it: both user ids, the smaller first
    (e.g. "750362064426721281-1072250532645998596" in tweepy's recorded `dm_conversations`
    answers), so a legacy Activity API DM joins the conversation a polled one opened."""
    low, high = sorted((a, b), key=int)
    return f"{low}-{high}"
