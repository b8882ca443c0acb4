"""The X connector's declarations, strings in both languages, and its notices."""

from __future__ import annotations

import re

from connectors.x import errors
from connectors.x.connector import XConnector
from connectors.x.strings import STRINGS
from tests.kits.x import FakeRuntime, account


def test_same_keys_in_every_language_and_no_empty_text() -> None:
    assert set(STRINGS) == {"en", "zh-CN"}
    assert set(STRINGS["en"]) == set(STRINGS["zh-CN"])
    assert all(v.strip() for lang in STRINGS.values() for v in lang.values())
    for key, text in STRINGS["en"].items():  # the same placeholders in both
        assert set(re.findall(r"\{(\w+)\}", text)) == set(
            re.findall(r"\{(\w+)\}", STRINGS["zh-CN"][key])), key


def test_every_declared_thing_has_its_strings() -> None:
    en = STRINGS["en"]
    for field in XConnector.credential_fields:
        assert f"cred.{field.name}" in en and f"cred.{field.name}.help" in en
        assert field.secret
    for option in XConnector.option_fields:
        assert f"option.{option.name}" in en and f"option.{option.name}.help" in en
    for mode in XConnector.modes:
        assert f"mode.{mode}" in en and f"mode.{mode}.help" in en
    codes = set(errors.HUMAN) | set(errors._V1_CODES.values()) | {
        "invalid_auth", "cannot_connect", "unknown", "activity_setup", "too_long",
        "no_recipient", "no_reply_target", "server", "network", "timeout"}
    assert {c for c in codes if f"error.{c}" not in en} == set()
    assert "alternative.dm" in en
    assert (XConnector.platform, XConnector.modes, XConnector.webhook_modes) == (
        "x", ("polling", "activity"), ("activity",))
    assert XConnector.app_webhook and XConnector.ack_deadline == 10.0


def snapshot(usage: dict[str, int], options: dict[str, object] | None = None,
             info: dict[str, object] | None = None) -> dict[str, object]:
    """What the host hands `notices`: the stored account, this month's usage."""
    return {"info": info or {}, "options": options or {}, "mode": "polling",
            "status": "active", "usage": usage, "inbound_note": None}


def test_notices_show_the_estimated_spend_from_the_stored_usage() -> None:
    conn = XConnector(account(None), FakeRuntime())
    (notice,) = conn.notices(snapshot({}))
    assert notice.key == "notice.spend" and notice.values["spent"] == "0.00"
    (notice,) = conn.notices(snapshot({"post_reads": 100, "dm_reads": 10, "posts": 3,
                                       "polls": 40}))
    assert notice.values == {"spent": "0.65", "budget": "", "reads": 110, "writes": 3}
    (notice,) = conn.notices(snapshot({"dm_reads": 150, "posts": 60},
                                      {"monthly_budget_usd": 2}))
    assert notice.key == "notice.budget_exceeded" and notice.values["spent"] == "2.40"
    assert notice.level == "warning"
    assert notice.key in STRINGS["zh-CN"]
    assert STRINGS["zh-CN"]["notice.budget_exceeded"].format(**notice.values)


def test_a_spent_budget_in_activity_mode_says_events_keep_coming() -> None:
    conn = XConnector(account(None, mode="activity"), FakeRuntime())
    (notice,) = conn.notices({**snapshot({"dm_reads": 600}, {"monthly_budget_usd": 5}),
                              "mode": "activity"})
    assert notice.key == "notice.budget_exceeded_activity" and notice.level == "warning"


def test_prices_are_account_options_with_todays_defaults() -> None:
    conn = XConnector(account(None), FakeRuntime())
    (cheap,) = conn.notices(snapshot({"dm_reads": 100}, {"price_dm_read_usd": 0.001}))
    assert cheap.values["spent"] == "0.10"
    defaults = {o.name: o.default for o in XConnector.option_fields}
    assert defaults["price_dm_read_usd"] == 0.010 and defaults["price_post_read_usd"] == 0.005


def test_a_stretched_poll_says_so_in_both_languages() -> None:
    conn = XConnector(account(None), FakeRuntime())
    found = conn.notices(snapshot({"dm_reads": 100}, {"monthly_budget_usd": 5},
                                  {"budget_pace": {"wait_s": 600, "stretched": True,
                                                   "exhausted": False}}))
    assert [n.key for n in found] == ["notice.budget", "notice.budget_slowed"]
    assert found[1].values["minutes"] == 10
    for lang in STRINGS.values():
        assert "10" in lang["notice.budget_slowed"].format(**found[1].values)
