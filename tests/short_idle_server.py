"""The embedded database server (secantusd) with a client idle timeout of `IDLE_S` seconds
instead of its fixed 300, for tests of what a client does once the server has closed a pooled
connection: `python -m tests.short_idle_server IDLE_S <secantusd arguments>`."""

from __future__ import annotations

import sys

import secantus.server
from secantus.cli import main


def _shorten(idle_s: float) -> None:
    for value in list(vars(secantus.server).values()):
        defaults = getattr(getattr(value, "__init__", None), "__kwdefaults__", None) or {}
        if isinstance(value, type) and "client_idle_timeout_s" in defaults:
            defaults["client_idle_timeout_s"] = idle_s


if __name__ == "__main__":
    _shorten(float(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
