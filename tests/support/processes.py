"""
Real server and client processes for end-to-end tests.

Every wait is bounded and every failure message carries what the process
printed.  The server runs as ``twistd -n chatnet`` on ``127.0.0.1`` port 0;
its port is read from the ``chatnet listening on 127.0.0.1:<PORT>`` line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "bin" / "chatnet-client"
TWISTD = "from twisted.scripts.twistd import run; run()"
LISTENING = re.compile(r"chatnet listening on 127\.0\.0\.1:(\d+)")


class Output:
    """Collects a stream's lines in a thread; waits for patterns."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 20.0, start: int = 0) -> re.Match[str]:
        """
        The first line (from index ``start``) matching the regex ``pattern``.

        :raises AssertionError: on timeout or end of stream, with the output.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    why = "timed out" if left <= 0 else "stream closed"
                    raise AssertionError(
                        f"{self.name}: {why} waiting for {pattern!r}; output:\n" + "\n".join(self.lines)
                    )
                self._cond.wait(left)

    def wait_closed(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)


class Process:
    """A child process with its stdout and stderr collected."""

    def __init__(self, argv: Sequence[str], cwd: Path, name: str, env: dict[str, str] | None = None, stdin: Any = subprocess.PIPE) -> None:
        self.name = name
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            list(argv), cwd=cwd, env=full_env, stdin=stdin,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.out = Output(self.proc.stdout, f"{name} stdout")  # type: ignore[arg-type]
        self.err = Output(self.proc.stderr, f"{name} stderr")  # type: ignore[arg-type]

    def describe(self) -> str:
        return (f"--- {self.name} (exit {self.proc.poll()}) stdout:\n{self.out.text}\n"
                f"--- {self.name} stderr:\n{self.err.text}")

    def wait(self, timeout: float = 30.0) -> int:
        """The exit status; kills the process and fails on timeout."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.describe()}") from None
        self.out.wait_closed()
        self.err.wait_closed()
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class Server(Process):
    """``twistd -n chatnet`` in a temporary folder."""

    port: int
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)


def start_server(tmp_path: Path, *extra_args: str, timeout: float = 30.0, port: int = 0) -> Server:
    """
    Start a server in ``tmp_path`` and wait until it listens.

    :param extra_args: more ``chatnet`` plugin options.
    :param port: the port to listen on; 0 picks a free one (restarting a
        killed server on its old port passes that port).
    :returns: a :class:`Server` with ``port``, ``proc``, ``log_path``.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / "server.log"
    argv = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "chatnet",
            "--port", f"tcp:{port}:interface=127.0.0.1", "--audit-log", str(log_path),
            "--spool-dir", str(tmp_path / "spool"), *extra_args]
    server = Server(argv, tmp_path, "server", stdin=subprocess.DEVNULL)
    try:
        match = server.out.wait_for(LISTENING.pattern, timeout)
    except AssertionError:
        server.kill()
        raise AssertionError(f"server did not start\n{server.describe()}") from None
    server.port = int(match.group(1))
    server.log_path = log_path
    return server


class Client(Process):
    """``bin/chatnet-client`` in line mode, fed through a pipe."""

    def send(self, *lines: str) -> None:
        """Write lines to the client's stdin."""
        assert self.proc.stdin is not None
        for line in lines:
            self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        """End of input: the client finishes its work and exits."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()


def start_client(port: int | None, *args: str, cwd: Path, name: str = "client", env: dict[str, str] | None = None) -> Client:
    """
    Start ``bin/chatnet-client 127.0.0.1 PORT *args`` in ``cwd``
    (``bin/chatnet-client *args`` when ``port`` is ``None``).
    """
    cwd.mkdir(parents=True, exist_ok=True)
    where = [] if port is None else ["127.0.0.1", str(port)]
    argv = [sys.executable, str(CLIENT), *where, *args]
    return Client(argv, cwd, name, env=env)
