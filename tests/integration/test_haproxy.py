"""
``contrib/haproxy.cfg`` in front of three real nodes of one cluster: a real
``haproxy`` balances chat connections over the nodes, checks each through
its ``/healthz``, and sends new connections only to living nodes once one
is killed; while Redis is away it keeps the connections it has.

Skipped, saying why, where ``haproxy`` is not installed (``.ci/run``
installs it with apt) or ``redis-server`` cannot be found.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cluster_nodes import Cluster, Node
from support.haproxy import HAPROXY, HAProxy
from support.redis import RedisServer
from support.wire import Wire

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(HAPROXY is None,
                       reason="haproxy is not installed (Debian: apt-get install haproxy; "
                              ".ci/run installs it)"),
]

#: What the example's header says the nodes run with behind HAProxy.
NODE_ARGS = ("--max-per-address", "0", "--max-pending-per-address", "0")
LEASE = 2.0
#: The example checks every 2 s and takes a node out after 2 failures.
CHECKS = 2 * 2.0
WAIT = 10.0
METRICS = r"chatnet metrics on http://127\.0\.0\.1:(\d+)/metrics"


def metrics_port(node: Node) -> int:
    """The port of the node's ``--metrics`` endpoint, from the line it printed."""
    assert node.process is not None
    return int(node.process.out.wait_for(METRICS, timeout=WAIT).group(1))


@pytest.fixture
def balanced(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[list[Node], HAProxy]]:
    """Three nodes with --metrics, and haproxy in front of them, all checks passed."""
    assert HAPROXY is not None
    nodes = cluster.start(3, lease=LEASE,
                          extra_args=["--metrics", "tcp:0:interface=127.0.0.1", *NODE_ARGS])
    folder = tmp_path / "haproxy"
    folder.mkdir()
    proxy = HAProxy(HAPROXY, folder, [(n.node_id, n.port, metrics_port(n)) for n in nodes])
    try:
        proxy.start()
        for node in nodes:  # the first verdict of each node's check: /healthz said 200
            proxy.wait_log(rf"Health check for server chatnet/{node.node_id} succeeded, "
                           r"reason: Layer7 check passed, code: 200", timeout=WAIT)
        yield nodes, proxy
    finally:
        print(proxy.describe())  # shown by pytest when the test fails
        proxy.stop()


def connect(proxy: HAProxy, name: str) -> Wire:
    """A client through HAProxy, logged in as ``name`` (every read bounded by 10 s)."""
    wire = Wire(proxy.port)
    wire.login(name)
    return wire


def node_of(nodes: list[Node], name: str, timeout: float = WAIT) -> Node:
    """
    The node on which ``name`` logged in (its audit log says so).  A file has
    no event to wait on: the logs are read again every few milliseconds
    until ``timeout``.
    """
    pattern = re.compile(rf"\[LOGIN\] {name} logged in from ")
    deadline = time.monotonic() + timeout
    while True:
        for node in nodes:
            if any(pattern.match(line) for line in node.audit_lines("LOGIN")):
                return node
        if time.monotonic() > deadline:
            raise AssertionError(f"no node has {name} logged in:\n" + "\n".join(
                f"{n.node_id}: {n.audit_lines('LOGIN')}" for n in nodes))
        time.sleep(0.02)


def request(wire: Wire, ident: str, **fields: Any) -> dict[str, Any]:
    wire.send(id=ident, **fields)
    return wire.until("ok", id=ident)


def closed(wire: Wire) -> bool:
    """Whether the connection ends (HAProxy closed it) within the read timeout."""
    try:
        wire.rest()
    except (TimeoutError, ConnectionResetError):
        return False
    return True


def test_balances_chat_over_the_nodes_and_skips_a_killed_one(
        balanced: tuple[list[Node], HAProxy]) -> None:
    """
    Three clients through HAProxy land on three nodes (leastconn) and chat
    across them; node c (or whichever has carol) is killed: HAProxy closes
    carol's connection, sends new ones to the living nodes at once (a
    refused connect is dispatched again), and takes the node out within
    two checks.
    """
    nodes, proxy = balanced
    users = ["alice", "bob", "carol"]
    # each is logged in before the next connects: leastconn spreads them
    wires = {name: connect(proxy, name) for name in users}
    on = {name: node_of(nodes, name) for name in users}
    assert sorted(n.node_id for n in on.values()) == ["a", "b", "c"], on

    for name, wire in wires.items():
        request(wire, f"join-{name}", type="join", room="lobby")
    request(wires["alice"], "hi", type="broadcast", text="hello from " + on["alice"].node_id)
    for name in ("bob", "carol"):
        message = wires[name].until("message", text="hello from " + on["alice"].node_id)
        assert message["from"] == "alice" and message["room"] == "lobby"

    # carol's node dies: HAProxy closes her connection; the others see her go
    victim = on["carol"]
    mark = proxy.log_mark()
    victim.kill9()
    assert closed(wires["carol"]), "haproxy kept a connection to a dead node open"
    for name in ("alice", "bob"):
        wires[name].until("presence", user="carol", event="disconnect")

    # new connections go to the living nodes at once (a refused connect is
    # dispatched again to another node), and after the check took it out
    early = [connect(proxy, f"early{i}") for i in range(3)]
    proxy.wait_log(rf"Server chatnet/{victim.node_id} is DOWN", timeout=CHECKS + WAIT,
                   start=mark)
    late = [connect(proxy, f"late{i}") for i in range(4)]
    living = {n.node_id for n in nodes if n is not victim}
    placed = {f"early{i}": node_of(nodes, f"early{i}").node_id for i in range(3)}
    placed |= {f"late{i}": node_of(nodes, f"late{i}").node_id for i in range(4)}
    assert set(placed.values()) == living, placed
    stat = proxy.stat()
    assert stat is not None and stat[victim.node_id]["status"].startswith("DOWN"), stat

    # chat goes on through the balancer across the two living nodes
    request(late[0], "j", type="join", room="lobby")
    request(wires["bob"], "again", type="broadcast", text="still here")
    for wire in (wires["alice"], late[0]):
        assert wire.until("message", text="still here")["from"] == "bob"
    for wire in [*wires.values(), *early, *late]:
        wire.sock.close()


def test_keeps_connections_while_redis_is_away(
        balanced: tuple[list[Node], HAProxy], redis_server: RedisServer) -> None:
    """
    Redis lost: every /healthz answers 503 and HAProxy takes the nodes out,
    but the connections it has stay open (no shutdown-sessions), as the
    contract asks; Redis back, the nodes come back in and take new clients.
    """
    nodes, proxy = balanced
    alice, bob = connect(proxy, "alice"), connect(proxy, "bob")
    assert node_of(nodes, "alice") is not node_of(nodes, "bob")
    mark = proxy.log_mark()
    redis_server.kill9()
    for node in nodes:
        proxy.wait_log(rf"Health check for server chatnet/{node.node_id} failed, "
                       r"reason: Layer7 wrong status, code: 503", timeout=CHECKS + WAIT,
                       start=mark)
        proxy.wait_log(rf"Server chatnet/{node.node_id} is DOWN", timeout=CHECKS + WAIT,
                       start=mark)
    for wire in (alice, bob):  # still connected, still answered
        request(wire, "ping-1", type="ping")

    mark = proxy.log_mark()
    redis_server.restart()
    for node in nodes:
        proxy.wait_log(rf"Server chatnet/{node.node_id} is UP", timeout=CHECKS + 2 * WAIT,
                       start=mark)
    carol = connect(proxy, "carol")
    for wire, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        request(wire, f"join-{name}", type="join", room="lobby")
    request(carol, "hi", type="broadcast", text="after redis")
    for wire in (alice, bob):
        assert wire.until("message", text="after redis")["from"] == "carol"
    for wire in (alice, bob, carol):
        wire.sock.close()
