"""Full-size crash, fault and storm runs (the fast suite runs the same scenarios small).

Production settings wherever the scenario allows: the embedded database on disk with
`--sync-on-commit`, a kill -9 that takes the database process down too, the default 30 s
lease, the real 30 s pause cap of a failing account. Every run is bounded and loopback-only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.telegram.sandbox import TelegramSandbox
from inbox.db import Database
from inbox.embedded import EmbeddedServer
from soak.conftest import record
from tests.chaos import ROOT, Serve
from tests.chaos_scenarios import database_faults, reply_crash, webhook_crash
from tests.chaos_storm import platform_storm
from tests.conftest import BOT_TOKEN
from tests.live import live_server

pytestmark = pytest.mark.timeout(1500)


async def test_kill_9_during_1000_webhooks(tmp_path: Path, tg: TelegramSandbox) -> None:
    for k, kill_at in enumerate((150, 500, 850)):
        serve = Serve(tmp_path / f"data{k}", "switchboard")
        try:
            figures = await webhook_crash(serve, tg, BOT_TOKEN, n=1000, kill_at=kill_at,
                                          concurrency=32)
        finally:
            await serve.stop()
        record(f"kill -9 (server + embedded database) after {kill_at} of 1,000 webhooks",
               figures)
        assert figures.lost_acked == 0 and figures.duplicates == 0
        assert figures.stored_after_redelivery == 1000


async def test_kill_9_during_500_replies(tmp_path: Path, tg: TelegramSandbox) -> None:
    tg.latency = 0.03
    serve = Serve(tmp_path / "data", "switchboard")  # production delivery settings
    try:
        figures = await reply_crash(serve, tg, BOT_TOKEN, n=500, conversations=50,
                                    kill_at=200)
    finally:
        await serve.stop()
    record("kill -9 (server + embedded database) after 200 of 500 replies, 30 s lease",
           figures)
    assert figures.lost == 0 and figures.failed == 0 and figures.delivered == 500
    assert figures.order_violations == 0
    assert figures.duplicates <= 50  # at most one send in flight per conversation
    assert figures.duplicates_flagged == figures.duplicates


async def test_database_stopped_and_killed_under_1000_webhooks(tmp_path: Path,
                                                              tg: TelegramSandbox) -> None:
    serve = Serve(tmp_path / "data", "switchboard")
    try:
        rounds = await database_faults(
            serve, tg, BOT_TOKEN, n=1000, fault_at=300, stopped_for=10.0, concurrency=16,
            pace=0.005, faults=[signal.SIGSTOP, signal.SIGKILL, signal.SIGKILL])
    finally:
        await serve.stop()
    for k, figures in enumerate(rounds):
        record(f"embedded database {figures.signal} (round {k + 1})", figures)
        assert figures.lost_acked == 0 and figures.duplicates == 0
        assert not figures.other_statuses
        assert set(figures.probes_during_outage) <= {"503", "200"}
    assert [r.embedded_restarts for r in rounds] == [0, 1, 1]


async def test_external_database_stopped_and_killed(tmp_path: Path,
                                                     tg: TelegramSandbox) -> None:
    """`database.uri` set: the same promise, minus the restart (the database's own supervisor
    does that; here the test plays it, 5 s after the kill)."""
    external = EmbeddedServer(data_dir=tmp_path / "mongo")
    await external.start()
    serve = Serve(tmp_path / "data", "switchboard", uri=external.uri)
    try:
        rounds = await database_faults(
            serve, tg, BOT_TOKEN, n=1000, fault_at=300, stopped_for=5.0, concurrency=16,
            pace=0.005, faults=[signal.SIGSTOP, signal.SIGKILL], external=external)
    finally:
        await serve.stop()
        await external.stop()
    for figures in rounds:
        record(f"external database {figures.signal}", figures)
        assert figures.lost_acked == 0 and figures.duplicates == 0
        assert not figures.other_statuses
        assert set(figures.probes_during_outage) <= {"503", "200"}
        assert figures.embedded_restarts == 0


async def test_a_60_second_storm_on_one_bot(mongo_uri: str, db: Database, tmp_path: Path,
                                            tg: TelegramSandbox) -> None:
    async with live_server(mongo_uri, db.name, tmp_path) as live:  # default delivery settings
        figures = await platform_storm(live, tg, storm_seconds=60.0, conversations=5,
                                       replies_per_conversation=10, recovery_timeout=300.0)
    record("60 s of 5xx/429 on one bot, production back-off", figures)
    assert figures.calm_delivered_during_storm == figures.calm_queued_during_storm >= 40
    assert figures.calm_latency_max_s < 5.0
    assert figures.stormy_order_violations == 0
    assert figures.duplicates == 0 and figures.failed == 0


def test_atheris_webhook_fuzz(tmp_path: Path) -> None:
    """Coverage-guided fuzzing of the webhook route for a bounded time (soak/atheris_webhook)."""
    seconds = os.environ.get("CHAOS_ATHERIS_SECONDS", "90")
    result = subprocess.run(
        [sys.executable, "-m", "soak.atheris_webhook", f"-max_total_time={seconds}",
         "-rss_limit_mb=3072", "-timeout=30", f"-artifact_prefix={tmp_path}/",
         str(tmp_path / "corpus")],
        cwd=ROOT, capture_output=True, text=True, timeout=int(seconds) + 240, check=False)
    tail = (result.stdout + result.stderr)[-4000:]
    stats = [line for line in tail.splitlines() if line.startswith("#") and "DONE" in line]
    record("atheris on the Telegram webhook route", {
        "seconds": seconds, "exit": result.returncode,
        "last_line": stats[-1] if stats else tail.splitlines()[-1:]})
    assert result.returncode == 0, tail
