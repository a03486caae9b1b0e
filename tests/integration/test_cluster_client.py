"""
``bin/chatnet-client`` against a cluster (issue 12, PROTOCOL.md section 9:
"a client given several nodes reconnects to another when its node goes
away, logs in again and rejoins its room"): three real ``twistd --cluster``
nodes on a real ``redis-server``, the client in line mode given all three.

Marked ``scenario`` and ``slow``.  From a checkout::

    PYTHONPATH=$PWD python -m pytest -q tests/integration/test_cluster_client.py
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.cluster_nodes import Cluster, frame_is
from support.processes import start_client

pytestmark = [pytest.mark.scenario, pytest.mark.slow]

LEASE = 2.0
#: The client waits at least this long before asking again for a name its
#: old node may still hold (chatnet/client/reconnect.py, taken_wait), plus its backoff.
BACK_WITHIN = LEASE + 5.0 + 8.0


def test_a_client_whose_node_is_killed_is_back_on_another_node_in_its_room(
        cluster: Cluster, tmp_path: Path) -> None:
    """
    kill -9 of alice's node: her client moves to the next node, logs in as
    alice again (once the dead node's lease has run out) and is back in
    groupA, saying so; bob, on the third node, sees her disconnect and
    return, and the two chat on.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    bob = c.client("bob", room="groupA")
    servers = [f"127.0.0.1:{node.port}" for node in (a, b, c)]
    alice = start_client(None, *servers, "-u", "alice", cwd=tmp_path / "alice", name="alice")
    try:
        alice.send("/join groupA")
        alice.out.wait_for(r"^\[ok\] joined groupA")
        bob.expect_event("presence", user="alice", event="join")
        killed = time.monotonic()
        a.kill9()
        bob.expect_event("presence", user="alice", event="disconnect", timeout=LEASE + 2.0)
        alice.out.wait_for(rf"^\[ok\] reconnected to 127\.0\.0\.1:({b.port}|{c.port}) as alice, "
                           r"back in groupA$", timeout=BACK_WITHIN)
        back = time.monotonic() - killed
        print(f"alice back {back:.2f}s after the kill")
        bob.expect(frame_is("presence", user="alice", event="join"), "alice's return")
        assert sorted(bob.request_ok("who")["members"]) == ["alice", "bob"]
        alice.send("hello again")
        bob.expect_message("hello again", "alice")
        bob.request_ok("broadcast", text="welcome back")
        alice.out.wait_for(r"^\[groupA\] bob: welcome back$")
        alice.close_stdin()
        assert alice.wait() == 0, alice.describe()
    finally:
        alice.kill()
