"""The server's collector settings (web/gc_pauses.py): what startup made is frozen out of the
collector's sight, and young collections are rarer. Run in a child interpreter, so this test
process keeps the interpreter's defaults."""

from __future__ import annotations

import json
import subprocess
import sys

from web import gc_pauses

PROBE = """
import gc, json
import web.runtime  # what serve imports: the application, its routes and the libraries
before = len(gc.get_objects())
from web import gc_pauses
gc_pauses.tune()
print(json.dumps({"before": before, "after": len(gc.get_objects()),
                  "frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}))
"""


def test_startup_is_frozen_and_young_collections_are_rarer() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["frozen"] >= seen["before"] // 2  # most of startup's objects
    assert seen["after"] < seen["before"] // 10  # a full collection walks a tenth or less
    assert seen["threshold"][0] == gc_pauses.YOUNG > 700
