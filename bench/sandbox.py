"""The Telegram sandbox as its own process, for the benchmarks.

`python -m bench.sandbox` prints one JSON line `{"url": ...}` once it listens, then serves until
SIGTERM. On top of the test sandbox it stamps every recorded `sendMessage` with the CLOCK_MONOTONIC
time it arrived (`received_mono`, comparable with `time.monotonic()` in any process on this
machine) and can answer a share of `sendMessage` calls with 429:
`POST /_sandbox/bench/rate_limit {"rate": 0.1, "retry_after": 1}` (a rate of 0 turns it off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time
from typing import Any

from aiohttp import web

from connectors.telegram.sandbox import TelegramSandbox
from connectors.telegram.sandbox_state import ApiError, BotState, Params


class BenchSandbox(TelegramSandbox):
    def __init__(self) -> None:
        super().__init__()
        self.rate = 0.0
        self.retry_after = 1
        self.limited = 0
        self._rng = random.Random(6)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/_sandbox/bench/rate_limit", self._ctl_rate)
        app.router.add_get("/_sandbox/bench/stats", self._ctl_stats)
        return app

    async def _send_message(self, bot: BotState, params: Params) -> Any:
        if self.rate and self._rng.random() < self.rate:
            self.limited += 1
            raise ApiError(429, retry_after=self.retry_after)
        message = await super()._send_message(bot, params)
        bot.sent[-1]["received_mono"] = time.monotonic()
        return message

    async def _ctl_rate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.rate = float(body.get("rate", 0.0))
        self.retry_after = int(body.get("retry_after", 1))
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
