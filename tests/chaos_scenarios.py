"""The crash and fault scenarios, sized by the caller (fast suite small, `make soak` large).

Each one drives a real `switchboard serve` process (tests.chaos.Serve), asserts the promise —
acknowledged ⇒ stored, redelivered ⇒ stored once, replies delivered with every duplicate inside
the documented window — and returns the figures it measured for the README's Guarantees section.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from connectors.telegram.sandbox import TelegramSandbox
from tests.chaos import (
    Outcome,
    People,
    Serve,
    add_account,
    external_id,
    make_updates,
    open_db,
    post_all,
    post_update,
    redeliver,
    seed_people,
    stored_inbound,
    summary_drift,
    wait_until,
    webhook_secret,
)


@dataclass
class Figures:
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.as_dict().items())


async def _setup(serve: Serve, sandbox: TelegramSandbox, bot_token: str,
                 http: aiohttp.ClientSession) -> tuple[People, str, str]:
    """Start the server, seed an admin and an agent, connect one bot: (people, account, url)."""
    if serve.uri is not None:  # seed before start: the server finds its people at once
        client, db = open_db(serve.uri, serve.db_name)
        people = await seed_people(db)
        await serve.start()
    else:
        await serve.start()
        client, db = open_db(serve.db_uri(), serve.db_name)
        people = await seed_people(db)
    try:
        account = await add_account(http, serve.url, people, sandbox, bot_token, "chaos bot")
        secret = await webhook_secret(db, account["id"])
    finally:
        await client.close()
    return people, account["id"], secret


def _hook(serve: Serve, account_id: str) -> str:
    return f"{serve.url}/webhooks/telegram/{account_id}"


# ----------------------------------------------------------------------------- kill -9, inbound


@dataclass
class WebhookCrash(Figures):
    updates: int
    acked_before_kill: int
    unanswered_in_flight_at_kill: int
    stored_but_unacked: int
    lost_acked: int
    redelivery_posts: int
    stored_after_redelivery: int
    duplicates: int
    conversations_with_stale_counters: int
    restart_seconds: float
    listed_seconds: float  # after the restart: every acknowledged message listed by the API


async def listed(http: aiohttp.ClientSession, serve: Serve, people: People) -> set[str]:
    """The external ids GET /api/conversations + /messages list, every page of both."""
    found: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"limit": "200", "status": "", **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{serve.url}/api/conversations", headers=people.headers(),
                            params={k: v for k, v in params.items() if v}) as resp:
            page = await resp.json()
        for conv in page["items"]:
            mcursor: str | None = None
            while True:
                q = {"limit": "200", **({"cursor": mcursor} if mcursor else {})}
                async with http.get(f"{serve.url}/api/conversations/{conv['id']}/messages",
                                    headers=people.headers(), params=q) as resp:
                    msgs = await resp.json()
                found.update(m["external_id"] for m in msgs["items"] if m.get("external_id"))
                mcursor = msgs.get("next_cursor")
                if not mcursor:
                    break
        cursor = page.get("next_cursor")
        if not cursor:
            return found


async def webhook_crash(serve: Serve, sandbox: TelegramSandbox, bot_token: str, *, n: int,
                        kill_at: int, concurrency: int = 16) -> WebhookCrash:
    async with aiohttp.ClientSession() as http:
        people, account_id, secret = await _setup(serve, sandbox, bot_token, http)
        updates = make_updates(n)
        outcome = Outcome()
        load = asyncio.create_task(post_all(http, _hook(serve, account_id), secret, updates,
                                            outcome, concurrency=concurrency))
        await wait_until(lambda: _true(len(outcome.acked()) >= kill_at or load.done()), 120,
                         "acknowledged webhooks before the kill", every=0.002)
        assert len(outcome.acked()) >= kill_at, f"the load ended first: {outcome.counts()}"
        in_flight = len(outcome.started) - len(outcome.status)
        acked_at_kill = len(outcome.acked())
        await serve.kill()
        await load
        acked = {u["update_id"]: external_id(u) for u in updates if u["update_id"]
                 in outcome.acked()}
        restarted = time.monotonic()
        await serve.start()
        restart_seconds = time.monotonic() - restarted
        wanted = set(acked.values())

        async def all_listed() -> bool:
            return wanted <= await listed(http, serve, people)
        await wait_until(all_listed, 60, "every acknowledged message to be listed", every=0.1)
        listed_seconds = time.monotonic() - restarted
        client, db = open_db(serve.db_uri(), serve.db_name)
        try:
            stored = await stored_inbound(db, account_id)
            lost = [x for x in acked.values() if x not in stored]
            assert not lost, f"acknowledged but not stored after kill -9: {lost[:10]}"
            stored_unacked = len(set(stored) - set(acked.values()))
            posts = await redeliver(http, _hook(serve, account_id), secret, updates, outcome)
            final = await stored_inbound(db, account_id)
            assert set(final) == {external_id(u) for u in updates}, "an update is missing"
            duplicates = sum(c - 1 for c in final.values())
            assert duplicates == 0
            # summaries trail the acknowledgement and are repaired after a crash
            # (inbox/summaries.py): give them a moment, then count what is still off
            deadline = time.monotonic() + 20
            while (drift := await summary_drift(db, account_id)) and \
                    time.monotonic() < deadline:
                await asyncio.sleep(0.25)
        finally:
            await client.close()
        await serve.stop()
    return WebhookCrash(n, acked_at_kill, in_flight, stored_unacked, len(lost), posts,
                        sum(final.values()), duplicates, drift, round(restart_seconds, 2),
                        round(listed_seconds, 2))


async def _true(value: bool) -> bool:
    return value


# ----------------------------------------------------------------------------- kill -9, outbound


@dataclass
class ReplyCrash(Figures):
    replies: int
    sent_before_kill: int
    api_posts_unanswered: int
    delivered: int
    duplicates: int
    duplicates_flagged: int
    flagged: int
    lost: int
    failed: int
    order_violations: int
    drain_seconds: float


async def reply_crash(serve: Serve, sandbox: TelegramSandbox, bot_token: str, *, n: int,
                      conversations: int, kill_at: int) -> ReplyCrash:
    """Queue `n` replies over `conversations` chats; kill -9 once `kill_at` reached the
    platform; restart; every reply must end `sent`, in order per chat, and every one the
    platform received twice must be flagged `possibly_duplicated`."""
    async with aiohttp.ClientSession() as http:
        people, account_id, secret = await _setup(serve, sandbox, bot_token, http)
        chats = [620_000_000 + c for c in range(conversations)]
        for update in make_updates(conversations, chats=conversations, chat_base=chats[0]):
            assert await post_update(http, _hook(serve, account_id), secret, update) == 200
        client, db = open_db(serve.db_uri(), serve.db_name)

        async def created() -> bool:  # conversations are created behind the acknowledgement
            return await db.conversations.count_documents(
                {"account_id": account_id}) == conversations
        await wait_until(created, 15, "the conversations to be created")
        conv_of = {int(c["thread_key"]): str(c["_id"]) async for c in db.conversations.find(
            {"account_id": account_id})}
        await client.close()
        texts = {i: f"reply {i:05d}" for i in range(n)}
        chat_of = {i: chats[i % conversations] for i in range(n)}
        answered: dict[int, int | None] = {}

        async def post_reply(i: int) -> int | None:
            url = f"{serve.url}/api/conversations/{conv_of[chat_of[i]]}/messages"
            headers = {**people.headers("agent"), "Idempotency-Key": f"chaos-{i}"}
            try:
                async with http.post(url, json={"text": texts[i]}, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=15)) as resp:
                    await resp.read()
                    return resp.status
            except (aiohttp.ClientError, TimeoutError, ConnectionError):
                return None

        async def agent(chat: int) -> None:  # one agent per chat, typing in order
            for i in (i for i in range(n) if chat_of[i] == chat):
                answered[i] = await post_reply(i)

        agents = asyncio.ensure_future(asyncio.gather(*[agent(c) for c in chats]))
        await wait_until(lambda: _true(len(sandbox.sent(bot_token)) >= kill_at), 180,
                         "replies reaching the platform before the kill", every=0.002)
        sent_at_kill = len(sandbox.sent(bot_token))
        await serve.kill()
        await agents
        unanswered = [i for i in range(n) if answered.get(i) != 202]
        await serve.start()
        started = time.monotonic()
        for i in sorted(unanswered):  # the agent's browser retries with the same key
            assert await post_reply(i) == 202
        client, db = open_db(serve.db_uri(), serve.db_name)
        try:
            async def drained() -> bool:
                out = await db.messages.count_documents({"direction": "out"})
                done = await db.messages.count_documents(
                    {"direction": "out", "delivery.state": {"$in": ["sent", "failed"]}})
                return out == n and done == n
            await wait_until(drained, 60 + n * 0.5, "every reply to be sent", every=0.2)
            drain_seconds = time.monotonic() - started
            docs = {d["text"]: d async for d in db.messages.find({"direction": "out"})}
        finally:
            await client.close()
        await asyncio.sleep(0.5)  # nothing may arrive after the last `sent`
        await serve.stop()
    received: Counter[str] = Counter()
    per_chat: dict[int, list[str]] = defaultdict(list)
    for call in sandbox.sent(bot_token):
        first = call["params"]["text"].split("\n")[0]
        received[first] += 1
        per_chat[int(call["params"]["chat_id"])].append(first)
    lost = [t for t in texts.values() if received[t] == 0]
    failed = [t for t, d in docs.items() if d["delivery"]["state"] != "sent"]
    dup_texts = [t for t, c in received.items() if c > 1]
    flagged = {t for t, d in docs.items() if d["delivery"].get("possibly_duplicated")}
    violations = 0
    for chat, seen in per_chat.items():
        firsts = list(dict.fromkeys(seen))
        expected = [texts[i] for i in range(n) if chat_of[i] == chat]
        violations += firsts != expected
    assert len(docs) == n, "a reply was stored twice or not at all"
    return ReplyCrash(n, sent_at_kill, len(unanswered), sum(1 for t in texts.values()
                                                             if received[t]),
                      sum(received[t] - 1 for t in dup_texts),
                      len([t for t in dup_texts if t in flagged]), len(flagged), len(lost),
                      len(failed), violations, round(drain_seconds, 2))


# ----------------------------------------------------------------------------- the database dies


@dataclass
class DatabaseFault(Figures):
    signal: str
    updates: int
    answered_200: int
    answered_503: int
    unanswered: int
    other_statuses: dict[str, int]
    lost_acked: int
    healthz_503_after_seconds: float | None
    healthz_200_again_after_seconds: float | None
    probes_during_outage: dict[str, int]
    slowest_probe_seconds: float
    embedded_restarts: int
    stored_after_redelivery: int
    duplicates: int


async def database_faults(serve: Serve, sandbox: TelegramSandbox, bot_token: str, *,
                          faults: list[signal.Signals], n: int, fault_at: int,
                          stopped_for: float = 4.0, concurrency: int = 8, pace: float = 0.01,
                          external: Any = None) -> list[DatabaseFault]:
    """One server; for each signal in `faults`, a round of webhooks during which the database
    process gets it. SIGSTOP: it hangs for `stopped_for` s, then SIGCONT. SIGKILL: it dies; the
    embedded one is restarted by Switchboard, an `external` one (an EmbeddedServer the test
    runs as if it were a MongoDB elsewhere) is restarted by the test after `stopped_for` s,
    the way its own supervisor would."""
    assert (serve.uri is None) == (external is None)

    def db_pid() -> int | None:
        if external is not None:
            return int(external.process.pid)
        return serve.embedded_pid()

    async def revive() -> None:
        if external is not None:
            await asyncio.sleep(stopped_for)
            await external.restart()

    async with aiohttp.ClientSession() as http:
        _, account_id, secret = await _setup(serve, sandbox, bot_token, http)
        rounds = []
        for k, sig in enumerate(faults):
            rounds.append(await _fault_round(
                serve, http, account_id, secret, sig=sig, n=n, fault_at=fault_at,
                stopped_for=stopped_for, concurrency=concurrency, pace=pace,
                first_update_id=500_000_000 + 1_000_000 * k, chat_base=610_000_000 + 1000 * k,
                db_pid=db_pid, revive=revive))
        await serve.stop()
    return rounds


async def _fault_round(serve: Serve, http: aiohttp.ClientSession, account_id: str,
                       secret: str, *, sig: signal.Signals, n: int, fault_at: int,
                       stopped_for: float, concurrency: int, pace: float, first_update_id: int,
                       chat_base: int, db_pid: Callable[[], int | None],
                       revive: Callable[[], Awaitable[None]]) -> DatabaseFault:
    """Besides the steady load, a fresh update is posted as a probe every time /healthz says
    503: it must be refused at once with 503 (so the platform delivers it again), never 200."""
    hook = _hook(serve, account_id)
    updates = make_updates(n, first_update_id=first_update_id, chat_base=chat_base)
    spare = iter(make_updates(200, first_update_id=first_update_id + 500_000,
                              chat_base=chat_base + 500))
    probes: list[dict[str, Any]] = []
    probe_status: list[tuple[int | None, float]] = []
    outcome = Outcome()
    health: list[tuple[float, int | None]] = []
    load = asyncio.create_task(post_all(http, hook, secret, updates, outcome,
                                        concurrency=concurrency, pace=pace))

    async def probe() -> None:
        update = next(spare)
        probes.append(update)
        started = time.monotonic()
        status = await post_update(http, hook, secret, update, timeout=10)
        outcome.status[update["update_id"]] = status
        probe_status.append((status, time.monotonic() - started))

    async def watch() -> None:
        tasks = []
        while not load.done() or not health or health[-1][1] != 200:
            try:
                async with http.get(f"{serve.url}/healthz",
                                    timeout=aiohttp.ClientTimeout(total=1)) as r:
                    health.append((time.monotonic(), r.status))
            except (aiohttp.ClientError, TimeoutError):
                health.append((time.monotonic(), None))
            if health[-1][1] == 503 and len(probes) < 150:
                tasks.append(asyncio.create_task(probe()))
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks)

    async with http.get(f"{serve.url}/healthz") as r:
        restarts_before = int((await r.json()).get("embedded_restarts", 0))
    watcher = asyncio.create_task(watch())
    await wait_until(lambda: _true(len(outcome.acked()) >= fault_at or load.done()), 120,
                     "webhooks before the fault", every=0.005)
    assert len(outcome.acked()) >= fault_at, f"the load ended first: {outcome.counts()}"
    pid = db_pid()
    assert pid is not None
    fault_time = time.monotonic()
    os.kill(pid, sig)
    if sig == signal.SIGKILL:
        await revive()
    if sig == signal.SIGSTOP:
        await wait_until(lambda: _true(any(s == 503 for t, s in health if t > fault_time)),
                         stopped_for + 10, "/healthz to turn 503 while the database hangs")
        await asyncio.sleep(max(0.0, stopped_for - (time.monotonic() - fault_time)))
        os.kill(pid, signal.SIGCONT)
    await load
    await watcher
    first_503 = next((t for t, s in health if t > fault_time and s == 503), None)
    back = next((t for t, s in health if first_503 and t > first_503 and s == 200), None)
    async with http.get(f"{serve.url}/healthz") as r:
        restarts = int((await r.json()).get("embedded_restarts", 0)) - restarts_before
    everything = updates + probes
    acked = {external_id(u) for u in everything if u["update_id"] in outcome.acked()}
    counts = Counter("none" if outcome.status.get(u["update_id"]) is None
                     else str(outcome.status[u["update_id"]]) for u in updates)
    client, db = open_db(serve.db_uri(), serve.db_name)
    try:
        before = await stored_inbound(db, account_id)
        lost = sorted(acked - set(before))
        assert not lost, f"answered 200 but not stored: {lost[:10]}"
        await redeliver(http, hook, secret, everything, outcome)
        after = await stored_inbound(db, account_id)
    finally:
        await client.close()
    mine = {external_id(u) for u in everything}
    final = {x: c for x, c in after.items() if x in mine}
    assert set(final) == mine
    return DatabaseFault(
        sig.name, n, counts["200"], counts["503"], counts["none"],
        {k: v for k, v in counts.items() if k not in ("200", "503", "none")}, len(lost),
        round(first_503 - fault_time, 2) if first_503 else None,
        round(back - fault_time, 2) if back else None,
        dict(Counter("none" if s is None else str(s) for s, _ in probe_status)),
        round(max((d for _, d in probe_status), default=0.0), 3), restarts,
        sum(final.values()), sum(c - 1 for c in final.values()))
