"""The processes a benchmark runs against: database, Telegram sandbox, Switchboard server.

The load generator is the calling process (its own event loop); the server is a
`switchboard serve` child configured through SWITCHBOARD_* variables, the sandbox a
`python -m bench.sandbox` child, and the database either the embedded SecantusDB (a child
started here, with --sync-on-commit as in production) or `--mongodb-uri`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from pymongo import AsyncMongoClient

from inbox.agents import Agents
from inbox.db import Database, Doc, connect, ensure_indexes
from inbox.embedded import EmbeddedServer, free_port

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "7000000001:AAH-bench-sandbox-token-not-real-00000"
BOT_ID = 7000000001


def rss_kib(pid: int) -> int | None:
    """VmRSS of one process (not its children), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None = None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()


def _spawn(name: str, cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path, *,
           pipe: bool = False) -> Child:
    """A child process with its stderr (and stdout unless `pipe`) in `log_path`."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed by Child.stop
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if pipe else log,
                            stderr=log)
    return Child(name, proc, log)


@dataclass
class Cluster:
    """Everything one benchmark run talks to; `async with Cluster(...) as c:`."""

    mongodb_uri: str | None = None
    keep: bool = False
    server_settings: dict[str, str] = field(default_factory=dict)  # "section.key" → value
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sb-bench-")))
    db_name: str = field(default_factory=lambda: f"bench_{secrets.token_hex(4)}")

    def __post_init__(self) -> None:
        self.embedded: EmbeddedServer | None = None
        self.uri = ""
        self.client: AsyncMongoClient[Doc] | None = None
        self.sandbox: Child | None = None
        self.server: Child | None = None
        self.sandbox_url = ""
        self.url = ""
        self.token = ""
        self.http: aiohttp.ClientSession | None = None
        self.account_id = ""
        self.webhook_secret = ""
        self.extra_dbs: list[str] = []
        self.processes = 1
        self.port = 0
        self.secret_key = secrets.token_urlsafe(32)
        self.server_env: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def db(self) -> Database:
        assert self.client is not None
        return self.client[self.db_name]

    def database(self, name: str) -> Database:
        """Another database on the same server, dropped at the end of the run."""
        assert self.client is not None
        full = f"{self.db_name}_{name}"
        self.extra_dbs.append(full)
        return self.client[full]

    async def start(self) -> None:
        if self.mongodb_uri:
            self.uri = self.mongodb_uri
        else:
            self.embedded = EmbeddedServer(data_dir=self.workdir / "db")
            await self.embedded.start()
            self.uri = self.embedded.uri
        self.client = connect(self.uri, timeout_ms=10_000)
        await self.client.admin.command("ping")
        await ensure_indexes(self.db)
        agents = Agents(self.db)
        admin = await agents.create("bench-admin", display_name="Bench 管理员", role="admin",
                                    password=secrets.token_urlsafe(12))
        self.token, _ = await agents.create_token(str(admin["_id"]), "bench")
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            headers={"Authorization": f"Bearer {self.token}"})
        await self._start_sandbox()
        await self._start_server()
        await self._add_account()

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        for child in (self.server, self.sandbox):
            if child is not None:
                await asyncio.to_thread(child.stop)
        if self.client is not None:
            if self.mongodb_uri:  # never leave bench data in someone's database
                for name in [self.db_name, *self.extra_dbs]:
                    with contextlib.suppress(Exception):
                        await self.client.drop_database(name)
            await self.client.close()
        if self.embedded is not None:
            await self.embedded.stop()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    async def _start_sandbox(self) -> None:
        self.sandbox = _spawn("sandbox", [sys.executable, "-m", "bench.sandbox"], ROOT,
                              self._env(), self.workdir / "sandbox.log", pipe=True)
        proc = self.sandbox.process
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        if not line:
            raise RuntimeError(f"sandbox did not start; see {self.workdir / 'sandbox.log'}")
        self.sandbox_url = json.loads(line)["url"]
        await self.sandbox_call("POST", "/_sandbox/bots", {
            "token": BOT_TOKEN, "id": BOT_ID, "username": "bench_support_bot",
            "first_name": "Bench Support"})

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def restart_server(self, *, processes: int = 1, **env: str) -> None:
        """Stop `switchboard serve` and start it again (same port and database)."""
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
        self.processes = processes
        self.server_env = dict(env)
        await self._start_server()

    async def start_joined(self, env: dict[str, str]) -> Child:
        """One more server process on the same database (`serve --join`), on its own port.

        The port is one the kernel had free a moment before; another process may take it
        first (the test suite runs servers side by side), so a refused bind is tried again on
        another port."""
        for _ in range(3):
            port = free_port()
            log_path = self.workdir / f"joined-{port}.log"
            child = _spawn("joined",
                           [sys.executable, "-m", "web.cli", "serve", "--join", self.uri],
                           self.workdir, self._server_env(port) | env, log_path)
            if await self._healthy(child, f"http://127.0.0.1:{port}", 60):
                return child
            await asyncio.to_thread(child.stop)
            tail = log_path.read_text(errors="replace")[-2000:]
            if "address already in use" not in tail:
                raise RuntimeError(f"the joined server process did not start (exit "
                                   f"{child.process.returncode}): {tail}")
        raise RuntimeError("the joined server process found no free port in three tries")

    async def _healthy(self, child: Child, url: str, within: float) -> bool:
        """Whether `child` answers /healthz with 200 within `within` s (False once it exits)."""
        assert self.http is not None
        deadline = time.monotonic() + within
        while child.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.http.get(f"{url}/healthz",
                                         timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    if resp.status == 200:
                        return True
            await asyncio.sleep(0.1)
        return False

    def _server_env(self, port: int) -> dict[str, str]:
        chosen = {f"SWITCHBOARD_{k.upper().replace('.', '__')}": v
                  for k, v in self.server_settings.items()}
        return self._env() | chosen | {
            "SWITCHBOARD_SERVER__PROCESSES": str(self.processes),
            "SWITCHBOARD_DATABASE__URI": self.uri,
            "SWITCHBOARD_DATABASE__NAME": self.db_name,
            "SWITCHBOARD_DATABASE__DATA_DIR": str(self.workdir / "data"),
            "SWITCHBOARD_SERVER__HOST": "127.0.0.1",
            "SWITCHBOARD_SERVER__PORT": str(port),
            "SWITCHBOARD_SERVER__PUBLIC_URL": self.url,
            "SWITCHBOARD_SECURITY__SECRET_KEY": self.secret_key,
        } | self.server_env

    async def _start_server(self) -> None:
        port = self.port or free_port()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env = self._server_env(port)
        self.server = _spawn("server", [sys.executable, "-m", "web.cli", "serve"],
                             self.workdir, env, self.workdir / "server.log")
        if not await self._healthy(self.server, self.url, 60):
            code = self.server.process.poll()
            what = f"exited ({code})" if code is not None else "did not become healthy in 60 s"
            tail = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"switchboard serve {what}: {tail}")

    async def _add_account(self) -> None:
        assert self.http is not None
        async with self.http.post(f"{self.url}/api/accounts", json={
                "platform": "telegram", "name": "Bench bot", "mode": "webhook",
                "api_base_url": self.sandbox_url,
                "credentials": {"bot_token": BOT_TOKEN}}) as resp:
            body = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"could not add the Telegram account: {resp.status} {body}")
        self.account_id = str(body["id"])
        doc = await self.db.accounts.find_one({"_id": __import__("bson").ObjectId(
            self.account_id)})
        assert doc is not None
        self.webhook_secret = str(doc["webhook_secret"])

    # ------------------------------------------------------------------ helpers

    @property
    def server_pid(self) -> int:
        assert self.server is not None
        return self.server.process.pid

    @property
    def server_pids(self) -> list[int]:
        """The server process and the processes it started (`--processes N`)."""
        pids = [self.server_pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.server_pid}/task/{self.server_pid}/children")
            pids += [int(p) for p in children.read_text().split()]
        return pids

    @property
    def db_pid(self) -> int | None:
        if self.embedded is not None and self.embedded.process is not None:
            return self.embedded.process.pid
        return None

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/telegram/{self.account_id}"

    async def sandbox_call(self, method: str, path: str, body: Any = None) -> Any:
        assert self.http is not None
        async with self.http.request(method, f"{self.sandbox_url}{path}", json=body) as resp:
            data = await resp.json()
            if resp.status >= 300 or not data.get("ok"):
                raise RuntimeError(f"sandbox {path}: {resp.status} {data}")
            return data["result"]
