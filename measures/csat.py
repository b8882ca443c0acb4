"""Satisfaction surveys: sent when a conversation is resolved, answered with a button or a
short number, the comment after it, and what a low score does.

The survey goes out through the normal outbox (retried, ordered, audited like any reply)
under the name the customer last saw in the conversation (the recorded `agent_name` of the
last reply; the resolving agent's when nobody replied). Its buttons 1–5 are the contract's
`RenderContext.buttons` (`Button("csat", "4", "4")`): a connector with native buttons shows
them, any other gets "reply with a number from 1 to 5" appended (replies/identity.py).

The survey's reply has a known id (`keyed_id(conversation, "csat:<n>")`), recorded in
`csat_surveys` before it is queued, so the follower tells a survey from an agent's reply.

An answer arrives either as an `Interaction` (a press, stored once in `interactions`) or, on
a text channel, as the customer's next message while the survey waits: a lone digit 1–5
(full-width digits too). A message after the score, within `comment_window_s`, is its
comment. Either message was stored by ingest, which reopens a resolved conversation; the
follower puts it back to resolved (status_changed_at after the message, so a summary landing
later does not reopen it again): a survey answer never opens or reopens a conversation, unless
a low score is configured to reopen it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING

from inbox.db import Database, Doc, find_in
from inbox.models import AgentIdentity, Button, RenderContext
from measures.settings import CsatSettings
from replies.identity import agent_identity, locale_candidates, render_as
from replies.reply import ReplyContext, keyed_id
from replies.settings import IdentitySettings

KEY_PREFIX = "csat:"
SCORE = re.compile(r"^\s*([1-5])\s*[.!。！]?\s*$")
# what the customer reads: in the channel, in their language (not the agents' UI strings)
TEXTS: dict[str, dict[str, str]] = {
    "en": {"question": "How satisfied are you with our help? 1 is poor, 5 is excellent.",
           "buttons": "Reply with a number from 1 to 5."},
    "zh-CN": {"question": "您对本次服务满意吗？1 分最低，5 分最高。",
              "buttons": "请回复 1 到 5 之间的数字。"},
}
LABELS = {"1": "1", "2": "2", "3": "3", "4": "4", "5": "5"}


def texts_for(locale: str | None) -> dict[str, str]:
    for key in locale_candidates(locale, list(TEXTS)):
        return TEXTS[key]
    return TEXTS["en"]


def score_in(text: str) -> int | None:
    """The score a short message gives ("4", "５", "4!"), or None."""
    match = SCORE.match(unicodedata.normalize("NFKC", text or ""))
    return int(match.group(1)) if match else None


def is_survey(message: Mapping[str, Any]) -> bool:
    return str(message.get("idempotency_key") or "").startswith(KEY_PREFIX)


def survey_enabled(settings: CsatSettings, team: Mapping[str, Any] | None) -> bool:
    override = (team or {}).get("csat_enabled")
    return bool(settings.enabled if override is None else override)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one inbound message or press meant for a waiting survey."""

    kind: str  # "score" or "comment"
    score: int | None = None
    comment: str | None = None


class Surveys:
    def __init__(self, db: Database, settings: CsatSettings, identity: IdentitySettings) -> None:
        self.db = db
        self.settings = settings
        self.identity = identity

    async def _last_reply(self, conv_id: str) -> Doc | None:
        async for msg in self.db.messages.find(
                {"conversation_id": conv_id}, {"direction": 1, "agent_id": 1, "agent_name": 1,
                                               "agent_title": 1, "idempotency_key": 1},
        ).sort("sk", DESCENDING).limit(50):
            if msg.get("direction") == "out" and not is_survey(msg):
                return msg
        return None

    async def send(self, conv: Mapping[str, Any], resolver: Mapping[str, Any], *,
                   connector: Any, outbox: Any, last_inbound: Mapping[str, Any] | None,
                   now: datetime) -> Doc:
        """Queue the survey for a conversation just resolved (one resolved again gets a new
        one, which replaces the survey still waiting)."""
        conv_id = str(conv["_id"])
        last = await self._last_reply(conv_id)
        locale = conv.get("customer_locale") or ((last_inbound or {}).get("author") or {}
                                                ).get("locale")
        if last is not None and last.get("agent_name"):
            who = AgentIdentity(name=str(last["agent_name"]), title=last.get("agent_title"),
                                brand=self.identity.brand, signature=self.identity.signature)
            agent_id = str(last.get("agent_id") or resolver["_id"])
        else:
            who = agent_identity(resolver, self.identity, first_reply=False, locale=locale)
            agent_id = str(resolver["_id"])
        words = texts_for(locale)
        context = RenderContext(
            kind=conv.get("kind") or "dm", customer_locale=locale, subject=conv.get("title"),
            buttons=tuple(Button("csat", v, label) for v, label in LABELS.items()),
            buttons_text=words["buttons"])
        rendered = render_as(connector, who, words["question"], context)
        previous = await self.db.csat_surveys.find_one({"_id": conv_id})
        n = int((previous or {}).get("n") or 0) + 1
        key = f"{KEY_PREFIX}{n}"
        author = (last_inbound or {}).get("author") or {}
        reply_to_author = author.get("user_id")
        survey = {"_id": conv_id, "n": n, "state": "waiting", "sent_at": now,
                  "message_id": str(keyed_id(conv_id, key)), "agent_id": agent_id,
                  "team_id": conv.get("team_id"), "channel": conv.get("platform"),
                  "scored_at": None, "score": None, "comment": None}
        await self.db.csat_surveys.replace_one({"_id": conv_id}, survey, upsert=True)
        doc, _ = await outbox.enqueue(
            conv, agent_id=agent_id, agent_name=who.name, agent_title=who.title,
            text=words["question"], rendered=rendered, idempotency_key=key,
            context=ReplyContext(
                reply_to=(last_inbound or {}).get("external_id"),
                reply_to_author=reply_to_author,
                recipients=(reply_to_author,) if reply_to_author else (),
                references=tuple(conv.get("thread_keys") or ()),
                reply_route=(last_inbound or {}).get("reply_route")))
        return dict(doc)

    async def waiting(self, conv_ids: list[str]) -> dict[str, Doc]:
        if not conv_ids:
            return {}
        return {d["_id"]: d for d in await find_in(
            self.db.csat_surveys, conv_ids, {"state": {"$in": ["waiting", "scored"]}})}

    def read_message(self, survey: Mapping[str, Any], text: str,
                     at: datetime) -> Answer | None:
        """What a customer's message means for the survey of its conversation, if anything."""
        if survey.get("state") == "waiting":
            sent = survey.get("sent_at")
            score = score_in(text)
            if score is not None and sent is not None and \
                    at - _aware(sent) <= timedelta(seconds=self.settings.answer_window_s):
                return Answer("score", score=score)
            return None
        if survey.get("state") == "scored" and not survey.get("comment"):
            scored = survey.get("scored_at")
            if scored is not None and at - _aware(scored) <= timedelta(
                    seconds=self.settings.comment_window_s) and text.strip():
                return Answer("comment", comment=text.strip()[:2000])
        return None

    async def record(self, survey: Mapping[str, Any], answer: Answer,
                     at: datetime) -> Doc | None:
        """Store a score (once: the first answer counts) or a comment; the conversation's
        `csat` follows. Returns the stored `csat`, or None when nothing changed."""
        conv_id = str(survey["_id"])
        if answer.kind == "score":
            result = await self.db.csat_surveys.update_one(
                {"_id": conv_id, "state": "waiting", "n": survey.get("n")},
                {"$set": {"state": "scored", "score": answer.score, "scored_at": at}})
        else:
            result = await self.db.csat_surveys.update_one(
                {"_id": conv_id, "state": "scored", "comment": None},
                {"$set": {"comment": answer.comment, "state": "done"}})
        if result.modified_count != 1:
            return None
        fresh = await self.db.csat_surveys.find_one({"_id": conv_id}) or {}
        csat = {"score": fresh.get("score"), "comment": fresh.get("comment"),
                "agent_id": fresh.get("agent_id"), "team_id": fresh.get("team_id"),
                "at": fresh.get("scored_at")}
        await self.db.conversations.update_one({"_id": ObjectId(conv_id)},
                                               {"$set": {"csat": csat}})
        return csat

    def is_low(self, score: int | None) -> bool:
        return score is not None and score <= self.settings.low_score


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
