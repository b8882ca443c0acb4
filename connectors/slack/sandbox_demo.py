"""The demo's Slack workspace: simulated customers writing in DMs and in a shared channel.

`seed_demo(sandbox)` creates the workspace, people and channels and returns what a Switchboard
account needs (tokens, signing secret, API base URL); `play_demo(sandbox)` then has the
customers write, a few seconds apart, some in Chinese, one thread in the shared channel.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.slack.sandbox import SlackSandbox

DEMO_TEAM = "T0DEMO"
DEMO_BOT_TOKEN = "xoxb-demo-acme"
DEMO_APP_TOKEN = "xapp-demo-acme"
DEMO_SIGNING_SECRET = "demo-signing-secret"
SHARED_CHANNEL = "C0DEMOSHARED"

CUSTOMERS = (
    # user id, handle, real name, display name, locale
    ("U0DEMOWF", "wangfang", "王芳", "王芳", "zh-CN"),
    ("U0DEMOLW", "linwei", "Lin Wei", "Lin", "en-US"),
    ("U0DEMOPS", "priya", "Priya Sharma", "Priya", "en-GB"),
    ("U0DEMOCL", "chenlei", "陈磊", "陈磊", "zh-CN"),
)

# (customer, "dm" or the shared channel, text, index of the script line whose thread it joins)
SCRIPT: tuple[tuple[str, str, str, int | None], ...] = (
    ("U0DEMOWF", "dm", "你好，我上周下的订单 #20931 还没有发货，能帮忙查一下吗？", None),
    ("U0DEMOLW", SHARED_CHANNEL, "Hi team, the CSV export has been failing for us since "
                                 "this morning (stops at 99%).", None),
    ("U0DEMOPS", "dm", "Hello! Could you resend the invoice for March? I can't find it.", None),
    ("U0DEMOCL", SHARED_CHANNEL, "我们这边也遇到了同样的问题，导出到 99% 就卡住了。", 1),
    ("U0DEMOWF", "dm", "订单是用支付宝付的款，收货地址在上海。", None),
    ("U0DEMOLW", SHARED_CHANNEL, "Any ETA? Our finance team needs the file today.", 1),
)


def seed_demo(sandbox: SlackSandbox, *, events_url: str | None = None) -> dict[str, Any]:
    """Create the demo workspace (idempotent); returns the account settings to create."""
    if DEMO_TEAM not in sandbox.state.workspaces:
        sandbox.add_workspace(DEMO_TEAM, "Acme Demo", bot_token=DEMO_BOT_TOKEN,
                              signing_secret=DEMO_SIGNING_SECRET, app_token=DEMO_APP_TOKEN,
                              bot_user_id="U0DEMOBOT", bot_id="B0DEMOBOT", app_id="A0DEMOAPP",
                              bot_name="acme-support")
        for user_id, handle, real_name, display, locale in CUSTOMERS:
            sandbox.add_user(user_id, handle, team_id=DEMO_TEAM, real_name=real_name,
                             display_name=display, locale=locale)
        sandbox.add_channel(SHARED_CHANNEL, "acme-shared-support", team_id=DEMO_TEAM,
                            members=["U0DEMOLW", "U0DEMOCL"], shared=True)
        for user_id, *_ in CUSTOMERS:
            sandbox.open_dm(user_id, f"D{user_id[1:]}")
    if events_url is not None:
        sandbox.set_events_url(events_url, DEMO_TEAM)
    return {"platform": "slack", "credentials": {
        "bot_token": DEMO_BOT_TOKEN, "signing_secret": DEMO_SIGNING_SECRET,
        "app_token": DEMO_APP_TOKEN}, "api_base_url": sandbox.api_url, "team_id": DEMO_TEAM}


async def play_demo(sandbox: SlackSandbox, *, delay: float = 2.0) -> list[dict[str, Any]]:
    """Run the script once; returns the payloads sent."""
    seed_demo(sandbox)
    sent: list[dict[str, Any]] = []
    for user_id, where, text, thread_of in SCRIPT:
        channel = sandbox.open_dm(user_id).id if where == "dm" else where
        thread_ts = sent[thread_of]["event"]["ts"] if thread_of is not None else None
        sent.append(await sandbox.say(user_id, channel, text, thread_ts=thread_ts))
        await asyncio.sleep(delay)
    return sent
