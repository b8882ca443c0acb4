"""kill -9 of `switchboard serve` mid-load: nothing acknowledged is lost, nothing is stored
twice, and every reply ends `sent` with any duplicate flagged. Full-size runs: `make soak`."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from connectors.telegram.sandbox import TelegramSandbox
from inbox.db import Database
from tests.chaos import Serve
from tests.chaos_scenarios import database_fault, reply_crash, webhook_crash
from tests.conftest import BOT_TOKEN


async def test_kill_9_during_webhooks_loses_and_duplicates_nothing(
        mongo_uri: str, db: Database, tmp_path: Path, tg: TelegramSandbox) -> None:
    serve = Serve(tmp_path / "data", db.name, uri=mongo_uri)
    figures = await webhook_crash(serve, tg, BOT_TOKEN, n=120, kill_at=40)
    print(figures.line())
    assert figures.lost_acked == 0 and figures.duplicates == 0
    assert figures.stored_after_redelivery == 120


async def test_kill_9_during_deliveries_sends_every_reply(
        mongo_uri: str, db: Database, tmp_path: Path, tg: TelegramSandbox) -> None:
    tg.latency = 0.03
    serve = Serve(tmp_path / "data", db.name, uri=mongo_uri, env_extra={
        "SWITCHBOARD_DELIVERY__LEASE_SECONDS": "3",
        "SWITCHBOARD_DELIVERY__BACKOFF_BASE_SECONDS": "0.05",
        "SWITCHBOARD_DELIVERY__BACKOFF_CAP_SECONDS": "0.5"})
    figures = await reply_crash(serve, tg, BOT_TOKEN, n=60, conversations=6, kill_at=20)
    print(figures.line())
    assert figures.lost == 0 and figures.failed == 0 and figures.delivered == 60
    assert figures.order_violations == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["SIGKILL", "SIGSTOP"])
async def test_database_dies_or_hangs_under_load(tmp_path: Path, tg: TelegramSandbox,
                                                 sig: signal.Signals) -> None:
    serve = Serve(tmp_path / "data", "switchboard")
    try:
        figures = await database_fault(serve, tg, BOT_TOKEN, n=240, fault_at=40, sig=sig,
                                       stopped_for=4.0)
    finally:
        await serve.stop()
    print(figures.line())
    assert figures.lost_acked == 0 and figures.duplicates == 0
    assert figures.healthz_503_after_seconds is not None
    assert figures.healthz_200_again_after_seconds is not None
    assert figures.answered_503 > 0
    assert not figures.other_statuses, figures.other_statuses
    if sig == signal.SIGKILL:
        assert figures.embedded_restarts == 1
