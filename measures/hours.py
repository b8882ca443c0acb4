"""Time counted in a team's business hours: how many open seconds lie between two moments,
when a number of open seconds after a moment ends, and when a team opens next.

A team's hours are the `business_hours` document of teams/hours.py (weekly spans in its time
zone, public holidays and make-up working days from the `holidays` calendar, its own closed
and open dates). The day's spans are built in the team's time zone and compared as aware
datetimes, so a daylight-saving change inside a span counts the real elapsed time. None (no
document) means always open: plain elapsed time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from teams.hours import DAYS, day_kind

Hours = Mapping[str, Any] | None
MAX_DAYS = 3 * 366  # how far ahead a due time is looked for before giving up


def _time(value: str) -> time | None:
    if value == "24:00":
        return None  # the end of the day: midnight of the next
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def spans(doc: Mapping[str, Any], day: date) -> list[tuple[datetime, datetime]]:
    """The open spans of one local date, as aware datetimes, in order."""
    zone = ZoneInfo(doc.get("timezone") or "UTC")
    kind = day_kind(doc, day)
    if kind == "closed":
        return []
    weekday = DAYS[day.weekday()]
    weekly = doc.get("weekly") or {}
    if kind == "makeup" and not weekly.get(weekday):
        weekday = doc.get("makeup_hours_from") or "mon"
    out = []
    for start, end in weekly.get(weekday) or []:
        a = datetime.combine(day, _time(start) or time(0), tzinfo=zone)
        end_t = _time(end)
        b = datetime.combine(day + timedelta(days=1) if end_t is None else day,
                             end_t or time(0), tzinfo=zone)
        if b > a:
            out.append((a, b))
    return sorted(out)


def _has_hours(doc: Mapping[str, Any]) -> bool:
    return any((doc.get("weekly") or {}).get(d) for d in DAYS)


def _days_from(doc: Mapping[str, Any], at: datetime) -> Iterator[date]:
    zone = ZoneInfo(doc.get("timezone") or "UTC")
    day = at.astimezone(zone).date() - timedelta(days=1)  # a span may reach past midnight
    for _ in range(MAX_DAYS):
        yield day
        day += timedelta(days=1)


def business_seconds(doc: Hours, a: datetime, b: datetime) -> float:
    """Open seconds between `a` and `b` (negative when `b` is before `a`)."""
    if b < a:
        return -business_seconds(doc, b, a)
    if not doc or not _has_hours(doc):
        return (b - a).total_seconds()
    total = 0.0
    for day in _days_from(doc, a):
        day_spans = spans(doc, day)
        if day_spans and day_spans[0][0] >= b:
            break
        for start, end in day_spans:
            lo, hi = max(start, a), min(end, b)
            if hi > lo:
                total += (hi - lo).total_seconds()
        if datetime.combine(day, time(0), tzinfo=ZoneInfo(doc.get("timezone") or "UTC")) \
                > b + timedelta(days=1):
            break
    return total


def add_business(doc: Hours, start: datetime, seconds: float) -> datetime | None:
    """The moment when `seconds` open seconds after `start` have passed; None when the hours
    never open within `MAX_DAYS` (a team closed for good)."""
    if not doc or not _has_hours(doc):
        return start + timedelta(seconds=seconds)
    left = max(seconds, 0.0)
    for day in _days_from(doc, start):
        for a, b in spans(doc, day):
            lo = max(a, start)
            if b <= lo:
                continue
            room = (b - lo).total_seconds()
            if left <= room:
                return lo + timedelta(seconds=left)
            left -= room
    return None


def next_open(doc: Hours, at: datetime) -> datetime | None:
    """`at` when the hours are open then, else when they open next (None: never)."""
    if not doc or not _has_hours(doc):
        return at
    for day in _days_from(doc, at):
        for a, b in spans(doc, day):
            if b > at:
                return max(a, at)
    return None
