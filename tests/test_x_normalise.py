"""X normaliser: golden fixtures, explicit rules (kinds, edits, own posts, aliases), fuzzing."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.x import normalise as nz
from connectors.x.normalise import HANDLERS, UnreadablePayload, dispatch_key, normalise
from inbox.models import Ignored, InboundMessage
from tests.helpers_normalise import Fixture, as_json, inbound_fixtures
from tests.kits.x import OUR_ID, account

FIXTURES = inbound_fixtures("x")
ACCOUNT = account(None)


def load(name: str) -> dict[str, Any]:
    (fixture,) = [f for f in FIXTURES if str(f) == name]
    payload = fixture.payload
    assert isinstance(payload, dict)
    return payload


def message(name: str, payload: dict[str, Any] | None = None) -> InboundMessage:
    result = normalise(payload if payload is not None else load(name), ACCOUNT)
    assert isinstance(result, InboundMessage), result
    return result


def _plain(result: Any) -> Any:
    return [as_json(r) for r in result] if isinstance(result, list) else as_json(result)


@pytest.mark.parametrize("fixture", FIXTURES, ids=str)
def test_golden(fixture: Fixture) -> None:
    result = normalise(fixture.payload, ACCOUNT)
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, InboundMessage):
            assert item.raw == fixture.payload
    plain = _plain(result)
    fixture.check(plain if isinstance(plain, dict) else {"events": plain})


def test_every_handler_has_a_fixture_and_the_contract_ones_exist() -> None:
    keys = {dispatch_key(f.payload) for f in FIXTURES}
    assert set(HANDLERS) <= keys
    names = {str(f) for f in FIXTURES}
    assert any("own_echo" in n for n in names)
    unknown = [f for f in FIXTURES if str(f).startswith("unknown__")]
    assert unknown and all(dispatch_key(f.payload) is None for f in unknown)
    for f in FIXTURES:
        if not str(f).startswith("unknown__"):
            assert str(f).split("__")[0] == dispatch_key(f.payload), f


# --------------------------------------------------------------------------- kinds & keys


def test_polled_mention() -> None:
    msg = message("tweet__mention")
    assert (msg.platform, msg.kind, msg.thread_key) == ("x", "mention", "2080765813578191303")
    assert msg.external_id == "2080765813578191303" and not msg.is_edit
    assert msg.author.user_id == "2222222222222222222" and msg.author.handle == "OtherUser"
    assert msg.author.avatar_url and msg.author.avatar_url.startswith("https://pbs.twimg.com/")
    assert msg.platform_ts == datetime(2026, 7, 24, 21, 23, 23, tzinfo=UTC)


def test_webhook_mention_normalises_like_the_polled_one() -> None:
    polled = as_json(message("tweet__mention"))
    pushed = as_json(message("post.mention.create__text"))
    bare = as_json(message("post.mention.create__bare_envelope"))
    assert polled == pushed == bare


def test_reply_under_our_post_is_a_comment_thread() -> None:
    msg = message("tweet__comment_thread")
    assert msg.kind == "comment_thread" and msg.thread_key == "1234567890"
    assert msg.reply_to == "1234567890" and msg.thread_aliases == ()
    activity = message("post.reply.create__text")
    assert activity.kind == "comment_thread"
    assert activity.thread_key == "2080761390344937796"


def test_reply_deep_in_a_thread_aliases_the_post_it_answers() -> None:
    msg = message("tweet__reply_deep_in_thread")
    assert msg.kind == "mention" and msg.thread_key == "1234567890"
    assert msg.thread_aliases == ("1234567892",)
    assert msg.thread_keys == ("1234567890", "1234567892")


def test_quote_is_an_alias_and_repost_is_ignored() -> None:
    payload = load("tweet__mention")
    quoted = copy.deepcopy(payload)
    quoted["data"]["referenced_tweets"] = [{"type": "quoted", "id": "1999"}]
    assert message("", quoted).thread_aliases == ("1999",)
    repost = copy.deepcopy(payload)
    repost["data"]["referenced_tweets"] = [{"type": "retweeted", "id": "1999"}]
    assert isinstance(normalise(repost, ACCOUNT), Ignored)


def test_edited_post_keeps_the_first_id_and_sets_edited_at() -> None:
    msg = message("tweet__edited")
    assert msg.external_id == "1234567890"
    assert msg.edited_at == datetime(2024, 1, 15, 12, 10, tzinfo=UTC)
    assert msg.text == "@ExampleUser Updated text (edited)"
    unedited = load("tweet__edited")
    unedited["data"]["id"] = "1234567890"
    assert message("", unedited).edited_at is None


def test_media_attachments_in_order() -> None:
    msg = message("tweet__media")
    assert [(a.type, a.file_id) for a in msg.attachments] == [
        ("video", "13_1263145212760805376"), ("photo", "3_1234567890")]
    assert msg.attachments[0].extra["preview_image_url"].endswith("EYeX7akWsAIP1_1.jpg")
    assert msg.attachments[1].extra["url"] == "https://pbs.twimg.com/media/example.jpg"


def test_missing_media_object_keeps_a_stub() -> None:
    payload = load("tweet__media")
    payload["includes"]["media"] = []
    assert [a.type for a in message("", payload).attachments] == ["unknown", "unknown"]


def test_a_media_object_with_an_unreadable_key_keeps_a_stub() -> None:
    """Found by the fuzzer: a `media_key` that is not a string (here a list) was used as a
    dictionary key and raised TypeError instead of leaving that attachment a stub."""
    payload = load("tweet__media")
    payload["includes"]["media"][0]["media_key"] = []
    assert [(a.type, a.file_id) for a in message("", payload).attachments] == [
        ("unknown", "13_1263145212760805376"), ("photo", "3_1234567890")]


def test_dm_keys_by_conversation() -> None:
    msg = message("dm_event__text")
    assert (msg.kind, msg.thread_key) == ("dm", f"9876543210-{OUR_ID}")
    assert msg.author.name == "Example Customer"
    pushed = message("dm.received__text")
    assert pushed.thread_key == f"{OUR_ID}-2222222222222222222"
    assert pushed.platform_ts == datetime.fromtimestamp(1784928224.372, tz=UTC)


def test_dm_with_media_and_chinese_text() -> None:
    msg = message("dm_event__chinese_with_media")
    assert msg.text.startswith("这是我收到的商品照片")
    assert [a.file_id for a in msg.attachments] == ["3_1583157113245011970"]


@pytest.mark.parametrize("name", ["tweet__own_echo", "dm_event__own_echo", "dm.sent__own_echo",
                                  "post.create__own_echo"])
def test_own_posts_and_dms_are_ignored(name: str) -> None:
    assert normalise(load(name), ACCOUNT) == Ignored("own message")


def test_group_and_service_dm_events_are_ignored() -> None:
    assert isinstance(normalise(load("dm_event__group_message"), ACCOUNT), Ignored)
    assert isinstance(normalise(load("dm_event__participants_join"), ACCOUNT), Ignored)


def test_event_for_another_account_is_ignored() -> None:
    payload = load("post.mention.create__text")
    payload["data"]["filter"]["user_id"] = "42"
    assert normalise(payload, ACCOUNT) == Ignored("event for another account (42)")


def test_legacy_dm_conversation_joins_the_polled_one() -> None:
    pushed = load("dm.received__text")
    sender = pushed["data"]["payload"]["direct_message_events"][0]["message_create"]
    sender["sender_id"] = "9876543210"
    assert message("", pushed).thread_key == message("dm_event__text").thread_key


def test_a_delivery_with_two_dms_gives_two_messages() -> None:
    payload = load("dm.received__text")
    events = payload["data"]["payload"]["direct_message_events"]
    second = copy.deepcopy(events[0])
    second["id"] = "2080765901528535097"
    events.append(second)
    result = normalise(payload, ACCOUNT)
    assert isinstance(result, list) and [m.external_id for m in result] == [
        "2080765901528535096", "2080765901528535097"]


def test_split_posts_keeps_only_what_each_post_refers_to() -> None:
    page = {"data": [load("tweet__mention")["data"], load("tweet__media")["data"]],
            "includes": {"users": load("tweet__mention")["includes"]["users"]
                         + load("tweet__media")["includes"]["users"],
                         "media": load("tweet__media")["includes"]["media"]}}
    first, second = nz.split_posts(page)
    assert [u["id"] for u in first["includes"]["users"]] == ["2222222222222222222"]
    assert "media" not in first["includes"] and len(second["includes"]["media"]) == 2
    assert nz.split_posts({"meta": {"result_count": 0}}) == []


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("payload", [
    {"data": {"id": "1", "text": "x"}},  # no author_id
    {"data": {"id": 1, "text": "x", "author_id": "2"}},
    {"data": {"id": "1", "text": "x", "author_id": "2", "created_at": "yesterday"}},
    {"data": {"id": "1", "event_type": "MessageCreate", "sender_id": "2"}},
    {"data": {"event_type": "dm.received", "payload": {"direct_message_events": "no"},
              "filter": {}}},
])
def test_unreadable_payloads_raise(payload: dict[str, Any]) -> None:
    with pytest.raises(UnreadablePayload):
        normalise(payload, ACCOUNT)


def test_not_an_object_raises_and_unknown_is_ignored() -> None:
    with pytest.raises(UnreadablePayload):
        normalise([1, 2], ACCOUNT)
    assert normalise({"hello": "world"}, ACCOUNT) == Ignored("not an X event we know")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c,
                                                                         max_size=5),
                    max_leaves=20)


def _mutations(draw: Any) -> Any:
    base = copy.deepcopy(draw(st.sampled_from(FIXTURES)).payload)
    node: Any = base
    for _ in range(draw(st.integers(0, 4))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if draw(st.booleans()):
                node[key] = draw(JSON)
                break
            node = node[key]
        elif isinstance(node, list) and node:
            node = node[draw(st.integers(0, len(node) - 1))]
    return base


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_only_unreadable_or_ignored_escape(data: st.DataObject) -> None:
    payload = data.draw(st.builds(lambda: None).flatmap(lambda _: st.composite(
        lambda draw: _mutations(draw))()))
    try:
        result = normalise(payload, ACCOUNT)
    except UnreadablePayload:
        return
    for item in result if isinstance(result, list) else [result]:
        assert isinstance(item, InboundMessage | Ignored)
        json.dumps(as_json(item), ensure_ascii=False)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_fuzz_random_json(payload: Any) -> None:
    with contextlib.suppress(UnreadablePayload):
        normalise(payload, ACCOUNT)
