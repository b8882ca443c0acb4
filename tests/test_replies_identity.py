"""The agent's name as the customer sees it: signature, bold entity in UTF-16 units, greeting."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.rendering import with_signature
from inbox.models import AgentIdentity, Rendered, TextEntity, utf16_len
from replies.identity import greeting_template
from replies.settings import IdentitySettings
from tests.helpers import telegram_render

GREETINGS = {"zh-CN": "您好，这里是{brand}客服部，我是{name}。",
             "en": "Hi, this is {name} from {brand}."}


def tg(text: str, *, name: str = "王小明", title: str | None = None, first: bool = False,
       locale: str | None = None, **identity: Any) -> Rendered:
    return telegram_render(text, name=name, title=title, identity=IdentitySettings(**identity),
                           first_reply=first, locale=locale)


def entity_text(rendered: Rendered, entity: TextEntity) -> str:
    """Cut an entity out the way Telegram does: by UTF-16 code units."""
    units = rendered.text.encode("utf-16-le")
    return units[entity.offset * 2:(entity.offset + entity.length) * 2].decode("utf-16-le")


def test_signature_is_the_last_line_with_the_name_bold() -> None:
    r = tg("Your order shipped.")
    assert r.text == "Your order shipped.\n\n— 王小明 · Acme"
    assert r.entities == (TextEntity("bold", utf16_len("Your order shipped.\n\n— "), 3),)
    assert entity_text(r, r.entities[0]) == "王小明"


@pytest.mark.parametrize("text", ["Thanks 👍🏽 see you 🇨🇳", "谢谢！😀😀", "𝐁𝐨𝐥𝐝 text", ""])
def test_offsets_count_utf16_units_so_emoji_count_two(text: str) -> None:
    r = tg(text, brand="小店")
    (bold,) = r.entities
    assert entity_text(r, bold) == "王小明"
    if text:
        assert bold.offset == utf16_len(text) + utf16_len("\n\n— ")
    assert r.text.endswith("— 王小明 · 小店")


def test_one_emoji_shifts_the_offset_by_two() -> None:
    (bold,) = tg("👍").entities
    assert bold == TextEntity("bold", 6, 3)  # 👍 is 2 units, "\n\n— " 4; len() would say 5


def test_emoji_in_the_name_itself() -> None:
    r = tg("hi", name="Ann 🌸")
    (bold,) = r.entities
    assert bold.length == 6  # "Ann " 4 + the flower 2
    assert entity_text(r, bold) == "Ann 🌸"


def test_markup_typed_by_the_agent_is_left_as_text() -> None:
    text = "*not bold* <b>nor this</b> [link](http://x) _x_"
    r = tg(text)
    assert r.text.startswith(text + "\n\n")
    assert len(r.entities) == 1  # only the name


@pytest.mark.parametrize(("template", "with_title", "without_title"), [
    ("— {name} · {title} · {brand}", "— 王小明 · 技术支持 · Acme", "— 王小明 · Acme"),
    ("— {name} ({title}) · {brand}", "— 王小明 (技术支持) · Acme", "— 王小明 · Acme"),
    ("— {name}，{title}", "— 王小明，技术支持", "— 王小明"),
    ("— {title} {name}", "— 技术支持 王小明", "— 王小明"),
    ("{brand} | {title} | {name}", "Acme | 技术支持 | 王小明", "Acme | 王小明"),
])
def test_no_title_leaves_no_dangling_separator(template: str, with_title: str,
                                               without_title: str) -> None:
    titled = tg("ok", title="技术支持", signature=template)
    bare = tg("ok", title=None, signature=template)
    assert titled.text == f"ok\n\n{with_title}"
    assert bare.text == f"ok\n\n{without_title}"
    for r in (titled, bare):
        assert [entity_text(r, e) for e in r.entities] == ["王小明"]


def test_unknown_placeholder_is_shown_not_crashed_on() -> None:
    r = tg("ok", signature="— {name} {nmae}")
    assert r.text == "ok\n\n— 王小明 {nmae}"


def test_greeting_on_first_reply_only() -> None:
    kwargs: dict[str, Any] = {"greeting_enabled": True, "greetings": GREETINGS}
    first = tg("请问有什么可以帮您？", first=True, locale="zh-CN", **kwargs)
    later = tg("请问有什么可以帮您？", first=False, locale="zh-CN", **kwargs)
    assert first.text == ("您好，这里是Acme客服部，我是王小明。\n\n请问有什么可以帮您？"
                          "\n\n— 王小明 · Acme")
    assert later.text == "请问有什么可以帮您？\n\n— 王小明 · Acme"
    # the bold is still the signature's name, shifted past the greeting
    assert entity_text(first, first.entities[0]) == "王小明"
    assert first.entities[0].offset == utf16_len(first.text) - utf16_len("王小明 · Acme")


def test_greeting_disabled_or_missing() -> None:
    assert "您好" not in tg("x", first=True, locale="zh-CN", greetings=GREETINGS).text
    assert tg("x", first=True, greeting_enabled=True).text == "x\n\n— 王小明 · Acme"


@pytest.mark.parametrize(("locale", "expected"), [
    ("en", "Hi, this is 王小明 from Acme."),
    ("en-GB", "Hi, this is 王小明 from Acme."),  # language fallback
    ("fr", "您好，这里是Acme客服部，我是王小明。"),  # default locale fallback
    (None, "您好，这里是Acme客服部，我是王小明。"),
])
def test_greeting_locale_fallback(locale: str | None, expected: str) -> None:
    r = tg("x", first=True, locale=locale, greeting_enabled=True, greetings=GREETINGS)
    assert r.text.startswith(expected + "\n\n")


def test_a_plain_signature_helper_for_channels_without_formatting() -> None:
    who = AgentIdentity(name="Li", title="Support", brand="Acme",
                        signature="— {name} · {title}")
    assert with_signature(who, "hello") == "hello\n\n— Li · Support"


@pytest.mark.parametrize(("locale", "expected"), [
    ("zh-hans", "zh-CN"), ("zh-Hans-CN", "zh-CN"), ("zh", "zh-CN"), ("zh-SG", "zh-CN"),
    ("zh-TW", None), ("zh-HK", None), ("zh-Hant", None), ("en-US", "en"), ("fr", None),
])
def test_greeting_locales_keep_traditional_and_simplified_chinese_apart(
        locale: str, expected: str | None) -> None:
    identity = IdentitySettings(greetings={"zh-CN": "简", "en": "en", "zh-TW": ""},
                                greeting_default_locale="nope")
    found = greeting_template(identity, locale)
    assert found == ({"zh-CN": "简", "en": "en"}[expected] if expected else None)


def test_the_customers_locale_chooses_the_greeting() -> None:
    r = tg("x", first=True, locale="zh-hans", greeting_enabled=True, greetings=GREETINGS)
    assert r.text.startswith("您好，这里是Acme客服部")
    assert isinstance(r, Rendered) and r.shown_name == "王小明"
