"""
Real ``twistd -n chatnet`` nodes sharing one real ``redis-server``, and
blocking wire clients connected to chosen nodes, for the cross-node tests
(PROTOCOL.md section 9).

The fixture :func:`cluster` gives a :class:`Cluster` on the
:func:`~support.redis.redis_server` of the test (so it skips, saying why,
where ``redis-server`` cannot be found)::

    def test_something(cluster: Cluster) -> None:
        a, b, c = cluster.start(3, lease=2.0)
        alice = cluster.client(a, "alice", room="r")
        bob = cluster.client(b, "bob", room="r")
        alice.request_ok("broadcast", text="hi")
        bob.expect_message("hi", "alice")
        a.kill9()
        bob.expect_event("presence", user="alice", event="disconnect", timeout=4.0)

Each :class:`Node` runs in a folder of its own (working directory, spool,
audit log) and is started as ``twistd -n chatnet --port
tcp:0:interface=127.0.0.1 --cluster URL --node-id ID --cluster-lease L
--audit-log PATH`` plus the test's arguments; its port is read from the
``chatnet listening on 127.0.0.1:<PORT>`` line, as
:func:`support.processes.start_server` does.  :class:`PlainCluster` (fixture
:func:`plain_cluster`) starts the same nodes without ``--cluster`` and
without Redis: independent single servers, to test the process handling
itself.

Every wait is bounded and event-driven: a client waits in ``recv`` for the
next frame until its deadline (never sleeping to poll), a node's start waits
for its ``listening`` line, a signal's effect is waited for on the process.
The one exception is :meth:`Node.wait_audit`: a file has no event to wait
on, so the audit log is read again every few milliseconds until a deadline.
A failed wait raises :class:`AssertionError` naming what was expected and
everything the client (or the process) had received.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from support.processes import LISTENING, TWISTD, Server
from support.redis import RedisServer
from support.wire import Wire

#: Seconds: the default bound on every wait.
WAIT = 10.0
#: Seconds a node may take to start listening (several start at once on two cores).
START_TIMEOUT = 30.0
#: Seconds between two reads of an audit log in :meth:`Node.wait_audit`.
AUDIT_POLL = 0.02
#: Node ids, in the order :meth:`Cluster.start` gives them.
NODE_IDS = "abcdefghij"
_AUDIT_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[([A-Z-]+)\] (.*)$")

Frame = Any  # a control frame (dict), or (transfer, bytes) for a data frame
Predicate = Callable[[Frame], bool]


def frame_is(type: str, **fields: Any) -> Predicate:
    """A predicate: a control frame of ``type`` whose ``fields`` have these values."""

    def check(frame: Frame) -> bool:
        return (isinstance(frame, dict) and frame.get("type") == type
                and all(frame.get(k) == v for k, v in fields.items()))

    check.__doc__ = f"{type} {fields}" if fields else type
    return check


class NodeClient:
    """
    A blocking wire client of one node: a :class:`support.wire.Wire` read
    with deadlines.

    Frames read while waiting for something else are kept, unconsumed, for
    later :meth:`expect` calls; :attr:`seen` holds every frame in arrival
    order.  Requests get fresh ids, so replies are matched by id whatever
    events arrive around them.
    """

    def __init__(self, node: Node, label: str = "") -> None:
        self.wire = Wire(node.port)
        self.node = node
        self.name = label
        self.closed = False
        self._unread: list[Frame] = []
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<client {self.label}>"

    @property
    def seen(self) -> list[Frame]:
        """Every frame received, in arrival order."""
        return self.wire.seen

    def send(self, **obj: Any) -> None:
        """Send a control frame as it is (no id added)."""
        self.wire.send(**obj)

    def send_data(self, transfer: int, data: bytes) -> None:
        self.wire.send_data(transfer, data)

    @property
    def label(self) -> str:
        return f"{self.name or '?'}@{self.node.node_id}"

    # reading

    def _read_until(self, deadline: float) -> Frame | None:
        """The next frame; None once the connection is closed; TimeoutError after ``deadline``."""
        if self.closed:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.wire.sock.settimeout(left)
        try:
            frame = self.wire.read()  # TimeoutError passes through
        except (ConnectionResetError, BrokenPipeError):
            frame = None
        if frame is None:
            self.closed = True
        return frame

    def _failure(self, why: str, what: str) -> AssertionError:
        return AssertionError(f"{self.label}: {why} waiting for {what}; "
                              f"frames seen:\n{_frames_text(self.seen)}")

    def expect(self, predicate: Predicate, what: str = "", timeout: float = WAIT) -> Frame:
        """
        The first frame not yet consumed that matches ``predicate`` (read
        first from the frames already received); it is consumed.

        :raises AssertionError: after ``timeout`` seconds, or when the
            connection closes first.
        """
        what = what or predicate.__doc__ or "a frame"
        for i, frame in enumerate(self._unread):
            if predicate(frame):
                return self._unread.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = self._read_until(deadline)
            except TimeoutError:
                raise self._failure(f"timed out after {timeout}s", what) from None
            if frame is None:
                raise self._failure("connection closed", what)
            if predicate(frame):
                return frame
            self._unread.append(frame)

    def expect_event(self, type: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """The next control frame of ``type`` with these field values (for ``from``: :meth:`expect_message`)."""
        frame: dict[str, Any] = self.expect(frame_is(type, **fields), timeout=timeout)
        return frame

    def expect_message(self, text: str, sender: str | None = None, timeout: float = WAIT) -> dict[str, Any]:
        """The next room ``message`` with this text (from ``sender`` when given)."""
        fields: dict[str, Any] = {"text": text} if sender is None else {"text": text, "from": sender}
        frame: dict[str, Any] = self.expect(frame_is("message", **fields), timeout=timeout)
        return frame

    def collect(self, predicate: Predicate, count: int, what: str = "",
                timeout: float = WAIT) -> list[Frame]:
        """``count`` frames matching ``predicate``, in arrival order, within ``timeout`` in all."""
        deadline = time.monotonic() + timeout
        found = []
        what = what or predicate.__doc__ or "a frame"
        for n in range(count):
            found.append(self.expect(predicate, f"{what} (#{n + 1} of {count})",
                                     timeout=max(0.0, deadline - time.monotonic())))
        return found

    def expect_closed(self, timeout: float = WAIT) -> list[Frame]:
        """
        Wait until the node closes the connection.

        :returns: the frames not consumed before, and those that came until the close.
        :raises AssertionError: when it is still open after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self.closed:
            try:
                frame = self._read_until(deadline)
            except TimeoutError:
                raise self._failure(f"timed out after {timeout}s", "the connection to close") from None
            if frame is not None:
                self._unread.append(frame)
        rest, self._unread = self._unread, []
        return rest

    def pending(self) -> list[Frame]:
        """The frames received and not consumed yet (without reading more)."""
        return list(self._unread)

    def events(self, type: str, **fields: Any) -> list[dict[str, Any]]:
        """Every control frame received so far of ``type`` with these fields, in arrival order."""
        check = frame_is(type, **fields)
        return [f for f in self.seen if check(f)]

    # requests

    def send_request(self, type: str, **fields: Any) -> str:
        """Send a request with a fresh id without waiting; :returns: the id."""
        ident = f"{type}-{next(self._ids)}"
        self.send(type=type, id=ident, **fields)
        return ident

    def reply(self, ident: str, timeout: float = WAIT) -> dict[str, Any]:
        """The reply (``ok`` or ``error``) to request ``ident``."""
        frame: dict[str, Any] = self.expect(
            lambda f: isinstance(f, dict) and f.get("id") == ident and f.get("type") in ("ok", "error"),
            f"the reply to {ident}", timeout)
        return frame

    def request(self, type: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for its reply (``ok`` or ``error``)."""
        return self.reply(self.send_request(type, **fields), timeout)

    def request_ok(self, type: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """:meth:`request`, asserting that the reply is ``ok``."""
        reply = self.request(type, timeout, **fields)
        assert reply["type"] == "ok", f"{self.label}: {type} {fields} answered {reply}"
        return reply

    def request_served(self, type: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """
        :meth:`request`, asked again after each ``unavailable`` once its
        ``retry_after`` has passed (the wait the contract asks of clients),
        until another reply comes or ``timeout`` seconds have passed.
        """
        deadline = time.monotonic() + timeout
        replies = []
        while True:
            reply = self.request(type, max(0.0, deadline - time.monotonic()), **fields)
            replies.append(reply)
            if reply.get("code") != "unavailable":
                return reply
            retry_after = reply.get("retry_after")
            assert isinstance(retry_after, int | float) and retry_after >= 0, \
                f"{self.label}: unavailable without a usable retry_after: {reply}"
            if time.monotonic() + retry_after > deadline:
                raise AssertionError(f"{self.label}: {type} {fields} still unavailable after "
                                     f"{timeout}s; replies: {replies}")
            time.sleep(retry_after)  # the server's own answer says when to ask again

    def login(self, name: str, timeout: float = WAIT) -> dict[str, Any]:
        """Log in as ``name``, asserting ``ok``."""
        reply = self.request_ok("login", timeout, username=name)
        self.name = name
        return reply

    def join(self, room: str, timeout: float = WAIT) -> dict[str, Any]:
        """Join ``room``, asserting ``ok``."""
        return self.request_ok("join", timeout, room=room)

    def ping(self, timeout: float = WAIT) -> None:
        """A round trip to the node (which needs no cluster state)."""
        self.request_ok("ping", timeout)

    def close(self) -> None:
        """Close the socket without ``exit`` (the node sees a lost connection)."""
        try:
            self.wire.sock.close()
        finally:
            self.closed = True

    def exit(self, timeout: float = WAIT) -> None:
        """``exit``, then wait for the node to close the connection."""
        self.request_ok("exit", timeout)
        self.expect_closed(timeout)


def _frames_text(frames: Sequence[Frame], most: int = 60) -> str:
    shown = [f if isinstance(f, dict) else f"(data: transfer {f[0]}, {len(f[1])} bytes)"
             for f in frames[-most:]]
    skipped = f"  ... {len(frames) - most} earlier frames\n" if len(frames) > most else ""
    return skipped + "\n".join(f"  {json.dumps(f) if isinstance(f, dict) else f}" for f in shown)


class Node:
    """
    One ``twistd -n chatnet`` process in a folder of its own.

    It keeps its node id, folder, audit log and (after the first start) its
    port across :meth:`restart`.
    """

    def __init__(self, node_id: str, folder: Path, args: Sequence[str]) -> None:
        self.node_id = node_id
        self.folder = folder
        self.audit_path = folder / "server.log"
        self.args = list(args)
        self.port = 0
        self.process: Server | None = None
        self.starts = 0
        self.clients: list[NodeClient] = []
        folder.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<node {self.node_id} port {self.port}>"

    # the process

    def spawn(self) -> None:
        """Start the process (on its old port after the first start); see :meth:`wait_listening`."""
        assert not self.running, f"node {self.node_id} is already running"
        self.starts += 1
        argv = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "chatnet",
                "--port", f"tcp:{self.port}:interface=127.0.0.1",
                "--audit-log", str(self.audit_path),
                "--spool-dir", str(self.folder / "spool"), *self.args]
        self.process = Server(argv, self.folder, f"node {self.node_id}#{self.starts}",
                              stdin=subprocess.DEVNULL)

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Wait for the ``listening`` line; read the port from it."""
        process = self._process()
        try:
            match = process.out.wait_for(LISTENING.pattern, timeout)
        except AssertionError:
            process.kill()
            raise AssertionError(f"node {self.node_id} did not start\n{process.describe()}") from None
        self.port = int(match.group(1))
        process.port = self.port
        process.log_path = self.audit_path

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.spawn()
        self.wait_listening(timeout)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Start again on the same port, with the same id and audit log (after :meth:`kill9` or :meth:`sigint`)."""
        if self.running:
            self.kill9()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.proc.poll() is None

    @property
    def pid(self) -> int:
        return self._process().proc.pid

    def _process(self) -> Server:
        assert self.process is not None, f"node {self.node_id} was never started"
        return self.process

    def kill9(self) -> None:
        """``kill -9``: the node dies at once, without a word to anyone; waits for it to be gone."""
        self._process().kill()

    def stop(self) -> None:
        """``SIGSTOP``: the node is frozen (its sockets stay open) until :meth:`cont`."""
        self._process().proc.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        """``SIGCONT`` after :meth:`stop`."""
        self._process().proc.send_signal(signal.SIGCONT)

    def signal(self, signum: int) -> None:
        """Send ``signum`` without waiting for anything."""
        self._process().proc.send_signal(signum)

    def sigint(self, timeout: float = WAIT) -> int:
        """``SIGINT`` (Ctrl+C), then wait for the exit; :returns: its status."""
        process = self._process()
        if process.proc.poll() is None:
            process.proc.send_signal(signal.SIGINT)
        return process.wait(timeout)

    def wait_exit(self, timeout: float = WAIT) -> int:
        """Wait for the process to end by itself; :returns: its status."""
        return self._process().wait(timeout)

    def describe(self) -> str:
        """The process's output and the audit log, for failure messages."""
        if self.process is None:
            return f"--- node {self.node_id}: never started"
        log = self.audit_path.read_text("utf-8", "replace") if self.audit_path.exists() else "(none)"
        return f"{self.process.describe()}\n--- node {self.node_id} audit log:\n{log}"

    def close(self) -> None:
        for client in self.clients:
            client.close()
        if self.process is not None:
            if self.running:
                self.cont()  # a stopped process dies of SIGKILL too; this keeps its output readable
            self.process.kill()

    # the audit log

    def audit_lines(self, category: str | None = None, since: int = 0) -> list[str]:
        """
        The audit log's lines (from line number ``since``), only those of
        ``category`` when given, each without its time stamp: ``"[LOGIN] alice ..."``.
        """
        if not self.audit_path.exists():
            return []
        out = []
        for line in self.audit_path.read_text("utf-8", "replace").splitlines()[since:]:
            match = _AUDIT_LINE.match(line)
            if match and category in (None, match.group(1)):
                out.append(f"[{match.group(1)}] {match.group(2)}")
        return out

    def audit_mark(self) -> int:
        """How many lines the audit log has now (for ``since``)."""
        if not self.audit_path.exists():
            return 0
        return len(self.audit_path.read_text("utf-8", "replace").splitlines())

    def wait_audit(self, category: str, pattern: str = "", timeout: float = WAIT,
                   since: int = 0) -> str:
        """
        The first audit line of ``category`` (from line ``since``) whose text
        matches the regex ``pattern``, read again every few milliseconds
        (a file has no event to wait on) until ``timeout``.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.audit_lines(category, since):
                if regex.search(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"node {self.node_id}: no [{category}] line matching {pattern!r} in its audit "
                    f"log within {timeout}s:\n" + "\n".join(self.audit_lines(since=since)))
            time.sleep(AUDIT_POLL)

    # clients

    def client(self, name: str | None = None, room: str | None = None) -> NodeClient:
        """A client connected to this node; logged in as ``name`` and in ``room`` when given."""
        client = NodeClient(self, name or "")
        self.clients.append(client)
        if name is not None:
            client.login(name)
        if room is not None:
            client.join(room)
        return client


class PlainCluster:
    """
    Nodes started without ``--cluster``: independent single servers, each in
    a folder under ``root``.  Everything is killed by :meth:`close`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[Node] = []

    def node_args(self, node_id: str, lease: float) -> list[str]:
        """The arguments that make a node a member of the cluster (none here)."""
        return []

    def start(self, n: int, lease: float = 2.0, extra_args: Sequence[str] = (),
              timeout: float = START_TIMEOUT) -> list[Node]:
        """
        Start ``n`` more nodes at once and wait until each listens.

        :param lease: ``--cluster-lease`` (seconds).
        :param extra_args: more ``chatnet`` options, for every node.
        :returns: the new nodes, with ids ``a``, ``b``, ``c``... in order.
        """
        new = [self.node(NODE_IDS[len(self.nodes)], lease, extra_args) for _ in range(n)]
        for node in new:
            node.spawn()
        for node in new:
            node.wait_listening(timeout)
        return new

    def node(self, node_id: str, lease: float = 2.0, extra_args: Sequence[str] = ()) -> Node:
        """
        A new node, not started yet (:meth:`Node.start`), in a folder of its
        own even when ``node_id`` is one a node already has.
        """
        folder = self.root / f"node-{node_id}"
        for k in itertools.count(2):
            if not any(n.folder == folder for n in self.nodes):
                break
            folder = self.root / f"node-{node_id}-{k}"
        node = Node(node_id, folder, [*self.node_args(node_id, lease), *extra_args])
        self.nodes.append(node)
        return node

    def client(self, node: Node, name: str | None = None, room: str | None = None) -> NodeClient:
        """A client of ``node``; see :meth:`Node.client`."""
        return node.client(name, room)

    def clients(self, spread: Iterable[tuple[Node, str]], room: str | None = None) -> list[NodeClient]:
        """One logged-in client per (node, name), all in ``room`` when given."""
        return [node.client(name, room) for node, name in spread]

    def describe(self) -> str:
        return "\n".join(node.describe() for node in self.nodes)

    def close(self) -> None:
        for node in self.nodes:
            node.close()


class Cluster(PlainCluster):
    """Nodes of one cluster on a real ``redis-server`` (:class:`support.redis.RedisServer`)."""

    def __init__(self, root: Path, redis: RedisServer, prefix: str | None = None) -> None:
        super().__init__(root)
        self.redis = redis
        self.prefix = prefix

    def _redis_process(self) -> subprocess.Popen[bytes]:
        process = self.redis.process
        assert process is not None, "redis-server is not running"
        return process.proc

    def pause_redis(self) -> None:
        """``SIGSTOP`` to ``redis-server``: it keeps its data and connections but answers nothing."""
        self._redis_process().send_signal(signal.SIGSTOP)

    def resume_redis(self) -> None:
        """``SIGCONT`` after :meth:`pause_redis`."""
        self._redis_process().send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.redis.process is not None and self.redis.process.proc.poll() is None:
            self.resume_redis()
        super().close()

    def node_args(self, node_id: str, lease: float) -> list[str]:
        args = ["--cluster", self.redis.url, "--node-id", node_id, "--cluster-lease", f"{lease:g}"]
        if self.prefix is not None:
            args += ["--cluster-prefix", self.prefix]
        return args


def _closing(cluster: PlainCluster) -> Iterator[Any]:
    try:
        yield cluster
    finally:
        # printed output is shown by pytest when the test fails
        print(cluster.describe())
        cluster.close()


@pytest.fixture
def cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    """A :class:`Cluster` on this test's ``redis-server``; start nodes with ``cluster.start(3)``."""
    yield from _closing(Cluster(tmp_path / "nodes", redis_server))


@pytest.fixture
def plain_cluster(tmp_path: Path) -> Iterator[PlainCluster]:
    """Nodes without ``--cluster`` (no Redis): for tests of the process handling."""
    yield from _closing(PlainCluster(tmp_path / "nodes"))

