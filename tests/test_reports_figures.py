"""Report figures are exact: a seeded data set (conversations over three days, two channels,
two teams, three agents; replies, resolves, reopens, surveys and scores) is played through the
real measures code (the follower's batch handler, the status hook, the press handler) on a
fake clock; the test computes every figure again from the raw events, independently, and
compares every cell of every grouping, in Shanghai time (UTC+8: days cross UTC midnight), and
the CSV."""

from __future__ import annotations

import csv
import io
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from bson import ObjectId

from inbox.clock import FixedClock
from inbox.db import Database
from measures.service import Measures
from tests.conftest import make_settings
from web.app import Services
from web.settings import Settings

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
FR_TARGET, RES_TARGET = 600, 7200
TEAMS = ("t-pre", "t-post")
AGENTS = ("a-ann", "a-bo", "a-cy")
CHANNELS = ("chat", "mail")


@dataclass
class Conv:
    id: str
    team: str
    agent: str
    channel: str
    created: datetime
    reply: datetime | None = None
    resolve: datetime | None = None
    reopen: datetime | None = None
    survey: datetime | None = None
    score: int | None = None
    score_at: datetime | None = None
    extra_in: list[datetime] = field(default_factory=list)


def dataset(n: int = 48) -> list[Conv]:
    rnd = random.Random(15)
    out = []
    for i in range(n):
        created = START + timedelta(seconds=rnd.randrange(0, 3 * 86400))
        if i == 0:  # one conversation exactly on a day boundary in Shanghai (16:00 UTC)
            created = datetime(2026, 11, 3, 16, 0, tzinfo=UTC)
        c = Conv(str(ObjectId()), rnd.choice(TEAMS), rnd.choice(AGENTS), rnd.choice(CHANNELS),
                 created)
        if rnd.random() < 0.85:
            c.reply = created + timedelta(seconds=rnd.randrange(30, 1500))
            c.extra_in = [c.reply + timedelta(seconds=rnd.randrange(10, 600))]
            if rnd.random() < 0.75:
                c.resolve = c.extra_in[-1] + timedelta(seconds=rnd.randrange(60, 9000))
                if rnd.random() < 0.6:
                    c.survey = c.resolve + timedelta(seconds=1)
                    if rnd.random() < 0.7:
                        c.score = rnd.randint(1, 5)
                        c.score_at = c.survey + timedelta(seconds=rnd.randrange(5, 4000))
                elif rnd.random() < 0.5:
                    c.reopen = c.resolve + timedelta(seconds=rnd.randrange(60, 5000))
        out.append(c)
    return out


# ---------------------------------------------------------------------- the expected figures


def nearest_rank(values: list[int], p: int) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def expected(convs: list[Conv], group_by: str, days: list[date]) -> list[dict[str, Any]]:
    def key(c: Conv, at: datetime, agent: str | None = None) -> str:
        if group_by == "day":
            return at.astimezone(ZONE).date().isoformat()
        return {"channel": c.channel, "team": c.team, "agent": agent or c.agent}[group_by]

    rows: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    fr: dict[str, list[int]] = defaultdict(list)
    res: dict[str, list[int]] = defaultdict(list)
    for day in days if group_by == "day" else []:
        rows[day.isoformat()]["opened"] += 0
    for c in convs:
        rows[key(c, c.created)]["opened"] += 1
        rows[key(c, c.created)]["messages_in"] += 1
        for at in c.extra_in + ([c.reopen] if c.reopen else []):
            rows[key(c, at)]["messages_in"] += 1
        if c.reply:
            rows[key(c, c.reply)]["messages_out"] += 1
            fr[key(c, c.reply)].append(int((c.reply - c.created).total_seconds()))
            hit = (c.reply - c.created).total_seconds() <= FR_TARGET
            at = c.reply if hit else c.created + timedelta(seconds=FR_TARGET)
            rows[key(c, at)]["sla_n"] += 1
            rows[key(c, at)]["sla_hit"] += hit
        if c.resolve:
            rows[key(c, c.resolve)]["resolved"] += 1
            res[key(c, c.resolve)].append(int((c.resolve - c.created).total_seconds()))
            hit = (c.resolve - c.created).total_seconds() <= RES_TARGET
            at = c.resolve if hit else c.created + timedelta(seconds=RES_TARGET)
            rows[key(c, at)]["sla_n"] += 1
            rows[key(c, at)]["sla_hit"] += hit
        if c.reopen:
            rows[key(c, c.reopen)]["reopened"] += 1
        if c.survey:
            rows[key(c, c.survey)]["surveys"] += 1
        if c.survey and c.score is not None:  # counted with the survey it answers
            rows[key(c, c.survey)]["csat_n"] += 1
            rows[key(c, c.survey)]["csat_sum"] += c.score
    out = []
    for k in sorted(rows):
        r = rows[k]
        out.append({
            "key": k, "opened": r["opened"], "resolved": r["resolved"],
            "reopened": r["reopened"], "first_response_p50_s": nearest_rank(fr[k], 50),
            "first_response_p90_s": nearest_rank(fr[k], 90),
            "resolution_p50_s": nearest_rank(res[k], 50),
            "sla_hit_rate": r["sla_hit"] / r["sla_n"] if r["sla_n"] else None,
            "csat_avg": r["csat_sum"] / r["csat_n"] if r["csat_n"] else None,
            "csat_response_rate": r["csat_n"] / r["surveys"] if r["surveys"] else None,
            "messages_in": r["messages_in"], "messages_out": r["messages_out"]})
    return out


# ---------------------------------------------------------------------- playing the events


async def play(measures: Measures, clock: FixedClock, convs: list[Conv]) -> None:
    db = measures.db
    events: list[tuple[datetime, int, str, Conv]] = []
    for c in convs:
        events.append((c.created, 0, "open", c))
        if c.reply:
            events.append((c.reply, 1, "reply", c))
        for at in c.extra_in:
            events.append((at, 2, "in", c))
        if c.resolve:
            events.append((c.resolve, 3, "resolve", c))
        if c.survey:
            events.append((c.survey, 4, "survey", c))
        if c.score_at:
            events.append((c.score_at, 5, "press", c))
        if c.reopen:
            events.append((c.reopen, 6, "reopen", c))
    events.sort(key=lambda e: (e[0], e[1]))
    for at, _, kind, c in events:
        clock.current = at
        oid = ObjectId(c.id)
        if kind == "open":
            await db.conversations.insert_one({
                "_id": oid, "platform": c.channel, "account_id": "acc", "status": "open",
                "team_id": c.team, "assignee_id": c.agent, "created_at": at, "labels": [],
                "kind": "dm", "thread_key": c.id, "sk": at.isoformat()})
            await measures.handle_messages([_msg(c, "in", at)])
        elif kind == "reply":
            await measures.handle_messages([_msg(c, "out", at, agent_id=c.agent)])
        elif kind in ("in", "reopen"):
            await measures.handle_messages([_msg(c, "in", at)])
        elif kind == "resolve":
            await db.conversations.update_one({"_id": oid}, {"$set": {"status": "resolved"}})
            conv = await db.conversations.find_one({"_id": oid})
            assert conv is not None
            await measures.status_changed(c.id, "open", conv, None)
        elif kind == "survey":
            await db.csat_surveys.insert_one({
                "_id": c.id, "n": 1, "state": "waiting", "sent_at": at, "agent_id": c.agent,
                "team_id": c.team, "channel": c.channel, "score": None, "comment": None})
            await measures.handle_messages([_msg(c, "out", at, agent_id=c.agent,
                                                 idempotency_key="csat:1")])
        elif kind == "press":
            press = {"_id": ObjectId(), "account_id": "acc", "external_id": c.id,
                     "action": "csat", "value": str(c.score), "at": at,
                     "conversation_id": c.id}
            await db.interactions.insert_one(press)
            await measures.handle_interactions([press])


def _msg(c: Conv, direction: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"_id": ObjectId(), "conversation_id": c.id, "direction": direction,
            "received_at": at, "created_at": at, "sk": at.isoformat(), "text": "…", **extra}


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    """Nothing follows behind the test's back: it plays every event itself."""
    return make_settings(db.name, tmp_path, teams={"routing": False},
                         sla={"follow": False})


async def test_every_cell_of_every_grouping(services: Services, client: TestClient,
                                            admin: dict[str, Any]) -> None:
    db = services.db
    clock = FixedClock(START)
    measures = Measures(db, clock, services.settings.sla, services.settings.csat,
                        services.settings.identity, teams=services.teams, routing=False)
    measures.open_wait = 0
    await db.sla_policies.insert_one({"_id": ObjectId(), "name": "all", "applies_to": {},
                                      "first_response_s": FR_TARGET, "resolution_s": RES_TARGET,
                                      "business_hours": False, "created_at": START})
    convs = dataset()
    await play(measures, clock, convs)

    days = [date(2026, 11, 2) + timedelta(days=i) for i in range(5)]
    query = f"from={days[0]}&to={days[-1]}&tz=Asia/Shanghai"
    for group_by in ("day", "channel", "team", "agent"):
        resp = await client.get(f"/api/reports?{query}&group_by={group_by}",
                                headers=admin["headers"])
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["approximate"] is False
        want = expected(convs, group_by, days)
        assert [r["key"] for r in body["rows"]] == [r["key"] for r in want], group_by
        for got, row in zip(body["rows"], want, strict=True):
            for column, value in row.items():
                assert got[column] == value, (group_by, row["key"], column)
    assert sum(r["opened"] for r in expected(convs, "day", days)) == len(convs)

    resp = await client.get(f"/api/reports?{query}&group_by=team&format=csv",
                            headers=admin["headers"])
    assert resp.status == 200 and resp.content_type == "text/csv"
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    want = expected(convs, "team", days)
    assert [r["key"] for r in table] == sorted(TEAMS)
    for got, row in zip(table, want, strict=True):
        assert int(got["opened"]) == row["opened"]
        assert got["first_response_p90_s"] == str(row["first_response_p90_s"])
        if row["sla_hit_rate"] is not None:
            assert got["sla_hit_rate"] == f"{row['sla_hit_rate']:.4f}"

    # half-hour zones are flagged; an agent who is no lead is refused
    resp = await client.get(f"/api/reports?{query.replace('Asia/Shanghai', 'Asia/Kolkata')}",
                            headers=admin["headers"])
    assert (await resp.json())["approximate"] is True
    agent = await services.agents.create("plain", display_name="Plain", password="x" * 10)
    token, _ = await services.agents.create_token(str(agent["_id"]))
    resp = await client.get(f"/api/reports?{query}",
                            headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 403
