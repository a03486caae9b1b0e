"""
A real ``redis-server`` for tests, on a free loopback port.

The fixture :func:`redis_server` starts one per test in a temporary folder,
with nothing saved to disk (``--save '' --appendonly no``), waits until it
answers ``PING`` (bounded), and kills it at the end.  It skips the test, with
the reason, only when ``redis-server`` cannot be found (``.ci/run`` installs
it with apt, as it installs tmux).

Redis cannot listen on port 0, so a free port is found by binding a socket
first; if another process takes the port before Redis binds it, Redis exits
and a new port is tried.  :meth:`RedisServer.kill9` and
:meth:`RedisServer.restart` simulate the loss of Redis and its return, empty,
on the same port.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# free_port and ping are the scenario runner's own (it runs a redis-server too).
from chatnet.scenarios.redis import free_port as free_port
from chatnet.scenarios.redis import ping as ping
from support.processes import Process

#: How long a start may take before the test fails.
START_TIMEOUT = 10.0
ATTEMPTS = 5
READY = r"Ready to accept connections"


class RedisServer:
    """One ``redis-server`` process in ``folder``; ``port`` stays the same across restarts."""

    def __init__(self, executable: str, folder: Path) -> None:
        self.executable = executable
        self.folder = folder
        self.port = 0
        self.process: Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self, port: int) -> bool:
        """Start on ``port``; False when the port was taken meanwhile."""
        self.starts += 1
        argv = [self.executable, "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.folder),
                "--logfile", "", "--daemonize", "no", "--protected-mode", "yes"]
        process = Process(argv, self.folder, f"redis-server:{port}#{self.starts}")
        try:
            process.out.wait_for(READY, timeout=START_TIMEOUT)
        except AssertionError:
            text = process.out.text
            process.kill()
            if "Address already in use" in text:
                return False
            raise AssertionError(f"redis-server did not start\n{process.describe()}") from None
        deadline = time.monotonic() + START_TIMEOUT
        while not ping(port):  # ready was logged: this is one round trip, bounded
            if time.monotonic() > deadline or process.proc.poll() is not None:
                process.kill()
                raise AssertionError(f"redis-server does not answer PING\n{process.describe()}")
        self.process, self.port = process, port
        return True

    def start(self) -> None:
        """Start on a free port (a few tries, in case another process takes it)."""
        for _ in range(ATTEMPTS):
            if self._spawn(free_port()):
                return
        raise AssertionError(f"no free port for redis-server after {ATTEMPTS} tries")

    def kill9(self) -> None:
        """``kill -9`` the server: its connections break, its data is gone."""
        if self.process is not None:
            self.process.kill()  # SIGKILL
            self.process = None

    def restart(self) -> None:
        """Start again, empty, on the same port (after :meth:`kill9`)."""
        self.kill9()
        for _ in range(ATTEMPTS):
            if self._spawn(self.port):
                return
        raise AssertionError(f"redis-server could not listen on port {self.port} again")

    def stop(self) -> None:
        self.kill9()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` on 127.0.0.1, killed at the end of the test."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server not found on PATH (Debian: apt-get install redis-server)")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(executable, folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
