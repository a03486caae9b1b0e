"""
The domain modules import nothing from twisted.internet, even indirectly.

Which modules are pure is said once, in each module's docstring (a line
starting with ``Pure:``); :mod:`support.purity` reads it for this test and
for ``.ci/check-pure``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.purity import is_pure, path_of, pure_modules, reactor_imports

PURE = pure_modules()


def test_the_domain_modules_are_found() -> None:
    """The docstrings mark the modules docs/architecture.rst calls pure."""
    for module in ("chatnet.codec", "chatnet.model", "chatnet.session", "chatnet.ratelimit",
                   "chatnet.config", "chatnet.client.commands"):
        assert module in PURE


@pytest.mark.parametrize("module", PURE)
def test_module_has_no_reactor_import(module: str) -> None:
    """No import of twisted.internet that runs (type-checking-only ones are fine)."""
    assert reactor_imports(path_of(module)) == []


@pytest.mark.parametrize("module", PURE)
def test_module_loads_no_reactor_code(module: str) -> None:
    """Importing the module in a fresh interpreter loads no twisted.internet module."""
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.startswith('twisted.internet')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert out == "[]"


def test_the_rule_is_read_from_the_docstring(tmp_path: Path) -> None:
    pure = tmp_path / "pure.py"
    pure.write_text('"""\nA thing.\n\nPure: no reactor.\n"""\n', encoding="utf-8")
    impure = tmp_path / "impure.py"
    impure.write_text('"""A thing; not Pure: here."""\nx = "Pure: no"\n', encoding="utf-8")
    assert is_pure(pure)
    assert not is_pure(impure)


def test_the_import_check(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "import twisted.logger\n"
        "if TYPE_CHECKING:\n"
        "    from twisted.internet.defer import Deferred\n"
        "from twisted.internet import task\n"
        "from twisted import internet\n"
        "def f():\n"
        "    import twisted.internet.reactor\n",
        encoding="utf-8",
    )
    assert [line for line, _ in reactor_imports(path)] == [5, 6, 8]
