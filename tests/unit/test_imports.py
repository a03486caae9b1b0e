"""chatnet's modules import each other in one direction only: no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import chatnet

ROOT = Path(chatnet.__file__).parent


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (packages by their own name)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("chatnet", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """
    The chatnet modules ``name`` imports, wherever the import is (under
    ``TYPE_CHECKING`` too).  A module importing its own package's
    ``__init__`` is not counted: Python runs that first anyway.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(
            n for n in names
            if n in known and n != name and not name.startswith(n + ".")
        )
    return found


def graph(prefix: str = "chatnet") -> dict[str, set[str]]:
    known = modules()
    return {
        name: {n for n in imports_of(name, path, known) if n.startswith(prefix)}
        for name, path in known.items()
        if name.startswith(prefix)
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


def test_no_import_cycle_in_the_client() -> None:
    """No client module imports, even only for type checking, one that imports it back."""
    edges = graph("chatnet.client.")
    assert "chatnet.client.core" in edges and edges["chatnet.client.protocol"]
    assert find_cycle(edges) is None


def test_no_import_cycle_in_chatnet() -> None:
    """The same holds for the whole package."""
    edges = graph()
    assert "chatnet.session" in edges and "chatnet.codec" in edges["chatnet.frames"]
    assert find_cycle(edges) is None


def test_core_does_not_know_the_protocol() -> None:
    """The client core takes a transport; only the protocol module knows both."""
    assert "chatnet.client.protocol" not in graph()["chatnet.client.core"]


def test_cycle_finder_finds_one() -> None:
    """The check itself can fail."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
