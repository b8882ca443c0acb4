"""X length and rendering: twitter-text v3 conformance, DMs, the signature suffix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.x.text import DM_LIMIT, POST_LIMIT, measure, render, signature
from inbox.models import AgentIdentity, RenderContext
from tests.kits.x import FakeRuntime, account

CASES_FILE = Path(__file__).parent / "fixtures" / "x" / "twitter_text_v3_cases.json"
CASES: list[dict[str, Any]] = json.loads(CASES_FILE.read_text(encoding="utf-8"))["cases"]
POST = RenderContext(kind="mention")
AGENT = AgentIdentity(name="Zhang Kai", brand="Acme")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["description"][:40])
def test_weighted_length_matches_twitter_text_conformance(case: dict[str, Any]) -> None:
    got = measure(case["text"], POST)
    assert (got.used, got.limit, got.unit) == (case["weightedLength"], POST_LIMIT, "weighted")
    assert got.fits == case["valid"]


def test_cases_record_their_source() -> None:
    source = json.loads(CASES_FILE.read_text(encoding="utf-8"))["source"]
    assert source["repo"] == "twitter/twitter-text"
    assert source["path"] == "conformance/validate.yml"


def test_cjk_counts_double_urls_23_emoji_2() -> None:
    assert measure("你好", POST).used == 4
    assert measure("see https://example.com/a/very/long/path/indeed", POST).used == 4 + 23
    assert measure("👍🏽", POST).used == 2


def test_dm_counts_characters_against_10000() -> None:
    got = measure("你好" * 3000, RenderContext(kind="dm"))
    assert (got.used, got.limit, got.unit, got.fits) == (6000, DM_LIMIT, "characters", True)
    assert measure("a" * 10_001, RenderContext(kind="mention", target="dm")).over == 1


def test_render_appends_the_signature_and_greets() -> None:
    out = render(AGENT, "We are on it.", POST, options={})
    assert out.text == "We are on it. ^ZK" and out.shown_name == "Zhang Kai"
    greeted = AgentIdentity(name="张凯", greeting="您好，这里是Acme客服部，我是张凯。")
    out = render(greeted, "正在处理。", RenderContext(kind="dm"), options={})
    assert out.text == "您好，这里是Acme客服部，我是张凯。\n正在处理。 ^张"
    assert out.extra == {"channel": "dm"}


def test_signature_template_is_configurable_per_account() -> None:
    out = render(AGENT, "Done.", POST, options={"signature_template": " —{name}, {brand}"})
    assert out.text == "Done. —Zhang Kai, Acme"
    assert signature(" ^{initials} {unknown}", AGENT) == " ^ZK {unknown}"
    assert signature(" ^{initials", AGENT) == " ^{initials"


def test_an_over_long_chinese_reply_is_measured_with_its_signature() -> None:
    from connectors.x.connector import XConnector

    connector = XConnector(account("http://127.0.0.1:9"), FakeRuntime())
    text = "您好，非常抱歉给您带来不便。" * 10  # 140 CJK characters: 280 weighted on its own
    rendered = connector.render(AGENT, text, POST)
    size = connector.measure(rendered.text, POST)
    assert size.used == 280 + 4 and size.over == 4 and not size.fits
    assert connector.measure(text, POST).fits
