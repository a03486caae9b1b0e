"""
A real HAProxy in front of real nodes, run from ``contrib/haproxy.cfg``.

:func:`render` takes the example as it is shipped and changes only where it
listens, the addresses of its servers and their health-check ports, and
the path of its runtime socket; everything else (balancing, checks,
timeouts) is what operators get.  :class:`HAProxy` runs ``haproxy -db -f``
(in the foreground, logging to its standard output, as the example says)
on a free loopback port, and reads the node states from its log lines and
from its runtime socket (``show stat``).
"""

from __future__ import annotations

import csv
import re
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

from support.processes import ROOT, Process
from support.redis import free_port

HAPROXY = shutil.which("haproxy") or next(
    (str(p) for p in (Path("/usr/sbin/haproxy"),) if p.exists()), None)
EXAMPLE = ROOT / "contrib" / "haproxy.cfg"
START_TIMEOUT = 10.0
ATTEMPTS = 5

_BIND = re.compile(r"(?m)^(\s*bind\s+)\S+")
_SERVER = re.compile(r"(?m)^(\s*server\s+(\S+)\s+)\S+(\s+check\s+port\s+)\d+")
_SOCKET = re.compile(r"(?m)^(\s*stats\s+socket\s+)\S+")


def render(text: str, port: int, servers: Sequence[tuple[str, int, int]], sock: Path) -> str:
    """
    The example ``text`` listening on ``127.0.0.1:port``, its servers (in
    order) at ``(name, chat port, health-check port)`` on 127.0.0.1, its
    runtime socket at ``sock``.

    :raises AssertionError: when the example no longer has one ``bind``,
        one ``stats socket`` and exactly as many ``server`` lines.
    """
    text, binds = _BIND.subn(rf"\g<1>127.0.0.1:{port}", text)
    text, sockets = _SOCKET.subn(lambda m: m.group(1) + str(sock), text)
    found = _SERVER.findall(text)
    assert (binds, sockets, len(found)) == (1, 1, len(servers)), (
        f"{EXAMPLE}: expected 1 bind, 1 stats socket and {len(servers)} 'server NAME HOST:PORT "
        f"check port N' lines; found {binds}, {sockets}, {len(found)}")
    rows = iter(servers)

    def server(match: re.Match[str]) -> str:
        name, chat, check = next(rows)
        head = match.group(1).replace(match.group(2), name, 1)
        return f"{head}127.0.0.1:{chat}{match.group(3)}{check}"

    return _SERVER.sub(server, text)


class HAProxy:
    """``haproxy -db -f CONFIG`` on 127.0.0.1:``port``."""

    def __init__(self, executable: str, folder: Path,
                 servers: Sequence[tuple[str, int, int]]) -> None:
        self.executable = executable
        self.folder = folder
        self.servers = list(servers)
        self.socket = folder / "haproxy.sock"
        self.config = folder / "haproxy.cfg"
        self.port = 0
        self.process: Process | None = None

    def start(self) -> None:
        """Start on a free port (a few tries, in case another process takes it)."""
        example = EXAMPLE.read_text("utf-8")
        for attempt in range(ATTEMPTS):
            port = free_port()
            self.config.write_text(render(example, port, self.servers, self.socket), "utf-8")
            process = Process([self.executable, "-db", "-f", str(self.config)], self.folder,
                              f"haproxy#{attempt + 1}")
            if self._ready(process, port):
                self.process, self.port = process, port
                return
            process.kill()
            if "Address already in use" not in process.err.text + process.out.text:
                raise AssertionError(f"haproxy did not start\n{process.describe()}")
        raise AssertionError(f"no free port for haproxy after {ATTEMPTS} tries")

    def _ready(self, process: Process, port: int) -> bool:
        """Whether ``process`` got as far as answering on its runtime socket."""
        # haproxy writes nothing when it is ready; its runtime socket exists
        # once the configuration is loaded and the listeners are bound.
        # Waiting for the first health-check verdict, which it logs, bounds it.
        try:
            process.out.wait_for(r"Health check for server", timeout=START_TIMEOUT)
        except AssertionError:
            return False
        return process.proc.poll() is None and self.stat() is not None

    def command(self, line: str) -> str:
        """One command on the runtime socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def stat(self) -> dict[str, dict[str, str]] | None:
        """``show stat``: each server's row (``status``, ``check_status``, ``scur``...) by name."""
        try:
            text = self.command("show stat")
        except OSError:
            return None
        rows = csv.DictReader(text.lstrip("# ").splitlines())
        return {row["svname"]: row for row in rows
                if row.get("svname") not in (None, "FRONTEND", "BACKEND")}

    def wait_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """The first line HAProxy logged (from line ``start``) matching ``pattern``."""
        return self._process().out.wait_for(pattern, timeout, start)

    def log_mark(self) -> int:
        return len(self._process().out.lines)

    def _process(self) -> Process:
        assert self.process is not None, "haproxy was not started"
        return self.process

    def describe(self) -> str:
        return self.process.describe() if self.process else "--- haproxy: not started"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
