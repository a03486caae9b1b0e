"""The domain modules import nothing from twisted.internet, even indirectly."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "chatnet.codec",
    "chatnet.frames",
    "chatnet.validation",
    "chatnet.errors",
    "chatnet.config",
    "chatnet.model",
    "chatnet.session",
    "chatnet.spool",
    "chatnet.fairqueue",
    "chatnet.client.commands",
    "chatnet.client.downloads",
    "chatnet.client.render",
    "chatnet.client.events",
]


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
