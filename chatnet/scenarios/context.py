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
    NODE_IDS,
    Client,
    Cluster,
    Peer,
    Process,
    ScenarioFailed,
    Server,
    Servers,
    start_client,
    start_nodes,
    start_peer,
    start_server,
)
from chatnet.scenarios.redis import RedisError, start_redis

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
    :param cluster: 0 for one server; N for a Redis (``redis/``) and N
        cluster nodes (``node-a/``, ``node-b/``, ...) instead, the clients
        and peers spread over them in turn.
    :param server_args: more ``chatnet`` options for every server.
    """

    def __init__(self, workdir: Path, timeout: float = 30.0, seed: int = 0,
                 cluster: int = 0, server_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.random = random.Random(seed)
        self.processes: list[Process] = []
        self.server: Servers | None = None
        self.cluster = cluster
        self.server_args = server_args
        #: In a cluster: whether each client is also given the other nodes,
        #: to reconnect to when its own goes away.
        self.failover = True
        self._turn = 0
        workdir.mkdir(parents=True, exist_ok=True)

    # processes

    def start_server(self, *options: str) -> Servers:
        """
        A fresh ``twistd -n chatnet`` in ``workdir/server``, or, in a cluster
        run, a fresh ``redis-server`` and the nodes using it.
        """
        if not self.cluster:
            server = start_server(self.workdir / "server", *options, *self.server_args,
                                  timeout=self.timeout)
            self.processes.append(server)
            self.server = server
            return server
        try:
            redis = start_redis(self.workdir / "redis", self.timeout)
        except RedisError as e:
            raise ScenarioFailed(f"Redis did not start: {e}") from None
        folders = [self.workdir / f"node-{n}" for n in NODE_IDS[: self.cluster]]
        cluster = self.server = Cluster(redis, [])  # stopped by cleanup()
        try:
            cluster.nodes = start_nodes(redis, folders, *options, *self.server_args,
                                        timeout=self.timeout)
        except ScenarioFailed as e:
            raise ScenarioFailed(f"{e}\n{redis.describe()}") from None
        self.processes.extend(cluster.nodes)
        return cluster

    @property
    def nodes(self) -> list[Server]:
        """The server processes: the one server, or every cluster node."""
        if isinstance(self.server, Cluster):
            return list(self.server.nodes)
        return [] if self.server is None else [self.server]

    def spool_dirs(self) -> list[Path]:
        """Every server's spool folder."""
        return [node.cwd / "spool" for node in self.nodes]

    def _ports(self, failover: bool) -> list[int]:
        """
        The port of the next node in turn (round robin over every client and
        peer), followed, with ``failover``, by the other nodes' in order.
        """
        nodes = self.nodes
        if not nodes:
            raise RuntimeError("start the server first")
        first = self._turn % len(nodes)
        self._turn += 1
        ports = [node.port for node in nodes[first:] + nodes[:first]]
        return ports if failover and self.failover else ports[:1]

    def client(self, name: str, *args: str, login: bool = True) -> Client:
        """
        A ``chatnet-client`` whose folder is ``workdir/<name>``; with
        ``login`` it logs in as ``name`` (``-u``) and this waits until it has.
        """
        ports = self._ports(failover=True)
        if login:
            args = ("-u", name, *args)
        client = start_client(ports, self.workdir / name, name, *args)
        self._mark(client, ports[0])
        self.processes.append(client)
        if login:
            self.logged_in(client)
        return client

    def logged_in(self, client: Client) -> None:
        client.out.wait_for(r"^\[ok\] logged in as ", self.timeout)

    def peer(self, name: str, login: bool = True) -> Peer:
        """A raw peer (:mod:`.rawpeer`), logged in as ``name`` with ``login``."""
        port = self._ports(failover=False)[0]
        peer = start_peer(port, self.workdir / name, name)
        self._mark(peer, port)
        self.processes.append(peer)
        if login:
            peer.login(name, self.timeout)
        return peer

    def _mark(self, process: Process, port: int) -> None:
        for node in self.nodes:
            if node.port == port:
                process.node_id = node.node_id

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
        Stop every process (the servers gently, the rest by SIGKILL, Redis
        last) and write what each printed to ``output.txt`` in its folder; in
        a cluster also every node's audit lines, merged, to ``cluster.log``.
        """
        nodes = self.nodes
        for process in self.processes:
            if process not in nodes:
                process.stop()
        for node in nodes:
            if node.proc.poll() is None:
                node.signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(self.timeout)
            except ScenarioFailed:
                pass
            node.stop()
        if isinstance(self.server, Cluster):
            self.server.redis.stop()
            try:
                (self.workdir / "cluster.log").write_text(self.server.merged_log(), "utf-8")
            except OSError:
                pass
        for process in self.processes:
            name = "output.txt" if process.cwd.name == process.name else f"{process.name}.txt"
            try:
                (process.cwd / name).write_text(process.describe(everything=True), "utf-8")
            except OSError:
                pass

    def diagnostics(self) -> str:
        """What every process printed, and the servers' logs."""
        parts = [process.describe() for process in self.processes]
        if isinstance(self.server, Cluster):
            parts.append(self.server.redis.describe())
            parts.append("--- every node's audit log, merged (node id first):\n"
                         + "\n".join(self.server.merged_log().splitlines()[-300:]))
        elif self.server is not None:
            parts.append(f"--- {self.server.log_path}:\n"
                         + "\n".join(self.server.log_lines()[-300:]))
        return "\n".join(parts)
