"""The settings sections SLA timers and satisfaction surveys own (`[sla]`, `[csat]`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inbox.settings import Section


class SlaSettings(Section):
    # follow conversations and messages behind ingest and keep SLA clocks and report counters
    # (one process at a time does it: the follower holds a lease)
    follow: bool = True
    # how often due timers are checked for breaches, in seconds
    check_every_s: float = Field(5.0, gt=0, le=3600)
    # a breach older than this notifies the team's leads in the UI
    notify_after_s: int = Field(0, ge=0)
    # a breach older than this hands the conversation to another member of its team (0: never)
    reassign_after_s: int = Field(0, ge=0)
    # the inbox colours a running target amber when less than this share of it is left
    amber_share: float = Field(0.25, gt=0, lt=1)


class CsatSettings(Section):
    # send a satisfaction survey when a conversation is resolved (a team's `csat_enabled`
    # overrides this for its conversations)
    enabled: bool = False
    # scores at or below this are low
    low_score: int = Field(2, ge=1, le=5)
    # what a low score does: reopen the conversation, notify the team's leads, or nothing
    low_action: Literal["reopen", "notify", "none"] = "notify"
    # how long after sending a survey an answer (button or a short number) is taken, seconds
    answer_window_s: int = Field(7 * 86400, ge=60)
    # how long after the score the customer's next message is taken as its comment, seconds
    comment_window_s: int = Field(600, ge=0)
