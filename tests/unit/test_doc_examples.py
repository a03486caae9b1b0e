"""
The example printed verbatim in docs/protocol.rst is still what the example
prints: docs/examples/file_transfer.py against docs/examples/file_transfer.out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def test_file_transfer_example_prints_its_documented_output() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "file_transfer.py")],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )
    assert result.stdout == (EXAMPLES / "file_transfer.out").read_text()
