"""Fair assignment under concurrency across two `switchboard serve` processes on one database:
a burst of 200 new conversations, half through each process's webhook. No agent ever holds
more open conversations than their cap (sampled all along), no conversation is routed or
assigned twice, none is left behind (every one is assigned or waits in its team's queue), and
resolving conversations on both processes serves the queue."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from connectors.telegram.sandbox import SECRET_HEADER, TelegramSandbox
from tests.chaos import Serve, add_account, make_updates, open_db, seed_people, webhook_secret
from tests.conftest import BOT_ID, BOT_TOKEN

CAPS = [40, 40, 30, 20, 20]  # 150 slots for 200 conversations: 50 must wait
BURST = 200


@pytest.mark.timeout(240)
async def test_a_burst_across_two_processes_respects_every_cap(
        mongo_uri: str, tmp_path: Path) -> None:
    name = f"t_two_{tmp_path.name[-8:]}"
    client, db = open_db(mongo_uri, name)
    sandbox = TelegramSandbox(webhook_retry_delay=0.05)
    await sandbox.start()
    sandbox.add_bot(BOT_TOKEN, BOT_ID, "acme_support_bot", "Acme Support")
    one = Serve(tmp_path / "one", name, uri=mongo_uri)
    two = Serve(tmp_path / "two", name, uri=mongo_uri)
    try:
        people = await seed_people(db)
        agents = []
        for i, cap in enumerate(CAPS):
            doc = await db.agents.insert_one({
                "login": f"agent{i}", "display_name": f"客服{i}", "role": "agent",
                "active": True, "password_hash": "x", "teams": [], "availability": "online",
                "max_open": cap})
            agents.append(str(doc.inserted_id))
        caps = dict(zip(agents, CAPS, strict=True))
        await asyncio.gather(one.start(), two.start())
        async with aiohttp.ClientSession() as http:
            headers = people.headers("admin")
            async with http.post(f"{one.url}/api/teams", headers=headers, json={
                    "name": "售后", "members": agents}) as resp:
                assert resp.status == 201, await resp.text()
                team = await resp.json()
            async with http.post(f"{two.url}/api/routing-rules", headers=headers, json={
                    "name": "everything", "actions": {"team_id": team["id"]}}) as resp:
                assert resp.status == 201, await resp.text()
            await asyncio.sleep(2.5)  # both processes' rule caches expire (2 s)
            account = await add_account(http, one.url, people, sandbox, BOT_TOKEN, "bot")
            secret = await webhook_secret(db, account["id"])
            updates = make_updates(BURST, chats=BURST)

            over: list[dict[str, int]] = []
            done = asyncio.Event()

            async def watch_caps() -> None:
                while not done.is_set():
                    counts = Counter([d["assignee_id"] async for d in db.conversations.find(
                        {"assignee_id": {"$ne": None}, "status": "open"}, {"assignee_id": 1})])
                    if any(counts[a] > caps[a] for a in counts):
                        over.append(dict(counts))
                    await asyncio.sleep(0.05)

            async def post(i: int, update: dict[str, Any]) -> None:
                url = (one if i % 2 else two).url
                async with http.post(f"{url}/webhooks/telegram/{account['id']}",
                                     data=json.dumps(update),
                                     headers={SECRET_HEADER: secret}) as resp:
                    assert resp.status == 200, await resp.text()

            watcher = asyncio.create_task(watch_caps())
            sem = asyncio.Semaphore(32)

            async def bounded(i: int, update: dict[str, Any]) -> None:
                async with sem:
                    await post(i, update)

            await asyncio.gather(*(bounded(i, u) for i, u in enumerate(updates)))

            async def all_routed() -> bool:
                return await db.conversations.count_documents(
                    {"routing": {"$exists": True}}) == BURST

            for _ in range(600):
                if await all_routed():
                    break
                await asyncio.sleep(0.1)
            assert await all_routed(), await db.conversations.count_documents(
                {"routing": {"$exists": True}})
            await asyncio.sleep(1.5)  # let any in-flight drain finish

            convs = await db.conversations.find({}).to_list()
            assert len(convs) == BURST
            assigned = [c for c in convs if c.get("assignee_id")]
            waiting = [c for c in convs if not c.get("assignee_id")]
            assert len(assigned) == sum(CAPS) and len(waiting) == BURST - sum(CAPS)
            per_agent = Counter(c["assignee_id"] for c in assigned)
            assert per_agent == Counter(caps), per_agent
            for c in convs:  # each routed once, assigned at most once
                steps = [s["step"] for s in c["routing"]["steps"]]
                assert steps.count("routed") == 1 and steps.count("assigned") <= 1, steps
            queue = {e["_id"] async for e in db.team_queue.find({})}
            assert queue == {str(c["_id"]) for c in waiting}  # none left behind
            assert await db.route_claims.count_documents({}) == BURST
            loads = {d["_id"]: d["open"] async for d in db.agent_load.find({})}
            assert loads == caps
            owners = Counter([d["owner"] async for d in db.route_claims.find({})])
            assert len(owners) == 2, owners  # both processes routed a share

            # resolve 60 assigned conversations, alternating processes: the 50 waiting are
            # served, and no cap is passed on the way
            for i, c in enumerate(assigned[:60]):
                url = (one if i % 2 else two).url
                async with http.patch(f"{url}/api/conversations/{c['_id']}",
                                      headers=people.headers("agent"),
                                      json={"status": "resolved"}) as resp:
                    assert resp.status == 200, await resp.text()
            for _ in range(100):
                if await db.team_queue.count_documents({}) == 0:
                    break
                await asyncio.sleep(0.1)
            assert await db.team_queue.count_documents({}) == 0
            done.set()
            await watcher
            assert over == []
            open_now = Counter([d["assignee_id"] async for d in db.conversations.find(
                {"assignee_id": {"$ne": None}, "status": "open"}, {"assignee_id": 1})])
            assert sum(open_now.values()) == BURST - 60
            assert all(open_now[a] <= caps[a] for a in caps)
            served = await db.conversations.find(
                {"_id": {"$in": [ObjectId(c["_id"]) for c in waiting]}}).to_list()
            assert all(c["assignee_id"] for c in served)
    finally:
        await asyncio.gather(one.stop(), two.stop())
        await sandbox.stop()
        await client.drop_database(name)
        await client.close()
