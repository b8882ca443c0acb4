"""Satisfaction surveys end to end on a live server with the Telegram sandbox: resolving sends
the survey through the outbox under the name the customer saw, with inline buttons 1–5; the
customer presses one (a callback query, answered), then writes a comment; a second customer
types "2" instead; neither answer opens or reopens a conversation, the low score notifies the
team's lead, and the report counts both. Then, on a fake clock: what counts as a typed
score, a low score configured to reopen, and an answer past the window that is just a
message (and reopens, as any message does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from connectors.telegram.sandbox import TelegramSandbox
from inbox.clock import FixedClock
from inbox.db import Database
from measures import sla
from measures.counters import Tally
from measures.csat import score_in
from measures.service import Measures
from measures.settings import CsatSettings, SlaSettings
from replies.settings import IdentitySettings
from teams.service import TeamWork
from teams.settings import TeamSettings
from tests.conftest import BOT_TOKEN
from tests.live import Live, add_account, live_server, wait_for


@pytest.fixture
async def live(mongo_uri: str, db: Database, tmp_path: Path,
               tg: TelegramSandbox) -> AsyncIterator[Live]:
    async with live_server(mongo_uri, db.name, tmp_path, csat={"enabled": True},
                           sla={"check_every_s": 0.2}) as server:
        yield server


async def call(live: Live, method: str, path: str, json: Any = None) -> tuple[int, Any]:
    async with live.http.request(method, live.url + path, json=json,
                                 headers=live.headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def conversation_of(live: Live, tg: TelegramSandbox, chat: int, text: str) -> str:
    tg.inject_text(BOT_TOKEN, chat, text, user={"id": chat, "is_bot": False,
                                                "first_name": "小明", "language_code": "zh-hans"})

    async def found() -> Any:
        msg = await live.services.db.messages.find_one({"text": text})
        return msg and await live.services.db.sla_timers.find_one(
            {"_id": msg["conversation_id"]})
    return str((await wait_for(found))["_id"])


def survey_sent(tg: TelegramSandbox, chat: int) -> dict[str, Any] | None:
    for entry in tg.sent(BOT_TOKEN):
        message = entry["result"]
        if message["chat"]["id"] == chat and message.get("reply_markup"):
            return dict(message)
    return None


async def test_survey_buttons_comment_and_a_typed_low_score(live: Live,
                                                            tg: TelegramSandbox) -> None:
    db = live.services.db
    await add_account(live, tg)
    conv_id = await conversation_of(live, tg, 501, "退货怎么办？")
    status, _ = await call(live, "POST", f"/api/conversations/{conv_id}/messages",
                           {"text": "您好，请在订单页申请退货。"})
    assert status == 202
    await wait_for(lambda: _sent_count(tg, 501, 1))

    status, body = await call(live, "PATCH", f"/api/conversations/{conv_id}",
                              {"status": "resolved"})
    assert status == 200 and body["status"] == "resolved"
    survey = await wait_for(lambda: _async(survey_sent(tg, 501)))
    buttons = survey["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["1", "2", "3", "4", "5"]
    assert [b["callback_data"] for b in buttons] == [f"csat:{n}" for n in range(1, 6)]
    assert survey["text"].startswith("您对本次服务满意吗")  # the customer's language
    assert "李经理" in survey["text"]  # under the name the customer saw

    tg.press_button(BOT_TOKEN, 501, survey["message_id"], "csat:4")

    async def scored() -> Any:
        conv = await db.conversations.find_one({"_id": ObjectId(conv_id)})
        return conv if (conv or {}).get("csat") else None
    conv = await wait_for(scored)
    assert conv["csat"]["score"] == 4 and conv["csat"]["agent_id"] == str(live.admin["_id"])
    assert conv["status"] == "resolved"
    await wait_for(lambda: _async(tg.answered(BOT_TOKEN)))  # the button stops spinning

    tg.inject_text(BOT_TOKEN, 501, "很快就解决了，谢谢", user={"id": 501, "is_bot": False,
                                                            "first_name": "小明"})

    async def commented() -> Any:
        found = await db.conversations.find_one({"_id": ObjectId(conv_id)})
        return found if ((found or {}).get("csat") or {}).get("comment") else None
    await wait_for(commented)

    async def settled_resolved() -> Any:
        await live.services.store.settle()
        found = await db.conversations.find_one({"_id": ObjectId(conv_id)})
        return found if found and found["status"] == "resolved" else None
    await wait_for(settled_resolved)
    status, body = await call(live, "GET", f"/api/conversations/{conv_id}")
    assert body["csat"] == {"score": 4, "comment": "很快就解决了，谢谢",
                            "agent_id": str(live.admin["_id"]), "team_id": None,
                            "at": body["csat"]["at"]}
    assert body["status"] == "resolved"
    assert await db.conversations.count_documents({}) == 1  # never a new conversation

    # a second customer, in a team with a lead: types "2" on the survey instead of pressing
    lead = await live.services.agents.create("lead", display_name="王组长", password="x" * 10)
    status, team = await call(live, "POST", "/api/teams", {"name": "售后"})
    assert status == 201
    status, _ = await call(live, "PUT", f"/api/teams/{team['id']}/leads",
                           {"leads": [str(lead["_id"])]})
    assert status == 200
    second = await conversation_of(live, tg, 502, "快递丢了")
    status, _ = await call(live, "PATCH", f"/api/conversations/{second}",
                           {"team_id": team["id"]})
    assert status == 200
    await call(live, "POST", f"/api/conversations/{second}/messages", {"text": "已补发。"})
    await call(live, "PATCH", f"/api/conversations/{second}", {"status": "resolved"})
    await wait_for(lambda: _async(survey_sent(tg, 502)))
    tg.inject_text(BOT_TOKEN, 502, "２", user={"id": 502, "is_bot": False,
                                              "first_name": "小红"})

    async def low() -> Any:
        return await db.notifications.find_one({"agent_id": str(lead["_id"]),
                                                "kind": "csat_low"})
    note = await wait_for(low)
    assert note["score"] == 2 and note["conversation_id"] == second
    await wait_for(lambda: _resolved(live, second))

    today = datetime.now(UTC).date().isoformat()

    async def counted() -> Any:  # the counters are written at the end of the follower's batch
        status, report = await call(live, "GET", f"/api/reports?from={today}&to={today}"
                                                  "&group_by=channel&tz=UTC")
        assert status == 200
        return report if report["rows"] and report["rows"][0]["csat_avg"] == 3.0 else None
    (row,) = (await wait_for(counted))["rows"]
    assert row["key"] == "telegram" and row["opened"] == 2 and row["resolved"] == 2
    assert row["csat_avg"] == 3.0 and row["csat_response_rate"] == 1.0
    assert row["reopened"] == 0  # survey answers reopen nothing
    assert row["messages_out"] == 2  # the surveys are not agents' replies


async def _resolved(live: Live, conv_id: str) -> Any:
    await live.services.store.settle()
    found = await live.services.db.conversations.find_one({"_id": ObjectId(conv_id)})
    return found if found and found["status"] == "resolved" and found.get("csat") else None


async def _async(value: Any) -> Any:
    return value


async def _sent_count(tg: TelegramSandbox, chat: int, n: int) -> bool:
    return sum(1 for e in tg.sent(BOT_TOKEN) if e["result"]["chat"]["id"] == chat) >= n


def test_what_counts_as_a_typed_score() -> None:
    assert [score_in(t) for t in ("4", " 5 ", "５", "3!", "2。", "10", "4 stars", "", "0")] == \
        [4, 5, 5, 3, 2, None, None, None, None]


async def test_a_low_score_can_reopen_and_a_late_answer_is_just_a_message(db: Database) -> None:
    clock = FixedClock(datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    work = TeamWork(db, TeamSettings(routing=False, search_indexing=False), "Acme", clock)
    await work.setup()
    measures = Measures(db, clock, SlaSettings(follow=False),
                        CsatSettings(enabled=True, low_action="reopen", answer_window_s=3600),
                        IdentitySettings(), teams=work, routing=False)
    measures.open_wait = 0
    await measures.setup()
    tally = Tally()
    convs = []
    for n in (1, 2):
        conv = {"_id": ObjectId(), "platform": "chat", "account_id": "a", "status": "resolved",
                "assignee_id": None, "team_id": None, "created_at": clock.now(), "labels": [],
                "kind": "dm", "thread_key": f"t{n}", "sk": f"{n}"}
        await db.conversations.insert_one(conv)
        await measures.opened(conv, tally)
        await measures.clocks.apply(str(conv["_id"]), lambda t: sla.resolved(t, clock.now()))
        await db.csat_surveys.insert_one({
            "_id": str(conv["_id"]), "n": 1, "state": "waiting", "sent_at": clock.now(),
            "agent_id": "a1", "team_id": None, "channel": "chat", "score": None,
            "comment": None})
        convs.append(conv)
    clock.advance(60)
    message = {"_id": ObjectId(), "conversation_id": str(convs[0]["_id"]), "direction": "in",
               "received_at": clock.now(), "sk": "x1", "text": "1"}
    await measures.handle_messages([message])
    first = await db.conversations.find_one({"_id": convs[0]["_id"]})
    assert first is not None and first["csat"]["score"] == 1 and first["status"] == "open"
    assert (await measures.clocks.get(str(convs[0]["_id"])) or {})["status"] == "open"

    clock.advance(7200)  # past the answer window: "5" is an ordinary message, it reopens
    late = {"_id": ObjectId(), "conversation_id": str(convs[1]["_id"]), "direction": "in",
            "received_at": clock.now(), "sk": "x2", "text": "5"}
    await measures.handle_messages([late])
    second = await db.conversations.find_one({"_id": convs[1]["_id"]})
    assert second is not None and "csat" not in second
    counters = await db.report_counters.find({"part": "all"}).to_list()
    assert sum(c["c"]["all"].get("reopened", 0) for c in counters) == 2
    assert sum(c["c"]["all"].get("csat_n", 0) for c in counters) == 1
