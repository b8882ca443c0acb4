"""Platform storm: one bot gets 429s and 5xx for a while, another bot must not notice.

Runs on a real listening server (tests.live) with two bots in the Telegram sandbox; replies go
API → outbox → delivery worker → python-telegram-bot → sandbox. Sized by the caller.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from connectors.telegram.sandbox import TelegramSandbox
from tests.chaos_scenarios import Figures
from tests.live import Live, wait_for

STORMY_TOKEN = "7000000101:AAstorm-sandbox-token-0123456789abcd"
CALM_TOKEN = "7000000102:AAcalm-sandbox-token-0123456789abcde"


@dataclass
class Storm(Figures):
    storm_seconds: float
    replies_per_account: int
    calm_latency_median_s: float
    calm_latency_max_s: float
    calm_delivered_during_storm: int  # of those queued at least 1 s before the storm ended
    calm_queued_during_storm: int
    stormy_failed_calls: dict[str, int]
    stormy_recovery_s: float
    stormy_order_violations: int
    duplicates: int
    failed: int


async def _account(live: Live, sandbox: TelegramSandbox, token: str, name: str) -> str:
    resp = await live.http.post(f"{live.url}/api/accounts", headers=live.headers, json={
        "platform": "telegram", "name": name, "mode": "webhook",
        "api_base_url": sandbox.base_url, "credentials": {"bot_token": token}})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def _conversations(live: Live, sandbox: TelegramSandbox, token: str, first_chat: int,
                         count: int) -> list[str]:
    chats = [first_chat + i for i in range(count)]
    for chat in chats:
        sandbox.inject_text(token, chat, "hello, anyone there?")

    async def all_there() -> Any:
        docs = await live.services.db.conversations.find(
            {"thread_key": {"$in": [str(c) for c in chats]}}).to_list()
        return docs if len(docs) == count else None
    docs = await wait_for(all_there, timeout=30)
    by_chat = {d["thread_key"]: str(d["_id"]) for d in docs}
    return [by_chat[str(c)] for c in chats]


async def platform_storm(live: Live, sandbox: TelegramSandbox, *, storm_seconds: float,
                         conversations: int, replies_per_conversation: int,
                         recovery_timeout: float = 60.0) -> Storm:
    sandbox.add_bot(STORMY_TOKEN, 7000000101, "stormy_bot", "Stormy")
    sandbox.add_bot(CALM_TOKEN, 7000000102, "calm_bot", "Calm")
    await _account(live, sandbox, STORMY_TOKEN, "stormy")
    await _account(live, sandbox, CALM_TOKEN, "calm")
    stormy = await _conversations(live, sandbox, STORMY_TOKEN, 650_000_000, conversations)
    calm = await _conversations(live, sandbox, CALM_TOKEN, 660_000_000, conversations)

    # the storm: 502s, a 429 with retry_after, then 500s until it is over
    sandbox.fail(STORMY_TOKEN, "sendMessage", 502, times=4)
    sandbox.fail(STORMY_TOKEN, "sendMessage", 429, retry_after=1, times=1)
    sandbox.fail(STORMY_TOKEN, "sendMessage", 500, times=None)
    storm_started = time.monotonic()
    queued_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    stop_watching = asyncio.Event()

    async def watch() -> None:  # when each reply reached the platform
        while not stop_watching.is_set():
            now = time.monotonic()
            for token in (STORMY_TOKEN, CALM_TOKEN):
                for call in sandbox.sent(token):
                    seen_at.setdefault(call["params"]["text"].split("\n")[0], now)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    total = conversations * replies_per_conversation
    gap = storm_seconds * 0.7 / total  # spread the replies over most of the storm
    expected: dict[str, list[str]] = defaultdict(list)
    for n in range(replies_per_conversation):
        for c in range(conversations):
            for label, convs in (("stormy", stormy), ("calm", calm)):
                text = f"{label} c{c} r{n:03d}"
                resp = await live.http.post(
                    f"{live.url}/api/conversations/{convs[c]}/messages", headers=live.headers,
                    json={"text": text})
                assert resp.status == 202, await resp.text()
                queued_at[text] = time.monotonic()
                expected[convs[c]].append(text)
            await asyncio.sleep(gap)
    calm_texts = [t for t in queued_at if t.startswith("calm")]
    stormy_texts = [t for t in queued_at if t.startswith("stormy")]
    await wait_for(lambda: _all_seen(seen_at, calm_texts), timeout=max(10.0, storm_seconds))
    remaining = storm_seconds - (time.monotonic() - storm_started)
    # a loaded machine may queue the last calm replies after the storm: only those queued with
    # a second of the storm left must get through during it
    in_storm = [t for t in calm_texts if queued_at[t] - storm_started < storm_seconds - 1.0]
    calm_during_storm = sum(1 for t in in_storm if seen_at[t] - storm_started < storm_seconds)
    if remaining > 0:
        await asyncio.sleep(remaining)
    sandbox.clear_failures(STORMY_TOKEN)
    storm_over = time.monotonic()
    await wait_for(lambda: _all_seen(seen_at, stormy_texts), timeout=recovery_timeout)
    recovery = max(seen_at[t] for t in stormy_texts) - storm_over
    await wait_for(lambda: _all_sent(live, total * 2), timeout=30)
    stop_watching.set()
    await watcher

    latencies = [seen_at[t] - queued_at[t] for t in calm_texts]
    received: dict[str, list[str]] = defaultdict(list)
    for token in (STORMY_TOKEN, CALM_TOKEN):
        for call in sandbox.sent(token):
            received[str(call["params"]["chat_id"])].append(call["params"]["text"].split("\n")[0])
    conv_chat = {d["_id"]: d["thread_key"] async for d in live.services.db.conversations.find()}
    violations = sum(1 for conv, texts in expected.items()
                     if [t for t in received[conv_chat[_oid(conv)]] if t in texts] != texts)
    duplicates = sum(len(v) - len(set(v)) for v in received.values())
    failed = await live.services.db.messages.count_documents({"delivery.state": "failed"})
    failed_calls = Counter(str(c["status"]) for c in sandbox.calls(STORMY_TOKEN)
                           if c["method"] == "sendMessage" and c["status"] != 200)
    return Storm(storm_seconds, total, round(statistics.median(latencies), 3),
                 round(max(latencies), 3), calm_during_storm, len(in_storm), dict(failed_calls),
                 round(recovery, 2), violations, duplicates, failed)


def _oid(value: str) -> Any:
    from bson import ObjectId

    return ObjectId(value)


async def _all_seen(seen: dict[str, float], texts: list[str]) -> bool:
    return all(t in seen for t in texts)


async def _all_sent(live: Live, n: int) -> bool:
    return await live.services.db.messages.count_documents(
        {"direction": "out", "delivery.state": "sent"}) == n
