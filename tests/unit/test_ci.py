"""
CI runs what the README tells people to run: the last command of
``.ci/run`` is README.rst's "Quick start" test command, word for word.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_test_command() -> str:
    lines = (ROOT / "README.rst").read_text(encoding="utf-8").splitlines()
    at = lines.index("Install and run the whole test suite::")
    return next(line.strip() for line in lines[at + 1 :] if line.strip())


def last_command(script: Path) -> str:
    lines = [line.strip() for line in script.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")][-1]


def test_ci_finally_runs_the_readme_test_command() -> None:
    command = readme_test_command()
    assert "pytest" in command and "pip install" in command
    assert last_command(ROOT / ".ci" / "run") == command


def test_ci_runs_every_check() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for check in ("check-pure", "ruff check", "mypy", "sphinx-build -q -W",
                  "CHATNET_FAST_PATH=0", "Twisted==$LOWEST_TWISTED", "check_junit"):
        assert check in script, check


def test_the_oldest_versions_agree() -> None:
    """CI's and tox's "lowest" run the lower bounds setup.cfg declares."""
    setup = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    for name, var in (("Twisted", "LOWEST_TWISTED"), ("urwid", "LOWEST_URWID")):
        match = re.search(rf"^\s*{name}>=([\d.]+)\s*$", setup, re.MULTILINE)
        assert match, name
        lowest = match.group(1)
        assert f"{var}={lowest}\n" in script
        assert f"{name}=={lowest}" in tox


def test_every_package_is_installed() -> None:
    """setup.cfg lists every package under chatnet/ (pip install . ships only those)."""
    setup = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    block = setup.split("packages =", 1)[1].split("\n\n", 1)[0]
    listed = {line.strip() for line in block.splitlines()[1:] if line.startswith((" ", "\t"))}
    listed = {name for name in listed if name and not name.startswith("#") and "=" not in name}
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "chatnet").rglob("__init__.py")
    }
    assert found <= listed, f"not in setup.cfg's packages: {sorted(found - listed)}"
