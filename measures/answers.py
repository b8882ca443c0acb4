"""Standard answers in one object for the composition root: canned replies and automatic
messages, started and stopped with the process (the service measures are measures/service.py)."""

from __future__ import annotations

from typing import Any

from inbox.clock import Clock
from inbox.db import Database
from measures.auto import AutoMessages
from measures.canned import CannedReplies
from replies.settings import IdentitySettings
from teams.service import TeamWork


class StandardAnswers:
    def __init__(self, db: Database, teams: TeamWork, identity: IdentitySettings,
                 clock: Clock) -> None:
        self.canned = CannedReplies(db)
        self.auto = AutoMessages(db, teams.store, identity, clock)
        teams.observers.append(self.auto)

    async def start(self, outbox: Any, channels: Any, queue: Any) -> None:
        await self.auto.setup()
        self.auto.bind(outbox, channels, queue)
        await self.auto.start()

    async def stop(self) -> None:
        await self.auto.stop()
