"""
What every scenario gets: a :class:`Context` that starts processes in the
scenario's own folder and cleans them up, and the :class:`Result` it returns.
"""

from __future__ import annotations

import hashlib
import random
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

from chatnet.scenarios.processes import (
    Client,
    Peer,
    Process,
    ScenarioFailed,
    Server,
    start_client,
    start_peer,
    start_server,
)

__all__ = ["Context", "Result", "ScenarioFailed", "check", "sha256_file"]


@dataclass
class Result:
    """One scenario's outcome: ``evidence`` is one line for the report."""

    number: int
    title: str
    passed: bool
    evidence: str
    seconds: float = 0.0
    #: On failure: the error and everything the processes printed.
    details: str = ""
    workdir: Path | None = field(default=None)


def check(condition: object, message: str) -> None:
    """:raises ScenarioFailed: with ``message`` unless ``condition``."""
    if not condition:
        raise ScenarioFailed(message)


def found(match: re.Match[str] | None, message: str) -> re.Match[str]:
    """:raises ScenarioFailed: with ``message`` unless there is a match; :returns: it."""
    if match is None:
        raise ScenarioFailed(message)
    return match


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Context:
    """
    One scenario's folder, timeouts and processes.

    :param workdir: a fresh folder; the server, each client and each peer
        get a subfolder (``server/``, ``alice/``, ...).
    :param timeout: the bound on any single wait, in seconds.
    """

    def __init__(self, workdir: Path, timeout: float = 30.0, seed: int = 0) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.random = random.Random(seed)
        self.processes: list[Process] = []
        self.server: Server | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    # processes

    def start_server(self, *options: str) -> Server:
        """A fresh ``twistd -n chatnet`` in ``workdir/server``."""
        server = start_server(self.workdir / "server", *options, timeout=self.timeout)
        self.processes.append(server)
        self.server = server
        return server

    def client(self, name: str, *args: str, login: bool = True) -> Client:
        """
        A ``chatnet-client`` whose folder is ``workdir/<name>``; with
        ``login`` it logs in as ``name`` (``-u``) and this waits until it has.
        """
        server = self._server()
        if login:
            args = ("-u", name, *args)
        client = start_client(server.port, self.workdir / name, name, *args)
        self.processes.append(client)
        if login:
            self.logged_in(client)
        return client

    def logged_in(self, client: Client) -> None:
        client.out.wait_for(r"^\[ok\] logged in as ", self.timeout)

    def peer(self, name: str, login: bool = True) -> Peer:
        """A raw peer (:mod:`.rawpeer`), logged in as ``name`` with ``login``."""
        peer = start_peer(self._server().port, self.workdir / name, name)
        self.processes.append(peer)
        if login:
            peer.login(name, self.timeout)
        return peer

    def _server(self) -> Server:
        if self.server is None:
            raise RuntimeError("start the server first")
        return self.server

    def kill9(self, process: Process) -> None:
        """SIGKILL ``process`` and reap it."""
        process.signal(signal.SIGKILL)
        status = process.wait(self.timeout)
        check(status == -signal.SIGKILL, f"{process.name} exited {status}, not by SIGKILL")

    def finish(self, *clients: Client, status: int = 0) -> None:
        """
        End the ``clients``' input (all at once: they wind down in parallel)
        and check that each exits with ``status``, without a traceback.
        """
        for client in clients:
            client.close_stdin()
        for client in clients:
            got = client.wait(self.timeout)
            check(got == status, f"{client.name} exited with status {got}, expected {status}\n"
                  + client.describe())
            check("Traceback" not in client.err.text, f"{client.name} crashed\n{client.describe()}")

    # files

    def make_file(self, path: Path, size: int) -> str:
        """Write ``size`` pseudo-random bytes to ``path``; :returns: their sha256."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.random.randbytes(size)
        path.write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    # the end

    def cleanup(self) -> None:
        """
        Stop every process (the server gently, the rest by SIGKILL) and write
        what each printed to ``output.txt`` in its folder.
        """
        for process in self.processes:
            if process is not self.server:
                process.stop()
        server = self.server
        if server is not None and server.proc.poll() is None:
            server.signal(signal.SIGTERM)
            try:
                server.wait(self.timeout)
            except ScenarioFailed:
                pass
        if server is not None:
            server.stop()
        for process in self.processes:
            name = "output.txt" if process.cwd.name == process.name else f"{process.name}.txt"
            try:
                (process.cwd / name).write_text(process.describe(everything=True), "utf-8")
            except OSError:
                pass

    def diagnostics(self) -> str:
        """What every process printed, and the server's log."""
        parts = [process.describe() for process in self.processes]
        if self.server is not None:
            parts.append(f"--- {self.server.log_path}:\n"
                         + "\n".join(self.server.log_lines()[-300:]))
        return "\n".join(parts)

