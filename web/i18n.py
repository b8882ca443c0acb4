"""UI text in English and 简体中文, the language choice, dates and plurals, through Babel.

Catalogues are flat JSON files under `web/locales/` for the text of the product itself, plus
each connector's own `strings` (its name, credential labels, error sentences), merged in under
`platform.<platform>.`: so `web/` never holds a platform's words. A key missing from zh-CN is a
test failure, not a silent fallback (tests/test_ui_i18n.py).

Why Babel and not string matching: a language tag says its script only sometimes. zh-TW, zh-HK
and zh-Hant are Traditional Chinese and must not get the Simplified catalogue, while zh-SG is
Simplified; Babel's CLDR "likely subtags" knows which is which. Dates and plural categories
come from the same CLDR data, and app.js uses the browser's `Intl` (also CLDR) for live
updates, so both sides print the same shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel import dates as babel_dates
from babel.core import get_global, negotiate_locale, parse_locale
from babel.numbers import format_decimal

LOCALES: tuple[str, ...] = ("en", "zh-CN")
LANG_COOKIE = "sb_lang"
LOCALE_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}
CONNECTOR_PREFIX = "platform."

# A catalogue serves a language *in a script*: what a tag must resolve to, to get it.
_BY_SCRIPT: dict[str, str] = {"en_Latn": "en", "zh_Hans": "zh-CN"}
_BABEL_LOCALE: dict[str, str] = {"en": "en", "zh-CN": "zh_Hans_CN"}
_MAX_TAGS = 32  # of an Accept-Language header; the rest is ignored

Style = Literal["short", "full"]


# ---------------------------------------------------------------------- catalogues


@cache
def base_catalog(locale: str) -> dict[str, str]:
    """The product's own text for `locale` (web/locales/<locale>.json)."""
    with open(LOCALE_DIR / f"{locale}.json", encoding="utf-8") as fh:
        data: dict[str, str] = json.load(fh)
    return data


def connector_catalog(locale: str, connectors: Mapping[str, Any]) -> dict[str, str]:
    """Each connector's `strings[locale]` under `platform.<platform>.`.

    Read with getattr so a connector class without `strings` (or a registry entry that is not a
    class) contributes nothing rather than breaking every page."""
    merged: dict[str, str] = {}
    for platform, cls in sorted(connectors.items()):
        strings: Mapping[str, Mapping[str, str]] = getattr(cls, "strings", None) or {}
        for key, text in (strings.get(locale) or {}).items():
            merged[f"{CONNECTOR_PREFIX}{platform}.{key}"] = text
    return merged


def _registered_connectors() -> Mapping[str, Any]:
    # imported here, not at the top: the catalogue is needed by pages only, and this keeps
    # `web.i18n` importable (and its functions testable) without building the registry
    from connectors.registry import CONNECTORS

    return CONNECTORS


@cache
def catalog(locale: str) -> dict[str, str]:
    """Everything the UI can say in `locale`: the product's text and every connector's."""
    merged = dict(base_catalog(locale))
    merged.update(connector_catalog(locale, _registered_connectors()))
    return merged


def plural_keys(keys: Iterable[str]) -> dict[str, set[str]]:
    """Plural entries by base key, found in the *English* catalogue (English has "one" for
    every plural, so a base is recognised by its non-"other" forms; a key that merely ends in
    ".other", like `accounts.error.other`, is not one): {"inbox.unread_count": {"one",
    "other"}}. Chinese has only "other", so look up its forms with `plural_forms`."""
    found: dict[str, set[str]] = {}
    keys = set(keys)
    for key in keys:
        base, _, category = key.rpartition(".")
        if category in _CATEGORIES - {"other"} and base:
            found.setdefault(base, set()).add(category)
    for base, categories in found.items():
        if f"{base}.other" in keys:
            categories.add("other")
    return found


def plural_forms(base: str, keys: Iterable[str]) -> set[str]:
    """The categories `keys` (one locale's catalogue) has for the plural `base`."""
    present = set(keys)
    return {c for c in _CATEGORIES if f"{base}.{c}" in present}


_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})


class Translator:
    """`t("key", name=...)`: the locale's text with `{placeholders}` filled in;
    `t.plural("key", n)`: the form of `key.<category>` the locale's plural rules pick for n."""

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else "en"
        self.babel = babel_locale(self.locale)
        self.messages = catalog(self.locale)
        self.fallback = catalog("en")

    def __call__(self, key: str, **values: Any) -> str:
        text = self.messages.get(key) or self.fallback.get(key) or key
        return text.format_map(values) if values else text

    def has(self, key: str) -> bool:
        return key in self.messages

    def first(self, keys: Iterable[str], default: str = "", **values: Any) -> str:
        """The first of `keys` this locale has (a connector's own sentence before the generic
        one), else `default`."""
        for key in keys:
            if key in self.messages:
                return self(key, **values)
        return default

    def plural(self, key: str, n: int, **values: Any) -> str:
        category = self.babel.plural_form(n)
        text = self.messages.get(f"{key}.{category}") or self.messages.get(f"{key}.other") \
            or self.fallback.get(f"{key}.other") or key
        return text.format_map({"n": format_decimal(n, locale=self.babel), **values})

    def subset(self, prefixes: str | tuple[str, ...]) -> dict[str, str]:
        """The keys under `prefixes` (for the JavaScript side)."""
        return {k: v for k, v in self.messages.items() if k.startswith(prefixes)}


@cache
def babel_locale(locale: str) -> Locale:
    return Locale.parse(_BABEL_LOCALE.get(locale, "en"))


# ---------------------------------------------------------------------- negotiation


def _language_script(tag: str) -> str | None:
    """"zh-TW" → "zh_Hant", "zh-SG" → "zh_Hans", "en-GB" → "en_Latn": the language and the
    script a tag means, the script filled in from CLDR likely subtags when the tag omits it."""
    parts = tag.strip().replace("_", "-").split("-")
    for index, part in enumerate(parts[1:], 1):  # BCP 47 extensions ("-u-ca-…", "-x-…") go
        if len(part) == 1:
            parts = parts[:index]
            break
    try:
        language, territory, script, *_ = parse_locale("_".join(parts))
    except (ValueError, TypeError):
        return None
    if language in ("und", "mul", "zxx"):
        return None
    if not script:
        likely: Mapping[str, str] = get_global("likely_subtags")
        full = (likely.get(f"{language}_{territory}") if territory else None) \
            or likely.get(language)
        if full:
            script = parse_locale(full)[2]
    return f"{language}_{script}" if script else language


def _negotiate(tags: Iterable[str]) -> str | None:
    """The first tag (in preference order) one of our catalogues can serve, via Babel."""
    preferred = [key for key in map(_language_script, tags) if key]
    # aliases=None: Babel's default aliases map "zh" to zh_CN, which is exactly the
    # shortcut that would hand Traditional Chinese readers the Simplified catalogue
    found = negotiate_locale(preferred, list(_BY_SCRIPT), sep="_", aliases=None)
    return _BY_SCRIPT.get(found) if found else None


def normalise_locale(value: str | None) -> str | None:
    """A language tag onto a supported locale: zh, zh-Hans, zh-CN, zh-SG → zh-CN; en-* → en;
    zh-TW, zh-HK, zh-Hant and anything else → None."""
    return _negotiate([value]) if value else None


def accept_language_tags(header: str | None) -> list[str]:
    """The tags of an Accept-Language header, most wanted first (q-values, then order);
    q=0 means "not this one" and drops the tag."""
    if not header:
        return []
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:_MAX_TAGS]):
        tag, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            choices.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(choices)]


def from_accept_language(header: str | None) -> str | None:
    """The best supported locale in an Accept-Language header, honouring q-values."""
    return _negotiate(accept_language_tags(header))


def choose_locale(cookies: Mapping[str, str], accept_language: str | None,
                  agent: Mapping[str, Any] | None, default: str) -> str:
    """Agent's own setting, then the sticky switch (cookie), then the browser, then the default."""
    for candidate in ((agent or {}).get("locale"), cookies.get(LANG_COOKIE)):
        locale = normalise_locale(candidate)
        if locale:
            return locale
    return from_accept_language(accept_language) or normalise_locale(default) or "en"


# ---------------------------------------------------------------------- dates


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_datetime(value: datetime | str | None, locale: str, tz: ZoneInfo, *,
                    style: Style = "short", now: datetime | None = None) -> str:
    """Three shapes, from CLDR skeletons, mirrored by app.js `fmtTime` (Intl.DateTimeFormat
    with the same fields):

    short: "14:03" today, "Nov 25, 14:03" / "11月25日 14:03" this year, else the date
    ("Nov 25, 2024" / "2024年11月25日"); full: "Nov 25, 2024, 14:03" / "2024年11月25日 14:03".
    """
    if value is None or value == "":
        return ""
    at = _aware(value)
    loc = babel_locale(locale)
    hm = babel_dates.format_time(at, "HH:mm", tzinfo=tz, locale=loc)
    if style == "full":
        return _date_and_time(babel_dates.format_skeleton("yMMMd", at, tzinfo=tz, locale=loc),
                              hm, loc)
    local, today = at.astimezone(tz), (now or datetime.now(UTC)).astimezone(tz)
    if local.date() == today.date():
        return hm
    if local.year == today.year:
        return _date_and_time(babel_dates.format_skeleton("MMMd", at, tzinfo=tz, locale=loc),
                              hm, loc)
    return babel_dates.format_skeleton("yMMMd", at, tzinfo=tz, locale=loc)


def _date_and_time(date: str, time: str, loc: Locale) -> str:
    # Babel has no skeleton for "month, day, hour, minute" together; CLDR joins the two parts
    # with the locale's date-time pattern ("{1}, {0}" in English, "{1} {0}" in Chinese), as
    # Intl.DateTimeFormat does in the browser
    pattern = babel_dates.get_datetime_format("medium", locale=loc)
    return pattern.replace("'", "").replace("{1}", date).replace("{0}", time)
