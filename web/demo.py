"""`switchboard demo`: the server, a sandbox of every channel, a demo admin, simulated customers.

Everything runs on loopback: each channel's sandbox is the connector package's own fake of its
platform (`connectors/<platform>/demo.py`), so a new user sees a live inbox and can reply without
any real platform account. Adding a platform's demo is one line in `DEMOS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any, Protocol

from connectors.channels import Channels
from connectors.email.demo import EmailDemo
from connectors.slack.demo import SlackDemo
from connectors.telegram.demo import TelegramDemo
from connectors.x.demo import XDemo
from web.app import Services
from web.runtime import serve
from web.settings import Settings

log = logging.getLogger(__name__)


class DemoChannel(Protocol):
    platform: str

    async def start(self) -> None: ...

    async def connect(self, channels: Channels) -> str:
        """Create (or recreate) the demo account; returns a line for the welcome text."""
        ...

    async def customers(self, every: tuple[float, float], *, first_after: float) -> None: ...

    async def stop(self) -> None: ...


DEMOS: list[type[Any]] = [
    TelegramDemo,
    SlackDemo,
    XDemo,
    EmailDemo,
]


async def _ensure_people(services: Services) -> str:
    password = secrets.token_urlsafe(9)
    admin = await services.agents.by_login("admin")
    if admin is None:
        await services.agents.create("admin", display_name="张客服", title="客服主管",
                                     password=password, role="admin")
    else:
        await services.agents.update(str(admin["_id"]), {"password": password, "active": True})
    return password


async def demo(settings: Settings, *, customers: bool = True,
               every: tuple[float, float] = (6.0, 15.0)) -> None:
    channels: list[DemoChannel] = [cls() for cls in DEMOS]
    started: list[DemoChannel] = []
    for channel in channels:
        try:
            await channel.start()
            started.append(channel)
        except Exception as exc:  # one sandbox that cannot start must not stop the demo
            log.warning("demo: the %s sandbox did not start: %s", channel.platform, exc)
    tasks: list[asyncio.Task[Any]] = []

    async def setup(services: Services) -> None:
        password = await _ensure_people(services)
        lines = []
        for n, channel in enumerate(started):
            try:
                lines.append(await channel.connect(services.channels))
            except Exception as exc:
                log.warning("demo: the %s account could not be connected: %s",
                            channel.platform, exc)
                continue
            if customers:
                tasks.append(asyncio.create_task(channel.customers(every,
                                                                   first_after=1.0 + n)))
        url = settings.server.public_url
        connected = "".join(f"\n    · {line}" for line in lines)
        print(f"\n  Switchboard demo: open {url}/login and sign in as  admin / {password}\n"
              f"  Connected:{connected}\n  Simulated customers write every few seconds.\n"
              f"  Press Ctrl+C to stop.\n", flush=True)

    try:
        await serve(settings, extra=setup)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        for channel in started:
            with contextlib.suppress(Exception):
                await channel.stop()
