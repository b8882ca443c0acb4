"""Canned-reply search: the shortcut, the title, its pinyin and pinyin initials (`/thlc` and
`/tuihuo` find 退货流程; `/thk` finds it through the 退款 its body promises), the body; the body
in the customer's language; placeholders filled with the customer's name, the name the policy
gives the agent, the brand and the team. Through a live server with the Telegram sandbox."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from connectors.telegram.sandbox import TelegramSandbox
from measures.canned import keys_of, match_score
from tests.conftest import BOT_TOKEN
from tests.live import Live, add_account, wait_for

RETURN = {"shortcut": "return", "title": "退货流程", "scope": "everyone", "body": {
    "zh-CN": "{customer_name}您好，我是{brand}{team}的{agent_name}。退货审核通过后 3 天内退款。",
    "en": "Hi {customer_name}, this is {agent_name} of {brand} {team}: once your return is "
          "approved we refund you within 3 days."}}
OTHERS = [
    {"shortcut": "track", "title": "物流查询", "scope": "everyone",
     "body": {"zh-CN": "请提供订单号，我帮您查快递。"}},
    {"shortcut": "thanks", "title": "Thank you", "scope": "everyone",
     "body": {"en": "Thanks for your patience!"}},
    {"shortcut": "vip", "title": "VIP退款", "scope": "everyone",
     "body": {"zh-CN": "VIP 会员退款优先处理。"}},
]


def test_match_order_and_pinyin_keys() -> None:
    ret = keys_of(RETURN)
    assert (ret.title_pinyin, ret.title_initials) == ("tuihuoliucheng", "thlc")
    assert match_score("return", ret) == 100  # the shortcut itself
    assert match_score("thlc", ret) > match_score("tuihuo", ret) > match_score("退货", ret) > 0
    assert match_score("thk", ret) > 0  # 退(t)货(h)…退(t)款(k) among the body's initials
    assert match_score("xyz", ret) == 0
    vip = keys_of(OTHERS[2])
    assert vip.title_initials == "viptk" and match_score("viptk", vip) > 0


async def call(live: Live, method: str, path: str, json: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with live.http.request(method, live.url + path, json=json,
                                 headers=headers or live.headers) as resp:
        return resp.status, await resp.json()


async def conversation(live: Live, tg: TelegramSandbox, chat: int, text: str,
                       language: str) -> str:
    tg.inject_text(BOT_TOKEN, chat, text, user={
        "id": chat, "is_bot": False, "first_name": "小明" if language == "zh-hans" else "Sam",
        "username": f"c{chat}", "language_code": language})

    async def stored() -> Any:
        msg = await live.services.db.messages.find_one({"text": text})
        return msg and await live.services.db.conversations.find_one(
            {"_id": ObjectId(msg["conversation_id"])})
    return str((await wait_for(stored))["_id"])


async def test_search_locale_and_placeholders(e2e: Live, tg: TelegramSandbox) -> None:
    await add_account(e2e, tg)
    status, team = await call(e2e, "POST", "/api/teams", {
        "name": "After-sales", "names": {"zh-CN": "售后"}, "title": "售后部",
        "members": [str(e2e.admin["_id"])]})
    assert status == 201
    await call(e2e, "POST", "/api/routing-rules", {"name": "all", "conditions": {},
                                                  "actions": {"team_id": team["id"]}})
    for body in (RETURN, *OTHERS):
        status, made = await call(e2e, "POST", "/api/canned-replies", body)
        assert status == 201, made

    async def shortcuts(q: str, **extra: str) -> list[str]:
        status, body = await call(e2e, "GET", "/api/canned-replies?" + "&".join(
            [f"q={q}", *(f"{k}={v}" for k, v in extra.items())]))
        assert status == 200, body
        return [i["shortcut"] for i in body["items"]]

    assert (await shortcuts("/thlc"))[0] == "return"
    assert (await shortcuts("/tuihuo"))[0] == "return"
    assert (await shortcuts("/thk"))[0] == "return"
    assert (await shortcuts("/wl"))[0] == "track"  # 物流查询 → wlcx
    assert (await shortcuts("快递"))[0] == "track"  # in the body
    assert (await shortcuts("/THANK"))[0] == "thanks"  # folded
    assert (await shortcuts("/tk"))[0] == "vip"  # VIP退款 holds 退款 (tk) in its title
    assert await shortcuts("/zzzz") == []

    zh = await conversation(e2e, tg, 801, "我想退货", "zh-hans")
    en = await conversation(e2e, tg, 802, "I want to return this", "en")
    async def both_routed() -> bool:
        return await e2e.services.db.conversations.count_documents(
            {"routing": {"$exists": True}}) == 2
    await wait_for(both_routed)
    status, body = await call(e2e, "GET", f"/api/canned-replies?q=/thlc&conversation_id={zh}")
    hit = body["items"][0]
    assert hit["locale"] == "zh-CN"
    assert hit["text"] == "小明您好，我是Acme售后部的李经理。退货审核通过后 3 天内退款。"
    status, used = await call(e2e, "POST", f"/api/canned-replies/{hit['id']}/use",
                              {"conversation_id": en})
    assert used["locale"] == "en" and used["uses"] == 1
    assert used["text"] == ("Hi Sam, this is 李经理 of Acme 售后部: once your return is "
                            "approved we refund you within 3 days.")
    # a reply written in one language only is offered in it to every customer
    status, body = await call(e2e, "GET", f"/api/canned-replies?q=/thanks&conversation_id={zh}")
    assert body["items"][0]["text"] == "Thanks for your patience!"
