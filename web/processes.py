"""`switchboard serve --processes N`: N server processes on one database and one port.

The first process owns the embedded database (if any) and starts the others as children
(`serve --join URI`), which die with it. Every process listens on the same port with
SO_REUSEPORT, so the kernel spreads connections over them; each runs its own ingest, summaries,
delivery worker, event hub and inbound runners. What must happen once is decided in the
database: replies are claimed by compare-and-set, long-lived inbound is leased per account,
conversations have derived ids, so a webhook may land on any process and an SSE stream on any
process sees every change (change streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
READY_FD = "SB_SERVE_READY_FD"  # a child writes a line there once it listens (not a setting)


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Children:
    """The other server processes of a `--processes N` run."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self, count: int, uri: str, config: Path | None,
                    timeout: float = 120.0) -> None:
        """Start `count` more processes and return once each of them listens."""
        pipes = []
        for _ in range(count):
            cmd = [sys.executable, "-m", "web.cli"]
            if config is not None:
                cmd += ["--config", str(config)]
            cmd += ["serve", "--join", uri]
            read_end, write_end = os.pipe()
            self.procs.append(subprocess.Popen(  # noqa: ASYNC220 - fork+exec, returns at once
                cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                pass_fds=(write_end,), env={**os.environ, READY_FD: str(write_end)}))
            os.close(write_end)
            pipes.append(read_end)
        try:
            async with asyncio.timeout(timeout):
                for read_end in pipes:
                    if not await asyncio.to_thread(os.read, read_end, 64):
                        raise RuntimeError("a server process exited while starting")
        finally:
            for read_end in pipes:
                os.close(read_end)
        if count:
            log.info("started %d more server processes", count)

    @staticmethod
    def tell_ready() -> None:
        """In a child: say to the first process that this one listens."""
        fd = os.environ.pop(READY_FD, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(int(fd), b"ready\n")
                os.close(int(fd))

    def alive(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def stop(self, timeout: float = 15.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
