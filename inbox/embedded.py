"""The embedded SecantusDB server, run as a child process (it is GPL: never imported).

One data dir belongs to one Switchboard at a time: `DataDirLock` takes an exclusive `flock` on
`data_dir/switchboard.lock` (released by the kernel however we die) and records the database's
address in `data_dir/embedded.json`, so CLI commands can reach a running server's database.
The child is started with PR_SET_PDEATHSIG so that a `kill -9` of Switchboard takes it down too;
a leftover child from a killed parent is found by its pid file and stopped before we start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pymongo import AsyncMongoClient

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class EmbeddedError(Exception):
    """The embedded database could not be started; the message says why in one line."""


class DataDirBusy(EmbeddedError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGTERM when we die."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # a Ctrl+C in the terminal goes to us, and we stop the child in order


def _server_binary() -> str:
    candidate = Path(sys.executable).parent / "secantusd-py"
    return str(candidate) if candidate.exists() else "secantusd-py"


class DataDirLock:
    """An exclusive lock on a data dir, held for the life of the process that takes it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fh: IO[str] | None = None

    def try_acquire(self) -> bool:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.data_dir / "switchboard.lock", "a+")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def running_server_uri(data_dir: Path) -> str | None:
    """The URI of the embedded database a running Switchboard holds for this data dir, if any."""
    lock = DataDirLock(data_dir)
    if lock.try_acquire():
        lock.release()
        return None
    try:
        info = json.loads((data_dir / "embedded.json").read_text())
    except (OSError, ValueError):
        return None
    return str(info["uri"])


@dataclass
class EmbeddedServer:
    """A SecantusDB child process. `storage=":memory:"` for throwaway test databases."""

    data_dir: Path | None
    storage: str | None = None
    host: str = "127.0.0.1"
    sync_on_commit: bool = True
    log_level: str = "WARNING"

    def __post_init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: DataDirLock | None = None
        self._stopping = False

    @property
    def uri(self) -> str:
        """Without retryable writes: the embedded server keeps a record of every retryable
        write for 30 minutes (up to 10,000) and scans them on each write, so they slow every
        write as they pile up (measured: insert_one 700/s fresh, 50/s past 10,000). No write
        path needs the driver's retry: ingest is idempotent by `_id` (a webhook that failed is
        delivered again), outbox claims and finishes are compare-and-set updates whose lost
        answer only costs a lease's wait, and summaries retry their own tagged statements."""
        return f"mongodb://{self.host}:{self.port}/?directConnection=true&retryWrites=false"

    def _paths(self) -> tuple[Path, str]:
        assert self.data_dir is not None
        return self.data_dir, self.storage or str(self.data_dir / "db")

    def lock_data_dir(self) -> None:
        if self.data_dir is None:
            return
        lock = DataDirLock(self.data_dir)
        if not lock.try_acquire():
            raise DataDirBusy(
                f"data dir {self.data_dir} is in use by another running Switchboard; "
                "stop it first or set database.data_dir to another folder"
            )
        self._lock = lock
        self._reap_orphan()

    def _reap_orphan(self) -> None:
        """Stop a database child left behind by a Switchboard that was killed."""
        assert self.data_dir is not None
        pid_file = self.data_dir / "embedded.json"
        try:
            pid = int(json.loads(pid_file.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return
        if not _is_secantus(pid):
            return
        log.warning("stopping a database process (pid %s) left by an earlier run", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _is_secantus(pid):
            time.sleep(0.05)
        if _is_secantus(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _config_file(self) -> Path:
        """An empty config so a stray ./secantusd.toml cannot change where data goes."""
        base = self.data_dir if self.data_dir is not None else Path("/tmp")  # noqa: S108
        path = base / "secantusd.toml"
        if not path.exists():
            path.write_text("# generated by Switchboard: settings come from its command line\n")
        return path

    def spawn(self) -> None:
        if not self.port:  # a restart keeps the port, so clients reconnect on their own
            self.port = free_port(self.host)
        if self.data_dir is not None:
            data_dir, storage = self._paths()
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            storage = self.storage or ":memory:"
        cmd = [_server_binary(), "--config", str(self._config_file()), "--host", self.host,
               "--port", str(self.port), "--storage-path", storage,
               "--log-level", self.log_level, "--noop-heartbeat-seconds", "10"]
        if self.sync_on_commit:
            cmd.append("--sync-on-commit")
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)
        if self.data_dir is not None:
            tmp = self.data_dir / "embedded.json.tmp"
            tmp.write_text(json.dumps({"pid": self.process.pid, "uri": self.uri}))
            tmp.replace(self.data_dir / "embedded.json")

    async def wait_ready(self, timeout: float = 60.0) -> None:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise EmbeddedError(
                        f"embedded database exited with code {self.process.returncode} "
                        f"while starting (storage: {self.storage or self.data_dir})")
                try:
                    await client.admin.command("ping")
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise EmbeddedError("embedded database did not answer ping in time") \
                            from None
                    await asyncio.sleep(0.05)
        finally:
            await client.close()

    async def start(self) -> None:
        self.lock_data_dir()
        self.spawn()
        await self.wait_ready()
        log.info("embedded database ready on %s:%s", self.host, self.port)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def restart(self) -> None:
        """Start the child again after it died; the data dir lock is still ours."""
        if self.alive():
            return
        self.spawn()
        await self.wait_ready()
        log.warning("embedded database restarted on port %s", self.port)

    async def stop(self) -> None:
        self._stopping = True
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            for _ in range(300):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                proc.kill()
                proc.wait()
        if self.data_dir is not None:
            with contextlib.suppress(OSError):
                (self.data_dir / "embedded.json").unlink()
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _is_secantus(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"secantusd" in cmdline
