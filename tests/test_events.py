"""`GET /api/events`: change streams → Server-Sent Events, one watcher per process, resumable."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from pymongo.errors import OperationFailure

from tests.helpers import inbound, ingest_settled
from web.app import Services
from web.events import EventHub, decode_id, encode_id, hub_of


class Stream:
    """A minimal SSE reader over an aiohttp response."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.comments = 0

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        event: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.resp.content.readline()
                if not raw:
                    raise EOFError("stream closed")
                line = raw.decode().rstrip("\n")
                if not line:
                    if "event" in event:
                        return event
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(": ")
                if name == "data":
                    event["data"] = json.loads(value)
                elif name in ("id", "event"):
                    event[name] = value

    async def until(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next(timeout)
                if predicate(event):
                    return event

    async def quiet(self, seconds: float = 0.6) -> list[dict[str, Any]]:
        """Events arriving within `seconds` (expected: none)."""
        got = []
        try:
            while True:
                got.append(await self.next(seconds))
        except TimeoutError:
            return got


async def open_stream(client: TestClient, who: dict[str, Any], query: str = "",
                      last_event_id: str | None = None) -> Stream:
    headers = dict(who["headers"])
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    resp = await client.get(f"/api/events{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return Stream(resp)


def secret_raw(msg: Any) -> Any:
    return dataclasses.replace(msg, raw={"token": "SECRET-RAW-PAYLOAD"})


async def test_new_message_gives_conversation_and_message_events(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    stream = await open_stream(client, agent)
    result = await ingest_settled(services.store, secret_raw(inbound(1, text="你好")))
    seen: dict[str, dict[str, Any]] = {}
    while not ("message" in seen and seen.get("conversation", {}).get("data", {}).get("unread")):
        event = await stream.next()
        seen[event["event"]] = event
    conv, msg = seen["conversation"], seen["message"]
    assert conv["data"]["id"] == result.conversation_id
    assert conv["data"]["contact"]["name"] == "王小明"
    assert conv["data"]["preview"] == "你好"
    assert msg["data"]["text"] == "你好" and msg["data"]["direction"] == "in"
    for event in (conv, msg):
        assert event["id"] and decode_id(event["id"]) is not None
        assert "SECRET-RAW-PAYLOAD" not in json.dumps(event) and "raw" not in event["data"]


async def test_filters_by_type_and_conversation(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    first = await ingest_settled(services.store, inbound(1, thread="a", user="a"))
    inbox = await open_stream(client, agent, "?types=conversation")
    thread = await open_stream(client, agent, f"?conversation={first.conversation_id}")
    await ingest_settled(services.store, inbound(2, thread="b", user="b", text="other"))
    await ingest_settled(services.store, inbound(3, thread="a", user="a", text="mine"))
    got = await thread.until(lambda e: e["event"] == "message")
    assert got["data"]["text"] == "mine"
    seen = [await inbox.next() for _ in range(2)]
    assert {e["event"] for e in seen} == {"conversation"}
    assert all(e["data"]["id"] == first.conversation_id for e in await thread.quiet(0.3)
               if e["event"] == "conversation")
    bad = await client.get("/api/events?conversation=nope", headers=agent["headers"])
    assert bad.status == 400


async def test_reconnect_with_last_event_id_gets_what_was_missed(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    stream = await open_stream(client, agent, "?types=message")
    await ingest_settled(services.store, inbound(1, text="before"))
    last = await stream.until(lambda e: e["event"] == "message")
    stream.resp.close()
    for n in range(2, 5):
        await ingest_settled(services.store, inbound(n, text=f"missed {n}"))
    again = await open_stream(client, agent, "?types=message", last_event_id=last["id"])
    texts = [(await again.next())["data"]["text"] for _ in range(3)]
    assert texts == ["missed 2", "missed 3", "missed 4"]
    await ingest_settled(services.store, inbound(5, text="live"))
    assert (await again.next())["data"]["text"] == "live"
    assert await again.quiet(0.3) == []


async def test_resume_from_a_token_this_process_never_saw(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    """Another process (or a restart): a catch-up change stream, spliced without duplicates."""
    stream = await open_stream(client, agent, "?types=message")
    await ingest_settled(services.store, inbound(1, text="seen"))
    last = await stream.until(lambda e: e["event"] == "message")
    stream.resp.close()
    await services.events.stop()
    services.events = EventHub(services.db, max_await_ms=100)  # a fresh process's hub
    for n in range(2, 4):
        await ingest_settled(services.store, inbound(n, text=f"missed {n}"))
    await hub_of(client.app).start()
    await ingest_settled(services.store, inbound(4, text="after restart"))
    again = await open_stream(client, agent, "?types=message", last_event_id=last["id"])
    texts = [(await again.next())["data"]["text"] for _ in range(3)]
    assert texts == ["missed 2", "missed 3", "after restart"]
    await ingest_settled(services.store, inbound(5, text="live"))
    assert (await again.next())["data"]["text"] == "live"
    assert await again.quiet(0.3) == []


async def test_a_page_mark_resumes_from_the_render(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    hub = hub_of(client.app)
    mark = await hub.mark()
    assert mark
    await ingest_settled(services.store, inbound(1, text="between render and connect"))
    await asyncio.sleep(0.2)
    stream = await open_stream(client, agent, f"?types=message&since={mark}")
    assert (await stream.next())["data"]["text"] == "between render and connect"


@pytest.mark.parametrize("token", ["zz-not-a-token", "00ff", "~AAAA"])
async def test_unusable_resume_token_asks_for_reload(
        client: TestClient, services: Services, agent: dict[str, Any], token: str) -> None:
    stream = await open_stream(client, agent, last_event_id=token)
    event = await stream.next()
    assert event["event"] == "reload"
    await ingest_settled(services.store, inbound(1, text="still live after reload"))
    got = await stream.until(lambda e: e["event"] == "message")
    assert got["data"]["text"] == "still live after reload"


async def test_history_lost_286_asks_for_reload(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    hub = hub_of(client.app)
    await hub.start()
    real_db = hub.db

    class LostHistory:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_db, name)

        async def watch(self, *args: Any, **kw: Any) -> Any:
            if kw.get("resume_after") is not None:
                raise OperationFailure("Resume of change stream was not possible", code=286)
            return await real_db.watch(*args, **kw)

    hub.db = LostHistory()  # type: ignore[assignment]
    token = encode_id({"_data": "00" * 20})
    stream = await open_stream(client, agent, last_event_id=token)
    assert (await stream.next())["event"] == "reload"


async def test_one_change_stream_serves_every_client(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    streams = [await open_stream(client, agent, "?types=conversation") for _ in range(8)]
    await ingest_settled(services.store, inbound(1))
    for s in streams:
        assert (await s.next())["event"] == "conversation"
    hub = hub_of(client.app)
    assert hub.streams_opened == 0  # no catch-up: the clients read the process's one stream
    assert services.changes.streams_opened == 1
    assert len(hub.subscribers) == 8


async def test_updates_of_a_conversation_the_hub_saw_need_no_read(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    """The hub keeps the documents it has seen current from the events themselves
    (inbox/doc_cache.py): each later summary of a conversation goes out without a read."""
    stream = await open_stream(client, agent, "?types=conversation")
    first = await ingest_settled(services.store, inbound(1, text="第一条"))
    await stream.until(lambda e: e["data"].get("preview") == "第一条")
    hub = hub_of(client.app)
    read_before = hub.docs_read
    for n in range(2, 6):
        await ingest_settled(services.store, inbound(n, text=f"第 {n} 条"))
        got = await stream.until(lambda e, n=n: e["data"].get("preview") == f"第 {n} 条")
        assert got["data"]["id"] == first.conversation_id and got["data"]["unread"] == n
        assert got["data"]["contact"]["name"] == "王小明"
    assert hub.docs_read == read_before
    assert hub._docs.applied >= 4


async def test_heartbeat_and_deactivation_end_the_stream(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    hub = hub_of(client.app)
    hub.heartbeat = 0.2
    stream = await open_stream(client, agent)
    assert await stream.quiet(0.5) == []
    assert stream.comments >= 1  # ": ping" keeps proxies from closing an idle stream
    await services.agents.update(str(agent["doc"]["_id"]), {"active": False})
    assert (await stream.next())["event"] == "logout"
    with pytest.raises(EOFError):
        await stream.next()


async def test_needs_a_login(client: TestClient) -> None:
    resp = await client.get("/api/events")
    assert resp.status == 401


async def test_a_client_that_cannot_keep_up_is_disconnected(
        client: TestClient, services: Services, agent: dict[str, Any]) -> None:
    hub = hub_of(client.app)
    await hub.start()
    sub = await hub.subscribe()
    sub.queue = asyncio.Queue(2)
    for n in range(4):
        await ingest_settled(services.store, inbound(n, thread=str(n), user=str(n)))
    async with asyncio.timeout(5):
        while not sub.overflowed:
            await asyncio.sleep(0.02)
    hub.unsubscribe(sub)


def test_ids_round_trip() -> None:
    token = {"_data": "8200000001"}
    assert decode_id(encode_id(token)) == token
    odd = {"_data": "x", "other": 1}
    assert encode_id(odd).startswith("~")
    assert decode_id(encode_id(odd)) == odd
    assert decode_id("not valid!") is None
