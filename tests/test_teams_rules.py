"""Routing rules (table-driven, Chinese keywords inside text without spaces) and business
hours with time zones, Chinese public holidays and make-up working days. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from teams import hours
from teams.rules import RuleError, Sample, clean_actions, clean_conditions, decide, reason_text

AFTER_SALES = "t-after"
PRE_SALES = "t-pre"
TECH = "t-tech"

RULES = [
    {"_id": "r-vip", "name": "VIP", "position": 5,
     "conditions": {"labels": ["VIP"]}, "actions": {"team_id": AFTER_SALES,
                                                     "priority": "urgent", "labels": ["vip"]}},
    {"_id": "r-refund", "name": "退款", "position": 10,
     "conditions": {"keywords": ["退款", "退货", "refund"]},
     "actions": {"team_id": AFTER_SALES, "labels": ["refund"], "priority": "high"}},
    {"_id": "r-price", "name": "价格", "position": 20,
     "conditions": {"keywords": ["多少钱", "价格", "ＰＲＩＣＥ"], "kind": "dm"},
     "actions": {"team_id": PRE_SALES}},
    {"_id": "r-en-slack", "name": "English on the team workspace", "position": 30,
     "conditions": {"language": "en", "platform": "slack"}, "actions": {"team_id": TECH}},
    {"_id": "r-night", "name": "after hours", "position": 40,
     "conditions": {"in_business_hours": False}, "actions": {"team_id": TECH,
                                                             "labels": ["night"]}},
]


@pytest.mark.parametrize(("sample", "rule", "team", "labels", "priority"), [
    (Sample(text="你好，我想申请退款"), "r-refund", AFTER_SALES, ["refund"], "high"),
    (Sample(text="我要退货！"), "r-refund", AFTER_SALES, ["refund"], "high"),
    (Sample(text="请问这个多少钱", kind="dm"), "r-price", PRE_SALES, [], None),
    (Sample(text="请问这个多少钱", kind="group"), None, None, [], None),
    (Sample(text="what is the price?", kind="dm"), "r-price", PRE_SALES, [], None),  # NFKC
    (Sample(text="I want a REFUND"), "r-refund", AFTER_SALES, ["refund"], "high"),
    (Sample(text="退款", labels=("VIP",)), "r-vip", AFTER_SALES, ["vip"], "urgent"),
    (Sample(text="hello", language="en-US", platform="slack"), "r-en-slack", TECH, [], None),
    (Sample(text="hello", language="zh-hans", platform="slack"), None, None, [], None),
    (Sample(text="你好"), None, None, [], None),
], ids=lambda v: v if isinstance(v, str) else None)
def test_the_first_matching_rule_decides(sample: Sample, rule: str | None, team: str | None,
                                         labels: list[str], priority: str | None) -> None:
    decision = decide(RULES, sample, lambda team_id: True)
    assert (decision.rule_id, decision.team_id, decision.labels, decision.priority) == (
        rule, team, labels, priority)


def test_business_hours_condition_uses_the_rule_teams_hours() -> None:
    decision = decide(RULES, Sample(text="hi"), lambda team_id: team_id != TECH)
    assert decision.rule_id == "r-night" and decision.labels == ["night"]
    assert decision.matched == {"in_business_hours": False}
    assert reason_text(decision.as_doc()) == "rule “after hours”: outside business hours"
    hit = decide(RULES, Sample(text="我想退款"), lambda t: True).as_doc()
    assert reason_text(hit) == "rule “退款”: keyword “退款” in the first message"


@pytest.mark.parametrize(("conditions", "field"), [
    ({"colour": "red"}, "conditions.colour"),
    ({"kind": "carrier pigeon"}, "conditions.kind"),
    ({"keywords": "退款"}, "conditions.keywords"),
    ({"in_business_hours": "yes"}, "conditions.in_business_hours"),
    ({"platform": "fax"}, "conditions.platform"),
])
def test_conditions_are_validated(conditions: dict[str, object], field: str) -> None:
    with pytest.raises(RuleError) as err:
        clean_conditions(conditions, platforms=("telegram", "slack"))
    assert err.value.field == field


def test_actions_are_validated() -> None:
    with pytest.raises(RuleError, match="must do something"):
        clean_actions({})
    with pytest.raises(RuleError, match="priority"):
        clean_actions({"priority": "whenever"})
    assert clean_actions({"labels": ["a", "a", " "]}) == {"team_id": None, "labels": ["a"],
                                                          "priority": None}


WEEKDAYS = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
SHANGHAI = hours.validate({"timezone": "Asia/Shanghai", "weekly": WEEKDAYS, "holidays": "CN"})


@pytest.mark.parametrize(("at", "open_"), [
    (datetime(2026, 9, 22, 1, 30, tzinfo=UTC), True),    # Tue 09:30 in Shanghai
    (datetime(2026, 9, 22, 0, 30, tzinfo=UTC), False),   # Tue 08:30 in Shanghai
    (datetime(2026, 9, 22, 10, 0, tzinfo=UTC), False),   # Tue 18:00: closed (end excluded)
    (datetime(2026, 9, 21, 23, 0, tzinfo=UTC), False),   # Mon 23:00 UTC = Tue 07:00 local
    (datetime(2026, 10, 1, 2, 0, tzinfo=UTC), False),    # 国庆节, a Thursday
    (datetime(2026, 10, 8, 2, 0, tzinfo=UTC), True),     # Thursday after the Golden Week
    (datetime(2026, 9, 20, 2, 0, tzinfo=UTC), True),     # Sunday, a make-up working day
    (datetime(2026, 10, 10, 2, 0, tzinfo=UTC), True),    # Saturday, a make-up working day
    (datetime(2026, 10, 17, 2, 0, tzinfo=UTC), False),   # an ordinary Saturday
    (datetime(2026, 2, 14, 3, 0, tzinfo=UTC), True),     # Saturday before the Spring Festival
    (datetime(2026, 2, 17, 3, 0, tzinfo=UTC), False),    # 春节 (a Tuesday)
    (datetime(2026, 1, 1, 3, 0, tzinfo=UTC), False),     # 元旦
    (datetime(2026, 1, 4, 3, 0, tzinfo=UTC), True),      # Sunday, worked for 元旦
])
def test_business_hours_in_shanghai_with_chinese_holidays(at: datetime, open_: bool) -> None:
    assert hours.is_open(SHANGHAI, at) is open_


def test_the_same_instant_in_other_time_zones_and_own_dates() -> None:
    berlin = hours.validate({"timezone": "Europe/Berlin", "weekly": WEEKDAYS,
                             "closed_dates": ["2026-12-24"], "open_dates": ["2026-12-26"],
                             "makeup_hours_from": "fri"})
    at = datetime(2026, 9, 22, 1, 30, tzinfo=UTC)  # 03:30 in Berlin
    assert hours.is_open(berlin, at) is False
    assert hours.is_open(berlin, datetime(2026, 9, 22, 8, 0, tzinfo=UTC)) is True  # DST, 10:00
    assert hours.is_open(berlin, datetime(2026, 12, 24, 10, 0, tzinfo=UTC)) is False
    assert hours.is_open(berlin, datetime(2026, 12, 26, 10, 0, tzinfo=UTC)) is True  # Saturday
    assert hours.is_open(None, at) is True


@pytest.mark.parametrize(("doc", "field"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"weekly": {"mon": [["18:00", "09:00"]]}}, "weekly.mon"),
    ({"weekly": {"funday": []}}, "weekly"),
    ({"holidays": "XX"}, "holidays"),
    ({"closed_dates": ["tomorrow"]}, "closed_dates"),
])
def test_business_hours_are_validated(doc: dict[str, object], field: str) -> None:
    with pytest.raises(hours.HoursError, match=field.replace(".", r"\.")):
        hours.validate(doc)
