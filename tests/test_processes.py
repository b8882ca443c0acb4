"""`switchboard serve --processes 2` on one database and one port (web/processes.py): webhooks
land on either process and are stored once, a reply queued by one process is sent once, an SSE
stream on one process sees what the other stored, and long polling keeps one owner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connectors.telegram.sandbox import TelegramSandbox
from inbox.db import Database
from tests.chaos import (
    Serve,
    add_account,
    make_updates,
    open_db,
    post_update,
    seed_people,
    wait_until,
    webhook_secret,
)
from tests.conftest import BOT_TOKEN

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def two(mongo_uri: str, db: Database, tmp_path: Path,
              tg: TelegramSandbox) -> AsyncIterator[tuple[Serve, Any]]:
    serve = Serve(tmp_path / "data", db.name, uri=mongo_uri,
                  env_extra={"SWITCHBOARD_SERVER__PROCESSES": "2"})
    client, sdb = open_db(mongo_uri, db.name)
    people = await seed_people(sdb)
    await serve.start()
    try:
        yield serve, people
    finally:
        await serve.stop()
        await client.close()


async def process_of(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/healthz") as resp:
        return int((await resp.json())["process"])


async def both_processes(url: str) -> set[int]:
    """Fresh connections until the kernel has handed them to both processes."""
    seen: set[int] = set()
    for _ in range(200):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as h:
            seen.add(await process_of(h, url))
        if len(seen) == 2:
            break
    return seen


async def test_two_processes_share_one_port_and_one_database(
        two: tuple[Serve, Any], db: Database, tg: TelegramSandbox) -> None:
    serve, people = two
    assert len(await both_processes(serve.url)) == 2

    async with aiohttp.ClientSession() as http:
        account = await add_account(http, serve.url, people, tg, BOT_TOKEN, "two bot")
    secret = await webhook_secret(db, account["id"])
    hook = f"{serve.url}/webhooks/telegram/{account['id']}"

    # an SSE stream on each process, kept on its connection to tell which process it is on
    streams: dict[int, list[str]] = {}
    readers = []
    for _ in range(40):
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        pid = await process_of(http, serve.url)
        if pid in streams:
            await http.close()
            continue
        streams[pid] = []
        readers.append((http, asyncio.create_task(_read_events(http, serve.url, people,
                                                                streams[pid]))))
        if len(streams) == 2:
            break
    assert len(streams) == 2
    await asyncio.sleep(0.5)  # both streams open

    updates = make_updates(60, chats=12)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        statuses = await asyncio.gather(*(post_update(http, hook, secret, u) for u in updates))
        again = await asyncio.gather(*(post_update(http, hook, secret, u) for u in updates[:20]))
    assert set(statuses) == {200} and set(again) == {200}
    assert await db.messages.count_documents({"direction": "in"}) == 60
    heartbeats = await db.meta.find({"kind": "ingestor"}).to_list()
    assert len({hb["pid"] for hb in heartbeats}) == 2  # both processes ingested

    async def conversations_made() -> bool:
        return await db.conversations.count_documents({}) == 12
    await wait_until(conversations_made, 20, "every conversation to be created once")

    texts = {u["message"]["text"] for u in updates}

    async def every_stream_saw_everything() -> bool:
        return all(texts <= set(seen) for seen in streams.values())
    await wait_until(every_stream_saw_everything, 20, "both SSE streams to see every message")

    # replies queued through both processes are each sent once
    convs = await db.conversations.find({}).to_list()
    replies = [f"reply {n:02d}" for n in range(24)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for n, text in enumerate(replies):
            conv = convs[n % len(convs)]
            async with http.post(f"{serve.url}/api/conversations/{conv['_id']}/messages",
                                 headers=people.headers("agent"), json={"text": text}) as resp:
                assert resp.status == 202
    await tg.wait_for_sent(BOT_TOKEN, len(replies), timeout=30)
    await asyncio.sleep(1.0)
    sent = [s["params"]["text"].split("\n")[0] for s in tg.sent(BOT_TOKEN)]
    assert sorted(sent) == replies  # each exactly once
    for http, task in readers:
        task.cancel()
        await http.close()


async def test_long_polling_keeps_one_owner_across_processes(
        two: tuple[Serve, Any], db: Database, tg: TelegramSandbox) -> None:
    serve, people = two
    async with aiohttp.ClientSession() as http, http.post(
            f"{serve.url}/api/accounts", headers=people.headers(), json={
                "platform": "telegram", "name": "polled", "mode": "polling",
                "api_base_url": tg.base_url, "credentials": {"bot_token": BOT_TOKEN}}) as resp:
        assert resp.status == 201
    for n in range(15):
        tg.inject_text(BOT_TOKEN, 700 + n % 3, f"polled {n}",
                       user={"id": 700 + n % 3, "is_bot": False, "first_name": f"C{n % 3}"})

    async def all_stored() -> bool:
        return await db.messages.count_documents({"direction": "in"}) >= 15
    await wait_until(all_stored, 30, "every polled message")
    await asyncio.sleep(1.5)
    assert await db.messages.count_documents({"direction": "in"}) == 15
    owners = {c["params"].get("offset") for c in tg.calls(BOT_TOKEN)
              if c["method"].lower() == "getupdates"}
    assert owners  # polled, by the one process holding the lease
    account = await db.accounts.find_one({"name": "polled"})
    assert account["lease"]["owner"]


async def _read_events(http: aiohttp.ClientSession, url: str, people: Any,
                       seen: list[str]) -> None:
    async with http.get(f"{url}/api/events", headers=people.headers("agent"),
                        timeout=aiohttp.ClientTimeout(total=None)) as resp:
        async for line in resp.content:
            text = line.decode(errors="replace")
            if text.startswith("data:"):
                data = json.loads(text[5:])
                if isinstance(data, dict) and "direction" in data and data.get("text"):
                    seen.append(data["text"])  # a message event: web/views.py message_json
