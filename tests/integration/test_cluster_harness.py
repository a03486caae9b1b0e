"""
The cluster test harness itself (``tests/support/cluster_nodes.py``): real
``twistd`` nodes started, signalled, killed and restarted, and its wire
clients' bounded waits.  The nodes here run without ``--cluster`` (each is
a single server), so these tests need no Redis.

Run: ``PYTHONPATH=$PWD python -m pytest -q tests/integration/test_cluster_harness.py``.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from support.cluster_nodes import Cluster, PlainCluster, frame_is
from support.redis import RedisServer


def test_nodes_start_at_once_each_with_its_own_port_folder_and_audit_log(
        plain_cluster: PlainCluster) -> None:
    """Two nodes: their own ports and folders; a client's login lands in its node's audit log only."""
    a, b = plain_cluster.start(2)
    assert (a.node_id, b.node_id) == ("a", "b")
    assert a.port and b.port and a.port != b.port
    assert a.folder != b.folder and a.audit_path != b.audit_path
    alice = a.client("alice", room="r")
    bob = b.client("bob", room="r")  # another server: not in alice's room
    assert alice.request_ok("who")["members"] == ["alice"]
    assert bob.request_ok("who")["members"] == ["bob"]
    assert "alice" in a.wait_audit("LOGIN", "alice")
    assert a.audit_lines("LOGIN") and all("alice" in line for line in a.audit_lines("LOGIN"))
    assert not any("alice" in line for line in b.audit_lines())


def test_clients_keep_events_that_came_while_waiting_for_a_reply(plain_cluster: PlainCluster) -> None:
    """A presence event read while waiting for a reply is still there for expect; seen keeps the order."""
    (a,) = plain_cluster.start(1)
    alice = a.client("alice", room="r")
    bob = a.client("bob")
    bob.join("r")
    alice.ping()  # the presence event arrives before the ping's reply and is kept
    assert alice.expect_event("presence", user="bob", event="join") == {
        "type": "presence", "room": "r", "user": "bob", "event": "join"}
    ident = alice.send_request("broadcast", text="one")
    alice.send_request("broadcast", text="two")
    assert alice.reply(ident)["delivered"] == 1
    assert [m["text"] for m in bob.collect(frame_is("message", room="r"), 2)] == ["one", "two"]
    assert [f["type"] for f in bob.events("message")] == ["message", "message"]


def test_expect_fails_in_bounded_time_saying_what_it_saw(plain_cluster: PlainCluster) -> None:
    """A frame that never comes: AssertionError after the timeout, naming it and listing the frames seen."""
    (a,) = plain_cluster.start(1)
    alice = a.client("alice")
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"alice@a: timed out after 0.3s waiting for whisper") as e:
        alice.expect_event("whisper", timeout=0.3)
    assert time.monotonic() - started < 2.0
    assert '"username": "alice"' in str(e.value)


def test_kill9_closes_connections_and_restart_listens_on_the_same_port(
        plain_cluster: PlainCluster) -> None:
    """kill -9: clients see the close at once; restart: same port, same audit log, a fresh server."""
    (a,) = plain_cluster.start(1)
    port = a.port
    alice = a.client("alice")
    a.kill9()
    assert not a.running
    alice.expect_closed(timeout=5.0)
    assert alice.closed
    with pytest.raises(AssertionError, match="connection closed"):
        alice.expect_event("ok")
    a.restart()
    assert a.port == port and a.running and a.starts == 2
    again = a.client("alice")  # the old server's name is gone with it
    assert again.request_ok("users")["users"] == ["alice"]
    assert len(a.wait_audit("LOGIN", "alice", since=0).splitlines()) == 1
    assert len(a.audit_lines("LOGIN")) == 2  # both starts wrote to the one log


def test_sigstop_freezes_a_node_until_sigcont(plain_cluster: PlainCluster) -> None:
    """SIGSTOP: requests go unanswered (the connection stays open); SIGCONT: they are answered."""
    (a,) = plain_cluster.start(1)
    alice = a.client("alice")
    a.stop()
    ident = alice.send_request("ping")
    with pytest.raises(AssertionError, match="timed out"):
        alice.reply(ident, timeout=0.5)
    assert a.running and not alice.closed
    a.cont()
    assert alice.reply(ident)["type"] == "ok"


def test_sigint_shuts_down_and_waits_for_the_exit(plain_cluster: PlainCluster) -> None:
    """SIGINT: the client hears shutdown and the close; the status is twistd's; SHUTDOWN is logged."""
    (a,) = plain_cluster.start(1, extra_args=["--shutdown-grace", "1"])
    alice = a.client("alice")
    status = a.sigint()
    assert status in (0, -signal.SIGINT), a.describe()
    assert any(frame_is("shutdown")(f) for f in alice.expect_closed()), alice.seen
    assert a.wait_audit("SHUTDOWN", r"disconnected 1 client")


def test_a_failed_start_says_why_with_the_output(plain_cluster: PlainCluster) -> None:
    """A node that cannot start (an unknown option): AssertionError with twistd's output, at once."""
    with pytest.raises(AssertionError, match=r"(?s)node a did not start.*no-such-option"):
        plain_cluster.start(1, extra_args=["--no-such-option"])


def test_cluster_nodes_get_the_cluster_arguments(redis_server: RedisServer, tmp_path: Path) -> None:
    """Cluster nodes are started with --cluster URL --node-id ID --cluster-lease L (and the prefix when set)."""
    plain = Cluster(tmp_path / "n", redis_server).node_args("b", 2.0)
    assert plain == ["--cluster", redis_server.url, "--node-id", "b", "--cluster-lease", "2"]
    prefixed = Cluster(tmp_path / "n", redis_server, prefix="t1").node_args("c", 0.5)
    assert prefixed[-2:] == ["--cluster-prefix", "t1"] and "0.5" in prefixed
