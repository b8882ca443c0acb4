"""Automatic messages: welcome, "you are number N in the queue" (and its updates), outside
business hours (with the next opening time), closing on resolve. Per team and locale, each off
by default, sent under the team's name through the normal outbox, so they are retried, kept
in order with the agents' replies and recorded like any reply (`automatic: <kind>` on it; an
automatic message is no agent's first response).

When: after a new conversation is routed (team work's observer), when a conversation is
resolved (same), and on `tick` (every couple of seconds, and by tests after moving a fake
clock) for queue positions: the first notice for a waiting conversation, then an update only
when its position has at least halved since the last one told (8 → 4 → 2 → 1), not on every
move.

Only in direct conversations (`kind: dm`: a private chat, a DM, a mail thread): a welcome or
a queue place posted under a public comment, a mention or in a group would speak to everyone
there.

Never twice to the same customer within a kind's quiet period: `auto_sent` holds, per kind and
customer (their contact, else the account and thread), when one was last sent; a message is
sent only by whoever moves that time forward with a compare-and-set (or inserts it first), so
two processes never both send it. The claim comes before the enqueue: a crash between the two
loses that one automatic message rather than ever sending it twice.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from babel.dates import format_skeleton
from pymongo.errors import DuplicateKeyError, PyMongoError

from inbox.clock import Clock
from inbox.db import Database, Doc
from inbox.models import AgentIdentity, RenderContext
from inbox.store import oid
from inbox.tasks import cancel_and_wait
from measures.canned import choose_body
from measures.hours import next_open
from replies.identity import locale_candidates, render_as
from replies.reply import ReplyContext
from replies.settings import IdentitySettings
from teams.hours import is_open
from teams.store import TeamStore

log = logging.getLogger(__name__)

KINDS = ("welcome", "queue", "queue_update", "after_hours", "closing")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TICK_EVERY = 2.0
SETTINGS_SECONDS = 2.0
DEFAULT_QUIET = {"welcome": 3600, "queue": 600, "queue_update": 60, "after_hours": 3600,
                 "closing": 3600}
DEFAULT_TEXTS: dict[str, dict[str, str]] = {
    "welcome": {"zh-CN": "您好，欢迎联系{brand}{team}，我们马上为您服务。",
                "en": "Hello, thanks for contacting {brand} {team}. We will be with you "
                      "shortly."},
    "queue": {"zh-CN": "目前客服都在忙，您排在第 {position} 位，请稍候。",
              "en": "All our agents are busy right now; you are number {position} in the "
                    "queue."},
    "queue_update": {"zh-CN": "您现在排在第 {position} 位，马上就到您了。",
                     "en": "You are now number {position} in the queue."},
    "after_hours": {"zh-CN": "您好，现在是非工作时间，我们将于 {next_open} 上班后第一时间回复您。",
                    "en": "Hello, we are closed right now. We open again {next_open} and will "
                          "answer you then."},
    "closing": {"zh-CN": "感谢您的咨询，如还有问题欢迎随时联系我们。",
                "en": "Thank you for contacting us. Write again any time."},
}
PLACEHOLDERS = ("team", "brand", "position", "next_open", "customer_name")

Channels = Callable[[str], Awaitable[Any]]


def defaults() -> dict[str, dict[str, Any]]:
    return {k: {"enabled": False, "quiet_s": DEFAULT_QUIET[k], "texts": dict(DEFAULT_TEXTS[k])}
            for k in KINDS}


def clean_kind(kind: str, value: Mapping[str, Any]) -> dict[str, Any]:
    texts = value.get("texts") or {}
    if not isinstance(texts, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) <= 2000
            for k, v in texts.items()):
        raise ValueError(f"{kind}.texts: locale → text of at most 2000 characters")
    quiet = value.get("quiet_s", DEFAULT_QUIET[kind])
    if isinstance(quiet, bool) or not isinstance(quiet, int) or not 0 <= quiet <= 30 * 86400:
        raise ValueError(f"{kind}.quiet_s: seconds from 0 to 2592000")
    return {"enabled": bool(value.get("enabled")), "quiet_s": quiet,
            "texts": {k.replace("_", "-"): v.strip() for k, v in texts.items() if v.strip()}}


def fill_auto(template: str, values: Mapping[str, str | None]) -> str:
    out = template
    for name in PLACEHOLDERS:
        out = out.replace("{" + name + "}", str(values.get(name) or ""))
    return out.strip()


def team_name(team: Mapping[str, Any], locale: str | None) -> str:
    """The name customers see for a team: its name in their language, else its title."""
    names = dict(team.get("names") or {})
    found = locale_candidates(locale, list(names))
    if found:
        return str(names[found[0]])
    return str(team.get("title") or team.get("name") or "")


def opening_text(when: datetime, timezone: str, locale: str) -> str:
    """The next opening time in the team's time zone, in the customer's language
    (12月2日周三 09:00, Wed, Dec 2 09:00)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone or "UTC")
    try:
        tag = locale.replace("-", "_")
        return (f"{format_skeleton('MMMEd', when, tzinfo=zone, locale=tag)} "
                f"{format_skeleton('Hm', when, tzinfo=zone, locale=tag)}")
    except (ValueError, LookupError):
        return when.astimezone(zone).strftime("%Y-%m-%d %H:%M")


class AutoMessages:
    def __init__(self, db: Database, teams: TeamStore, identity: IdentitySettings,
                 clock: Clock) -> None:
        self.db = db
        self.teams = teams
        self.identity = identity
        self.clock = clock
        self.outbox: Any = None
        self.channels: Channels | None = None
        self.positions: Callable[[str], Awaitable[list[Doc]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._settings: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}

    async def setup(self) -> None:
        # the quiet periods' last sends; nothing is kept longer than the longest period
        await self.db.auto_sent.create_index("at", expireAfterSeconds=31 * 86400)

    def bind(self, outbox: Any, channels: Channels,
             queue: Callable[[str], Awaitable[list[Doc]]]) -> None:
        self.outbox, self.channels, self.positions = outbox, channels, queue

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="auto-messages")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_EVERY)
            try:
                await self.tick()
            except PyMongoError as exc:
                log.warning("automatic messages: a round failed (%s)", type(exc).__name__)
            except Exception:
                log.exception("automatic messages: a round failed")

    # ------------------------------------------------------------------ settings

    async def settings_of(self, team_id: str) -> dict[str, dict[str, Any]]:
        """A team's settings over the defaults; cached for `SETTINGS_SECONDS` (read for every
        new conversation and every tick; a change made in another process shows that late)."""
        hit = self._settings.get(team_id)
        if hit is not None and time.monotonic() - hit[0] < SETTINGS_SECONDS:
            return copy.deepcopy(hit[1])
        doc = await self.db.auto_settings.find_one({"_id": team_id}) or {}
        out = defaults()
        for kind in KINDS:
            if isinstance(doc.get(kind), Mapping):
                out[kind] = {**out[kind], **doc[kind]}
        self._settings[team_id] = (time.monotonic(), copy.deepcopy(out))
        return out

    async def save_settings(self, team_id: str, changes: Mapping[str, Any]
                            ) -> dict[str, dict[str, Any]]:
        clean = {k: clean_kind(k, v) for k, v in changes.items() if k in KINDS}
        if clean:
            await self.db.auto_settings.update_one({"_id": team_id}, {"$set": clean},
                                                   upsert=True)
        self._settings.pop(team_id, None)
        return await self.settings_of(team_id)

    # ------------------------------------------------------------------ hooks

    async def routed(self, conv: Doc, contact: Doc | None, decision: Any) -> None:
        """A new conversation was routed: welcome it (or say when the team opens), and tell
        it its place when it waits."""
        if not decision.get("team_id"):
            return  # automatic messages are a team's: nothing to read for one with none
        doc = await self.db.conversations.find_one({"_id": oid(str(conv["_id"]))})
        if doc is None or not doc.get("team_id"):
            return
        team = (await self.teams.teams()).get(doc["team_id"])
        if team is None:
            return
        settings = await self.settings_of(doc["team_id"])
        now = self.clock.now()
        hours = team.get("business_hours")
        closed = bool(hours) and not is_open(hours, now)
        if closed and settings["after_hours"]["enabled"]:
            opens = next_open(hours, now)
            await self.send("after_hours", doc, team, settings, contact=contact,
                            next_open=opens)
        else:
            await self.send("welcome", doc, team, settings, contact=contact)
        if doc.get("queued_since") and not doc.get("assignee_id"):
            await self.tick(team_ids=[doc["team_id"]])

    async def status_changed(self, conv: Doc, status: str) -> None:
        if status != "resolved":
            return
        await self.db.auto_queue.delete_one({"_id": str(conv["_id"])})
        if not conv.get("team_id"):
            return
        team = (await self.teams.teams()).get(conv["team_id"])
        if team is None:
            return
        await self.send("closing", conv, team, await self.settings_of(conv["team_id"]))

    async def tick(self, team_ids: list[str] | None = None) -> int:
        """Tell waiting customers their place: first when they start waiting, then when it
        has at least halved since they were last told. Returns how many were told."""
        if self.positions is None:
            return 0
        wanted = team_ids if team_ids is not None else [
            str(t) for t in await self.db.team_queue.distinct("team_id")]
        told = 0
        waiting: set[str] = set()
        for team_id in wanted:
            team = (await self.teams.teams()).get(team_id)
            if team is None:
                continue
            settings = await self.settings_of(team_id)
            if not settings["queue"]["enabled"]:
                continue
            queue = await self.positions(team_id)
            ids = [str(e["_id"]) for e in queue]
            waiting.update(ids)
            known = {d["_id"]: d async for d in self.db.auto_queue.find({"_id": {"$in": ids}})}
            for position, conv_id in enumerate(ids, start=1):
                told += await self._tell_place(conv_id, position, known.get(conv_id), team,
                                               settings)
        if team_ids is None:
            await self.db.auto_queue.delete_many({"_id": {"$nin": sorted(waiting)}})
        return told

    async def _tell_place(self, conv_id: str, position: int, known: Doc | None, team: Doc,
                          settings: Mapping[str, Any]) -> int:
        now = self.clock.now()
        if known is None:
            try:
                await self.db.auto_queue.insert_one({"_id": conv_id, "position": position,
                                                     "at": now})
            except DuplicateKeyError:
                return 0  # another process tells this one
            kind = "queue"
        else:
            last = int(known.get("position") or 0)
            if position > last // 2:
                return 0
            result = await self.db.auto_queue.update_one(
                {"_id": conv_id, "position": last}, {"$set": {"position": position, "at": now}})
            if result.modified_count != 1:
                return 0
            kind = "queue_update"
        conv = await self.db.conversations.find_one({"_id": oid(conv_id)})
        if conv is None or conv.get("assignee_id") or conv.get("status") == "resolved":
            return 0
        sent = await self.send(kind, conv, team, settings, position=position)
        return int(sent)

    # ------------------------------------------------------------------ sending

    def _customer(self, conv: Mapping[str, Any]) -> str:
        if conv.get("contact_id"):
            return f"contact:{conv['contact_id']}"
        return f"thread:{conv.get('account_id')}/{conv.get('thread_key')}"

    async def _quiet_allows(self, kind: str, conv: Mapping[str, Any], quiet_s: int) -> bool:
        """Take the right to send `kind` to this customer now, unless one went out within the
        quiet period (compare-and-set on the last send's time, or the first insert)."""
        now = self.clock.now()
        key = f"{kind}:{self._customer(conv)}"
        result = await self.db.auto_sent.update_one(
            {"_id": key, "at": {"$gte": EPOCH, "$lte": now - timedelta(seconds=quiet_s)}},
            {"$set": {"at": now}})
        if result.modified_count == 1:
            return True
        try:
            await self.db.auto_sent.insert_one({"_id": key, "at": now})
        except DuplicateKeyError:
            return False
        return True

    async def _last_inbound(self, conv_id: str) -> Doc | None:
        async for msg in self.db.messages.find({"conversation_id": conv_id}).sort(
                "sk", -1).limit(20):
            if msg.get("direction") == "in":
                return msg
        return None

    async def send(self, kind: str, conv: Mapping[str, Any], team: Mapping[str, Any],
                   settings: Mapping[str, Any], *, contact: Doc | None = None,
                   position: int | None = None, next_open: datetime | None = None) -> bool:
        """Queue one automatic message, if its kind is on and the quiet period allows."""
        wanted = settings[kind]
        if not wanted.get("enabled") or self.outbox is None or self.channels is None:
            return False
        if (conv.get("kind") or "dm") != "dm":
            return False
        conv_id = str(conv["_id"])
        last_in = await self._last_inbound(conv_id)
        author = (last_in or {}).get("author") or {}
        customer_locale = conv.get("customer_locale") or author.get("locale")
        locale, template = choose_body(wanted.get("texts") or {}, customer_locale,
                                       (self.identity.greeting_default_locale,))
        if not template.strip():
            return False
        if not await self._quiet_allows(kind, conv, int(wanted.get("quiet_s") or 0)):
            return False
        name = team_name(team, locale)
        hours = team.get("business_hours") or {}
        text = fill_auto(template, {
            "team": name, "brand": self.identity.brand,
            "position": str(position) if position is not None else "",
            "next_open": opening_text(next_open, hours.get("timezone") or "UTC", locale)
            if next_open else "",
            "customer_name": (contact or {}).get("name") or author.get("name")})
        connector = await self.channels(str(conv["account_id"]))
        who = AgentIdentity(name=name, brand=self.identity.brand,
                            signature=self.identity.signature, team=name)
        ctx = RenderContext(kind=conv.get("kind") or "dm", customer_locale=customer_locale,
                            subject=conv.get("title"))
        rendered = render_as(connector, who, text, ctx)
        if not connector.measure(rendered.text, ctx).fits:
            log.warning("automatic %s message for %s is too long for its channel", kind,
                        conv_id)
            return False
        reply_to_author = author.get("user_id")
        context = ReplyContext(
            reply_to=(last_in or {}).get("external_id"), reply_to_author=reply_to_author,
            recipients=(reply_to_author,) if reply_to_author else (),
            references=tuple(conv.get("thread_keys") or ()),
            reply_route=(last_in or {}).get("reply_route"))
        await self.outbox.enqueue(conv, agent_id=f"auto:{team['_id']}", agent_name=name,
                                  agent_title=None, text=text, rendered=rendered,
                                  context=context, automatic=kind)
        self.sent[kind] += 1
        return True
