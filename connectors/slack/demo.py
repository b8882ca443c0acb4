"""`switchboard demo`'s Slack: the sandbox workspace "Acme Demo", its app connected as a channel
account, and customers who write in DMs and in a shared (Slack Connect) channel, some in
Chinese, some inside threads.

The account uses Socket Mode by default: the server connects out to the sandbox, so the demo
works whatever `server.public_url` says (behind a proxy, a container's port mapping). Events
mode (`SlackDemo(mode="events")`) points the sandbox's Request URL at the account's
`/webhooks/slack/<id>` instead, which needs the public URL to reach this server.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from connectors.channels import Channels
from connectors.slack.sandbox import SlackSandbox
from connectors.slack.sandbox_demo import (
    DEMO_APP_TOKEN,
    DEMO_BOT_TOKEN,
    DEMO_SIGNING_SECRET,
    DEMO_TEAM,
    SCRIPT,
    seed_demo,
)

ACCOUNT = "Demo Slack"


class SlackDemo:
    platform = "slack"

    def __init__(self, mode: str = "socket") -> None:
        if mode not in ("socket", "events"):
            raise ValueError(f"mode must be socket or events, not {mode!r}")
        self.mode = mode
        self.sandbox = SlackSandbox()
        self.account_id: str | None = None

    async def start(self) -> None:
        await self.sandbox.start()
        seed_demo(self.sandbox)

    async def connect(self, channels: Channels) -> str:
        """Create the demo account through the same lifecycle an admin uses (auth.test,
        scopes, hosting), replacing the one an earlier demo run left."""
        workspace = self.sandbox.workspace(DEMO_TEAM)
        platform_id = f"{DEMO_TEAM}:{workspace.app_id}"
        earlier = {str(doc["_id"]) for doc in (
            await channels.accounts.find("slack", name=ACCOUNT),
            await channels.accounts.find("slack", platform_id=platform_id)) if doc is not None}
        for account_id in earlier:
            await channels.delete(account_id)
        credentials = {"bot_token": DEMO_BOT_TOKEN, "signing_secret": DEMO_SIGNING_SECRET}
        if self.mode == "socket":
            credentials["app_token"] = DEMO_APP_TOKEN
        doc = await channels.create({
            "platform": "slack", "name": ACCOUNT, "mode": self.mode,
            "api_base_url": self.sandbox.api_url, "credentials": credentials}, actor="demo")
        self.account_id = str(doc["_id"])
        if self.mode == "events":
            self.sandbox.set_events_url(channels.webhook_url(doc), DEMO_TEAM)
        how = "Socket Mode" if self.mode == "socket" else "Events API"
        return f"a sandbox Slack workspace ({workspace.team_name}, {how})"

    async def customers(self, every: tuple[float, float], *, first_after: float = 1.0) -> None:
        """The script's lines in order, again and again, `every` seconds apart (a random
        pick in the range); a line that answers an earlier one writes in its thread."""
        rng = random.Random()  # noqa: S311 - a demo, not a secret
        delay = first_after
        while True:
            posted: list[dict[str, Any]] = []
            for user_id, where, text, thread_of in SCRIPT:
                await asyncio.sleep(delay)
                delay = rng.uniform(*every)
                channel = self.sandbox.open_dm(user_id).id if where == "dm" else where
                thread_ts = posted[thread_of]["event"]["ts"] if thread_of is not None else None
                posted.append(await self.sandbox.say(user_id, channel, text,
                                                     thread_ts=thread_ts))

    async def stop(self) -> None:
        await self.sandbox.stop()
