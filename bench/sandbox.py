"""The Telegram sandbox as its own process, for the benchmarks.

`python -m bench.sandbox` prints one JSON line `{"url": ...}` once it listens, then serves until
SIGTERM. On top of the test sandbox it stamps every recorded `sendMessage` with the CLOCK_MONOTONIC
time it arrived (`received_mono`, comparable with `time.monotonic()` in any process on this
machine) and can answer a share of `sendMessage` calls with 429:
`POST /_sandbox/bench/rate_limit {"rate": 0.1, "retry_after": 1}` (a rate of 0 turns it off).
A reply whose text carries a marker `[bench:<id>]` can be waited for:
`GET /_sandbox/bench/received?marker=<id>&timeout=<s>` answers `{"received_mono": t, "count": n}`
once it arrived (count: how many times it did), or 404 after the timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import sys
import time
from typing import Any

from aiohttp import web

from connectors.telegram.sandbox import TelegramSandbox
from connectors.telegram.sandbox_state import ApiError, BotState, Params

MARKER = re.compile(r"\[bench:([A-Za-z0-9_-]+)\]")


class BenchSandbox(TelegramSandbox):
    def __init__(self) -> None:
        super().__init__()
        self.rate = 0.0
        self.retry_after = 1
        self.limited = 0
        self._rng = random.Random(6)
        self.received: dict[str, list[float]] = {}
        self._arrived = asyncio.Event()

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/_sandbox/bench/rate_limit", self._ctl_rate)
        app.router.add_get("/_sandbox/bench/stats", self._ctl_stats)
        app.router.add_get("/_sandbox/bench/received", self._ctl_received)
        app.router.add_get("/_sandbox/bench/counts", self._ctl_counts)
        return app

    async def _send_message(self, bot: BotState, params: Params) -> Any:
        if self.rate and self._rng.random() < self.rate:
            self.limited += 1
            raise ApiError(429, retry_after=self.retry_after)
        message = await super()._send_message(bot, params)
        now = time.monotonic()
        bot.sent[-1]["received_mono"] = now
        found = MARKER.search(str(params.get("text") or ""))
        if found:
            self.received.setdefault(found.group(1), []).append(now)
            self._arrived.set()
            self._arrived = asyncio.Event()
        return message

    async def _ctl_received(self, request: web.Request) -> web.Response:
        marker = request.query.get("marker", "")
        deadline = time.monotonic() + float(request.query.get("timeout", "10"))
        while marker not in self.received:
            left = deadline - time.monotonic()
            if left <= 0:
                return web.json_response({"ok": False, "description": "not received"},
                                         status=404)
            event = self._arrived
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)
        times = self.received[marker]
        return web.json_response({"ok": True, "result": {"received_mono": times[0],
                                                         "count": len(times)}})

    async def _ctl_counts(self, request: web.Request) -> web.Response:
        """How many times each marker arrived."""
        return web.json_response({"ok": True, "result": {
            k: len(v) for k, v in self.received.items()}})

    async def _ctl_rate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.rate = float(body.get("rate", 0.0))
        self.retry_after = int(body.get("retry_after", 1))
        if self.rate:  # switching it off keeps the count for the report
            self.limited = 0
        return web.json_response({"ok": True, "result": True})

    async def _ctl_stats(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        bot = self._bots.get(token)
        calls = bot.calls if bot is not None else []
        return web.json_response({"ok": True, "result": {
            "limited": self.limited, "calls": len(calls),
            "send_calls": sum(1 for c in calls if c["method"].lower() == "sendmessage"),
            "sent": len(bot.sent) if bot is not None else 0}})


async def main(port: int) -> None:
    sandbox = BenchSandbox()
    url = await sandbox.start("127.0.0.1", port)
    print(json.dumps({"url": url}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sandbox.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main(args.port))
    sys.exit(0)
