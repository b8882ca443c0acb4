"""kill -9 of `switchboard serve` mid-load: nothing acknowledged is lost, nothing is stored
twice, and every reply ends `sent` with any duplicate flagged. Full-size runs: `make soak`."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from connectors.telegram.sandbox import TelegramSandbox
from inbox.db import Database
from tests.chaos import Serve
from tests.chaos_scenarios import database_faults, reply_crash, webhook_crash
from tests.conftest import BOT_TOKEN

# real processes on a shared 2-core machine: more room than the suite's default 60 s
pytestmark = pytest.mark.timeout(180)


async def test_kill_9_during_webhooks_loses_and_duplicates_nothing(
        mongo_uri: str, db: Database, tmp_path: Path, tg: TelegramSandbox) -> None:
    serve = Serve(tmp_path / "data", db.name, uri=mongo_uri)
    try:
        figures = await webhook_crash(serve, tg, BOT_TOKEN, n=100, kill_at=30)
    finally:
        await serve.stop()
    print(figures.line())
    assert figures.lost_acked == 0 and figures.duplicates == 0
    assert figures.stored_after_redelivery == 100


async def test_kill_9_during_deliveries_sends_every_reply(
        mongo_uri: str, db: Database, tmp_path: Path, tg: TelegramSandbox) -> None:
    tg.latency = 0.03
    serve = Serve(tmp_path / "data", db.name, uri=mongo_uri, env_extra={
        "SWITCHBOARD_DELIVERY__LEASE_SECONDS": "2",
        "SWITCHBOARD_DELIVERY__BACKOFF_BASE_SECONDS": "0.05",
        "SWITCHBOARD_DELIVERY__BACKOFF_CAP_SECONDS": "0.5"})
    try:
        figures = await reply_crash(serve, tg, BOT_TOKEN, n=40, conversations=5, kill_at=12)
    finally:
        await serve.stop()
    print(figures.line())
    assert figures.lost == 0 and figures.failed == 0 and figures.delivered == 40
    assert figures.order_violations == 0
    # a duplicate needs a send in flight at the kill: at most one per conversation, and each
    # one is flagged possibly_duplicated (a claim that takes over a dead worker's send)
    assert figures.duplicates <= 5
    assert figures.duplicates_flagged == figures.duplicates


async def test_database_hangs_then_dies_under_load(tmp_path: Path,
                                                   tg: TelegramSandbox) -> None:
    serve = Serve(tmp_path / "data", "switchboard")
    try:
        rounds = await database_faults(serve, tg, BOT_TOKEN, n=100, fault_at=20,
                                       faults=[signal.SIGSTOP, signal.SIGKILL], stopped_for=2.5)
    finally:
        await serve.stop()
    for figures in rounds:
        print(figures.line())
        assert figures.lost_acked == 0 and figures.duplicates == 0
        assert figures.healthz_503_after_seconds is not None
        assert figures.healthz_200_again_after_seconds is not None
        assert not figures.other_statuses, figures.other_statuses
        # while /healthz said 503, a new webhook was refused at once (never a 200, a hang)
        assert set(figures.probes_during_outage) <= {"503", "200"}, figures.probes_during_outage
        assert figures.slowest_probe_seconds < 2.0
    stopped, killed = rounds
    # a hung database is noticed within the ping timeout and new webhooks are refused
    assert stopped.healthz_503_after_seconds < 6
    assert stopped.probes_during_outage.get("503", 0) > 0 and stopped.embedded_restarts == 0
    # a dead one is restarted within seconds; requests in flight waited for it and were stored
    assert killed.embedded_restarts == 1


async def test_kill_9_of_the_server_and_its_database_lists_every_acknowledged_message(
        db: Database, tmp_path: Path, tg: TelegramSandbox) -> None:
    """The embedded database dies with the server (as in production): after the restart,
    conversations the dead process had not created yet are rebuilt from the messages."""
    serve = Serve(tmp_path / "data", db.name)  # the embedded database, --sync-on-commit
    try:
        figures = await webhook_crash(serve, tg, BOT_TOKEN, n=120, kill_at=40, concurrency=32)
    finally:
        await serve.stop()
    print(figures.line())
    assert figures.lost_acked == 0 and figures.duplicates == 0
    assert figures.conversations_with_stale_counters == 0
