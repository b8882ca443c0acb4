"""UI text in English and 简体中文, the language choice, and dates in the agent's time zone.

Catalogues are flat JSON files under `web/locales/`; a key missing from zh-CN is a test failure,
not a silent fallback (tests/test_ui_i18n.py). Dates are formatted here for the first render and
by `Intl.DateTimeFormat` in app.js for live updates; both follow the same three shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCALES: tuple[str, ...] = ("en", "zh-CN")
LANG_COOKIE = "sb_lang"
LOCALE_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@cache
def catalog(locale: str) -> dict[str, str]:
    with open(LOCALE_DIR / f"{locale}.json", encoding="utf-8") as fh:
        data: dict[str, str] = json.load(fh)
    return data


class Translator:
    """`t("key", name=...)`: the locale's text with `{placeholders}` filled in."""

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else "en"
        self.messages = catalog(self.locale)
        self.fallback = catalog("en")

    def __call__(self, key: str, **values: Any) -> str:
        text = self.messages.get(key) or self.fallback.get(key) or key
        return text.format_map(values) if values else text

    def has(self, key: str) -> bool:
        return key in self.messages

    def subset(self, prefix: str) -> dict[str, str]:
        """The keys under `prefix` (for the JavaScript side)."""
        return {k: v for k, v in self.messages.items() if k.startswith(prefix)}


def normalise_locale(value: str | None) -> str | None:
    """Map a language tag onto a supported locale: zh, zh-Hans, zh-CN → zh-CN; en-* → en."""
    if not value:
        return None
    tag = value.strip().replace("_", "-").lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The best supported locale in an Accept-Language header, honouring q-values."""
    if not header:
        return None
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        lang, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        locale = normalise_locale(lang)
        if locale and quality > 0:
            choices.append((-quality, index, locale))
    return min(choices)[2] if choices else None


def choose_locale(cookies: Mapping[str, str], accept_language: str | None,
                  agent: Mapping[str, Any] | None, default: str) -> str:
    """Agent's own setting, then the sticky switch (cookie), then the browser, then the default."""
    for candidate in ((agent or {}).get("locale"), cookies.get(LANG_COOKIE)):
        locale = normalise_locale(candidate)
        if locale:
            return locale
    return from_accept_language(accept_language) or normalise_locale(default) or "en"


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def format_datetime(value: datetime | str | None, locale: str, tz: ZoneInfo, *,
                    style: str = "short", now: datetime | None = None) -> str:
    """Three shapes, mirrored by app.js `fmtTime`:

    short: 14:03 today, "Nov 25, 14:03" / "11月25日 14:03" this year, else the date;
    full: "Nov 25, 2024, 14:03" / "2024年11月25日 14:03".
    """
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(tz)
    today = (now or datetime.now(UTC)).astimezone(tz)
    hm = f"{local.hour:02d}:{local.minute:02d}"
    zh = locale == "zh-CN"
    month_day = f"{local.month}月{local.day}日" if zh else f"{_MONTHS_EN[local.month - 1]} " \
                                                        f"{local.day}"
    date = f"{local.year}年{month_day}" if zh else f"{month_day}, {local.year}"
    if style == "full":
        return f"{date} {hm}" if zh else f"{date}, {hm}"
    if local.date() == today.date():
        return hm
    if local.year == today.year:
        return f"{month_day} {hm}" if zh else f"{month_day}, {hm}"
    return date
