"""The scenario helpers' waits: bounded, and failing with what was printed."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatnet.scenarios.processes import Process, ScenarioFailed, Server

ECHO = "import sys\nfor line in sys.stdin:\n    print('got', line.strip(), flush=True)\n"


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Process]:
    process = Process([sys.executable, "-c", ECHO], tmp_path / "echo", "echo")
    yield process
    process.stop()


def test_wait_for_and_count(echo: Process) -> None:
    echo.send("one", "two", "two")
    line, match = echo.out.wait_for(r"^got (t\w+)$", 10)
    assert (line.index, match.group(1)) == (1, "two")
    assert len(echo.out.wait_count(r"^got two$", 2, 10)) == 2
    assert echo.out.wait_for("two", 10, start=2)[0].index == 2


def test_timeout_says_what_was_printed(echo: Process) -> None:
    echo.send("hello")
    echo.out.wait_for("got hello", 10)
    start = time.monotonic()
    with pytest.raises(ScenarioFailed) as e:
        echo.out.wait_for("never", 0.2)
    assert time.monotonic() - start < 5
    assert "echo stdout: timed out after 0.2s waiting for 'never'" in str(e.value)
    assert "got hello" in str(e.value)


def test_end_of_output_fails_at_once(echo: Process) -> None:
    echo.close_stdin()
    assert echo.wait(10) == 0
    with pytest.raises(ScenarioFailed, match="output ended"):
        echo.out.wait_for("never", 30)


def test_stays_without(echo: Process) -> None:
    echo.out.stays_without("got", 0.1)
    echo.send("x")
    with pytest.raises(ScenarioFailed, match="unexpected line 'got x'"):
        echo.out.stays_without("got", 10)


def test_wait_log(tmp_path: Path) -> None:
    server = Server([sys.executable, "-c", "pass"], tmp_path / "server", "server")
    server.log_path = tmp_path / "server.log"
    with pytest.raises(ScenarioFailed, match=r"waiting for 1 \[JOIN\] line"):
        server.wait_log("JOIN", "alice", 0.1)
    server.log_path.write_text(
        "[2026-11-24 18:00:00] [JOIN] alice joined groupA (1/15)\n"
        "[2026-11-24 18:00:00] [LEAVE] alice left groupA (0/15)\n"
    )
    assert server.wait_log("JOIN", "alice", 1) == [
        "[2026-11-24 18:00:00] [JOIN] alice joined groupA (1/15)"
    ]
    server.stop()
