"""
The real client (``bin/chatnet-client`` in line mode) given three nodes of
one cluster: when its node is killed (``kill -9``) it is back, logged in
and in its room, on another node within the lease plus its backoff, and
says so; an upload cut by the kill is reported as failed and never sent
again (issue 12; PROTOCOL.md section 9, last point).
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import pytest
from support.cluster_nodes import Cluster, Node, NodeClient, frame_is
from support.processes import Client, start_client

pytestmark = [pytest.mark.slow, pytest.mark.scenario]

LEASE = 2.0
#: The client's pause before its first attempt after a loss (reconnect.Backoff: 1 s, less jitter).
FIRST_BACKOFF = 1.0
#: What the client waits, at least, when a node still has its name
#: (reconnect.Policy.taken_wait): until the others have reaped the dead node.
TAKEN_WAIT = 5.0
#: Slack for two cores shared by Redis, three nodes and the client.
MARGIN = 3.0
WAIT = 10.0


@pytest.fixture
def three(cluster: Cluster, request: pytest.FixtureRequest) -> list[Node]:
    """Three nodes of one cluster (``a``, ``b``, ``c``), with the test's options if any."""
    return cluster.start(3, lease=LEASE, extra_args=getattr(request, "param", ()))


def client_of(nodes: list[Node], tmp_path: Path, name: str, *args: str) -> Client:
    """The real client in line mode, given every node as host:port, logged in as ``name``."""
    servers = [f"127.0.0.1:{n.port}" for n in nodes]
    client = start_client(None, *servers, "-u", name, *args, cwd=tmp_path / name, name=name)
    client.out.wait_for(r"^\[ok\] logged in")
    return client


def test_client_moves_to_another_node_back_in_its_room(three: list[Node], tmp_path: Path) -> None:
    """
    alice (the real client, on node a) and bob (node b) in lobby; node a is
    killed: alice says she lost it, is back on b or c as alice in lobby
    within the lease plus her backoff, and chat with bob goes on.
    """
    a, b, c = three
    alice = client_of(three, tmp_path, "alice")  # the first server given: node a
    try:
        alice.send("/join lobby")
        alice.out.wait_for(r"^\[ok\] joined lobby")
        bob = b.client("bob", room="lobby")
        alice.out.wait_for(r"bob joined")

        mark = len(alice.out.lines)
        killed = time.monotonic()
        a.kill9()
        back = alice.out.wait_for(
            r"^\[ok\] reconnected to 127\.0\.0\.1:(\d+) as alice, back in lobby$",
            timeout=LEASE + FIRST_BACKOFF + TAKEN_WAIT + MARGIN, start=mark)
        took = time.monotonic() - killed
        assert int(back.group(1)) in (b.port, c.port)
        print(f"alice was back in lobby {took:.2f} s after node a was killed")
        bob.expect_event("presence", user="alice", event="disconnect")
        bob.expect_event("presence", user="alice", event="join")

        bob.request_ok("broadcast", text="welcome back")
        alice.out.wait_for(r"^\[lobby\] bob: welcome back$", timeout=WAIT, start=mark)
        alice.send("thanks")
        bob.expect_message("thanks", "alice")
        said = "\n".join(alice.out.lines[mark:] + alice.err.lines)
        assert re.search(r"\[disconnected\] .*reconnecting to 127\.0\.0\.1", said), said

        alice.close_stdin()
        assert alice.wait() == 0, alice.describe()
    finally:
        print(alice.describe())
        alice.kill()


#: Large enough that its upload is still running a few milliseconds after it
#: started (loopback moves it in a fraction of a second, not in a few ms).
BIG = 48 * 1024 * 1024


def receive(client: NodeClient, sender: str) -> tuple[str, bytes]:
    """The next file from ``sender``: its name and bytes; confirmed with ``received``."""
    start = client.expect(frame_is("file-start", **{"from": sender}))
    transfer = start["transfer"]

    def part(frame: Any) -> bool:
        return (isinstance(frame, tuple) and frame[0] == transfer) or frame_is(
            "file-end", transfer=transfer)(frame)

    data = bytearray()
    while isinstance(frame := client.expect(part, f"the data or end of transfer {transfer}"),
                     tuple):
        data += frame[1]
    digest = hashlib.sha256(data).hexdigest()
    assert frame["sha256"] == digest
    client.request_ok("received", transfer=transfer, sha256=digest)
    return start["name"], bytes(data)


@pytest.mark.parametrize("three", [("--upload-slots", "1", "--max-file-size", "64MiB")],
                         indirect=True)
def test_uploads_cut_by_the_kill_are_reported_failed_and_not_sent_again(
        three: list[Node], tmp_path: Path) -> None:
    """
    One upload slot, held by carol, who sends no data, on alice's node a
    (so that it holds whether the slots are the cluster's or each node's);
    alice queues a large file and a small one behind it.
    carol cancels, alice's large upload starts, and node a is killed while
    it runs: the client says both uploads failed (the running one and the
    queued one), reconnects to another node and does not send either
    again: bob gets only the file alice sends afterwards, intact.
    """
    a, b, c = three
    bob = b.client("bob")
    carol = a.client("carol")
    held = carol.request_ok("sendfile", to="bob", name="hold.bin", size=10)
    carol.expect_event("upload-start", transfer=held["transfer"])

    alice = client_of(three, tmp_path, "alice")
    try:
        folder = tmp_path / "alice"
        (folder / "big.bin").write_bytes(bytes(range(256)) * (BIG // 256))
        (folder / "small.txt").write_bytes(b"queued behind big.bin\n")
        alice.send(f"/sendfile {folder / 'big.bin'} bob")
        alice.out.wait_for(r"^\[file\] big\.bin \(48\.0 MiB\) to bob: transfer \d+, next$")
        alice.send(f"/sendfile {folder / 'small.txt'} bob")
        alice.out.wait_for(r"^\[file\] small\.txt \(.*\) to bob: transfer \d+, (next|queued)")

        carol.request_ok("cancel", transfer=held["transfer"])
        alice.out.wait_for(r"^\[file\] sending big\.bin to bob")
        mark = len(alice.out.lines)
        a.kill9()  # while big.bin is on its way
        alice.out.wait_for(r"^\[error\] sending big\.bin to bob failed: connection lost$",
                           timeout=WAIT, start=mark)
        alice.out.wait_for(r"^\[error\] sending small\.txt to bob failed: connection lost$",
                           timeout=WAIT, start=mark)
        alice.out.wait_for(r"^\[ok\] reconnected to 127\.0\.0\.1:\d+ as alice$",
                           timeout=LEASE + FIRST_BACKOFF + TAKEN_WAIT + MARGIN, start=mark)

        after = folder / "after.txt"
        after.write_bytes(b"sent after the reconnect\n")
        alice.send(f"/sendfile {after} bob")
        assert receive(bob, "alice") == ("after.txt", after.read_bytes()), \
            "bob got another file from alice first"
        alice.out.wait_for(r"^\[file\] bob received after\.txt, sha256 verified$", timeout=WAIT)
        offered = [f.get("name") for f in bob.seen
                   if isinstance(f, dict) and f.get("type") in ("file-start", "file-offer",
                                                                "file-pending")]
        assert offered == ["after.txt"], bob.seen
        started = [line for line in alice.out.lines if line.startswith("[file] sending ")]
        assert started == ["[file] sending big.bin to bob", "[file] sending after.txt to bob"], \
            alice.describe()
        alice.close_stdin()
        assert alice.wait() == 0, alice.describe()
    finally:
        print(alice.describe())
        alice.kill()
