"""
``twistd chatnet`` says at start whether the fast path is on, and
``--no-fast-path`` and ``CHATNET_FAST_PATH=0`` turn it off in a real server
(the switch CI's plain-path run relies on).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.processes import start_server


def started_with(tmp_path: Path, *args: str) -> str:
    server = start_server(tmp_path, *args)
    try:
        found = server.out.wait_for(r"fast path (on|off)\b.*", 20)
        return found.group(0)
    finally:
        server.stop()


def test_on_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATNET_FAST_PATH", raising=False)
    line = started_with(tmp_path)
    assert "fast path on" in line
    assert "zero-copy framing on" in line and "write-through TCP on" in line
    assert "direct dispatch on" in line  # twistd's default reactor on Linux is epoll


def test_no_fast_path_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATNET_FAST_PATH", raising=False)
    assert started_with(tmp_path, "--no-fast-path").startswith("fast path off")


def test_environment_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "CHATNET_FAST_PATH", "0")
    assert started_with(tmp_path).startswith("fast path off")
