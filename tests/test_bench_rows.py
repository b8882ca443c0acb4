"""The benchmark table reads a real ingest figure as it was measured: the ratio to the bare
baseline, and the database's CPU time per acknowledged message against the bare insert_one's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.__main__ import ingest_rows
from bench.fig_ingest import with_ratios

FIGURE = Path(__file__).parent / "fixtures" / "bench" / "ingest_figure.json"


def _figure() -> dict[str, Any]:
    return json.loads(FIGURE.read_text())


def _row(rows: list[tuple[str, str, str, str]], starts: str) -> tuple[str, str, str, str]:
    return next(r for r in rows if r[1].startswith(starts))


def test_the_cpu_row_divides_the_cheapest_bare_insert_by_each_workloads_cost() -> None:
    row = _row(ingest_rows(_figure()), "1_process: database CPU per acknowledged message")
    assert row[2] == ("(a) 2.36 / (b) 1.21 ms against bare insert_one's 0.58 ms"
                      " = 0.25× / 0.48×")
    assert row[3] == "—"  # a reading beside the target, not a verdict on it


def test_without_the_databases_cpu_time_the_row_says_so() -> None:
    figure = _figure()
    figure["baseline"]["db_cpu_ms_per_doc"] = None  # --mongodb-uri: no child database
    row = _row(ingest_rows(figure), "1_process: database CPU per acknowledged message")
    assert row[2].startswith("not measured")


def test_the_rate_rows_keep_their_verdicts() -> None:
    rows = ingest_rows(_figure())
    a = _row(rows, "1_process: (a) half new chats")
    assert a[2].startswith("942 updates/s = 0.92× 1,027/s")
    assert a[3] == "≥ 2.0× — missed"


def test_the_ratios_divide_by_the_strict_side_of_the_baseline() -> None:
    """The best bare rate (the higher one), the cheapest bare insert (the lower CPU time)."""
    figure = _figure()
    baseline, runs = figure["baseline"], figure["runs"]
    baseline.pop("db_cpu_ms_per_doc")
    for run in runs.values():
        for loop in (run["a_new_conversations"], run["b_existing_conversations"]):
            loop.pop("ratio_to_baseline")
            loop.pop("db_cpu_ratio_to_baseline")
    with_ratios(baseline, runs)
    assert baseline["db_cpu_ms_per_doc"] == 0.58  # before 0.58, after 0.71
    a = runs["1_process"]["a_new_conversations"]
    assert a["ratio_to_baseline"] == round(941.8 / 1026.7, 2)
    assert a["db_cpu_ratio_to_baseline"] == round(0.58 / 2.36, 2)


def test_a_loop_without_its_cpu_time_gets_no_cpu_ratio() -> None:
    figure = _figure()
    baseline, runs = figure["baseline"], figure["runs"]
    b = runs["1_process"]["b_existing_conversations"]
    b.pop("db_cpu_ratio_to_baseline")
    b["db_cpu_ms_per_message"] = None
    with_ratios(baseline, runs)
    assert "db_cpu_ratio_to_baseline" not in b
    assert b["ratio_to_baseline"] > 0
