"""Slack normaliser: golden fixtures, explicit rules, malformed input, fuzzing."""

from __future__ import annotations

import copy
import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import AccountContext
from connectors.slack.mrkdwn import escape, to_plain
from connectors.slack.normalise import (
    HANDLERS,
    UnreadablePayload,
    dispatch_key,
    normalise,
    when,
)
from inbox.models import Ignored, InboundMessage, Interaction, MessageDeleted, ReactionChanged
from tests.helpers_normalise import FIXTURES as FIXTURE_ROOT
from tests.helpers_normalise import Fixture, as_json, inbound_fixtures

FIXTURES = inbound_fixtures("slack")
ACCOUNT = AccountContext(
    id="acc-slack-1", platform="slack", name="Acme", credentials={}, mode="events",
    platform_id="T0ACME:A0APP",
    info={"team_id": "T0ACME", "bot_user_id": "U0BOT", "bot_id": "B0BOT", "app_id": "A0APP"})
BARE = AccountContext(id="acc-slack-1", platform="slack", name="Acme", credentials={})
# xoxb-/xoxp-/xapp- tokens as Slack issues them: digits, dashes, then a long secret
TOKEN_SHAPE = re.compile(r"xox[abposr]-\d+-[A-Za-z0-9-]{10,}|xapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{20,}")


def load(name: str) -> dict[str, Any]:
    (fixture,) = [f for f in FIXTURES if str(f) == name]
    payload = fixture.payload
    assert isinstance(payload, dict)
    return payload


def message(name: str, account: AccountContext = ACCOUNT) -> InboundMessage:
    result = normalise(load(name), account)
    assert isinstance(result, InboundMessage), result
    return result


def with_options(**options: Any) -> AccountContext:
    return dataclasses.replace(ACCOUNT, options=options)


@pytest.mark.parametrize("fixture", FIXTURES, ids=str)
def test_golden(fixture: Fixture) -> None:
    result = normalise(fixture.payload, ACCOUNT)
    if not isinstance(result, Ignored):
        assert result.raw == fixture.payload
    fixture.check(as_json(result))


def test_every_handler_has_a_fixture_and_required_scenarios_exist() -> None:
    keys = {dispatch_key(f.payload) for f in FIXTURES}
    assert set(HANDLERS) <= keys
    names = {str(f) for f in FIXTURES}
    assert any("own_echo" in n for n in names)
    unknown = [f for f in FIXTURES if str(f).startswith("unknown__")]
    assert unknown and all(dispatch_key(f.payload) is None for f in unknown)


def test_no_fixture_contains_a_token() -> None:
    for path in sorted((FIXTURE_ROOT / "slack").rglob("*.json")):
        assert not TOKEN_SHAPE.search(path.read_text(encoding="utf-8")), path.name
    assert not TOKEN_SHAPE.search((FIXTURE_ROOT / "README.md").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- conversations


def test_dm_is_one_conversation() -> None:
    first, second = message("message__dm"), message("message__dm_followup")
    assert (first.kind, first.thread_key) == ("dm", "D0CUST01")
    assert second.thread_key == first.thread_key
    assert first.external_id == "D0CUST01:1596183880.004200"
    assert first.platform_ts == datetime(2020, 7, 31, 8, 24, 40, 4200, tzinfo=UTC)
    assert first.author.user_id == "U0CUST" and first.author.name == "U0CUST"
    assert first.reply_to is None and not first.is_edit


def test_channel_thread_is_the_conversation() -> None:
    top = message("message__channel_top_level")
    reply = message("message__channel_thread_reply")
    broadcast = message("message.thread_broadcast__channel")
    assert top.kind == "group"
    assert top.thread_key == "C0SUPPORT:1610261659.001400"
    assert reply.thread_key == broadcast.thread_key == top.thread_key
    assert reply.reply_to == broadcast.reply_to == "C0SUPPORT:1610261659.001400"
    assert top.reply_to is None


def test_group_dm_and_private_channel_are_threads() -> None:
    mpim = message("message__mpim")
    private = message("message.file_share__private_channel")
    assert (mpim.kind, mpim.thread_key) == ("group", "G0MPIM01:1610262000.000500")
    assert (private.kind, private.thread_key) == ("group", "G0PRIVATE:1610493715.001000")


def test_channel_as_conversation_option() -> None:
    account = with_options(channel_as_conversation=True)
    top = message("message__channel_top_level", account)
    reply = message("message__channel_thread_reply", account)
    assert top.thread_key == reply.thread_key == "C0SUPPORT"
    assert reply.reply_to == "C0SUPPORT:1610261659.001400"
    assert message("message__dm", account).thread_key == "D0CUST01"
    # the key names no thread: the reply route does (a top-level message starts its own)
    assert top.reply_route == {"thread_ts": top.external_id.split(":")[1]}
    assert reply.reply_route == {"thread_ts": "1610261659.001400"}


def test_reply_route_names_the_thread_only_where_the_key_does_not() -> None:
    """What the host hands back to `send` when an agent answers this message."""
    assert message("message__dm").reply_route is None  # answered in the DM itself
    in_thread = message("message__dm_thread_reply")
    assert (in_thread.thread_key, in_thread.reply_route) == (
        "D0CUST01", {"thread_ts": "1596183880.004200"})
    assert message("message__channel_thread_reply").reply_route is None
    assert message("message__channel_top_level").reply_route is None


def test_app_mention_and_its_message_twin_are_one_message() -> None:
    mention = message("app_mention__channel")
    twin = message("message__app_mention_twin")
    assert mention.external_id == twin.external_id == "C0SUPPORT:1595926230.009600"
    assert mention.thread_key == twin.thread_key
    assert mention.text == twin.text == "Hi there! Can someone reset my 2FA?"


# --------------------------------------------------------------------------- edits, deletes


def test_edit_keeps_the_original_identity() -> None:
    edit = message("message.message_changed__dm")
    assert edit.external_id == "D0CUST01:1596183880.004200"
    assert edit.text == "Hi, my invoice INV-2041 is wrong: I was charged twice"
    assert edit.edited_at == when("1596183950.000000")
    assert edit.platform_ts == message("message__dm").platform_ts
    assert edit.thread_key == "D0CUST01"


def test_link_preview_is_not_an_edit() -> None:
    result = normalise(load("message.message_changed__link_preview"), ACCOUNT)
    assert isinstance(result, Ignored) and "link preview" in result.reason


def test_delete_names_the_deleted_message() -> None:
    result = normalise(load("message.message_deleted__dm"), ACCOUNT)
    assert isinstance(result, MessageDeleted)
    assert result.external_id == message("message__dm_followup").external_id
    assert result.deleted_at == when("1596183999.007100")


def test_tombstoned_thread_root_is_a_delete() -> None:
    payload = load("message.message_changed__dm")
    payload["event"]["message"].update(subtype="tombstone", text="This message was deleted.")
    payload["event"]["message"].pop("edited")
    result = normalise(payload, ACCOUNT)
    assert isinstance(result, MessageDeleted)
    assert result.external_id == "D0CUST01:1596183880.004200"


# --------------------------------------------------------------------------- bots, own echoes


@pytest.mark.parametrize("name", ["message__own_echo", "message.bot_message__own_echo_customized"])
@pytest.mark.parametrize("account", [ACCOUNT, BARE], ids=["with_info", "without_info"])
def test_own_messages_are_ignored(name: str, account: AccountContext) -> None:
    assert normalise(load(name), account) == Ignored("own message")


def test_own_edit_and_delete_are_ignored() -> None:
    payload = load("message.message_changed__dm")
    for part in ("message", "previous_message"):
        payload["event"][part].update(user="U0BOT", bot_id="B0BOT")
    assert normalise(payload, ACCOUNT) == Ignored("own message")
    deleted = load("message.message_deleted__dm")
    deleted["event"]["previous_message"].update(user="U0BOT", bot_id="B0BOT")
    assert normalise(deleted, ACCOUNT) == Ignored("own message")


@pytest.mark.parametrize("name", ["message__other_bot", "message.bot_message__classic_bot"])
def test_other_bots_only_when_the_account_opts_in(name: str) -> None:
    assert normalise(load(name), ACCOUNT) == Ignored("bot message")
    accepted = message(name, with_options(accept_bot_messages=True))
    assert accepted.author.is_bot
    assert accepted.author.name in ("deploy-bot", "classic-bot")


# --------------------------------------------------------------------------- content


def test_files_become_attachments() -> None:
    msg = message("message.file_share__dm")
    (att,) = msg.attachments
    assert (att.type, att.file_id, att.name, att.size, att.mime) == (
        "photo", "F0INVOICE", "invoice.png", 92582, "image/png")
    assert att.extra["url_private_download"].endswith("/download/invoice.png")
    assert msg.text == "Here is the invoice"
    (doc,) = message("message.file_share__private_channel").attachments
    assert doc.type == "document" and doc.mime == "text/plain"


def test_chinese_text_is_kept() -> None:
    msg = message("message__dm_chinese")
    assert msg.text.startswith("你好，我的订单")
    assert msg.thread_key == "D0CUST04"


def test_reactions() -> None:
    added = normalise(load("reaction_added__message"), ACCOUNT)
    removed = normalise(load("reaction_removed__message"), ACCOUNT)
    assert isinstance(added, ReactionChanged) and isinstance(removed, ReactionChanged)
    assert (added.external_id, added.reaction, added.added) == (
        "D0CUST01:1596184000.000100", "heart_eyes", True)
    assert (removed.external_id, removed.added) == ("C0SUPPORT:1610261659.001400", False)
    own = load("reaction_added__message")
    own["event"]["user"] = "U0BOT"
    assert normalise(own, ACCOUNT) == Ignored("own reaction")
    on_file = load("reaction_added__message")
    on_file["event"]["item"] = {"type": "file", "file": "F0INVOICE"}
    assert isinstance(normalise(on_file, ACCOUNT), Ignored)


def test_payloads_the_connector_answers_or_skips() -> None:
    verification = {"token": "x", "challenge": "abc", "type": "url_verification"}
    assert isinstance(normalise(verification, ACCOUNT), Ignored)
    assert dispatch_key(verification) is None
    assert isinstance(normalise({"type": "app_rate_limited", "team_id": "T0ACME"}, ACCOUNT),
                      Ignored)
    join = load("message__channel_top_level")
    join["event"]["subtype"] = "channel_join"
    assert dispatch_key(join) is None
    assert normalise(join, ACCOUNT) == Ignored("unsupported event: message.channel_join")
    me = load("message__channel_top_level")
    me["event"]["subtype"] = "me_message"
    assert isinstance(normalise(me, ACCOUNT), InboundMessage)


def test_mrkdwn_becomes_readable_text() -> None:
    raw = ("<@U0BOT> ask <@U0CUST2|lin> in <#C0SUPPORT|support> &lt;3 &amp; see "
           "<https://acme.example/docs|the docs> or <https://acme.example> <!here> "
           "<mailto:a@acme.example|a@acme.example>")
    assert to_plain(raw, "U0BOT") == (
        "ask @lin in #support <3 & see the docs (https://acme.example/docs) or "
        "https://acme.example @here a@acme.example")
    assert to_plain(escape("<!channel> & <https://x|y>")) == "<!channel> & <https://x|y>"


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("payload", [
    None, [], "text", {}, {"type": None}, {"type": "event_callback"},
    {"type": "event_callback", "event": "message"},
    {"type": "event_callback", "event": {"channel": "C1"}},
])
def test_unreadable_payloads_raise(payload: Any) -> None:
    with pytest.raises(UnreadablePayload):
        normalise(payload, ACCOUNT)


@pytest.mark.parametrize(("field", "value"), [
    ("ts", "yesterday"), ("ts", 1596183880.0042), ("ts", "99999999999.000001"),
    ("channel", None), ("channel", "D0:CUST"), ("text", ["a"]), ("user", 42),
    ("files", "F1"), ("thread_ts", "x.y"), ("user_profile", "me"),
])
def test_bad_fields_raise(field: str, value: Any) -> None:
    payload = copy.deepcopy(load("message.file_share__dm"))
    payload["event"][field] = value
    with pytest.raises(UnreadablePayload):
        normalise(payload, ACCOUNT)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=8), children, max_size=4), max_leaves=12)
EVENT_KEYS = st.sampled_from(["type", "subtype", "channel", "channel_type", "user", "ts",
                              "thread_ts", "text", "files", "message", "previous_message",
                              "deleted_ts", "item", "reaction", "event_ts", "bot_id",
                              "bot_profile", "user_profile", "edited"])


def _survives(payload: Any) -> None:
    try:
        result = normalise(payload, ACCOUNT)
    except UnreadablePayload:
        return
    assert isinstance(result, Ignored | InboundMessage | MessageDeleted | ReactionChanged
                      | Interaction)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), EVENT_KEYS, JSON)
def test_fuzz_mutated_fixtures(fixture: Fixture, key: str, value: Any) -> None:
    payload = copy.deepcopy(fixture.payload)
    target = payload.get("event")
    if isinstance(target, dict):
        if isinstance(target.get("message"), dict) and key in ("ts", "text", "user", "edited"):
            target = target["message"]
        target[key] = value
    _survives(payload)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "event", "api_app_id", "authorizations"]),
                       JSON, max_size=4))
def test_fuzz_envelopes(payload: dict[str, Any]) -> None:
    _survives(payload)
