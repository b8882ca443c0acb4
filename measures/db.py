"""The collections SLA timers, surveys and reports add, and their indexes: small ones of their
own, nothing on `conversations` or `messages` (whose every write would pay for it).

- `sla_timers`: one document per conversation (`_id` = its id), the clock of its targets and
  what the reports need to know about it (team, agent, channel, when it opened). `due_at` (the
  earliest running target, breached ones included) is the "breaching soonest" order of the
  inbox; `check_at` (the next moment the checker has something to do: a target falls due, a
  lead is to be notified, a conversation handed over) is what the checker reads. Both are
  absent on a paused or finished clock, so either index holds only running clocks: its size
  follows the open conversations, not the messages.
- `report_counters`: one document per UTC hour and grouping (all, channel, team, agent),
  `$inc`-ed by the follower (measures/counters.py).
- `csat_surveys`: the survey sent in a conversation (`_id` = its id) waiting for its answer.
- `notifications`: what a team lead is told in the UI, newest first per agent.
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from inbox.db import Database

INDEXES: dict[str, list[IndexModel]] = {
    "sla_policies": [],
    "sla_timers": [IndexModel([("due_at", ASCENDING), ("_id", ASCENDING)]),
                   IndexModel([("check_at", ASCENDING)])],
    "report_counters": [IndexModel([("part", ASCENDING), ("hour", ASCENDING)])],
    "csat_surveys": [],
    "notifications": [IndexModel([("agent_id", ASCENDING), ("at", DESCENDING)])],
}


async def ensure_indexes(db: Database) -> None:
    for name, models in INDEXES.items():
        if models:
            await db[name].create_indexes(models)
