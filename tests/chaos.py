"""Crash and fault harness: a real `switchboard serve` process, Telegram-like load, and checks.

Nothing here is a mock: the server is the `switchboard serve` command in its own process (killed
with real signals), the platform is the Telegram sandbox spoken to by python-telegram-bot inside
that process, and the load generator does what Telegram does with a webhook: POST each update
with the secret header and deliver again whatever did not get a 2xx.

The scenarios are functions with a size, so the fast suite (tests/test_chaos_*.py) runs them
small and `make soak` (soak/) runs them at full size; each returns its measured figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from connectors.telegram.sandbox import SECRET_HEADER, TelegramSandbox
from inbox.agents import Agents
from inbox.db import Database, connect, ensure_indexes
from inbox.embedded import _die_with_parent

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "telegram" / "inbound"
SECRET_KEY = "chaos-secret-key-not-for-production-0123"
ADMIN_PASSWORD = "chaos admin password 1"
AGENT_PASSWORD = "chaos agent password 2"
# Every outbound request of the server goes to this dead proxy unless it is for loopback, so
# a fuzzed api_base_url can never make the server talk to anything but this machine.
DEAD_PROXY = "http://127.0.0.1:9"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """The processes `pid` started, and theirs, as they are now."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        path = Path(f"/proc/{parent}/task/{parent}/children")
        with contextlib.suppress(OSError):
            kids = [int(k) for k in path.read_text().split()]
            out.update(kids)
            todo.extend(kids)
    return out


# ----------------------------------------------------------------------------- the server


@dataclass
class Serve:
    """`switchboard serve` as a child process; restartable on the same port and data dir.

    `uri=None` runs the embedded database under `data_dir` (as in production, with
    `--sync-on-commit`); otherwise the server uses that MongoDB URI and database name.
    """

    data_dir: Path
    db_name: str
    uri: str | None = None
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-serve.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SWITCHBOARD_") and "proxy" not in k.lower()}
        env.update({
            "SWITCHBOARD_DATABASE__DATA_DIR": str(self.data_dir),
            "SWITCHBOARD_DATABASE__NAME": self.db_name,
            "SWITCHBOARD_SERVER__PORT": str(self.port),
            "SWITCHBOARD_SERVER__PUBLIC_URL": self.url,
            "SWITCHBOARD_SECURITY__SECRET_KEY": SECRET_KEY,
            "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "ALL_PROXY": DEAD_PROXY,
            "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1",
        })
        if self.uri:
            env["SWITCHBOARD_DATABASE__URI"] = self.uri
        env.update(self.env_extra)
        return env

    async def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until it answers `/healthz` itself. The port was free
        when it was picked, but another test's server may have taken it since (each worker
        picks ports, and a killed server's port is free until its restart): an answer from a
        process that is not this one's does not count, and a first start moves to a new port
        (a restart keeps its port: that is what it is for)."""
        first = self.starts == 0
        for _ in range(3):
            if await self._start(timeout):
                return
            await self.stop()
            if not first:
                raise AssertionError(f"port {self.port} is another process's: cannot restart")
            self.port = free_port()
        raise AssertionError("switchboard serve found its port taken three times")

    async def _start(self, timeout: float) -> bool:
        """Whether this server answered (False: another process answers on its port)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- start {self.starts + 1} ---\n".encode())
            log.flush()
            # Popen returns at once (fork+exec); the wait for readiness below is async
            # (and dies with this process, like the embedded database dies with it)
            self.proc = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "web.cli", "serve"], env=self.env(), cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent)
        self.starts += 1
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"{self.url}/healthz",
                                        timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            answered = (await resp.json()).get("process")
                            if self._ours(answered):
                                return True
                            log_line = f"--- port {self.port} answered by process {answered}"
                            with open(self.log_path, "a") as out:
                                out.write(log_line + " ---\n")
                            return False
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"switchboard serve did not start:\n{self.output()[-3000:]}")
                await asyncio.sleep(0.05)

    def _ours(self, pid: object) -> bool:
        """Whether `pid` is this server's process or one it started (`--processes N`)."""
        if self.proc is None or not isinstance(pid, int):
            return False
        return pid == self.proc.pid or pid in descendants(self.proc.pid)

    def embedded_pid(self) -> int | None:
        try:
            return int(json.loads((self.data_dir / "embedded.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def embedded_uri(self) -> str:
        return str(json.loads((self.data_dir / "embedded.json").read_text())["uri"])

    def db_uri(self) -> str:
        return self.uri or self.embedded_uri()

    async def kill(self, *, with_database: bool = True) -> None:
        """`kill -9` the server (and, with the embedded database, its database process too: a
        power cut, not the orderly SIGTERM the child would otherwise get from the kernel)."""
        assert self.proc is not None
        db_pid = self.embedded_pid() if self.uri is None and with_database else None
        self.proc.send_signal(signal.SIGKILL)
        if db_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(db_pid, signal.SIGKILL)
        await self._reap()

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            await self._reap(30)
        except TimeoutError:
            self.proc.kill()
            await self._reap()
        return self.proc.returncode

    async def _reap(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("switchboard serve did not exit")
            await asyncio.sleep(0.02)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


async def wait_until(predicate: Callable[[], Awaitable[Any]], timeout: float,
                     what: str = "condition", every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


# ----------------------------------------------------------------------------- people, accounts


@dataclass
class People:
    admin_token: str
    agent_token: str
    admin_id: str
    agent_id: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        token = self.admin_token if role == "admin" else self.agent_token
        return {"Authorization": f"Bearer {token}"}


async def seed_people(db: Database) -> People:
    await ensure_indexes(db)
    agents = Agents(db)
    admin = await agents.create("chaos-admin", display_name="李经理", password=ADMIN_PASSWORD,
                                role="admin")
    agent = await agents.create("chaos-agent", display_name="张客服", title="技术支持",
                                password=AGENT_PASSWORD, role="agent")
    admin_token, _ = await agents.create_token(str(admin["_id"]), "chaos")
    agent_token, _ = await agents.create_token(str(agent["_id"]), "chaos")
    return People(admin_token, agent_token, str(admin["_id"]), str(agent["_id"]))


async def add_account(http: aiohttp.ClientSession, url: str, people: People,
                      sandbox: TelegramSandbox, token: str, name: str) -> dict[str, Any]:
    async with http.post(f"{url}/api/accounts", headers=people.headers(), json={
            "platform": "telegram", "name": name, "mode": "webhook",
            "api_base_url": sandbox.base_url, "credentials": {"bot_token": token}}) as resp:
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


async def webhook_secret(db: Database, account_id: str) -> str:
    from bson import ObjectId

    doc = await db.accounts.find_one({"_id": ObjectId(account_id)})
    assert doc is not None
    return str(doc["webhook_secret"])


# ----------------------------------------------------------------------------- webhook load


def make_updates(n: int, *, chats: int = 20, first_update_id: int = 500_000_000,
                 chat_base: int = 610_000_000) -> list[dict[str, Any]]:
    """`n` customer text messages over `chats` private chats, shaped like the real fixture."""
    template = json.loads((FIXTURES / "message__private_text.json").read_text())
    per_chat: Counter[int] = Counter()
    out = []
    for i in range(n):
        chat_id = chat_base + i % chats
        per_chat[chat_id] += 1
        update = copy.deepcopy(template)
        update["update_id"] = first_update_id + i
        msg = update["message"]
        msg["message_id"] = per_chat[chat_id]
        msg["from"] = {**msg["from"], "id": chat_id, "username": f"load_{chat_id}"}
        msg["chat"] = {**msg["chat"], "id": chat_id, "username": f"load_{chat_id}"}
        msg["text"] = f"load message {i} 你好"
        msg.pop("entities", None)
        out.append(update)
    return out


def external_id(update: dict[str, Any]) -> str:
    msg = update["message"]
    return f"{msg['chat']['id']}:{msg['message_id']}"


@dataclass
class Outcome:
    """What the load generator saw for each update: the HTTP status, or None (no answer)."""

    status: dict[int, int | None] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)

    def acked(self) -> set[int]:
        return {u for u, s in self.status.items() if s == 200}

    def counts(self) -> Counter[str]:
        return Counter("none" if s is None else str(s) for s in self.status.values())


async def post_update(http: aiohttp.ClientSession, url: str, secret: str,
                      update: dict[str, Any], timeout: float = 15.0) -> int | None:
    body = json.dumps(update, ensure_ascii=False).encode()
    try:
        async with http.post(url, data=body, headers={
                SECRET_HEADER: secret, "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError, ConnectionError):
        return None


async def post_all(http: aiohttp.ClientSession, url: str, secret: str,
                   updates: Iterable[dict[str, Any]], outcome: Outcome, *,
                   concurrency: int = 16, pace: float = 0.0, timeout: float = 15.0) -> None:
    """POST every update once, `concurrency` at a time (Telegram uses up to 40 connections)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for update in updates:
        queue.put_nowait(update)

    async def worker() -> None:
        while not queue.empty():
            update = queue.get_nowait()
            outcome.started.add(update["update_id"])
            outcome.status[update["update_id"]] = await post_update(http, url, secret, update,
                                                                    timeout)
            if pace:
                await asyncio.sleep(pace)

    await asyncio.gather(*[worker() for _ in range(concurrency)])


async def redeliver(http: aiohttp.ClientSession, url: str, secret: str,
                    updates: list[dict[str, Any]], outcome: Outcome, *,
                    timeout: float = 120.0, concurrency: int = 8) -> int:
    """Deliver again every update without a 200 until each gets one; returns the attempts."""
    attempts = 0
    deadline = time.monotonic() + timeout
    by_id = {u["update_id"]: u for u in updates}
    while True:
        missing = [by_id[u] for u in by_id if outcome.status.get(u) != 200]
        if not missing:
            return attempts
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} updates never got a 200 on redelivery")
        attempts += len(missing)
        await post_all(http, url, secret, missing, outcome, concurrency=concurrency)
        if any(outcome.status.get(u["update_id"]) != 200 for u in missing):
            await asyncio.sleep(0.5)


async def stored_inbound(db: Database, account_id: str) -> Counter[str]:
    docs = await db.messages.find({"account_id": account_id, "direction": "in"},
                                  {"external_id": 1}).to_list()
    return Counter(d["external_id"] for d in docs)


async def summary_drift(db: Database, account_id: str) -> int:
    """Conversations whose `message_count` disagrees with their stored messages."""
    counts: Counter[str] = Counter()
    async for doc in db.messages.find({"account_id": account_id}, {"conversation_id": 1}):
        counts[doc["conversation_id"]] += 1
    drift = 0
    async for conv in db.conversations.find({"account_id": account_id},
                                            {"message_count": 1}):
        if int(conv.get("message_count") or 0) != counts[str(conv["_id"])]:
            drift += 1
    return drift


def open_db(uri: str, name: str) -> tuple[Any, Database]:
    client = connect(uri)
    return client, client[name]


# ----------------------------------------------------------------------------- sync tests


class LoopThread:
    """An event loop in a daemon thread, for sync tests (hypothesis-driven, schemathesis) that
    need async things alive beside them: the Telegram sandbox, the server's start and stop."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[Any], timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)
        return self.run(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
