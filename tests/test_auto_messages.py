"""Automatic messages end to end through the Telegram sandbox, on a fake clock for the quiet
period and business hours (nothing sleeps to wait for a timer): welcome under the team's name,
"number N in the queue" and its updates only when the place halves, outside business hours
with the next opening time instead of the welcome, closing on resolve, never twice within the
quiet period; off by default; an automatic message is no agent's first response."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from connectors.telegram.sandbox import TelegramSandbox
from inbox.clock import FixedClock
from tests.conftest import BOT_TOKEN
from tests.helpers import keep_expiring
from tests.live import Live, add_account, wait_for

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Shanghai
HOURS = {"timezone": "Asia/Shanghai", "holidays": "CN",
         "weekly": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}


async def call(live: Live, method: str, path: str, json: Any = None) -> tuple[int, Any]:
    async with live.http.request(method, live.url + path, json=json,
                                 headers=live.headers) as resp:
        return resp.status, (await resp.json() if resp.content_type == "application/json"
                             else None)


def write(tg: TelegramSandbox, chat: int, text: str) -> None:
    tg.inject_text(BOT_TOKEN, chat, text, user={"id": chat, "is_bot": False,
                                                "first_name": f"客户{chat}",
                                                "language_code": "zh-hans"})


async def routed(live: Live, text: str) -> dict[str, Any]:
    async def found() -> Any:
        msg = await live.services.db.messages.find_one({"text": text})
        return msg and await live.services.db.conversations.find_one(
            {"_id": ObjectId(msg["conversation_id"]), "routing": {"$exists": True}})
    return dict(await wait_for(found))


def texts_to(tg: TelegramSandbox, chat: int) -> list[str]:
    return [s["params"]["text"] for s in tg.sent(BOT_TOKEN)
            if s["params"]["chat_id"] == chat]


async def sent_to(tg: TelegramSandbox, chat: int, n: int) -> list[str]:
    async def enough() -> list[str] | None:
        got = texts_to(tg, chat)
        return got if len(got) >= n else None
    result: list[str] = await wait_for(enough)
    return result


async def test_welcome_queue_after_hours_and_closing(e2e: Live, tg: TelegramSandbox) -> None:
    auto = e2e.services.answers.auto
    clock = auto.clock = FixedClock(T0)
    await keep_expiring(e2e.services.db, "auto_sent")  # T0 falls out of its 31 days in 2027
    await add_account(e2e, tg)
    me = str(e2e.admin["_id"])
    status, team = await call(e2e, "POST", "/api/teams", {
        "name": "After-sales", "names": {"zh-CN": "售后"}, "members": [me],
        "business_hours": HOURS})
    assert status == 201
    tid = team["id"]
    await call(e2e, "POST", "/api/routing-rules", {"name": "all", "conditions": {},
                                                  "actions": {"team_id": tid}})
    status, settings = await call(e2e, "GET", f"/api/teams/{tid}/auto-messages")
    assert status == 200 and not any(settings[k]["enabled"] for k in
                                     ("welcome", "queue", "after_hours", "closing"))

    # off by default: nothing is sent
    write(tg, 100, "在吗")
    quiet = await routed(e2e, "在吗")
    assert await auto.tick() == 0
    await call(e2e, "PATCH", f"/api/conversations/{quiet['_id']}", {"status": "resolved"})
    assert tg.sent(BOT_TOKEN) == []

    status, settings = await call(e2e, "PATCH", f"/api/teams/{tid}/auto-messages", {
        "welcome": {"enabled": True, "quiet_s": 3600,
                    "texts": {"zh-CN": "您好，这里是{brand}{team}，马上为您服务。"}},
        "queue": {"enabled": True, "quiet_s": 0,
                  "texts": {"zh-CN": "客服都在忙，您排在第 {position} 位。"}},
        "queue_update": {"enabled": True, "quiet_s": 0,
                         "texts": {"zh-CN": "您现在排在第 {position} 位。"}},
        "after_hours": {"enabled": True, "quiet_s": 3600,
                        "texts": {"zh-CN": "现在下班了，我们 {next_open} 上班后回复您。"}},
        "closing": {"enabled": True, "quiet_s": 600,
                    "texts": {"zh-CN": "感谢咨询，再见。", "en": "Thanks, bye."}}})
    assert status == 200 and settings["welcome"]["enabled"], settings
    status, _ = await call(e2e, "PATCH", f"/api/teams/{tid}/auto-messages",
                             {"closing": {"enabled": True, "quiet_s": -1}})
    assert status == 400

    # four customers while nobody is online: welcome, then their place in the queue
    for chat in (11, 12, 13, 14):
        write(tg, chat, f"你好 {chat}")
        await routed(e2e, f"你好 {chat}")
    for n, chat in enumerate((11, 12, 13, 14), start=1):
        assert await sent_to(tg, chat, 2) == [
            "您好，这里是Acme售后，马上为您服务。\n\n— 售后 · Acme",
            f"客服都在忙，您排在第 {n} 位。\n\n— 售后 · Acme"]
    first = await e2e.services.db.messages.find_one({"automatic": "welcome"})
    assert first and first["agent_name"] == "售后" and first["delivery"]["state"] in (
        "queued", "sent")
    conv = await e2e.services.db.conversations.find_one({"_id": ObjectId(
        first["conversation_id"])})
    assert conv and conv.get("first_response_at") is None and not conv.get("responders")

    # an agent comes online with room for one: 11 is served; 12 moves 2 → 1 (halved: told),
    # 13 moves 3 → 2 and 14 4 → 3 (not halved: not told)
    await e2e.services.db.agents.update_one({"_id": e2e.admin["_id"]},
                                            {"$set": {"max_open": 1}})
    status, _ = await call(e2e, "PATCH", "/api/agents/me", {"availability": "online"})
    assert status == 200
    await auto.tick()
    assert (await sent_to(tg, 12, 3))[2] == "您现在排在第 1 位。\n\n— 售后 · Acme"
    assert await auto.tick() == 0
    assert len(texts_to(tg, 13)) == 2 and len(texts_to(tg, 14)) == 2

    # 11 resolved: the closing message under the team's name; 12 is served, so 13 moves
    # 3 → 1 and 14 4 → 2, both told
    conv11 = await routed(e2e, "你好 11")
    cid = str(conv11["_id"])
    status, _ = await call(e2e, "PATCH", f"/api/conversations/{cid}", {"status": "resolved"})
    assert status == 200
    assert (await sent_to(tg, 11, 3))[2] == "感谢咨询，再见。\n\n— 售后 · Acme"
    await auto.tick()
    assert (await sent_to(tg, 13, 3))[2].startswith("您现在排在第 1 位。")
    assert (await sent_to(tg, 14, 3))[2].startswith("您现在排在第 2 位。")

    # never twice within the quiet period (600 s for closing), whatever the clock did meanwhile
    for _ in range(2):
        await call(e2e, "PATCH", f"/api/conversations/{cid}", {"status": "open"})
        await call(e2e, "PATCH", f"/api/conversations/{cid}", {"status": "resolved"})
    clock.advance(599)
    await call(e2e, "PATCH", f"/api/conversations/{cid}", {"status": "open"})
    await call(e2e, "PATCH", f"/api/conversations/{cid}", {"status": "resolved"})
    clock.advance(2)  # past the 600 s quiet period
    await call(e2e, "PATCH", f"/api/conversations/{cid}", {"status": "open"})
    await call(e2e, "PATCH", f"/api/conversations/{cid}", {"status": "resolved"})
    assert len(await sent_to(tg, 11, 4)) == 4
    assert texts_to(tg, 11)[3].startswith("感谢咨询")
    status, _ = await call(e2e, "PATCH", f"/api/conversations/{cid}", {"status": "open"})
    assert len(texts_to(tg, 11)) == 4

    # 20:00 in Shanghai: the after-hours message with the next opening, instead of a welcome
    clock.advance(10 * 3600)
    write(tg, 15, "有人吗")
    await routed(e2e, "有人吗")
    got = await sent_to(tg, 15, 1)
    assert got[0].startswith("现在下班了，我们 12月2日周三 09:00 上班后回复您。"), got
    assert not any("马上为您服务" in t for t in got)
    kinds = sorted({m["automatic"] async for m in e2e.services.db.messages.find(
        {"automatic": {"$exists": True}})})
    assert kinds == ["after_hours", "closing", "queue", "queue_update", "welcome"]
    status, page = await call(e2e, "GET", f"/api/conversations/{cid}/messages")
    assert status == 200
    shown = [(m["automatic"], m["agent_name"]) for m in page["items"] if m["direction"] == "out"]
    assert shown[-2:] == [("queue", "售后"), ("welcome", "售后")]  # newest first


def test_the_next_opening_skips_public_holidays_in_the_customers_language() -> None:
    from zoneinfo import ZoneInfo

    from measures.auto import opening_text
    from measures.hours import next_open

    evening = datetime(2026, 9, 30, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    opens = next_open(HOURS, evening)  # 国庆节: closed 1–7 October 2026
    assert opens == datetime(2026, 10, 8, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert opening_text(opens, "Asia/Shanghai", "zh-CN") == "10月8日周四 09:00"
    assert opening_text(opens, "Asia/Shanghai", "en") == "Thu, Oct 8 09:00"
    # shown in the team's zone, whatever zone the moment is given in
    assert opening_text(opens.astimezone(UTC), "Asia/Shanghai", "en") == "Thu, Oct 8 09:00"
