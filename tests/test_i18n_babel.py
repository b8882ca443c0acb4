"""Language choice, dates and plurals through Babel, and connector strings in the catalogues.

No database and no server: these are the pure parts of web/i18n.py and web/pages.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from web import pages
from web.i18n import (
    LOCALE_DIR,
    Translator,
    base_catalog,
    choose_locale,
    connector_catalog,
    format_datetime,
    from_accept_language,
    normalise_locale,
    zone,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("tag", "expected"), [
    ("zh", "zh-CN"), ("zh-CN", "zh-CN"), ("zh-Hans", "zh-CN"), ("zh-Hans-CN", "zh-CN"),
    ("zh-SG", "zh-CN"), ("zh_cn", "zh-CN"), ("ZH-hans", "zh-CN"), ("zh-Hans-HK", "zh-CN"),
    ("zh-TW", None), ("zh-HK", None), ("zh-MO", None), ("zh-Hant", None), ("zh-Hant-CN", None),
    ("yue", None), ("en", "en"), ("en-GB", "en"), ("en-US-u-ca-gregory", "en"),
    ("fr", None), ("*", None), ("", None), ("und", None), ("x-klingon", None),
    ("not a tag", None), (None, None),
])
def test_a_language_tag_maps_by_language_and_script(tag: str | None,
                                                     expected: str | None) -> None:
    """We have English and Simplified Chinese: Traditional Chinese tags are not Simplified."""
    assert normalise_locale(tag) == expected


def test_traditional_chinese_falls_through_to_the_next_preference_then_the_default() -> None:
    assert from_accept_language("zh-TW,zh-HK;q=0.9,en;q=0.5") == "en"
    assert from_accept_language("zh-Hant, fr;q=0.8") is None
    assert choose_locale({}, "zh-TW, zh-HK;q=0.8", None, "en") == "en"
    assert choose_locale({}, "zh-TW", None, "zh-CN") == "zh-CN"  # the operator's default
    assert from_accept_language("zh-TW, zh-SG;q=0.3") == "zh-CN"  # Singapore: Simplified


def test_q_values_decide_not_the_order() -> None:
    assert from_accept_language("en;q=0.3, zh-CN;q=0.9") == "zh-CN"
    assert from_accept_language("zh-CN;q=0.5, en") == "en"  # no q is q=1
    assert from_accept_language("zh;q=0, en;q=0.1") == "en"  # q=0: not acceptable
    assert from_accept_language("en;level=1;q=0.2, zh;q=0.4") == "zh-CN"
    assert from_accept_language("en;q=bogus, zh;q=0.1") == "zh-CN"  # a bad q counts as 0
    assert from_accept_language("en;q=0.5, zh;q=0.5") == "en"  # a tie: the first named
    assert from_accept_language("zh-CN;q=7") == "zh-CN"  # clamped, not refused


def test_plurals_follow_each_language_rules() -> None:
    en, zh = Translator("en"), Translator("zh-CN")
    assert en.plural("inbox.unread_count", 1) == "1 unread message"
    assert en.plural("inbox.unread_count", 3) == "3 unread messages"
    assert en.plural("inbox.unread_count", 0) == "0 unread messages"
    assert en.plural("inbox.unread_count", 1234) == "1,234 unread messages"
    assert zh.plural("inbox.unread_count", 1) == "1 条未读消息"  # one form in Chinese
    assert zh.plural("inbox.unread_count", 3) == "3 条未读消息"
    assert zh.plural("delivery.attempts", 2) == "已尝试 2 次"
    assert en.plural("no.such.key", 2) == "no.such.key"


def test_dates_come_from_cldr_in_the_agents_time_zone() -> None:
    now = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    new_year_eve = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    # in Shanghai both are on 1 January 2026: today; in UTC the message is from last year
    assert format_datetime(new_year_eve, "zh-CN", zone("Asia/Shanghai"), now=now) == "07:00"
    assert format_datetime(new_year_eve, "en", zone("UTC"), now=now) == "Dec 31, 2025"
    # and in New York both are still on 31 December
    assert format_datetime(new_year_eve, "en", zone("America/New_York"), now=now) == "18:00"
    naive = datetime(2026, 5, 4, 9, 7)  # stored naive means UTC
    assert format_datetime(naive, "en", zone("UTC"), style="full") == "May 4, 2026, 09:07"
    assert format_datetime(naive, "zh-CN", zone("UTC"), style="full") == "2026年5月4日 09:07"
    assert format_datetime(None, "en", zone("UTC")) == ""
    assert format_datetime("", "en", zone("UTC")) == ""


def _node_fmt_time(locale: str, tz: str, values: list[tuple[str, str]]) -> list[str]:
    source = (ROOT / "web" / "static" / "app.js").read_text()
    start = source.index("  var TIME = {")
    end = source.index("/* ---------------------------------------------------------------- "
                       "helpers")
    script = (f"const fmtTime = new Function('locale', 'tz', {json.dumps(source[start:end])} "
              f"+ '; return fmtTime;')({json.dumps(locale)}, {json.dumps(tz)});"
              f"console.log(JSON.stringify({json.dumps(values)}.map(v => fmtTime(v[0], v[1]))));")
    node = shutil.which("node")
    assert node
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30,
                         check=True)
    return list(json.loads(out.stdout))


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for app.js")
@pytest.mark.parametrize(("locale", "tz"), [("en", "UTC"), ("zh-CN", "Asia/Shanghai"),
                                            ("en", "America/Los_Angeles")])
def test_app_js_prints_the_same_dates_as_the_server(locale: str, tz: str) -> None:
    """app.js `fmtTime` (Intl, in the browser) and `format_datetime` (Babel) are both CLDR:
    the same shapes, the same strings, for live updates and the first render alike."""
    now = datetime.now(UTC).replace(microsecond=0)
    samples = [(now, "short"), (now - timedelta(days=400), "short"),
               (datetime(2024, 3, 1, 6, 5, tzinfo=UTC), "short"),
               (datetime(2026, 11, 24, 18, 5, tzinfo=UTC), "full"), (now, "full")]
    if now.astimezone(zone(tz)).timetuple().tm_yday > 2:
        samples.append((now - timedelta(days=1, hours=1), "short"))  # this year, not today
    values = [(at.isoformat().replace("+00:00", "Z"), style) for at, style in samples]
    expected = [format_datetime(at, locale, zone(tz), style=style)  # type: ignore[arg-type]
                for at, style in samples]
    assert _node_fmt_time(locale, tz, values) == expected


# ---------------------------------------------------------------------- connector strings


class _Strings:
    platform: ClassVar[str] = "demo"
    strings: ClassVar[dict[str, dict[str, str]]] = {
        "en": {"name": "Demo", "error.blocked": "Blocked on Demo."},
        "zh-CN": {"name": "演示", "error.blocked": "在演示平台被屏蔽。"}}


class _NoStrings:
    platform: ClassVar[str] = "bare"


def test_connector_strings_are_merged_under_their_platform() -> None:
    merged = connector_catalog("zh-CN", {"demo": _Strings, "bare": _NoStrings})
    assert merged == {"platform.demo.name": "演示",
                      "platform.demo.error.blocked": "在演示平台被屏蔽。"}
    assert connector_catalog("en", {"bare": _NoStrings, "odd": object()}) == {}


def _translator(locale: str, extra: dict[str, str]) -> Translator:
    t = Translator(locale)
    t.messages = {**base_catalog(locale), **extra}
    return t


def test_the_connector_sentence_comes_first_then_the_generic_one() -> None:
    t = _translator("zh-CN", connector_catalog("zh-CN", {"demo": _Strings}))
    blocked = {"code": "blocked", "message": "The customer blocked the bot."}
    assert pages.delivery_error(t, blocked, "demo") == "在演示平台被屏蔽。"
    assert pages.delivery_error(t, blocked, "other") == "The customer blocked the bot."
    timeout = {"code": "timeout", "message": "The platform did not answer in time"}
    assert pages.delivery_error(t, timeout, "demo") == t("delivery.error.timeout")
    assert pages.delivery_error(t, "a sentence, from before codes", "demo") == \
        "a sentence, from before codes"
    assert pages.delivery_error(t, None) == ""
    assert pages.account_result(t, {"code": "blocked", "message": "x"}, "demo") == \
        "在演示平台被屏蔽。"
    assert pages.account_result(t, {"code": "invalid_auth", "message": "x"}, "demo") == \
        t("accounts.error.invalid_auth")
    assert pages.account_result(t, {"code": "weird", "message": "boom"}, "demo") == \
        t("accounts.error.other", message="boom")
    assert pages.platform_name(t, "demo") == "演示"
    assert pages.platform_name(t, "unregistered") == "unregistered"


def test_credential_labels_come_from_the_connector_else_the_schema() -> None:
    t = _translator("zh-CN", {"platform.demo.cred.token": "令牌",
                              "platform.demo.cred.token.help": "在设置页找到"})
    field = {"name": "token", "label": "Token", "help": "Find it in the settings"}
    assert pages.credential_text(t, "demo", field, "label") == "令牌"
    assert pages.credential_text(t, "demo", field, "help") == "在设置页找到"
    assert pages.credential_text(t, "other", field, "label") == "Token"
    t = _translator("zh-CN", {"platform.demo.mode.webhook": "推送模式",
                              "platform.demo.mode.webhook.help": "推送"})
    assert pages.mode_text(t, "demo", "webhook") == "推送模式"  # the connector's word
    assert pages.mode_text(t, "demo", "webhook", "help") == "推送"
    assert pages.mode_text(t, "demo", "stream") == "stream"  # nothing declared: the name
    assert pages.notice_text(t, "demo", {"key": "notice.x", "text": "As the API says"}) == \
        "As the API says"


def _connector_classes() -> dict[str, Any]:
    from connectors.registry import CONNECTORS

    return dict(CONNECTORS)


def _string_tables() -> list[Any]:
    """connectors/telegram/strings.py itself (whether or not a class has it attached yet) and
    every registered connector's `strings`. A registry that cannot be imported leaves only
    the first; the tests below that import it then fail and say why."""
    from connectors.telegram.strings import STRINGS

    tables = [pytest.param("telegram", STRINGS, id="telegram/strings.py")]
    try:
        classes = _connector_classes()
    except ImportError:
        classes = {}
    tables += [pytest.param(name, getattr(cls, "strings", None) or {}, id=name)
               for name, cls in sorted(classes.items())]
    return tables


@pytest.mark.parametrize(("name", "strings"), _string_tables())
def test_every_connector_says_the_same_things_in_both_languages(name: str,
                                                                strings: Any) -> None:
    assert set(strings) == {"en", "zh-CN"}, name
    en, zh = strings["en"], strings["zh-CN"]
    assert set(en) == set(zh), (name, set(en) ^ set(zh))
    assert "name" in en, name
    for key in en:
        assert en[key].strip() and zh[key].strip(), (name, key)
        assert set(re.findall(r"\{(\w+)\}", en[key])) == set(re.findall(r"\{(\w+)\}", zh[key]))


def test_every_registered_connector_labels_its_credentials() -> None:
    for name, cls in _connector_classes().items():
        strings = getattr(cls, "strings", None) or {}
        for field in getattr(cls, "credential_fields", ()):
            for locale in ("en", "zh-CN"):
                assert f"cred.{field.name}" in strings.get(locale, {}), (name, field.name)


def test_telegram_codes_from_before_the_rewrite_stay_translated() -> None:
    from connectors.telegram.strings import LEGACY_CODES, STRINGS

    for old, new in LEGACY_CODES.items():
        for locale in ("en", "zh-CN"):
            assert STRINGS[locale][f"error.{old}"] == STRINGS[locale][f"error.{new}"]


def test_the_products_catalogues_name_no_platform() -> None:
    """Each platform's words are its connector's: web/locales says no platform name, not
    even in a key."""
    platforms = {"telegram", "botfather", *_connector_classes()}
    for path in LOCALE_DIR.glob("*.json"):
        for key, text in json.loads(path.read_text(encoding="utf-8")).items():
            assert not key.startswith("platform."), (path.name, key)
            words = set(re.findall(r"[a-z]+", f"{key} {text}".lower()))
            assert not words & platforms, (path.name, key, text)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for app.js")
def test_app_js_colours_a_platform_badge_as_the_server_does() -> None:
    source = (ROOT / "web" / "static" / "app.js").read_text()
    start = source.index("  function hueOf(")
    end = source.index("  function platformName(")
    names = ["telegram", "slack", "x", "email", "微信"]
    script = (f"{source[start:end]}\nconsole.log(JSON.stringify({json.dumps(names)}"
              f".map(hueOf)));")
    node = shutil.which("node")
    assert node
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30,
                         check=True)
    assert json.loads(out.stdout) == [str(pages.platform_hue(n)) for n in names]
