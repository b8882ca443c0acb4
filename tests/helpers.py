"""Small helpers shared by tests: seeding the inbox through the real ingest path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inbox.models import AccountId, Author, InboundMessage
from inbox.store import Store

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def inbound(n: int, *, thread: str = "100", user: str = "100", text: str | None = None,
            account: str = "acc1", platform: str = "telegram", name: str = "王小明",
            ts: datetime | None = None) -> InboundMessage:
    return InboundMessage(
        account_id=AccountId(account), platform=platform, external_id=f"{thread}:{n}",
        thread_key=thread, kind="dm", author=Author(user_id=user, name=name, handle="xiaoming"),
        text=text if text is not None else f"message {n}",
        platform_ts=ts or T0 + timedelta(seconds=n))


async def seed_conversations(store: Store, count: int, **kwargs: object) -> list[str]:
    ids = []
    for i in range(count):
        r = await store.ingest(inbound(i, thread=str(1000 + i), user=str(1000 + i), **kwargs))  # type: ignore[arg-type]
        ids.append(r.conversation_id)
    await store.settle()  # summaries follow the acknowledgement (inbox/summaries.py)
    return ids
