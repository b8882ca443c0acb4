"""Golden-file helpers for connector normalisers: results → plain JSON, fixture discovery."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
# Payloads that are not JSON but raw bytes, read as such (an email's RFC 5322 source).
RAW_SUFFIXES = (".eml",)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            if f.name != "raw":
                out[f.name] = _plain(getattr(value, f.name))
        return out
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def as_json(result: Any) -> dict[str, Any]:
    """An `InboundMessage` / `Ignored` as JSON-ready data: datetimes as ISO strings, no `raw`."""
    plain = _plain(result)
    assert isinstance(plain, dict)
    return plain


@dataclass(frozen=True)
class Fixture:
    path: Path

    def __str__(self) -> str:
        return self.path.stem

    @property
    def payload(self) -> Any:
        """A JSON payload as data; a raw payload (an `.eml` mail) as its exact bytes."""
        if self.path.suffix in RAW_SUFFIXES:
            return self.path.read_bytes()
        return json.loads(self.path.read_text(encoding="utf-8"))

    @property
    def expected_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".expected.json")

    def check(self, actual: dict[str, Any]) -> None:
        """Compare with the golden file, or rewrite it when UPDATE_GOLDEN=1."""
        if UPDATE_GOLDEN or not self.expected_path.exists():
            text = json.dumps(actual, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
            self.expected_path.write_text(text, encoding="utf-8")
            if not UPDATE_GOLDEN:
                raise AssertionError(f"wrote missing golden file {self.expected_path.name}; "
                                     "review it and rerun")
        expected = json.loads(self.expected_path.read_text(encoding="utf-8"))
        assert actual == expected


def inbound_fixtures(platform: str) -> list[Fixture]:
    folder = FIXTURES / platform / "inbound"
    paths = [*folder.glob("*.json"), *(p for s in RAW_SUFFIXES for p in folder.glob(f"*{s}"))]
    return [Fixture(p) for p in sorted(paths)
            if not p.name.endswith((".expected.json", ".headers.json"))]


def all_fixture_files() -> list[Path]:
    return sorted(FIXTURES.rglob("*.json"))
