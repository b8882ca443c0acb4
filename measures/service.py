"""Service measures in one object for the composition root: what a new conversation, a
message, a button press, a status change and the passing of time mean for SLA clocks,
satisfaction surveys and the report counters.

The follower (measures/follower.py) hands it batches of new messages and presses behind the
ingest acknowledgement; the API hands it status changes as they are made (`status_changed`);
the checker asks it, every `sla.check_every_s`, to breach what fell due (`check`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from inbox.clock import Clock
from inbox.db import Database, Doc, find_in
from inbox.doc_cache import DocCache
from inbox.tasks import breathe
from measures import db as measures_db
from measures import sla
from measures.counters import Tally
from measures.csat import Answer, Surveys, is_survey, survey_enabled
from measures.settings import CsatSettings, SlaSettings
from measures.timer_copies import TimerCopies
from replies.settings import IdentitySettings

log = logging.getLogger(__name__)

OPEN_WAIT = 5.0  # seconds a message waits for its new conversation to be stored and routed
CONV_FIELDS = {"raw": 0, "routing.steps": 0}


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Measures:
    def __init__(self, db: Database, clock: Clock, sla_settings: SlaSettings,
                 csat_settings: CsatSettings, identity: IdentitySettings, *, teams: Any,
                 routing: bool = True) -> None:
        self.db = db
        self.clock = clock
        self.sla_settings = sla_settings
        self.csat_settings = csat_settings
        self.teams = teams  # teams.service.TeamWork
        self.routing = routing
        self.clocks = sla.SlaClocks(db, clock)
        self.surveys = Surveys(db, csat_settings, identity)
        self.outbox: Any = None  # set by the composition root, with the channels and store
        self.channels: Any = None
        self.store: Any = None
        self.follower: Any = None
        self.feed: Any = None  # inbox.changes.ChangeFeed, set by the composition root
        self.acks: Any = None  # inbox.priority.AckWindow: the follower's writes yield to it
        self.open_wait = OPEN_WAIT
        self.conversations_read = 0  # documents read by `_conversations` (the copies' misses)
        self.timers_read = 0  # clocks looked for by `_timers` (the copies' misses)

    async def setup(self) -> None:
        await measures_db.ensure_indexes(self.db)

    async def start(self) -> None:
        await self.setup()
        if self.sla_settings.follow:
            from measures.follower import Follower

            self.follower = Follower(self.db, self, self.sla_settings.check_every_s,
                                     feed=self.feed, acks=self.acks)
            await self.follower.start()

    async def stop(self) -> None:
        if self.follower is not None:
            await self.follower.stop()

    # ------------------------------------------------------------------ conversations

    async def _conversations(self, ids: Sequence[str]) -> dict[str, Doc]:
        wanted = [ObjectId(i) for i in set(ids) if ObjectId.is_valid(i)]
        if not wanted:
            return {}
        docs = await find_in(self.db.conversations, wanted, projection=CONV_FIELDS)
        self.conversations_read += len(docs)
        return {str(d["_id"]): d for d in docs}

    async def _timers(self, ids: Sequence[str], copies: TimerCopies | None) -> dict[str, Doc]:
        """The clocks of `ids`: those `copies` keeps (measures/timer_copies.py), the others
        read, and kept."""
        if copies is None:
            return await self.clocks.many(ids)
        found: dict[str, Doc] = {}
        missing = []
        for i in ids:
            copy = copies.get(i)
            if copy is None:
                missing.append(i)
            else:
                found[i] = copy
        if missing:
            self.timers_read += len(missing)
            read = await self.clocks.many(missing)
            for timer in read.values():
                copies.keep(timer)
            found.update(read)
        return found

    def _ready(self, conv: Doc | None) -> bool:
        return conv is not None and (not self.routing or "routing" in conv)

    def _copies(self, ids: Sequence[str], known: DocCache | None,
                timers: Mapping[str, Doc]) -> dict[str, Doc]:
        """The conversations whose copy, kept current by the caller's change feed (measures/
        follower.py), can be taken as it is: ready, and not behind its clock. A copy lags
        the database by the feed's delay; a clock whose team or agent differs from the copy
        may have been moved by a change the feed has not brought yet (a reassignment on
        breach, a status change from another process), and writing the copy's fields onto it
        would set it back — that one is read."""
        found: dict[str, Doc] = {}
        if known is None:
            return found
        for i in ids:
            copy = known.get("conversations", ObjectId(i)) if ObjectId.is_valid(i) else None
            timer = timers.get(i)
            if self._ready(copy) and (timer is None or self._fields(copy) == {
                    "team_id": timer.get("team_id"), "agent_id": timer.get("agent_id")}):
                found[i] = copy
        return found

    async def _settled(self, ids: Sequence[str], known: DocCache | None = None,
                       found: dict[str, Doc] | None = None) -> dict[str, Doc]:
        """The conversations, waiting a moment for new ones to be stored (ingest writes a
        conversation just after its first message) and routed (their team decides their
        policy). `found`: those known already (`_copies`); the others are read, and kept in
        `known`."""
        found = dict(found or {})
        unready = [i for i in ids if i not in found]
        waited, delay = 0.0, 0.02
        while unready:
            read = await self._conversations(unready)  # only those still waited for
            if known is not None:
                read = {i: known.put("conversations", d) for i, d in read.items()}
            found.update(read)
            unready = [i for i in unready if not self._ready(found.get(i))]
            if waited >= self.open_wait or not unready:
                break
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)
        return found

    @staticmethod
    def dims(conv: Mapping[str, Any], agent_id: str | None = None) -> dict[str, Any]:
        return {"team_id": conv.get("team_id"), "agent_id": agent_id or conv.get("assignee_id"),
                "channel": conv.get("platform")}

    async def opened(self, conv: Doc, tally: Tally) -> Doc | None:
        """Start the clock of a conversation seen for the first time, and count it opened;
        the new clock, or None when another process started it first."""
        policies = await self.clocks.policies()
        policy = sla.choose_policy(policies, conv)
        team = (await self.teams.store.teams()).get(conv.get("team_id") or "")
        hours = sla.policy_hours(policy, team) if policy else None
        at = _aware(conv.get("created_at")) or self.clock.now()
        timer = sla.new_timer(conv, policy, hours, at)
        if not await self.clocks.create(timer):
            return None
        tally.add(at, self.dims(conv), opened=1)
        return timer

    async def opened_many(self, convs: Sequence[Doc], tally: Tally) -> dict[str, Doc]:
        """`opened` for a batch of conversations, in one write; the clocks it started."""
        if not convs:
            return {}
        policies = await self.clocks.policies()
        teams = await self.teams.store.teams()
        timers: list[Doc] = []
        for conv in convs:
            policy = sla.choose_policy(policies, conv)
            team = teams.get(conv.get("team_id") or "")
            hours = sla.policy_hours(policy, team) if policy else None
            at = _aware(conv.get("created_at")) or self.clock.now()
            timers.append(sla.new_timer(conv, policy, hours, at))
        started = await self.clocks.create_many(timers)
        out: dict[str, Doc] = {}
        for conv, timer in zip(convs, timers, strict=True):
            if str(timer["_id"]) in started:
                at = _aware(conv.get("created_at")) or self.clock.now()
                tally.add(at, self.dims(conv), opened=1)
                out[str(timer["_id"])] = timer
        return out

    def _outcomes(self, tally: Tally, outcomes: Sequence[sla.Outcome],
                  dims: Mapping[str, Any]) -> None:
        for o in outcomes:
            tally.add(o.at, dims, sla_n=1, sla_hit=int(o.hit))

    # ------------------------------------------------------------------ messages

    async def handle_messages(self, docs: Sequence[Doc], *, known: DocCache | None = None,
                              timer_copies: TimerCopies | None = None) -> None:
        """A batch of new messages (inbound and replies) in the order they were stored: the
        counters of all of them, then each conversation's clock moved once for its messages
        (one compare-and-set, skipped when nothing changed: updates are what the embedded
        server is slow at). `known` and `timer_copies`: the follower's copies of conversations
        and clocks, taken instead of reads where they can be."""
        docs = sorted((d for d in docs if d.get("direction") in ("in", "out")),
                      key=lambda d: str(d.get("sk") or ""))
        if not docs:
            return
        by_conversation: dict[str, list[Doc]] = {}
        for doc in docs:
            by_conversation.setdefault(str(doc["conversation_id"]), []).append(doc)
        ids = list(by_conversation)
        timers = await self._timers(ids, timer_copies)
        convs = await self._settled(ids, known, self._copies(ids, known, timers))
        tally = Tally()
        started = await self.opened_many(
            [convs[i] for i in ids if i not in timers and i in convs], tally)
        timers.update(started)
        if timer_copies is not None:
            for timer in started.values():
                timer_copies.keep(timer)
        surveys = await self.surveys.waiting(ids)
        for i, conv_id in enumerate(ids):
            await breathe(i)
            conv = convs.get(conv_id)
            if conv is None:
                continue
            try:
                timed = await self._count(conv, by_conversation[conv_id], surveys, tally)
                if timed:
                    moved = await self._move_clock(conv, timed, tally, timers.get(conv_id))
                    if moved is not None and timer_copies is not None:
                        timer_copies.keep(moved)
            except Exception:  # one conversation must not stop the measures of the others
                log.exception("measures: the messages of %s could not be measured", conv_id)
        await tally.flush(self.db)

    async def _count(self, conv: Doc, docs: list[Doc], surveys: dict[str, Doc],
                     tally: Tally) -> list[tuple[Doc, datetime]]:
        """Count the messages; answer a waiting survey; the rest move the clock."""
        conv_id = str(conv["_id"])
        timed: list[tuple[Doc, datetime]] = []
        for doc in docs:
            at = _aware(doc.get("received_at") or doc.get("created_at")) or self.clock.now()
            if doc["direction"] == "out":
                if is_survey(doc):
                    tally.add(at, self.dims(conv, doc.get("agent_id")), surveys=1)
                    continue
                tally.add(at, self.dims(conv, doc.get("agent_id")), messages_out=1)
                timed.append((doc, at))
                continue
            tally.add(at, self.dims(conv), messages_in=1)
            survey = surveys.get(conv_id)
            answer = self.surveys.read_message(survey, str(doc.get("text") or ""), at) \
                if survey is not None else None
            if survey is not None and answer is not None:
                await self._answered(survey, answer, at, tally, message_at=at)
                fresh = await self.db.csat_surveys.find_one({"_id": conv_id})
                surveys[conv_id] = fresh or survey
                continue
            timed.append((doc, at))
        return timed

    async def _move_clock(self, conv: Doc, timed: list[tuple[Doc, datetime]],
                          tally: Tally, current: Doc | None) -> Doc | None:
        """Apply the messages to the clock; the clock as it now stands (None: it has none)."""
        later: list[tuple[str, datetime, dict[str, Any], Any]] = []

        def event(timer: Doc) -> list[sla.Outcome]:
            later.clear()  # a compare-and-set that lost runs this again
            for doc, at in timed:
                if doc["direction"] == "out":
                    dims = self.dims(conv, doc.get("agent_id"))
                    if not timer["responded"]:
                        opened = _aware(timer["opened_at"])
                        later.append(("fr", at, dims, (at - opened).total_seconds()))
                    outcomes = sla.agent_replied(timer, at)
                else:
                    dims = self.dims(conv)
                    if timer["status"] == "resolved":
                        later.append(("reopened", at, dims, 1))
                    outcomes = sla.customer_wrote(timer, at)
                later.extend(("outcome", o.at, dims, o) for o in outcomes)
            return []

        conv_id = str(conv["_id"])

        async def fresh_fields() -> dict[str, Any]:
            # the clock moved since `current`: `conv` may be a copy as old as it was
            fresh = (await self._conversations([conv_id])).get(conv_id)
            return self._fields(fresh if fresh is not None else conv)

        timer, _ = await self.clocks.apply(conv_id, event, self._fields(conv), current=current,
                                           refresh=fresh_fields)
        for kind, at, dims, value in later:
            if kind == "fr":
                tally.observe(at, dims, "fr", value)
            elif kind == "reopened":
                tally.add(at, dims, reopened=1)
            else:
                self._outcomes(tally, [value], dims)
        return timer

    @staticmethod
    def _fields(conv: Mapping[str, Any]) -> dict[str, Any]:
        return {"team_id": conv.get("team_id"), "agent_id": conv.get("assignee_id")}

    # ------------------------------------------------------------------ surveys

    async def handle_interactions(self, docs: Sequence[Doc]) -> None:
        """Button presses, stored once each in `interactions`: a survey's score."""
        tally = Tally()
        for doc in docs:
            if doc.get("action") != "csat" or not doc.get("conversation_id"):
                continue
            conv_id = str(doc["conversation_id"])
            survey = (await self.surveys.waiting([conv_id])).get(conv_id)
            value = str(doc.get("value") or "")
            score = int(value) if value in ("1", "2", "3", "4", "5") else None
            at = _aware(doc.get("at")) or self.clock.now()
            if survey is not None and survey.get("state") == "waiting" and score is not None:
                await self._answered(survey, Answer("score", score=score), at, tally)
            await self.db.interactions.update_one({"_id": doc["_id"]},
                                                  {"$set": {"handled": True}})
        await tally.flush(self.db)

    async def _answered(self, survey: Doc, answer: Answer, at: datetime, tally: Tally, *,
                        message_at: datetime | None = None) -> None:
        csat = await self.surveys.record(survey, answer, at)
        conv_id = str(survey["_id"])
        reopen = False
        if csat is not None and answer.kind == "score":
            dims = {"team_id": survey.get("team_id"), "agent_id": survey.get("agent_id"),
                    "channel": survey.get("channel")}
            # with the survey it answers: "of the surveys sent then, how many were answered"
            sent = _aware(survey.get("sent_at")) or at
            tally.add(sent, dims, csat_n=1, csat_sum=int(answer.score or 0))
            if self.surveys.is_low(answer.score):
                action = self.csat_settings.low_action
                reopen = action == "reopen"
                if action == "notify":
                    await self.notify(survey.get("team_id"), "csat_low", conv_id,
                                      score=answer.score, subject_agent_id=survey.get("agent_id"))
        if message_at is not None and not reopen:
            await self._keep_resolved(conv_id, message_at)
        if reopen:
            now = self.clock.now()
            await self.teams.assigner.set_status(conv_id, "open", {
                "status": "open", "status_changed_at": now})
            conv = (await self._conversations([conv_id])).get(conv_id) or {}
            await self.status_changed(conv_id, "resolved", conv, None, tally=tally)

    async def _keep_resolved(self, conv_id: str, message_at: datetime) -> None:
        """Ingest reopened (or is about to reopen) the conversation for the customer's answer:
        back to resolved, changed after the message so a late summary leaves it so."""
        after = max(self.clock.now(), message_at + timedelta(milliseconds=1))
        await self.teams.assigner.set_status(conv_id, "resolved", {
            "status": "resolved", "status_changed_at": after})

    # ------------------------------------------------------------------ status changes

    async def status_changed(self, conv_id: str, before: str | None, conv: Mapping[str, Any],
                             agent: Mapping[str, Any] | None, *,
                             tally: Tally | None = None) -> None:
        """A status set by an agent (or by a low score): pause, resume, resolve, reopen."""
        after = conv.get("status")
        if after == before or not conv:
            return
        now = self.clock.now()
        own = tally is None
        tally = tally or Tally()
        fields = self._fields(conv)
        dims = self.dims(conv)
        timer = await self.clocks.get(conv_id)
        if after in ("pending", "snoozed"):  # waiting on the customer (or later): paused
            await self.clocks.apply(conv_id, lambda t: sla.paused(t, now), fields)
        elif after == "resolved":
            _, outcomes = await self.clocks.apply(conv_id, lambda t: sla.resolved(t, now), fields)
            self._outcomes(tally, outcomes, dims)
            tally.add(now, dims, resolved=1)
            if timer is not None:
                tally.observe(now, dims, "res",
                              (now - _aware(timer["opened_at"])).total_seconds())
            if agent is not None:
                await self._survey(conv, agent, now)
        elif after == "open" and before == "resolved":
            await self.clocks.apply(conv_id, lambda t: sla.reopened(t, now), fields)
            tally.add(now, dims, reopened=1)
        elif after == "open":
            await self.clocks.apply(conv_id, lambda t: sla.resumed(t, now), fields)
        if own:
            await tally.flush(self.db)

    async def _survey(self, conv: Mapping[str, Any], agent: Mapping[str, Any],
                      now: datetime) -> None:
        team = (await self.teams.store.teams()).get(conv.get("team_id") or "") \
            if conv.get("team_id") else None
        if not survey_enabled(self.csat_settings, team) or self.outbox is None:
            return
        try:
            connector = await self.channels.get(conv["account_id"])
            last_in = await self.store.last_inbound(str(conv["_id"]))
            await self.surveys.send(conv, agent, connector=connector, outbox=self.outbox,
                                    last_inbound=last_in, now=now)
        except Exception:  # the resolve stands even when the survey cannot be sent
            log.exception("csat: the survey of %s could not be queued", conv.get("_id"))

    # ------------------------------------------------------------------ time passing

    async def check(self, now: datetime | None = None) -> int:
        """Breach every target that fell due; notify leads and hand over past thresholds."""
        now = now or self.clock.now()
        tally = Tally()
        done = 0
        for due in await self.clocks.due(now):
            conv_id = due["_id"]
            acts: list[sla.Action] = []

            def event(t: Doc, acts: list[sla.Action] = acts) -> list[sla.Outcome]:
                outcomes, actions = sla.check(
                    t, now, notify_after=self.sla_settings.notify_after_s,
                    reassign_after=self.sla_settings.reassign_after_s)
                acts[:] = actions
                return outcomes

            before = len(due.get("breaches") or [])
            timer, outcomes = await self.clocks.apply(conv_id, event)
            if timer is None:
                continue
            dims = {"team_id": timer.get("team_id"), "agent_id": timer.get("agent_id"),
                    "channel": timer.get("channel")}
            self._outcomes(tally, outcomes, dims)
            new = (timer.get("breaches") or [])[before:]
            if new:
                await self.db.conversations.update_one(
                    {"_id": ObjectId(conv_id)}, {"$push": {"sla_breaches": {"$each": new}}})
            for act in acts:
                if act.kind == "notify":
                    await self.notify(timer.get("team_id"), "sla_breach", conv_id,
                                      target=act.target,
                                      subject_agent_id=timer.get("agent_id"))
                elif act.kind == "reassign":
                    await self._reassign(conv_id, timer)
            done += 1
        await tally.flush(self.db)
        return done

    async def _reassign(self, conv_id: str, timer: Mapping[str, Any]) -> None:
        team = (await self.teams.store.teams()).get(timer.get("team_id") or "")
        if team is None:
            return
        current = timer.get("agent_id")
        for agent_id, _cap in await self.teams.assigner.candidates(team):
            if agent_id != current:
                await self.teams.assigner.set_assignee(conv_id, agent_id, by=None)
                await self.clocks.apply(conv_id, lambda t: None, {"agent_id": agent_id})
                return

    async def notify(self, team_id: str | None, kind: str, conv_id: str,
                     **details: Any) -> int:
        """A line in the notification list of each of the team's leads."""
        if not team_id or not ObjectId.is_valid(team_id):
            return 0
        team = await self.db.teams.find_one({"_id": ObjectId(team_id)}, {"leads": 1})
        leads = list((team or {}).get("leads") or [])
        if not leads:
            return 0
        now = self.clock.now()
        await self.db.notifications.insert_many([
            {"agent_id": lead, "at": now, "kind": kind, "conversation_id": conv_id,
             "team_id": team_id, "read": False, **details} for lead in leads])
        return len(leads)

    # ------------------------------------------------------------------ reading

    async def sla_of(self, conv_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        timers = await self.clocks.many(list(conv_ids))
        now = self.clock.now()
        share = self.sla_settings.amber_share
        return {cid: sla.sla_json(timers.get(cid), now, share) for cid in conv_ids}
