"""A customer's profile learned after their message is stored (a Slack users.info) but before
their contact and conversation exist — their creation took longer than the acknowledgement
waits for it (`LISTED_WITHIN`): both still take it (the name and the locale were lost when the
profile came first: a flake of test_slack_e2e_events in `make test`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from inbox import ingest as ingest_module
from inbox.models import Author
from inbox.store import Store
from tests.helpers import inbound


async def test_a_profile_learned_before_the_conversation_exists_reaches_it(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "LISTED_WITHIN", 0.05)
    summaries = store.ingestor.summaries
    create = summaries._create_missing

    async def slow(*args: Any) -> None:  # the profile comes first, for certain
        await asyncio.sleep(0.3)
        await create(*args)

    summaries._create_missing = slow  # type: ignore[method-assign]
    result = await store.ingest(inbound(1, thread="T1", user="U1"))
    assert await store.db.conversations.find_one({"_id": ObjectId(result.conversation_id)}) \
        is None  # created behind the acknowledgement, not yet
    await store.apply_profile("acc1", Author(user_id="U1", name="王芳", locale="zh-CN"),
                              message_id=result.message_id,
                              conversation_id=result.conversation_id)
    await store.settle()
    conv = await store.db.conversations.find_one({"_id": ObjectId(result.conversation_id)})
    assert conv is not None and conv["customer_locale"] == "zh-CN"
    contact = await store.db.contacts.find_one({"_id": ObjectId(conv["contact_id"])})
    assert contact is not None and contact["name"] == "王芳"
