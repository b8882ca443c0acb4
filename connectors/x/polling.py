"""One polling round for an X account: new mentions and new DMs, paced and budgeted.

- Mentions: `GET /2/users/:id/mentions` with `since_id` = the cursor "mentions", pages
  followed to the end (https://docs.x.com/x-api/users/get-mentions; the timeline holds at most
  the 800 newest mentions).
- DMs: `GET /2/dm_events` has no `since_id` (https://docs.x.com/x-api/direct-messages/
  get-dm-events); events come newest first, so pages are followed until an event at or below
  the cursor "dm" (the newest event id stored) shows up, and events are deduplicated by id.
- The first round of an account (no cursor yet) reads only the newest page of each, so adding
  an account does not pay for the whole mention timeline and 30 days of DMs.
- Every answer's `x-rate-limit-remaining` / `x-rate-limit-reset` spreads what is left of the
  window over the time left (DM reads: 15 per 15 minutes per user, https://docs.x.com/x-api/
  fundamentals/rate-limits), so a family is skipped in a round rather than refused. A 429
  pauses that family only (`runtime.pause(scope="mentions" | "dm_read")`, shared by every
  process) and the round goes on with the other, so a DM limit never holds back mentions and
  nothing already fetched is read (and paid for) twice; only when every family asked was
  refused does `RateLimited` reach the host, which waits for the first pause to end.
- Reads are billed once per id per UTC day, as X bills them; the day's newest billed ids are
  kept in the cursor "billed", so a new source (a restart, another process) counts right.
- The budget (`budget.pace`) stretches the wait between rounds and says so in `Batch.note`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connectors import base
from connectors.x import budget
from connectors.x.normalise import (
    UnreadablePayload,
    normalise,
    split_dm_events,
    split_posts,
)
from connectors.x.session import RateLimit
from inbox.models import Ignored, InboundEvent, RateLimited

if TYPE_CHECKING:
    from connectors.x.connector import XConnector

log = logging.getLogger(__name__)

MAX_PAGES = 10
KEEP_BILLED = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TWEET_FIELDS = ["created_at", "conversation_id", "in_reply_to_user_id", "referenced_tweets",
                "attachments", "edit_history_tweet_ids", "author_id", "entities", "note_tweet"]
USER_FIELDS = ["name", "username", "profile_image_url"]
MEDIA_FIELDS = ["media_key", "type", "url", "preview_image_url", "alt_text", "width", "height",
                "duration_ms", "variants"]
DM_FIELDS = ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id",
             "participant_ids", "referenced_tweets", "attachments"]


def _newer(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if int(a) >= int(b) else b


@dataclass
class Window:
    """What the last answer of one endpoint family said about its rate-limit window."""

    next_at: float = 0.0

    def learn(self, limit: RateLimit, now: float) -> None:
        if limit.remaining is None or limit.reset is None:
            return
        left = max(0.0, limit.reset - now)
        self.next_at = limit.reset if limit.remaining <= 0 else now + left / limit.remaining

    def ready(self, now: float) -> bool:
        return now >= self.next_at


@dataclass
class _Round:
    events: list[InboundEvent] = field(default_factory=list)
    cursors: dict[str, Any] = field(default_factory=dict)
    usage: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


class XPollingSource:
    name = "x-polling"

    def __init__(self, connector: XConnector) -> None:
        self.connector = connector
        self.windows: dict[str, Window] = {"mentions": Window(), "dm_read": Window()}
        self._billed_day: str | None = None
        self._billed: dict[str, set[str]] = {}
        self._pace: dict[str, Any] | None = None

    # ------------------------------------------------------------------ the round

    async def fetch(self, runtime: base.AccountRuntime) -> base.Batch:
        now_dt = await runtime.now()
        now = now_dt.timestamp()
        rnd = _Round()
        limited: list[RateLimited] = []
        answered = False
        for scope, read in (("mentions", self._mentions), ("dm_read", self._dms)):
            if not self.windows[scope].ready(now) or await runtime.paused_for(scope) > 0:
                continue
            try:
                await read(runtime, rnd, now)
                answered = True
            except RateLimited as exc:
                limited.append(exc)
                self.windows[scope].next_at = now + exc.retry_after
        if limited and not answered:
            # every family X was asked about refused: the host pauses the first to end and
            # waits for it; the others' pauses are recorded here
            limited.sort(key=lambda e: e.retry_after)
            for exc in limited[1:]:
                await runtime.pause(exc.retry_after, exc.scope)
            raise limited[0]
        for exc in limited:  # the other family answered: keep polling it, pause this one
            await runtime.pause(exc.retry_after, exc.scope)
            rnd.notes.append(f"{exc.scope} paused {int(exc.retry_after)} s by X")
        rnd.usage["polls"] += 1
        return await self._batch(runtime, rnd, now_dt)

    async def _batch(self, runtime: base.AccountRuntime, rnd: _Round, now_dt: datetime,
                     ) -> base.Batch:
        conn = self.connector
        base_s = float(conn.option("poll_interval_s"))
        limit = conn.option("monthly_budget_usd")
        so_far = Counter(await runtime.usage())
        so_far.update(rnd.usage)
        table = conn.prices()
        pace = budget.pace(base_s=base_s, budget_usd=float(limit) if limit else None,
                           usage=so_far, table=table, now=now_dt,
                           default_round_usd=table["dm_reads"])
        now = now_dt.timestamp()
        window_wait = min(w.next_at for w in self.windows.values()) - now
        wait = max(pace.wait_s, window_wait, 0.0)
        if pace.exhausted:
            rnd.notes.append(f"budget of ${float(limit):.2f}/month spent: polling every "
                             f"{int(pace.wait_s // 60)} min until the month ends")
        elif pace.stretched:
            rnd.notes.append(f"slowed to every {max(1, round(pace.wait_s / 60))} min to stay "
                             f"within ${float(limit):.2f}/month")
        await self._remember_pace(runtime, pace)
        rnd.events.sort(key=_order)
        return base.Batch(events=tuple(rnd.events), cursors=rnd.cursors, wait_seconds=wait,
                          usage=dict(rnd.usage), note="; ".join(rnd.notes) or None)

    async def _remember_pace(self, runtime: base.AccountRuntime, pace: budget.Pace) -> None:
        """The budget's pace for the account page (`XConnector.notices`), written only when it
        changes by a minute or more, not on every round."""
        facts = {"wait_s": round(pace.wait_s / 60) * 60, "stretched": pace.stretched,
                 "exhausted": pace.exhausted}
        if facts != self._pace:
            self._pace = facts
            await runtime.save_info({"budget_pace": {
                **facts, "projected_usd": round(pace.projected_usd, 2)}})

    # ------------------------------------------------------------------ billing

    async def _bill(self, runtime: base.AccountRuntime, rnd: _Round, family: str,
                    ids: list[str]) -> int:
        """Resources X charges for: each id once per UTC day (X deduplicates within it).

        The day's newest billed ids of each family are kept in the cursor "billed", so a
        restart or another process taking the account over does not count again what the
        first DM page reads once more (DMs have no `since_id`: that page is re-read every
        round). `KEEP_BILLED` covers that page twice over; older ids are never re-read."""
        day = (await runtime.now()).strftime("%Y-%m-%d")
        if self._billed_day is None:
            kept = await runtime.load_cursor("billed")
            if isinstance(kept, Mapping) and kept.get("day") == day:
                self._billed = {k: {str(i) for i in v} for k, v in kept.items()
                                if k != "day" and isinstance(v, list)}
                self._billed_day = day
        if day != self._billed_day:
            self._billed_day, self._billed = day, {}
        billed = self._billed.setdefault(family, set())
        fresh = [i for i in dict.fromkeys(ids) if i not in billed]
        if fresh:
            billed.update(fresh)
            rnd.cursors["billed"] = {"day": day, **{
                k: sorted(v, key=_snowflake)[-KEEP_BILLED:] for k, v in self._billed.items()}}
        return len(fresh)

    def _take(self, payloads: list[dict[str, Any]], rnd: _Round) -> None:
        account = self.connector.account
        for payload in payloads:
            try:
                result = normalise(payload, account)
            except UnreadablePayload as exc:
                log.warning("x account %s: skipped an unreadable item: %s", account.id, exc)
                rnd.notes.append("skipped an unreadable item")
                continue
            items = result if isinstance(result, list) else [result]
            rnd.events.extend(i for i in items if not isinstance(i, Ignored))

    # ------------------------------------------------------------------ mentions

    async def _mentions(self, runtime: base.AccountRuntime, rnd: _Round, now: float) -> None:
        conn = self.connector
        since = await runtime.load_cursor("mentions")
        params: dict[str, Any] = {
            "max_results": 100, "expansions": ["author_id", "attachments.media_keys",
                                               "referenced_tweets.id"],
            "tweet_fields": TWEET_FIELDS, "user_fields": USER_FIELDS,
            "media_fields": MEDIA_FIELDS, "user_auth": True}
        if since:
            params["since_id"] = since
        newest: str | None = None
        ids: list[str] = []
        for _ in range(MAX_PAGES):
            page, limit = await conn.call("mentions", conn.client.get_users_mentions,
                                          conn.user_id, now=now, **params)
            self.windows["mentions"].learn(limit, now)
            meta = page.get("meta") if isinstance(page.get("meta"), Mapping) else {}
            newest = _newer(newest, meta.get("newest_id"))
            posts = split_posts(page)
            ids.extend(str(p["data"].get("id")) for p in posts)
            self._take(posts, rnd)
            token = meta.get("next_token")
            if not since or not token:
                break
            params["pagination_token"] = token
        rnd.usage["post_reads"] += await self._bill(runtime, rnd, "mentions", ids)
        cursor = _newer(newest, since)
        if cursor and cursor != since:
            rnd.cursors["mentions"] = cursor

    # ------------------------------------------------------------------ DMs

    async def _dms(self, runtime: base.AccountRuntime, rnd: _Round, now: float) -> None:
        conn = self.connector
        seen_upto = await runtime.load_cursor("dm")
        params: dict[str, Any] = {
            "max_results": 100, "event_types": "MessageCreate", "dm_event_fields": DM_FIELDS,
            "expansions": ["sender_id", "attachments.media_keys", "referenced_tweets.id"],
            "user_fields": USER_FIELDS, "media_fields": MEDIA_FIELDS, "user_auth": True}
        newest: str | None = None
        fresh: list[dict[str, Any]] = []
        seen: set[str] = set()
        read: list[str] = []
        for _ in range(MAX_PAGES):
            page, limit = await conn.call("dm_read", conn.client.get_direct_message_events,
                                          now=now, **params)
            self.windows["dm_read"].learn(limit, now)
            reached = False
            for payload in split_dm_events(page):
                event_id = payload["data"].get("id")
                if not isinstance(event_id, str) or not event_id.isdigit() or event_id in seen:
                    continue
                seen.add(event_id)
                read.append(event_id)
                newest = _newer(newest, event_id)
                if seen_upto and int(event_id) <= int(seen_upto):
                    reached = True
                    continue
                fresh.append(payload)
            meta = page.get("meta") if isinstance(page.get("meta"), Mapping) else {}
            token = meta.get("next_token")
            if reached or not seen_upto or not token:
                break
            params["pagination_token"] = token
        rnd.usage["dm_reads"] += await self._bill(runtime, rnd, "dm", read)
        self._take(fresh, rnd)
        cursor = _newer(newest, seen_upto)
        if cursor and cursor != seen_upto:
            rnd.cursors["dm"] = cursor


def _snowflake(value: str) -> int:
    return int(value) if value.isdigit() else 0


def _order(event: InboundEvent) -> tuple[datetime, str]:
    ts = getattr(event, "platform_ts", None)
    return (ts or _EPOCH, getattr(event, "external_id", ""))
