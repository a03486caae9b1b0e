"""
A throw-away ``redis-server`` for a cluster run of the scenarios or the
benchmark: on a free loopback port, in a folder of its own, nothing saved to
disk (``--save '' --appendonly no``).  Standard library only.

Redis cannot listen on port 0, so a free port is found by binding a socket
first; if another process takes it before Redis binds it, Redis exits and a
new port is tried.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RedisError", "RedisServer", "find_redis", "free_port", "ping", "redis_version",
           "start_redis"]

#: What to tell someone without the server.
INSTALL = "redis-server not found on PATH (Debian/Ubuntu: apt-get install redis-server)"
ATTEMPTS = 5


class RedisError(Exception):
    """Redis could not be found or started; the message says why."""


def find_redis() -> str:
    """The ``redis-server`` executable; :raises RedisError: when there is none."""
    found = shutil.which("redis-server")
    if found is None:
        raise RedisError(INSTALL)
    return found


def redis_version(executable: str) -> str:
    """``7.0.15`` from ``redis-server --version`` ("unknown" when it does not say)."""
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for word in done.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return "unknown"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ping(port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis on 127.0.0.1:``port`` answers ``PING`` with ``PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            answer = b""
            while not answer.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    break
                answer += chunk
            return answer == b"+PONG\r\n"
    except OSError:
        return False


class RedisServer:
    """One running ``redis-server``; its output goes to ``folder/redis.log``."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, folder: Path) -> None:
        self.proc = proc
        self.port = port
        self.folder = folder

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.folder / "redis.log"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """``kill -9``: its connections break, its data is gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL when it does not exit within ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()

    def describe(self) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            text = ""
        lines = text.splitlines()[-40:]
        return (f"--- redis-server (pid {self.pid}, port {self.port}, exit {self.proc.poll()}):\n"
                + "\n".join("  " + line for line in lines) + "\n")


def _spawn(executable: str, folder: Path, port: int, timeout: float) -> RedisServer | None:
    """Start on ``port``; None when the port was taken meanwhile."""
    argv = [executable, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(folder),
            "--logfile", "", "--daemonize", "no", "--protected-mode", "yes"]
    with open(folder / "redis.log", "ab") as log:
        proc = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = RedisServer(proc, port, folder)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not ping(port):
        if proc.poll() is not None:
            if "Address already in use" in server.log_path.read_text("utf-8", "replace"):
                return None
            raise RedisError(f"redis-server exited with status {proc.returncode}\n"
                             + server.describe())
        if time.monotonic() > deadline:
            server.kill9()
            raise RedisError(f"redis-server did not answer PING within {timeout:g}s\n"
                             + server.describe())
        time.sleep(delay)  # polling a socket: there is no event to wait on
        delay = min(delay * 2, 0.1)
    return server


def start_redis(folder: Path, timeout: float = 10.0, executable: str | None = None) -> RedisServer:
    """
    Start ``redis-server`` in ``folder`` (created) on a free loopback port;
    return once it answers ``PING``.

    :raises RedisError: no ``redis-server`` on PATH, or it would not start.
    """
    executable = executable or find_redis()
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(ATTEMPTS):
        server = _spawn(executable, folder, free_port(), timeout)
        if server is not None:
            return server
    raise RedisError(f"no free port for redis-server after {ATTEMPTS} tries")
