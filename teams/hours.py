"""Business hours: weekly opening times in a time zone, public holidays and make-up working
days from a maintained calendar (PyPI `holidays`: China's 调休 Saturdays and Sundays are its
`weekend_workdays`), and the team's own closed and open dates on top.

A team's `business_hours` document:

    {"timezone": "Asia/Shanghai",
     "weekly": {"mon": [["09:00", "18:00"]], ..., "sun": []},
     "holidays": "CN",            # a country code (optionally "CN-GD" style), or null
     "closed_dates": ["2026-12-24"], "open_dates": ["2026-12-26"]}

A public holiday is closed all day. A make-up working day (a weekend day the calendar makes a
working day) opens with the hours of the weekday given by `makeup_hours_from` (default "mon").
None (no document) means always open.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class HoursError(ValueError):
    """A business-hours document that cannot be used; the message names the field."""


def _parse_time(value: str) -> time:
    if value == "24:00":
        return time.max
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def _date(value: Any, field: str) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise HoursError(f"{field}: {value!r} is not a date like 2026-10-01") from None


@lru_cache(maxsize=64)
def _calendar(code: str) -> holidays.HolidayBase:
    country, _, subdiv = code.partition("-")
    return holidays.country_holidays(country, subdiv=subdiv or None)


def validate(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A clean copy of a business-hours document, or HoursError naming what is wrong."""
    if doc is None:
        return None
    if not isinstance(doc, Mapping):
        raise HoursError("business_hours: an object or null")
    unknown = set(doc) - {"timezone", "weekly", "holidays", "closed_dates", "open_dates",
                          "makeup_hours_from"}
    if unknown:
        raise HoursError(f"business_hours.{sorted(unknown)[0]}: unknown field")
    tz = str(doc.get("timezone") or "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"business_hours.timezone: unknown time zone {tz!r}") from None
    weekly_in = doc.get("weekly") or {}
    if not isinstance(weekly_in, Mapping) or set(weekly_in) - set(DAYS):
        raise HoursError("business_hours.weekly: keys are mon … sun")
    weekly: dict[str, list[list[str]]] = {}
    for day in DAYS:
        spans = weekly_in.get(day) or []
        clean = []
        for span in spans:
            if not (isinstance(span, list | tuple) and len(span) == 2
                    and all(isinstance(v, str) and _HHMM.match(v) for v in span)):
                raise HoursError(f"business_hours.weekly.{day}: spans like [\"09:00\", "
                                 f"\"18:00\"]")
            if _parse_time(span[0]) >= _parse_time(span[1]):
                raise HoursError(f"business_hours.weekly.{day}: {span[0]} is not before "
                                 f"{span[1]}")
            clean.append([span[0], span[1]])
        weekly[day] = clean
    code = doc.get("holidays")
    if code:
        try:
            _calendar(str(code).upper())
        except (NotImplementedError, KeyError, AttributeError):
            raise HoursError(f"business_hours.holidays: no calendar for {code!r}") from None
    makeup = str(doc.get("makeup_hours_from") or "mon")
    if makeup not in DAYS:
        raise HoursError("business_hours.makeup_hours_from: one of mon … sun")
    return {"timezone": tz, "weekly": weekly,
            "holidays": str(code).upper() if code else None,
            "closed_dates": sorted({_date(d, "business_hours.closed_dates")
                                    for d in doc.get("closed_dates") or []}),
            "open_dates": sorted({_date(d, "business_hours.open_dates")
                                  for d in doc.get("open_dates") or []}),
            "makeup_hours_from": makeup}


def day_kind(doc: Mapping[str, Any], day: date) -> str:
    """"closed" (a holiday or closed date), "makeup" (a weekend working day) or "normal"."""
    iso = day.isoformat()
    if iso in (doc.get("closed_dates") or []):
        return "closed"
    if iso in (doc.get("open_dates") or []):
        return "makeup" if day.weekday() >= 5 else "normal"
    code = doc.get("holidays")
    if code:
        cal = _calendar(code)
        if day in cal:
            return "closed"
        if day in getattr(cal, "weekend_workdays", ()):
            return "makeup"
    return "normal"


def is_open(doc: Mapping[str, Any] | None, at: datetime) -> bool:
    """Whether `at` (aware) falls inside the hours; no document: always open."""
    if not doc:
        return True
    local = at.astimezone(ZoneInfo(doc.get("timezone") or "UTC"))
    kind = day_kind(doc, local.date())
    if kind == "closed":
        return False
    weekday = DAYS[local.weekday()]
    if kind == "makeup" and not (doc.get("weekly") or {}).get(weekday):
        weekday = doc.get("makeup_hours_from") or "mon"
    now = local.time().replace(tzinfo=None)
    return any(_parse_time(a) <= now < _parse_time(b)
               for a, b in (doc.get("weekly") or {}).get(weekday) or [])
