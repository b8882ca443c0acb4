"""No import cycles among web/*.py, deferred ones (an import inside a function) included.

ui.py ↔ login.py ↔ ui_admin.py used to import each other, held together by imports inside
functions; web/pages.py and web/csrf.py now hold what they shared. A cycle that comes back
fails the graph test; one that breaks an import at runtime also fails the fresh-interpreter
one, which imports each page module alone, first.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent / "web"
PAGE_MODULES = ("web.pages", "web.csrf", "web.login", "web.ui_admin", "web.ui", "web.i18n")


def import_graph() -> dict[str, set[str]]:
    """module → the web modules it imports anywhere in its body."""
    names = {path.stem for path in WEB.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in WEB.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "web":
                found |= {alias.name for alias in node.names if alias.name in names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("web."):
                found.add(str(node.module).split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names
                          if a.name.startswith("web.")}
        graph[path.stem] = found - {path.stem}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle once, as the path that closes it (depth-first, colouring)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                found.append([*path[path.index(dep):], dep])
            elif dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_web_module_imports_itself_through_others() -> None:
    graph = import_graph()
    assert {"pages", "ui", "ui_admin", "login"} <= set(graph)
    assert cycles(graph) == []


def test_the_page_helpers_import_no_page_module() -> None:
    graph = import_graph()
    assert graph["pages"].isdisjoint({"ui", "ui_admin", "login"})
    assert graph["csrf"].isdisjoint({"ui", "ui_admin", "login", "pages"})
    assert "ui" not in graph["login"] | graph["ui_admin"]


@pytest.mark.parametrize("module", PAGE_MODULES)
def test_each_page_module_imports_alone(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, timeout=120, cwd=WEB.parent)
    assert done.returncode == 0, done.stderr[-2000:]
