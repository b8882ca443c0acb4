"""Figure 1 — ingest: Telegram webhooks end to end against the bare database's insert_one.

Each request is a customer message posted to `/webhooks/telegram/{account}` with the secret
header, as Telegram posts it; its latency is the time to the 200, which Switchboard sends only
once the message is durably stored (the database runs with --sync-on-commit).

The baseline, measured in the same run: the same message documents (`inbox.ingest.message_doc`
of the same normalised updates) inserted with `insert_one` from one async client into a bare
collection (the unique (account_id, external_id) index only) on a fresh database server of the
same kind and durability flag, one at a time and 64 at a time; the higher of the two is the
baseline, and the `insert_many`-of-64 ceiling of that collection is printed beside it. It is
measured before Switchboard's workloads and again after them (on another fresh server), and
the ratio divides by the highest reading.

Two workloads at concurrency 64, closed loop: (a) every second message opens a new
conversation with a new contact (1,000 new chats, 2,000 messages); (b) every message goes to
an existing conversation (the 1,000 chats of (a), round robin). Each phase starts once what
follows ingest (summaries, search entries, SLA clocks) has caught up with the one before, so
no phase pays for another's backlog (`drained_after` in the results: how long that took).
For (a), every new conversation is watched through the API: how long after its
acknowledgement it appears on `/api/events` (one SSE client, as an agent with the inbox open).
Then open loop: messages of (b) arriving at a fixed rate, 50 % and 80 % of (b)'s capacity, and
the acknowledgement latency at each.

Each closed loop also reports the database's CPU time per acknowledged message, counted until
its followers have drained (a closed loop's rate leaves their backlog out), against the bare
insert_one's CPU time per document: the database is the limit, so that ratio is what the rates
would show with both keeping it equally busy, and CPU time moves less than rates on a noisy
machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import ASCENDING, IndexModel

from bench.cluster import BOT_ID, Cluster
from bench.stats import CpuMeter, cpu_seconds, sse_events, summary_ms, telegram_update
from connectors.telegram.normalise import normalise_update as normalise
from inbox.db import Database, Doc, connect
from inbox.embedded import EmbeddedServer
from inbox.ids import conversation_oid
from inbox.ingest import message_doc
from inbox.models import AccountId, InboundMessage

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHAT_BASE = 880_000_000


@dataclass
class Chats:
    """Telegram updates: new chats opened, messages to existing chats."""

    update_ids: Iterator[int] = field(default_factory=lambda: count(1))
    sent: dict[int, int] = field(default_factory=dict)  # chat → messages so far
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def to(self, chat: int) -> dict[str, Any]:
        n = self.sent.get(chat, 0) + 1
        self.sent[chat] = n
        text = f"您好，我的订单 #{chat}-{n} 还没有到，可以帮我查一下吗？"
        return telegram_update(next(self.update_ids), chat, n, text)

    def workload_a(self, new_chats: int, first: int = CHAT_BASE) -> list[dict[str, Any]]:
        """Every second message opens a chat; the other is a chat's second message."""
        return list(self.stream_a(new_chats, first))

    def stream_a(self, new_chats: int, first: int = CHAT_BASE) -> Iterator[dict[str, Any]]:
        """`workload_a` made as it is sent: an open loop that stops early has counted in
        `sent` only what it sent, which is what the drain after it waits for."""
        for k in range(new_chats):
            yield self.to(first + k)
            yield self.to(first + self.rng.randrange(k + 1))

    def workload_b(self, chats: list[int]) -> Iterator[dict[str, Any]]:
        for i in count():
            yield self.to(chats[i % len(chats)])


# ------------------------------------------------------------------------------ the baseline


def _docs(chats: int, start: int) -> Iterator[Doc]:
    """Message documents exactly as ingest stores them."""
    gen = Chats(update_ids=count(start))
    account = AccountId("a" * 24)
    for i in count():
        msg = normalise(gen.to(CHAT_BASE + i % chats), account, str(BOT_ID))
        assert isinstance(msg, InboundMessage)
        yield message_doc(msg, str(conversation_oid(account, msg.thread_key)), datetime.now(UTC))


def _cpu_ms_per(pid: int | None, since: float | None, n: int) -> float | None:
    """Milliseconds of the process's CPU time per item since `since` (its CPU seconds then)."""
    now = cpu_seconds(pid)
    if now is None or since is None or n <= 0:
        return None
    return round(1000 * (now - since) / n, 3)


async def _insert_one_rate(db: Database, docs: Iterator[Doc], n: int,
                           concurrency: int, db_pid: int | None = None) -> dict[str, Any]:
    latencies: list[float] = []
    start = time.monotonic()
    cpu0 = cpu_seconds(db_pid)

    async def worker() -> None:
        while len(latencies) < n:
            doc = next(docs)
            t0 = time.perf_counter()
            await db.bare.insert_one(doc)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    return {"concurrency": concurrency, "inserted": len(latencies),
            "docs_per_s": round(len(latencies) / elapsed, 1), **summary_ms(latencies),
            "db_cpu_ms_per_doc": _cpu_ms_per(db_pid, cpu0, len(latencies))}


async def bare_baseline(n: int = 2000) -> dict[str, Any]:
    """insert_one at concurrency 1 and 64 and insert_many of 64, on a fresh embedded server
    (on disk, --sync-on-commit, no retryable writes: as Switchboard runs it) into a collection
    with the unique (account_id, external_id) index only."""
    workdir = Path(tempfile.mkdtemp(prefix="sb-baseline-"))
    server = EmbeddedServer(data_dir=workdir)
    await server.start()
    client = connect(server.uri)
    try:
        db = client["baseline"]
        await db.bare.create_indexes([IndexModel([("account_id", ASCENDING),
                                                  ("external_id", ASCENDING)], unique=True)])
        docs = _docs(1000, 50_000_000)
        pid = server.process.pid if server.process is not None else None
        one = await _insert_one_rate(db, docs, n // 2, 1, pid)
        many = await _insert_one_rate(db, docs, n, 64, pid)
        batches: list[float] = []
        start = time.monotonic()
        cpu0 = cpu_seconds(pid)
        for _ in range(max(8, n // 64)):
            batch = [next(docs) for _ in range(64)]
            t0 = time.perf_counter()
            await db.bare.insert_many(batch, ordered=False)
            batches.append(time.perf_counter() - t0)
        elapsed = time.monotonic() - start
        ceiling = {"batch": 64, "docs_per_s": round(64 * len(batches) / elapsed, 1),
                   **summary_ms(batches),
                   "db_cpu_ms_per_doc": _cpu_ms_per(pid, cpu0, 64 * len(batches))}
    finally:
        await client.close()
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    cpu = [r["db_cpu_ms_per_doc"] for r in (one, many) if r["db_cpu_ms_per_doc"]]
    return {"insert_one_c1": one, "insert_one_c64": many, "insert_many_64": ceiling,
            "docs_per_s": max(one["docs_per_s"], many["docs_per_s"]),
            "db_cpu_ms_per_doc": min(cpu) if cpu else None}


# ------------------------------------------------------------------------------ the load


async def _post(session: aiohttp.ClientSession, cluster: Cluster, update: dict[str, Any],
                ) -> tuple[int | str, float]:
    body = json.dumps(update, ensure_ascii=False).encode()
    headers = {SECRET_HEADER: cluster.webhook_secret, "Content-Type": "application/json"}
    t0 = time.perf_counter()
    try:
        async with session.post(cluster.webhook_url, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status, time.perf_counter() - t0
    except aiohttp.ClientError as exc:
        return type(exc).__name__, time.perf_counter() - t0


async def closed_loop(session: aiohttp.ClientSession, cluster: Cluster,
                      updates: Iterator[dict[str, Any]] | list[dict[str, Any]],
                      concurrency: int, *, seconds: float | None = None,
                      on_ack: Any = None) -> dict[str, Any]:
    source = iter(updates)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = time.monotonic()

    async def worker() -> None:
        while seconds is None or time.monotonic() - start < seconds:
            try:
                update = next(source)
            except StopIteration:
                return
            status, took = await _post(session, cluster, update)
            if status == 200:
                latencies.append(took)
                if on_ack is not None:
                    on_ack(update)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    return {"concurrency": concurrency, "acked": len(latencies), "seconds": round(elapsed, 2),
            "updates_per_s": round(len(latencies) / elapsed, 1), **summary_ms(latencies),
            "errors": errors}


async def open_loop(session: aiohttp.ClientSession, cluster: Cluster,
                    updates: Iterator[dict[str, Any]], rate: float,
                    seconds: float, on_ack: Any = None) -> dict[str, Any]:
    """Messages sent at a fixed rate, whatever the answers take (not closed-loop saturation):
    the latency a platform sees at that arrival rate."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    n = int(rate * seconds)

    async def one(update: dict[str, Any]) -> None:
        status, took = await _post(session, cluster, update)
        if status == 200:
            latencies.append(took)
            if on_ack is not None:
                on_ack(update)
        else:
            errors[str(status)] = errors.get(str(status), 0) + 1

    for i in range(n):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(next(updates)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return {"rate_per_s": round(rate, 1), "sent": n, "acked": len(latencies),
            **summary_ms(latencies), "errors": errors}


class ListingLag:
    """For every new chat: seconds from the webhook's 200 to its conversation appearing on
    `/api/events` (the live feed an open inbox reads; the conversation is listed from the
    moment the event leaves the database, so this is the stricter reading). One SSE client,
    as an agent with the inbox open, instead of polls that would load the database."""

    def __init__(self, session: aiohttp.ClientSession, cluster: Cluster) -> None:
        self.session = session
        self.cluster = cluster
        self.acks: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self._ready = asyncio.Event()
        self._seen_more = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow())
        await asyncio.wait_for(self._ready.wait(), 10)

    async def _follow(self) -> None:
        headers = {**self.cluster.auth, "Accept": "text/event-stream"}
        url = f"{self.cluster.url}/api/events?types=conversation"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(url, headers=headers, timeout=timeout) as resp:
            resp.raise_for_status()
            self._ready.set()
            async for event, data in sse_events(resp.content):
                if event == "conversation":
                    conv = data.get("id")
                    if conv is not None and conv not in self.seen:
                        self.seen[conv] = time.monotonic()
                        self._seen_more.set()

    def acked(self, chat: int) -> None:
        conv = str(conversation_oid(self.cluster.account_id, str(chat)))
        self.acks.setdefault(conv, time.monotonic())

    async def result(self) -> dict[str, Any]:
        last = max(self.acks.values(), default=time.monotonic())
        while not set(self.acks) <= set(self.seen) and time.monotonic() - last < 10:
            self._seen_more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._seen_more.wait(), 10 - (time.monotonic() - last))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        lags = [max(0.0, self.seen[c] - at) for c, at in self.acks.items() if c in self.seen
                and self.seen[c] - at < 10]
        return {**summary_ms(lags), "sampled": len(self.acks),
                "not_listed_within_10s": len(self.acks) - len(lags)}


class DbTime:
    """The database's own account of where its time went during a phase (`top`: time per
    collection and kind of command, in the server's threads, so concurrent commands overlap;
    change-stream getMores, which wait for events, are counted apart)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.before: dict[str, Any] = {}

    async def _read(self) -> dict[str, Any]:
        assert self.cluster.client is not None
        try:
            top = await self.cluster.client.admin.command("top")
        except Exception:  # a server without `top` (or without the right) reports nothing
            return {}
        prefix = self.cluster.db_name + "."
        return {ns[len(prefix):]: v for ns, v in top.get("totals", {}).items()
                if ns.startswith(prefix)}

    async def start(self) -> None:
        self.before = await self._read()

    async def stop(self) -> dict[str, Any]:
        after = await self._read()
        rows = []
        for coll, now in after.items():
            was = self.before.get(coll, {})
            row = {"collection": coll}
            for section in ("insert", "update", "queries", "commands", "remove", "getmore"):
                t = now.get(section, {}).get("time", 0) - was.get(section, {}).get("time", 0)
                n = now.get(section, {}).get("count", 0) - was.get(section, {}).get("count", 0)
                if n:
                    row[section] = {"ms": round(t / 1000), "count": n}
            busy = sum(v["ms"] for k, v in row.items() if k not in ("collection", "getmore")
                       and isinstance(v, dict))
            if len(row) > 1:
                rows.append({**row, "busy_ms": busy})
        return {"by_collection": sorted(rows, key=lambda r: -r["busy_ms"])}


async def _drained(cluster: Cluster, expected: int, timeout: float = 120) -> float | None:
    """Seconds until the conversations count every acknowledged message."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        got = await (await cluster.db.conversations.aggregate([
            {"$group": {"_id": None, "n": {"$sum": "$message_count"}}}])).to_list()
        if got and got[0]["n"] >= expected:
            return round(time.monotonic() - start, 2)
        await asyncio.sleep(0.25)  # the sum reads every conversation: not too often
    return None


async def _caught_up(cluster: Cluster, behind: tuple[str, Doc] | tuple[str, Doc, str],
                     ahead: tuple[str, Doc], timeout: float = 120) -> float | None:
    """Seconds until a follower's documents (`behind`: search entries of one kind, SLA
    clocks; with a third item, the sum of that field: a bucket's entries) are as many as what
    it follows (`ahead`: messages, conversations); None when they stop growing short of that
    (the feature is off) or the timeout passes."""
    async def count(coll: str, flt: Doc, field: str | None = None) -> int:
        if field is not None:
            rows = await (await cluster.db[coll].aggregate([
                {"$match": flt}, {"$group": {"_id": None, "n": {"$sum": f"${field}"}}}])
            ).to_list()
            return int(rows[0]["n"]) if rows else 0
        if not flt:
            return await cluster.db[coll].estimated_document_count()
        return await cluster.db[coll].count_documents(flt)

    start = last_growth = time.monotonic()
    seen = -1
    while time.monotonic() - start < timeout:
        have = await count(*behind)
        if have >= await count(*ahead):
            return round(time.monotonic() - start, 2)
        if have > seen:
            seen, last_growth = have, time.monotonic()
        elif time.monotonic() - last_growth > 5:
            return None
        await asyncio.sleep(0.5)  # the counts of one kind read the collection: not too often
    return None


async def _background_drained(cluster: Cluster, expected: int) -> dict[str, float | None]:
    """Wait for what follows ingest to catch up, so that the next phase does not pay for this
    one's backlog: summaries; search entries of messages (the indexer) and of conversations
    (written as the router routes them); SLA clocks (the measures follower). Each time counts
    from the end of the one before."""
    return {"summaries_s": await _drained(cluster, expected),
            "search_messages_s": await _caught_up(
                cluster, ("search_index", {"kind": "messages"}, "n"), ("messages", {})),
            "search_conversations_s": await _caught_up(
                cluster, ("search_index", {"kind": "conversation"}), ("conversations", {})),
            "measures_s": await _caught_up(cluster, ("sla_timers", {}), ("conversations", {}))}


async def workloads(cluster: Cluster, *, new_chats: int, b_seconds: float,
                    open_seconds: float, concurrency: int = 64,
                    label: str = "", profiler: Profiler | None = None,
                    open_rates: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """(a), (b), then the open loops: at shares of the capacity just measured, or at
    `open_rates` (new chats, (b) at its two levels) when given."""
    chats = Chats()
    first = CHAT_BASE + random.Random(label).randrange(10**6) * 1000
    out: dict[str, Any] = {}
    meter = CpuMeter(**{f"server_{i}": pid for i, pid in enumerate(cluster.server_pids)},
                     database=cluster.db_pid, load=os.getpid())
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        opened: set[int] = set()
        lag = ListingLag(session, cluster)
        await lag.start()

        def on_ack(update: dict[str, Any]) -> None:
            chat = update["message"]["chat"]["id"]
            if chat not in opened:
                opened.add(chat)
                lag.acked(chat)

        meter.start()
        cpu0 = cpu_seconds(cluster.db_pid)
        a_updates = chats.workload_a(new_chats, first)
        db_time = DbTime(cluster)
        await db_time.start()
        if profiler is not None:
            profiler.start("a")
        result_a = await closed_loop(session, cluster, a_updates, concurrency, on_ack=on_ack)
        result_a["cpu_percent_of_one_core"] = meter.stop()
        if profiler is not None:
            result_a["profiles"] = profiler.stop()
        result_a["database_time"] = await db_time.stop()
        result_a["listed_after_ack"] = await lag.result()
        result_a["drained_after"] = await _background_drained(cluster, sum(chats.sent.values()))
        result_a["db_cpu_ms_per_message"] = _cpu_ms_per(cluster.db_pid, cpu0, result_a["acked"])
        out["a_new_conversations"] = result_a

        existing = list(range(first, first + new_chats))
        meter.start()
        cpu0 = cpu_seconds(cluster.db_pid)
        await db_time.start()
        if profiler is not None:
            profiler.start("b")
        result_b = await closed_loop(session, cluster, chats.workload_b(existing), concurrency,
                                     seconds=b_seconds)
        result_b["cpu_percent_of_one_core"] = meter.stop()
        if profiler is not None:
            result_b["profiles"] = profiler.stop()
        result_b["database_time"] = await db_time.stop()
        result_b["drained_after"] = await _background_drained(cluster, sum(chats.sent.values()))
        result_b["db_cpu_ms_per_message"] = _cpu_ms_per(cluster.db_pid, cpu0, result_b["acked"])
        out["b_existing_conversations"] = result_b

        capacity = float(result_b["updates_per_s"])
        out["open_loop"] = []
        for i, share in enumerate((0.5, 0.8)):
            rate = open_rates[1 + i] if open_rates else capacity * share
            level = await open_loop(session, cluster, chats.workload_b(existing),
                                    rate, open_seconds)
            level["share_of_capacity"] = round(rate / capacity, 2) if capacity else share
            out["open_loop"].append(level)
            await _background_drained(cluster, sum(chats.sent.values()))
        # new chats at half of (a)'s capacity: how soon each is listed at a rate it sustains
        opened_b: set[int] = set()
        lag_b = ListingLag(session, cluster)
        await lag_b.start()

        def on_open(update: dict[str, Any]) -> None:
            chat = update["message"]["chat"]["id"]
            if chat not in opened_b:
                opened_b.add(chat)
                lag_b.acked(chat)

        fresh = first + new_chats + 1000
        rate_a = open_rates[0] if open_rates else float(result_a["updates_per_s"]) * 0.5
        level = await open_loop(session, cluster,
                                chats.stream_a(int(rate_a * open_seconds), fresh),
                                rate_a, open_seconds, on_ack=on_open)
        level["listed_after_ack"] = await lag_b.result()
        capacity_a = float(result_a["updates_per_s"])
        level["share_of_capacity"] = round(rate_a / capacity_a, 2) if capacity_a else 0.5
        out["open_loop_new_chats"] = level
        await _background_drained(cluster, sum(chats.sent.values()))
    out["acked"] = result_a["acked"] + result_b["acked"] + out["open_loop_new_chats"][
        "acked"] + sum(level["acked"] for level in out["open_loop"])
    return out


async def run(cluster: Cluster, *, new_chats: int = 1000, b_seconds: float = 10.0,
              open_seconds: float = 10.0, baseline_n: int = 2000, processes: tuple[int, ...]
              = (1, 2), profile: bool = False, profile_dir: Path | None = None,
              open_rates: tuple[float, float, float] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"new_chats": new_chats, "concurrency": 64}
    before = await bare_baseline(baseline_n)
    profiler = Profiler(profile_dir or cluster.workdir / "profiles",
                        server=cluster.server_pid, database=cluster.db_pid)
    runs: dict[str, Any] = {}
    for n in processes:
        if n != cluster.processes:
            await cluster.restart_server(processes=n)
        runs[f"{n}_process" + ("es" if n > 1 else "")] = await workloads(
            cluster, new_chats=new_chats, b_seconds=b_seconds, open_seconds=open_seconds,
            label=str(n), profiler=profiler if profile and n == 1 else None,
            open_rates=open_rates)
    if cluster.processes != 1:  # back to one process for the figures after this one
        try:
            await cluster.restart_server(processes=1)
        except RuntimeError as exc:  # the figures measured so far are kept
            out["restart_error"] = str(exc)
    after = await bare_baseline(baseline_n)
    best = max(before["docs_per_s"], after["docs_per_s"])
    out["baseline"] = {"before": before, "after": after, "docs_per_s": best}
    with_ratios(out["baseline"], runs)
    out["runs"] = runs
    out["messages_acked"] = sum(r["acked"] for r in runs.values())
    out["messages_in_db"] = await cluster.db.messages.count_documents({"direction": "in"})
    return out


def with_ratios(baseline: dict[str, Any], runs: dict[str, Any]) -> None:
    """Each closed loop's ratios to the baseline: its rate over the best bare rate, and the
    cheapest bare insert's database CPU time over its own per message (the strict sides)."""
    cheapest = min((r["db_cpu_ms_per_doc"] for r in (baseline["before"], baseline["after"])
                    if r.get("db_cpu_ms_per_doc")), default=None)
    baseline["db_cpu_ms_per_doc"] = cheapest
    for result in runs.values():
        for key in ("a_new_conversations", "b_existing_conversations"):
            loop = result[key]
            loop["ratio_to_baseline"] = round(loop["updates_per_s"] / baseline["docs_per_s"], 2)
            cost = loop.get("db_cpu_ms_per_message")
            if cost and cheapest:
                loop["db_cpu_ratio_to_baseline"] = round(cheapest / cost, 2)


class Profiler:
    """py-spy collapsed stacks of the server and the database during one closed loop (the
    phases between them, the drains and the open loops, are left out so the shares are
    those of ingest at saturation)."""

    def __init__(self, directory: Path, **pids: int | None) -> None:
        self.directory = directory
        self.pids = {k: p for k, p in pids.items() if p}
        self._procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, phase: str) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists() and not shutil.which("py-spy"):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            # collapsed stacks: `bench/hotspots.py` sums them; flamegraph.pl and speedscope
            # draw them
            out = self.directory / f"ingest-{phase}-{name}.txt"
            self._procs[name] = (subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking",
                 "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL), out)

    def stop(self) -> dict[str, str]:
        done = {}
        for name, (proc, out) in self._procs.items():
            proc.send_signal(subprocess.signal.SIGINT)  # type: ignore[attr-defined]
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            if out.exists():
                done[name] = str(out)
        self._procs.clear()
        return done
