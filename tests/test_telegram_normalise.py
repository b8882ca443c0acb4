"""Telegram normaliser: golden fixtures, explicit rules, malformed input, fuzzing."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.telegram.normalise import UnparseableUpdate
from connectors.telegram.normalise import normalise_update as normalise
from inbox.models import AccountId, Ignored, InboundMessage, Interaction
from tests.helpers_normalise import FIXTURES as FIXTURE_ROOT
from tests.helpers_normalise import Fixture, all_fixture_files, as_json, inbound_fixtures

ACCOUNT = AccountId("acc-telegram-1")
BOT_ID = "7000000001"
FIXTURES = inbound_fixtures("telegram")
TOKEN_SHAPE = re.compile(r"\d{8,10}:[A-Za-z0-9_-]{35}")


def load(name: str) -> dict[str, Any]:
    (fixture,) = [f for f in FIXTURES if str(f) == name]
    payload = fixture.payload
    assert isinstance(payload, dict)
    return payload


def message(name: str) -> InboundMessage:
    result = normalise(load(name), ACCOUNT, BOT_ID)
    assert isinstance(result, InboundMessage), result
    return result


@pytest.mark.parametrize("fixture", FIXTURES, ids=str)
def test_golden(fixture: Fixture) -> None:
    result = normalise(fixture.payload, ACCOUNT, BOT_ID)
    if isinstance(result, InboundMessage):
        assert result.raw == fixture.payload
    fixture.check(as_json(result))


def test_every_required_scenario_has_a_fixture() -> None:
    names = {str(f) for f in FIXTURES}
    required = {
        "message__private_text", "message__group_text", "message__supergroup_reply",
        "edited_message__private_text", "message__photo_caption", "message__document",
        "message__voice", "message__video_forward_legacy", "message__sticker",
        "message__location", "message__forwarded_user", "message__new_chat_members",
        "message__pinned_message", "my_chat_member__bot_added", "poll__closed",
        "message__own_echo", "message__private_chinese",
    }
    assert required <= names


def test_no_fixture_contains_a_token() -> None:
    for path in all_fixture_files():
        assert not TOKEN_SHAPE.search(path.read_text(encoding="utf-8")), path.name
    readme = FIXTURE_ROOT / "README.md"
    assert not TOKEN_SHAPE.search(readme.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- explicit rules


def test_private_text() -> None:
    msg = message("message__private_text")
    assert (msg.platform, msg.kind, msg.thread_key) == ("telegram", "dm", "123456789")
    assert msg.external_id == "123456789:1"
    assert msg.author.name == "Lin Wei" and msg.author.handle == "linwei_cn"
    assert msg.platform_ts == datetime(2025, 2, 6, 10, 47, 1, tzinfo=UTC)
    assert msg.thread_title is None and msg.reply_to is None and not msg.is_edit


def test_group_and_supergroup() -> None:
    group = message("message__group_text")
    assert group.kind == "group" and group.thread_title == "XLion Webhook test Group 2"
    reply = message("message__supergroup_reply")
    assert reply.reply_to == "-1001971186208:5346"
    assert reply.external_id == "-1001971186208:5350"


def test_forum_topic_root_is_not_a_reply() -> None:
    assert message("message__forum_topic_text").reply_to is None


def test_edit_keeps_external_id() -> None:
    msg = message("edited_message__private_text")
    assert msg.external_id == "12345678:12345"
    assert msg.edited_at == datetime.fromtimestamp(1508825379, UTC)


def test_photo_takes_largest_size_and_caption() -> None:
    msg = message("message__photo_caption")
    (photo,) = msg.attachments
    assert msg.text == "photo description"
    assert (photo.type, photo.mime, photo.size) == ("photo", "image/jpeg", 47844)
    assert photo.extra["width"] == 950


def test_forward_origins() -> None:
    assert message("message__forwarded_user").forwarded_from == \
        "НЕ СТАЛИН (@iamnotstalin_person)"
    assert message("message__forwarded_hidden_user").forwarded_from == "Mikhail"
    assert message("message__forwarded_channel").forwarded_from == "Тестовый канал (@testsichee)"
    assert message("message__video_forward_legacy").forwarded_from == \
        "Ирина Киселёва (@Irina_V_Kiseleva)"


def test_anonymous_admin_is_attributed_to_the_chat() -> None:
    author = message("message__anonymous_admin").author
    assert author.user_id == "chat:-1001971186208" and author.name == "Тест"


@pytest.mark.parametrize(("name", "reason"), [
    ("message__own_echo", "own message"),
    ("message__new_chat_members", "service message: new_chat_members"),
    ("message__pinned_message", "service message: pinned_message"),
    ("message__forum_topic_created", "service message: forum_topic_created"),
    ("my_chat_member__bot_added", "unsupported update: my_chat_member"),
    ("poll__closed", "unsupported update: poll"),
    ("channel_post__pinned", "channel post"),
])
def test_ignored(name: str, reason: str) -> None:
    assert normalise(load(name), ACCOUNT, BOT_ID) == Ignored(reason)


def test_own_echo_passes_without_bot_id() -> None:
    assert isinstance(normalise(load("message__own_echo"), ACCOUNT), InboundMessage)


def test_missing_is_bot_is_false() -> None:
    update = load("message__private_text")
    del update["message"]["from"]["is_bot"]
    result = normalise(update, ACCOUNT, BOT_ID)
    assert isinstance(result, InboundMessage) and result.author.is_bot is False


def test_sticker_mime_by_kind() -> None:
    update = load("message__sticker")
    assert message("message__sticker").attachments[0].mime == "image/webp"
    update["message"]["sticker"]["is_video"] = True
    result = normalise(update, ACCOUNT, BOT_ID)
    assert isinstance(result, InboundMessage) and result.attachments[0].mime == "video/webm"


def test_animation_is_not_doubled_as_document() -> None:
    update = load("message__private_text")
    gif = {"file_id": "CgADBAAD4DUAAoceZAe2WiE9y0crrAI", "file_size": 65837,
           "file_name": "a.gif.mp4", "mime_type": "video/mp4"}
    update["message"] |= {"animation": gif, "document": gif}
    result = normalise(update, ACCOUNT, BOT_ID)
    assert isinstance(result, InboundMessage)
    assert [a.type for a in result.attachments] == ["animation"]


# --------------------------------------------------------------------------- malformed input


def _mutated(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    update = copy.deepcopy(load("message__supergroup_reply"))
    target = update
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return update


_DELETE = object()


@pytest.mark.parametrize(("path", "value"), [
    (("update_id",), _DELETE),
    (("update_id",), "1"),
    (("message", "chat"), _DELETE),
    (("message", "chat"), "chat"),
    (("message", "chat", "id"), "-1001971186208"),
    (("message", "chat", "id"), [1]),
    (("message", "chat", "id"), True),
    pytest.param(("message", "chat", "id"), 10**5000, id="chat-id-5000-digits"),
    (("message", "chat", "type"), None),
    (("message", "message_id"), 1.5),
    (("message", "date"), "2024-10-07"),
    (("message", "date"), 10**20),
    (("message", "date"), -1),
    (("message", "from", "id"), None),
    (("message", "from", "is_bot"), "no"),
    (("message", "from", "first_name"), {"x": 1}),
    (("message", "text"), ["a"]),
    (("message", "reply_to_message"), 5),
    (("message", "reply_to_message", "message_id"), "5"),
    (("message", "from"), _DELETE),
    (("message",), []),
])
def test_malformed_raises(path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(UnparseableUpdate):
        normalise(_mutated(path, value), ACCOUNT, BOT_ID)


@pytest.mark.parametrize("update", [[], "update", 42, None, {"update_id": 1}])
def test_not_an_update(update: Any) -> None:
    with pytest.raises(UnparseableUpdate):
        normalise(update, ACCOUNT, BOT_ID)


@pytest.mark.parametrize("media", [
    {"photo": []}, {"photo": ["x"]}, {"photo": [{"file_id": "a"}]}, {"document": "doc"},
    {"document": {"file_size": 1}}, {"location": {"latitude": "1", "longitude": 2}},
    {"voice": {"file_id": 3}}, {"video": {"file_id": "v", "duration": [1]}},
])
def test_malformed_media_raises(media: dict[str, Any]) -> None:
    update = load("message__private_text")
    del update["message"]["text"]
    update["message"] |= media
    with pytest.raises(UnparseableUpdate):
        normalise(update, ACCOUNT, BOT_ID)


def test_edit_without_edit_date_raises() -> None:
    update = load("edited_message__private_text")
    del update["edited_message"]["edit_date"]
    with pytest.raises(UnparseableUpdate):
        normalise(update, ACCOUNT, BOT_ID)


def test_huge_and_deep_inputs() -> None:
    update = load("message__private_text")
    update["message"]["text"] = "长" * 1_000_000
    result = normalise(update, ACCOUNT, BOT_ID)
    assert isinstance(result, InboundMessage) and len(result.text) == 1_000_000
    deep: Any = {}
    for _ in range(5000):
        deep = {"a": deep}
    update["message"]["reply_markup"] = deep
    assert isinstance(normalise(update, ACCOUNT, BOT_ID), InboundMessage)
    with pytest.raises(UnparseableUpdate):
        normalise({"update_id": 1, "message": {"chat": deep}}, ACCOUNT, BOT_ID)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_FIELDS = ["update_id", "message", "edited_message", "chat", "id", "type", "from", "date",
           "message_id", "text", "photo", "document", "sticker", "location", "forward_origin",
           "reply_to_message", "edit_date", "file_id", "caption", "sender_chat"]


def _mutations(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    paths = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                paths.append((*path, key))
                walk(child, (*path, key))

    walk(base, ())

    def apply(args: tuple[tuple[str, ...], Any]) -> Any:
        path, value = args
        update = copy.deepcopy(base)
        target = update
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return update

    return st.tuples(st.sampled_from(paths), json_values).map(apply)


def _outcome(update: Any) -> None:
    try:
        result = normalise(update, ACCOUNT, BOT_ID)
    except UnparseableUpdate:
        return
    assert isinstance(result, InboundMessage | Interaction | Ignored)
    if isinstance(result, InboundMessage | Interaction):
        json.dumps(as_json(result), ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=6) | json_values)
def test_fuzz_arbitrary_json_never_crashes(update: Any) -> None:
    _outcome(update)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([str(f) for f in FIXTURES]).flatmap(lambda n: _mutations(load(n))))
def test_fuzz_mutated_fixtures_never_crash(update: Any) -> None:
    _outcome(update)
