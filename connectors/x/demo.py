"""`switchboard demo`'s X: the sandbox X API, one brand account, customers who mention it and
write to it by DM now and then.

The account is made through the same lifecycle an admin uses (`Channels.create`, so users/me
is called through tweepy) in **polling** mode every 2 s: it needs no public URL, whatever
`server.public_url` says. The sandbox lets DM reads come every few seconds (X allows 15 per 15
minutes, which would make the demo's DMs arrive a minute late); everything else is X's.
"""

from __future__ import annotations

import asyncio
import random

from connectors.channels import Channels
from connectors.x.sandbox import XSandbox
from connectors.x.sandbox_control import DEMO_PHOTO

ACCOUNT = "Demo X"
CONSUMER_KEY = "demo-x-consumer-key-not-real"
CONSUMER_SECRET = "demo-x-consumer-secret-not-real"  # noqa: S105 - sandbox only
ACCESS_TOKEN = "1500000000000000001-demo-access-token"  # noqa: S105 - sandbox only
ACCESS_SECRET = "demo-x-access-token-secret-not-real"  # noqa: S105 - sandbox only
BRAND_ID = "1500000000000000001"  # below the sandbox's generated ids
BRAND = ("acme_support", "Acme Support")
POLL_INTERVAL_S = 2
DEMO_LIMITS = {"dm_events": 600}

# (username, name, lines): a line is ("mention" | "reply" | "dm" | "dm+photo", text); "reply"
# answers the customer's own last post, so it joins the same public thread; "dm+photo" carries
# a photo the sandbox serves as X serves DM media (a signed GET).
CUSTOMERS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("li_na_sh", "李娜", [("mention", "你们的 App 今天一直闪退，iPhone 15，已经重装过了，怎么办？"),
                        ("reply", "补充一下：是登录之后马上闪退。"),
                        ("dm", "私信发一下我的账号信息，麻烦尽快处理。")]),
    ("emma_k", "Emma Klein", [("mention", "my order #20261203 still shows 'processing' after "
                                          "a week?"),
                              ("dm", "Sending the order details here rather than in public."),
                              ("reply", "Any update on this?")]),
    ("wang_wei88", "王伟", [("dm+photo", "你好，我收到的商品外包装破了，照片在这里，可以换货吗？"),
                           ("mention", "客服什么时候上班？私信没人回"),
                           ("dm", "订单号是 20931，谢谢！")]),
    ("lucas_m", "Lucas Martin", [("mention", "Do you ship to France?"),
                                 ("reply", "And how long does delivery usually take?")]),
]


class XDemo:
    platform = "x"

    def __init__(self) -> None:
        self.sandbox = XSandbox(limits=DEMO_LIMITS)
        self.account_id: str | None = None
        self.people: dict[str, str] = {}  # username → sandbox user id
        self.last_post: dict[str, str] = {}  # username → the id of their latest post

    async def start(self) -> None:
        await self.sandbox.start()
        self.sandbox.add_app(CONSUMER_KEY, CONSUMER_SECRET)
        self.sandbox.add_account(CONSUMER_KEY, ACCESS_TOKEN, ACCESS_SECRET, username=BRAND[0],
                                 name=BRAND[1], user_id=BRAND_ID)
        for username, name, _ in CUSTOMERS:
            self.people[username] = self.sandbox.add_user(username, name)

    async def connect(self, channels: Channels) -> str:
        existing = await channels.accounts.find("x", name=ACCOUNT)
        if existing is None:
            existing = await channels.accounts.find("x", platform_id=BRAND_ID)
        if existing is not None:  # the sandbox of an earlier demo is gone: start afresh
            await channels.delete(str(existing["_id"]))
        doc = await channels.create({
            "platform": "x", "name": ACCOUNT, "mode": "polling",
            "api_base_url": self.sandbox.base_url,
            "credentials": {"consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET,
                            "access_token": ACCESS_TOKEN, "access_token_secret": ACCESS_SECRET},
            "options": {"poll_interval_s": POLL_INTERVAL_S}}, actor="demo")
        self.account_id = str(doc["_id"])
        return f"a sandbox X account (@{BRAND[0]}), polled every {POLL_INTERVAL_S} s"

    def write(self, username: str, kind: str, text: str) -> str:
        """One customer action in the sandbox: a new mention, a reply in their thread, a DM
        (with a photo for "dm+photo")."""
        who = self.people[username]
        if kind in ("dm", "dm+photo"):
            media = [self.sandbox.photo(DEMO_PHOTO, "image/png")] if kind == "dm+photo" else None
            return self.sandbox.inject_dm(who, BRAND_ID, text, media=media)
        previous = self.last_post.get(username) if kind == "reply" else None
        post = self.sandbox.inject_mention(who, text, to=BRAND_ID, in_reply_to=previous)
        self.last_post[username] = post
        return post

    async def customers(self, every: tuple[float, float], *, first_after: float = 1.0) -> None:
        rng = random.Random()  # noqa: S311 - a demo, not a secret
        turn = {c[0]: 0 for c in CUSTOMERS}
        delay = first_after
        while True:
            await asyncio.sleep(delay)
            delay = rng.uniform(*every)
            username, _, lines = rng.choice(CUSTOMERS)
            kind, text = lines[turn[username] % len(lines)]
            if kind == "reply" and username not in self.last_post:
                kind = "mention"
            turn[username] += 1
            self.write(username, kind, text)

    async def stop(self) -> None:
        await self.sandbox.stop()
