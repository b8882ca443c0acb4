"""The soak runs use the test suite's fixtures and print every figure they measured."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.conftest import (  # noqa: F401 - fixtures
    admin,
    agent,
    client,
    db,
    mongo_uri,
    services,
    settings,
    tg,
)

RESULTS: list[tuple[str, dict[str, Any]]] = []


def record(name: str, figures: Any) -> None:
    RESULTS.append((name, figures.as_dict() if hasattr(figures, "as_dict") else figures))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("soak figures")
    for name, figures in RESULTS:
        terminalreporter.write_line(f"{name}:")
        for key, value in figures.items():
            terminalreporter.write_line(f"    {key}: {value}")
    out = os.environ.get("CHAOS_RESULTS")
    if out:
        with open(out, "w") as fh:
            json.dump(RESULTS, fh, indent=2, ensure_ascii=False)
