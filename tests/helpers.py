"""Small helpers shared by tests: seeding the inbox through the real ingest path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from inbox.db import Database
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


# connectors with the host's real runtime, against the test database

from connectors.runtime import EventRouter, HostRuntime  # noqa: E402
from connectors.telegram.connector import TelegramConnector  # noqa: E402
from inbox.accounts import AccountStore  # noqa: E402
from inbox.blobs import Blobs  # noqa: E402
from inbox.clock import DbClock  # noqa: E402
from inbox.models import RenderContext, Rendered  # noqa: E402
from inbox.secrets import CredentialBox, Secret  # noqa: E402
from replies.identity import agent_identity  # noqa: E402
from replies.settings import IdentitySettings  # noqa: E402

TEST_BOX = CredentialBox("test-secret-key-not-for-production")
RENDER_TOKEN = "7000000001:AAtest-render-only-token-0123456789"


def host_runtime(store: Store, account_id: str) -> HostRuntime:
    """The runtime the host gives a connector, on the test database."""
    return HostRuntime(account_id, sink=EventRouter(store), accounts=AccountStore(store.db),
                       box=TEST_BOX, blobs=Blobs(store.db), clock=DbClock(store.db),
                       store=store)


def telegram_connector(store: Store, account_id: str, base_url: str, token: str, *,
                       bot_id: str | None = None, mode: str = "polling") -> TelegramConnector:
    from connectors.base import AccountContext

    return TelegramConnector(AccountContext(
        id=account_id, platform="telegram", name="bot", credentials={"bot_token": Secret(token)},
        api_base_url=base_url, mode=mode, platform_id=bot_id), host_runtime(store, account_id))


def telegram_render(text: str, *, name: str = "王小明", title: str | None = None,
                    identity: IdentitySettings | None = None, first_reply: bool = False,
                    locale: str | None = None, store: Store | None = None) -> Rendered:
    """What the Telegram connector renders for an agent's reply."""
    from connectors.base import AccountContext

    who = agent_identity({"display_name": name, "title": title}, identity or IdentitySettings(),
                         first_reply=first_reply, locale=locale)
    connector = TelegramConnector(AccountContext(
        id="render", platform="telegram", name="render",
        credentials={"bot_token": Secret(RENDER_TOKEN)}), None)  # type: ignore[arg-type]
    return connector.render(who, text, RenderContext(first_reply=first_reply,
                                                     customer_locale=locale))


async def ingest_settled(store: Store, msg: InboundMessage) -> Any:
    """Ingest, then wait for the conversation and its summary, which follow the
    acknowledgement (inbox/summaries.py): what a test that reads the conversation needs."""
    result = await store.ingest(msg)
    await store.settle()
    return result


async def keep_expiring(db: Database, collection: str) -> None:
    """Drop a collection's expiry on `at` (route claims a day after it, teams/db.py; automatic
    messages' last sends after 31 days, measures/auto.py). A test on a fixed clock further
    back writes documents the database's TTL sweep (once a minute, on real time) may remove
    at any moment, so whether one is still there would be a coin toss."""
    await db[collection].drop_index("at_1")


from inbox.clock import FixedClock  # noqa: E402
from measures.service import Measures  # noqa: E402
from measures.settings import CsatSettings, SlaSettings  # noqa: E402
from teams.service import TeamWork  # noqa: E402
from teams.settings import TeamSettings  # noqa: E402


async def following_measures(db: Database, now: datetime, *, follow: bool = True) -> Measures:
    """Service measures with their follower started (`follow`; else set up only, for tests
    that hand them batches), on a fixed clock, without routing or search indexing, and no wait
    for new conversations (they are inserted before their messages)."""
    clock = FixedClock(now)
    work = TeamWork(db, TeamSettings(routing=False, search_indexing=False), "Acme", clock)
    await work.setup()
    m = Measures(db, clock, SlaSettings(follow=follow, check_every_s=60), CsatSettings(),
                 IdentitySettings(), teams=work, routing=False)
    m.open_wait = 0
    await m.start()
    return m
