"""Small helpers: percentiles, timers, telegram updates, the printed table."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a process has used so far."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Share of one core each process used between `start()` and `stop()`, in percent."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = pids
        self._t0 = 0.0
        self._c0: dict[str, float | None] = {}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}

    def stop(self) -> dict[str, float | None]:
        elapsed = time.monotonic() - self._t0
        out: dict[str, float | None] = {}
        for k, p in self.pids.items():
            now, before = cpu_seconds(p), self._c0.get(k)
            out[k] = None if now is None or before is None or elapsed <= 0 else round(
                100 * (now - before) / elapsed)
        return out


async def sse_events(lines: AsyncIterable[bytes]) -> AsyncIterator[tuple[str, Any]]:
    """(event name, decoded data) for each `data:` line of a Server-Sent Events body."""
    event = ""
    async for raw in lines:
        line = raw.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, json.loads(line[5:])


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: Iterable[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": _r(percentile(ms, 50)), "p95_ms": _r(percentile(ms, 95)),
            "p99_ms": _r(percentile(ms, 99)), "max_ms": _r(max(ms) if ms else None)}


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


class Clock:
    """A deadline for the whole run, so each figure can size itself to what is left."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.monotonic()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def telegram_update(update_id: int, chat_id: int, message_id: int, text: str,
                    date: int | None = None) -> dict[str, Any]:
    """A customer's private text message, shaped like the real Bot API `Update`."""
    user = {"id": chat_id, "is_bot": False, "first_name": "客户", "last_name": str(chat_id),
            "username": f"customer_{chat_id}", "language_code": "zh-hans"}
    chat = {"id": chat_id, "type": "private", "first_name": user["first_name"],
            "last_name": user["last_name"], "username": user["username"]}
    return {"update_id": update_id, "message": {
        "message_id": message_id, "from": user, "chat": chat,
        "date": int(time.time()) if date is None else date, "text": text}}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 1024**2, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_at_start": [round(x, 2) for x in load]}


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 10 \
            else f"{value:,.2f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """A Markdown table: figure | measurement | value | target."""
    head = ("figure", "measurement", "result", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    return "\n".join([line, sep, *body])
