"""The settings section team work owns."""

from __future__ import annotations

from pydantic import Field

from inbox.settings import Section


class TeamSettings(Section):
    # the cap of open conversations per agent when neither the agent nor the team sets one
    default_max_open: int = Field(10, ge=0, le=1000)
    # follow new conversations and route them (every process may; each routes a share)
    routing: bool = True
    # keep the search index up to date (one process at a time holds the indexer)
    search_indexing: bool = True
    # names not reviewed for this many days are listed on the name review page
    name_review_days: int = Field(90, ge=1)
