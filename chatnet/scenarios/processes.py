"""
Real processes for the scenarios: a ``twistd -n chatnet`` server, line-mode
``chatnet-client`` processes and raw protocol peers (:mod:`.rawpeer`).

Every process's stdout and stderr are collected line by line, each line
stamped with the :func:`time.monotonic` time it was read.  Every wait is
bounded: :meth:`Output.wait_for` fails with what the process printed instead
of hanging.  Standard library only, no reactor.
"""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import chatnet
from chatnet.scenarios.redis import RedisServer

T = TypeVar("T")

#: The folder holding the ``chatnet`` package in use (a checkout or
#: site-packages).
PACKAGE_ROOT = str(Path(chatnet.__file__).resolve().parents[1])


def child_pythonpath() -> str | None:
    """
    ``PYTHONPATH`` for the children, so they run the same chatnet as the
    runner: a checkout goes in front (its ``twisted/plugins`` then holds the
    plugin twistd finds); an installed chatnet needs nothing, and putting
    site-packages ahead of the standard library would be wrong.
    """
    path = os.environ.get("PYTHONPATH")
    installed = {os.path.realpath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if os.path.realpath(PACKAGE_ROOT) in installed:
        return path
    return PACKAGE_ROOT + (os.pathsep + path if path else "")


#: Children start with Python's own SIGINT handling even when the runner was
#: started with SIGINT ignored (a shell's background job): the server must
#: stop on the SIGINT of scenario 7.  Done in the child's code rather than a
#: ``preexec_fn``, which is unsafe in a process with threads.
_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
#: The server stops itself (SIGTERM, a clean stop) when its stdin, a pipe
#: from the runner, ends: a runner killed outright leaves no server behind.
#: Clients and raw peers already exit at the end of their input.
#: (``os.read``, not ``sys.stdin``: a daemon thread blocked in a buffered
#: reader can make the interpreter abort at exit.)
_ORPHAN_GUARD = """
import os, threading
def _guard():
    while os.read(0, 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=_guard, daemon=True).start()
"""
TWISTD = _SIGINT + _ORPHAN_GUARD + "from twisted.scripts.twistd import run; run()\n"
CLIENT = _SIGINT + "from chatnet.client.terminal import main; main()"
RAWPEER = _SIGINT + "from chatnet.scenarios.rawpeer import main; main()"
LISTENING = re.compile(r"chatnet listening on 127\.0\.0\.1:(\d+)")


class ScenarioFailed(AssertionError):
    """A scenario's expectation was not met; the message says which."""


@dataclass(frozen=True)
class Line:
    """One line a process printed: its index, text and arrival time."""

    index: int
    text: str
    at: float


class Output:
    """Collect one stream's lines in a thread; wait for patterns in them."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.name = name
        self.lines: list[Line] = []
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                self.lines.append(Line(len(self.lines), text, time.monotonic()))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(line.text for line in self.lines)

    def matching(self, pattern: str, start: int = 0) -> list[re.Match[str]]:
        """Every match of ``pattern`` in the lines so far, from index ``start``."""
        regex = re.compile(pattern)
        with self._cond:
            found = [regex.search(line.text) for line in self.lines[start:]]
        return [m for m in found if m is not None]

    def wait_until(
        self, test: Callable[[list[Line]], T | None], timeout: float, what: str
    ) -> T:
        """
        Wait until ``test(lines)`` returns something true; return it.

        :raises ScenarioFailed: on timeout or end of stream, with the output.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = test(self.lines)
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    why = f"timed out after {timeout:g}s" if left <= 0 else "output ended"
                    raise ScenarioFailed(
                        f"{self.name}: {why} waiting for {what}; it printed:\n"
                        + _tail(self.lines)
                    )
                self._cond.wait(min(left, 1.0))

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> tuple[Line, re.Match[str]]:
        """The first line from index ``start`` matching ``pattern``, and the match."""
        regex = re.compile(pattern)

        def test(lines: list[Line]) -> tuple[Line, re.Match[str]] | None:
            for line in lines[start:]:
                match = regex.search(line.text)
                if match:
                    return line, match
            return None

        return self.wait_until(test, timeout, repr(pattern))

    def wait_count(self, pattern: str, count: int, timeout: float) -> list[re.Match[str]]:
        """Wait until at least ``count`` lines match ``pattern``."""
        regex = re.compile(pattern)

        def test(lines: list[Line]) -> list[re.Match[str]] | None:
            found = [m for m in (regex.search(line.text) for line in lines) if m]
            return found if len(found) >= count else None

        return self.wait_until(test, timeout, f"{count} lines matching {pattern!r}")

    def stays_without(self, pattern: str, seconds: float, start: int = 0) -> None:
        """
        Watch for ``seconds``: no line from ``start`` may match ``pattern``.

        :raises ScenarioFailed: as soon as one does.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if regex.search(line.text):
                        raise ScenarioFailed(
                            f"{self.name}: unexpected line {line.text!r} "
                            f"(matches {pattern!r})"
                        )
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def _tail(lines: list[Line], keep: int | None = 60) -> str:
    shown = [line.text for line in (lines if keep is None else lines[-keep:])]
    skipped = len(lines) - len(shown)
    return (f"  ... {skipped} earlier lines\n" if skipped else "") + "\n".join(
        "  " + text for text in shown
    )


class Process:
    """
    A child process in its own process group (a Ctrl+C meant for the runner
    does not reach it), with stdout and stderr collected.
    """

    #: A cluster node's id (``--node-id``), or for a client or peer the id of
    #: the node it connected to first; "" with a single server.
    node_id: str = ""

    def __init__(self, argv: Sequence[str], cwd: Path, name: str) -> None:
        self.name = name
        self.cwd = cwd
        cwd.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        path = child_pythonpath()
        if path:
            env["PYTHONPATH"] = path
        self.proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            process_group=0,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None  # PIPE
        self.out = Output(self.proc.stdout, f"{name} stdout")
        self.err = Output(self.proc.stderr, f"{name} stderr")
        self.exited_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, *lines: str) -> None:
        """Write ``lines`` to the process's stdin."""
        stdin = self.proc.stdin
        if stdin is None or stdin.closed:
            raise ScenarioFailed(f"{self.name}: stdin is closed")
        try:
            stdin.write("".join(line + "\n" for line in lines).encode("utf-8"))
            stdin.flush()
        except BrokenPipeError:
            raise ScenarioFailed(f"{self.name} exited early\n{self.describe()}") from None

    def close_stdin(self) -> None:
        """End of input."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """
        The exit status (negative: killed by that signal).

        :raises ScenarioFailed: when it has not exited within ``timeout``.
        """
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ScenarioFailed(
                f"{self.name} did not exit within {timeout:g}s\n{self.describe()}"
            ) from None
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        self.out.join(5)
        self.err.join(5)
        return status

    def stop(self) -> None:
        """Kill the process if it still runs, and release its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable
                pass
        self.out.join(2)
        self.err.join(2)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def describe(self, everything: bool = False) -> str:
        """What the process printed (the last lines, unless ``everything``)."""
        out, err = (None, None) if everything else (400, 100)
        return (
            f"--- {self.name} (pid {self.pid}, exit {self.proc.poll()}) stdout:\n"
            f"{_tail(self.out.lines, out)}\n"
            f"--- {self.name} stderr:\n{_tail(self.err.lines, err)}\n"
        )


class AuditLogs:
    """What a scenario reads of the servers' audit logs: one server's, or every node's."""

    def log_lines(self, category: str | None = None, pattern: str = "") -> list[str]:
        """Audit lines, optionally of one category and matching ``pattern``."""
        raise NotImplementedError

    def wait_log(
        self, category: str, pattern: str, timeout: float, count: int = 1
    ) -> list[str]:
        """
        Wait until the audit log has ``count`` lines of ``category`` matching
        ``pattern``.  The server flushes its log once per reactor turn, so a
        line follows its event within milliseconds; this polls the file.
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            found = self.log_lines(category, pattern)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise ScenarioFailed(
                    f"server.log: timed out after {timeout:g}s waiting for {count} "
                    f"[{category}] line(s) matching {pattern!r}; found {len(found)}"
                )
            time.sleep(delay)  # polling a file: there is no event to wait on
            delay = min(delay * 2, 0.2)


def _select(lines: list[str], category: str | None, pattern: str) -> list[str]:
    if category is not None:
        lines = [line for line in lines if f"] [{category}] " in line]
    if pattern:
        regex = re.compile(pattern)
        lines = [line for line in lines if regex.search(line)]
    return lines


class Server(Process, AuditLogs):
    """``twistd -n chatnet`` listening on a free loopback port."""

    port: int
    log_path: Path

    def log_records(self) -> list[tuple[str, str]]:
        """
        ``(time, line)`` for every line of ``server.log``.  A text log's lines
        are as written, their time the second they carry; a JSON log's
        (``--audit-format json``, which cluster nodes write for its
        milliseconds) are turned into text lines,
        ``[2026-12-06 03:31:21.042] [JOIN] alice joined groupA (3/15)``.
        """
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            if not line.startswith("{"):
                records.append((line[1:20], line))
                continue
            try:
                event = json.loads(line)
                stamp = str(event["time"]).replace("T", " ").rstrip("Z")
                text_line = f"[{stamp}] [{event['category']}] " + " ".join(
                    str(event["text"]).splitlines())
            except (ValueError, KeyError, TypeError):
                records.append(("", line))  # a torn last line: kept as it is
                continue
            records.append((stamp, text_line))
        return records

    def log_lines(self, category: str | None = None, pattern: str = "") -> list[str]:
        """``server.log`` lines, optionally of one category and matching ``pattern``."""
        return _select([line for _, line in self.log_records()], category, pattern)


class Cluster(AuditLogs):
    """
    A Redis and the cluster nodes using it.  The audit lines are every
    node's, merged in time order (to the millisecond; ties keep the nodes'
    order).
    """

    def __init__(self, redis: RedisServer, nodes: list[Server]) -> None:
        self.redis = redis
        self.nodes = nodes

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def merged_records(self) -> list[tuple[str, str, str]]:
        """``(time, node id, line)`` of every node's audit log, in time order."""
        records = [(stamp, node.node_id, line)
                   for node in self.nodes for stamp, line in node.log_records()]
        order = {node.node_id: k for k, node in enumerate(self.nodes)}
        records.sort(key=lambda r: (r[0], order[r[1]]))
        return records

    def log_lines(self, category: str | None = None, pattern: str = "") -> list[str]:
        return _select([line for _, _, line in self.merged_records()], category, pattern)

    def merged_log(self) -> str:
        """Every node's lines in time order, each after its node's id."""
        return "".join(f"{node} {line}\n" for _, node, line in self.merged_records())


#: The servers a scenario started: one, or a cluster.
Servers = Server | Cluster


def _server_argv(workdir: Path, options: Sequence[str]) -> list[str]:
    return [
        sys.executable, "-c", TWISTD, "-n", "--pidfile=", "chatnet",
        "--port", "tcp:0:interface=127.0.0.1", "--audit-log", str(workdir / "server.log"),
        "--spool-dir", str(workdir / "spool"), *options,
    ]


def _listening(server: Server, timeout: float) -> Server:
    try:
        _, match = server.out.wait_for(LISTENING.pattern, timeout)
    except ScenarioFailed as e:
        server.stop()
        why = str(e).splitlines()[0].split(": ", 1)[-1]
        what = f"the node {server.node_id}" if server.node_id else "the server"
        raise ScenarioFailed(f"{what} did not start: {why}\n{server.describe()}") from None
    server.port = int(match.group(1))
    return server


def start_server(workdir: Path, *options: str, timeout: float) -> Server:
    """
    Start ``twistd -n chatnet`` in ``workdir`` on a free loopback port, its
    audit log ``workdir/server.log``; return once it listens.

    :param options: more ``chatnet`` plugin options (``--upload-slots 2``).
    """
    server = Server(_server_argv(workdir, options), workdir, "server")
    server.log_path = workdir / "server.log"
    return _listening(server, timeout)


#: The ids of a cluster's nodes, in order.
NODE_IDS = "abcdefghijklmnopqrstuvwxyz"


def start_nodes(
    redis: RedisServer, folders: Sequence[Path], *options: str, timeout: float
) -> list[Server]:
    """
    Start one cluster node of ``redis`` in each of ``folders`` (all at once),
    with the ids ``a``, ``b``, ...; return once every one listens.  Each
    writes its audit log as JSON lines (for the milliseconds) to its
    folder's ``server.log``.  A node that does not start stops the others.
    """
    nodes = []
    for node_id, folder in zip(NODE_IDS, folders, strict=False):
        argv = _server_argv(folder, ["--audit-format", "json", "--cluster", redis.url,
                                     "--node-id", node_id, *options])
        node = Server(argv, folder, f"node-{node_id}")
        node.log_path, node.node_id = folder / "server.log", node_id
        nodes.append(node)
    try:
        for node in nodes:
            _listening(node, timeout)
    except ScenarioFailed:
        for node in nodes:
            node.stop()
        raise
    return nodes


class Client(Process):
    """A ``chatnet-client`` in line mode (stdin is a pipe)."""


def start_client(port: int | Sequence[int], workdir: Path, name: str, *args: str) -> Client:
    """
    ``chatnet-client 127.0.0.1 PORT *args`` with ``workdir`` as its folder;
    given several ports, ``127.0.0.1:PORT1 127.0.0.1:PORT2 ...`` (the first is
    tried first, the others when it goes away).
    """
    ports = [port] if isinstance(port, int) else list(port)
    where = (["127.0.0.1", str(ports[0])] if len(ports) == 1
             else [f"127.0.0.1:{p}" for p in ports])
    argv = [sys.executable, "-c", CLIENT, *where, *args]
    return Client(argv, workdir, name)


class Peer(Process):
    """
    A raw protocol peer (:mod:`chatnet.scenarios.rawpeer`): JSON requests in,
    every server frame out as a JSON line.  Unlike the client it uploads
    only when told to, so a scenario decides how long a slot stays busy.
    """

    def __init__(self, argv: Sequence[str], cwd: Path, name: str) -> None:
        super().__init__(argv, cwd, name)
        self._next_id = 1

    def request(self, kind: str, **fields: Any) -> int:
        """Send a request; :returns: its ``id``."""
        ident = self._next_id
        self._next_id += 1
        self.send(json.dumps({"type": kind, "id": ident, **fields}))
        return ident

    def frames(self) -> list[dict[str, Any]]:
        """Every frame printed so far."""
        return [_json(line.text) for line in list(self.out.lines)]

    def wait_frame(self, timeout: float, **fields: Any) -> dict[str, Any]:
        """The first frame whose fields include ``fields``."""

        def test(lines: list[Line]) -> dict[str, Any] | None:
            for line in lines:
                frame = _json(line.text)
                if all(frame.get(k) == v for k, v in fields.items()):
                    return frame
            return None

        what = "a frame with " + json.dumps(fields)
        return self.out.wait_until(test, timeout, what)

    def reply(self, ident: int, timeout: float) -> dict[str, Any]:
        """The reply to request ``ident`` (``ok`` or ``error``)."""
        return self.wait_frame(timeout, id=ident)

    def login(self, username: str, timeout: float) -> None:
        reply = self.reply(self.request("login", username=username), timeout)
        if reply.get("type") != "ok":
            raise ScenarioFailed(f"{self.name}: login as {username} refused: {reply}")

    def upload(self, transfer: int, path: Path, limit: int | None = None) -> None:
        """Send ``path``'s bytes (at most ``limit``) as data frames of ``transfer``."""
        self.send(f"!upload {transfer} {path}" + ("" if limit is None else f" {limit}"))


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"type": "?", "text": text}
    return value if isinstance(value, dict) else {"type": "?", "text": text}


def start_peer(port: int, workdir: Path, name: str) -> Peer:
    """A raw peer connected to ``127.0.0.1:port``."""
    argv = [sys.executable, "-c", RAWPEER, "127.0.0.1", str(port)]
    return Peer(argv, workdir, name)
