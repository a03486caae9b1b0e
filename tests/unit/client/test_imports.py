"""The client's modules import each other in one direction only: no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import chatnet.client

PACKAGE = "chatnet.client"
FOLDER = Path(chatnet.client.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every ``chatnet.client`` module ``path`` imports, wherever (``TYPE_CHECKING`` too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith(PACKAGE + ".") and module_path(n))
    return found


def module_path(name: str) -> Path | None:
    path = FOLDER / (name.removeprefix(PACKAGE + ".").replace(".", "/") + ".py")
    return path if path.is_file() else None


def graph() -> dict[str, set[str]]:
    return {
        f"{PACKAGE}.{path.stem}": imports_of(path)
        for path in sorted(FOLDER.glob("*.py"))
        if path.stem != "__init__"
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other in a ring, or ``None``."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(edges.get(node, ())):
            cycle = visit(nxt, path + [node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(edges):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_no_import_cycle_in_client() -> None:
    """No client module imports, even only for type checking, one that imports it back."""
    edges = graph()
    assert "chatnet.client.core" in edges and edges["chatnet.client.protocol"]
    assert find_cycle(edges) is None


def test_core_does_not_know_the_protocol() -> None:
    """The core takes a transport; only the protocol module knows both."""
    assert "chatnet.client.protocol" not in graph()["chatnet.client.core"]


def test_cycle_finder_finds_one() -> None:
    """The check itself can fail."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
