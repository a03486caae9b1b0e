"""
Which chatnet modules are pure, and whether they keep the rule.

A module is *pure* when its docstring has a line that starts with
``Pure:`` (for example ``Pure: imports nothing from Twisted.``).  That line
is the one list of pure modules: ``.ci/check-pure`` runs this file, and
``tests/unit/test_purity.py`` imports it.  A pure module imports nothing
from ``twisted.internet``, outside ``if TYPE_CHECKING:`` blocks (an import
only the type checker sees loads nothing).

Run as a script (standard library only, so it runs before anything is
installed): prints each pure module, and exits 1 if one breaks the rule.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "chatnet"


def is_pure(path: Path) -> bool:
    """Whether the module's docstring has a line starting with ``Pure:``."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return any(line.startswith("Pure:") for line in doc.splitlines())


def pure_modules(package: Path = PACKAGE) -> list[str]:
    """Dotted names of the pure modules under ``package``, sorted."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if is_pure(path):
            parts = path.relative_to(package.parent).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(".".join(parts))
    return found


def path_of(module: str) -> Path:
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    return path if path.exists() else path.with_suffix("") / "__init__.py"


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def reactor_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of each import of ``twisted.internet`` that runs."""
    found: list[tuple[int, str]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _type_checking_only(node):
                visit(node.orelse)
                continue
            for child in ast.walk(node):
                names: list[str] = []
                if not isinstance(child, (ast.Import, ast.ImportFrom)):
                    continue
                if isinstance(child, ast.Import):
                    names = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                    names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
                for name in names:
                    if name == "twisted.internet" or name.startswith("twisted.internet."):
                        found.append((child.lineno, name))
                        break

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def main() -> int:
    modules = pure_modules()
    if not modules:
        print("no module's docstring says 'Pure:'; is this a chatnet checkout?", file=sys.stderr)
        return 1
    status = 0
    for module in modules:
        path = path_of(module)
        bad = reactor_imports(path)
        print(f"pure: {module}" + (" (imports twisted.internet)" if bad else ""))
        for line, name in bad:
            print(f"{path.relative_to(ROOT)}:{line}: a pure module imports {name}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
