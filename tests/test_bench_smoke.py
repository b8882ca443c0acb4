"""The benchmark code runs end to end at tiny sizes (no timing is asserted: see bench/)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.__main__ import main, parse, render, rows
from tests.chaos import descendants


@pytest.mark.timeout(240)
async def test_quick_benchmark_run_produces_every_figure(mongo_uri: str, tmp_path: Path) -> None:
    args = parse(["--quick", "--mongodb-uri", mongo_uri, "--out", str(tmp_path / "r.json")])
    results = await main(args)
    figures = results["figures"]
    assert set(figures) == {"ingest", "live", "replies", "queries", "search", "reports"}
    ingest = figures["ingest"]
    assert ingest["messages_in_db"] == ingest["messages_acked"] > 0
    for run in ingest["runs"].values():
        assert run["a_new_conversations"]["errors"] == {}
        assert run["b_existing_conversations"]["errors"] == {}
        assert all(level["errors"] == {} for level in run["open_loop"])
        assert run["a_new_conversations"]["listed_after_ack"]["not_listed_within_10s"] == 0
    assert [s["messages"] for s in figures["queries"]["sizes"]] == [500, 1500]
    assert all(s["open_first_page"]["plan"]["all_ixscan"] for s in figures["queries"]["sizes"])
    assert figures["live"]["deliveries_missing"] == 0
    assert figures["replies"]["sustained_10pct_429"]["exactly_once"]
    assert "| 4 replies |" in render(results)
    # against an outside database no process of this run is the database: said, not guessed
    cpu_rows = [r for r in rows(results) if "database CPU per acknowledged" in r[1]]
    assert cpu_rows and all(r[2].startswith("not measured") for r in cpu_rows)
    for kind in ("quiet", "busy"):
        search = figures["search"][kind]
        assert [s["documents"] for s in search["sizes"]] == [500, 1500]
        assert search["sizes"][-1]["rare"]["hits_on_first_page"] == 1
        assert all(s["common"]["hits_on_first_page"] == 20 for s in search["sizes"])
    busy, quiet = (figures["search"][k]["sizes"][-1]["buckets"] for k in ("busy", "quiet"))
    assert busy * 8 <= quiet  # full buckets in the busy inbox, one a message in the quiet one
    assert "| 5 search " in render(results)
    assert figures["reports"]["bucket_documents"] > 0
    assert figures["reports"]["month_by_day"]["rows"] == 30
    assert "| 6 reports " in render(results)


@pytest.mark.timeout(120)
def test_a_terminated_run_stops_what_it_started(tmp_path: Path) -> None:
    """`timeout` sends SIGTERM: the database, the sandbox and the server it started go too
    (they used to outlive it, the database busy on a core)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", "--quick", "--only", "ingest",
                             "--out", str(tmp_path / "r.json")],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 90
    children: set[int] = set()
    while time.monotonic() < deadline and len(children) < 3:  # database, sandbox, server
        children = descendants(proc.pid)
        time.sleep(0.2)
    assert len(children) >= 3, children
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    time.sleep(0.5)
    assert [pid for pid in children if _alive(pid)] == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"
