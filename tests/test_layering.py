"""The layers know what they should and nothing more.

- `inbox/`, `replies/` and `web/` never name a platform or one of its constants: a new platform
  is one package under `connectors/` plus a line in `connectors/registry.py` (and, for
  `switchboard demo`, a line in web/demo.py's list of sandboxes).
- Dependencies point one way: inbox ← connectors ← replies ← web, and team work beside
  them: inbox ← teams ← replies ← web (teams knows neither connectors nor the web); service
  measures (SLA, surveys, reports) know everything but the web.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from connectors.registry import CONNECTORS

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("inbox", "replies", "teams", "measures", "web")
ALLOWED = {ROOT / "web" / "demo.py"}  # the demo's list of sandboxes
# constants that only one platform uses: its credentials, headers, hosts, methods
PLATFORM_CONSTANTS = (
    "bot_token", "botfather", "x-telegram", "api.telegram.org", "getupdates", "sendmessage",
    "setwebhook", "xoxb", "xapp-", "chat:write", "chat.postmessage", "thread_ts", "slack.com",
    "x-slack", "x-twitter", "crc_token", "api.x.com", "dm_events", "consumer_secret",
    "imap_host", "smtp_host", "uidvalidity",
)
LONG_NAMES = sorted(p for p in CONNECTORS if len(p) > 2)
SHORT_NAMES = sorted(p for p in CONNECTORS if len(p) <= 2)


def layer_files(*suffixes: str) -> list[Path]:
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*")
                  if p.suffix in suffixes and p.is_file() and p not in ALLOWED
                  and "__pycache__" not in p.parts and "vendor" not in p.parts)


def _python_strings(path: Path) -> list[tuple[int, str]]:
    out = []
    with path.open("rb") as fh:
        for tok in tokenize.tokenize(fh.readline):
            if tok.type == tokenize.STRING:
                try:
                    value = ast.literal_eval(tok.string)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, str):
                    out.append((tok.start[0], value))
    return out


def _short_name_literals(path: Path) -> list[str]:
    """A short platform name ("x") only counts as a whole string literal."""
    found = []
    if path.suffix == ".py":
        for line, value in _python_strings(path):
            if value in SHORT_NAMES:
                found.append(f"{path.relative_to(ROOT)}:{line}: {value!r}")
    else:
        text = path.read_text(encoding="utf-8")
        for name in SHORT_NAMES:
            for match in re.finditer(rf"""["']{re.escape(name)}["']""", text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {match.group()}")
    return found


def _without_docstrings_and_comments(path: Path) -> str:
    """Code and string values, not prose: a docstring may mention Telegram as an example."""
    source = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return source
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.body and isinstance(node.body[0], ast.Expr) and isinstance(
                    node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value,
                                                                     str):
            docstrings.add(node.body[0].lineno)
    kept = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT or (tok.type == tokenize.STRING
                                            and tok.start[0] in docstrings):
            continue
        kept.append(tok.string)
    return " ".join(kept)


@pytest.mark.parametrize("path", layer_files(".py", ".html", ".js", ".css", ".json"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_platform_is_named_outside_connectors(path: Path) -> None:
    text = _without_docstrings_and_comments(path).lower()
    found = [name for name in LONG_NAMES if re.search(rf"\b{re.escape(name)}\b", text)]
    found += [c for c in PLATFORM_CONSTANTS if c in text]
    found += _short_name_literals(path)
    assert not found, f"{path.relative_to(ROOT)} names {found}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


FORBIDDEN = {"inbox": {"connectors", "replies", "teams", "web"},
             "connectors": {"replies", "teams", "web"}, "replies": {"web"},
             "teams": {"connectors", "replies", "web"}, "measures": {"web"}}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_dependencies_point_one_way(layer: str) -> None:
    wrong = {str(p.relative_to(ROOT)): sorted(_imports(p) & FORBIDDEN[layer])
             for p in (ROOT / layer).rglob("*.py")}
    assert not {k: v for k, v in wrong.items() if v}
