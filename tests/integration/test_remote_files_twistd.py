"""
Files between real ``twistd -n chatnet --cluster`` nodes (PROTOCOL.md
sections 5 and 9; docs/cluster.rst, "Files between nodes"): a sender on
node a, its addressee on node b; whole and intact, with its receipt; offered
and accepted; and cut by ``kill -9`` of either side.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from support.cluster_nodes import Cluster, NodeClient, frame_is

pytestmark = pytest.mark.scenario

LEASE = 2.0
CHUNK = 65_536


def upload(sender: NodeClient, to: str, data: bytes, name: str = "f.bin") -> int:
    """``sendfile`` and every byte once ``upload-start`` came: the transfer number."""
    reply = sender.request_ok("sendfile", to=to, name=name, size=len(data))
    number = int(reply["transfer"])
    sender.expect(frame_is("upload-start", transfer=number))
    for i in range(0, len(data), CHUNK):
        sender.send_data(number, data[i:i + CHUNK])
    return number


def reachable(sender: NodeClient, to: NodeClient, attempts: int = 10) -> None:
    """
    Wait until a whisper from ``sender`` reaches ``to``, whispering again
    each second (bounded): right after a node starts, entries put in its
    inbox before its subscription is live can be missed, whispers as much
    as file events; these tests are about files.
    """
    for attempt in range(attempts):
        text = f"ready? {attempt}"
        sender.request_ok("whisper", to=to.name, text=text)
        try:
            to.expect(frame_is("whisper", text=text), timeout=1.0)
            return
        except AssertionError:
            continue
    raise AssertionError(f"no whisper from {sender.label} reached {to.label}")


def received_data(client: NodeClient, number: int) -> bytes:
    return b"".join(f[1] for f in client.seen if isinstance(f, tuple) and f[0] == number)


def test_a_file_to_another_node_arrives_whole_with_its_receipt(cluster: Cluster) -> None:
    a, b = cluster.start(2, lease=LEASE)
    alice = a.client("alice")
    bob = b.client("bob")
    reachable(alice, bob)
    data = os.urandom(3 * 1024 * 1024)
    sha = hashlib.sha256(data).hexdigest()
    number = upload(alice, "bob", data)
    start = bob.expect(frame_is("file-start", transfer=number))
    assert start["from"] == "alice" and start["size"] == len(data)
    end = bob.expect(frame_is("file-end", transfer=number))
    assert end["sha256"] == sha
    assert received_data(bob, number) == data
    alice.expect(frame_is("upload-done", transfer=number))
    alice.expect(frame_is("file-delivered", transfer=number, to="bob"))
    bob.request_ok("received", transfer=number, sha256=sha)
    alice.expect(frame_is("file-received", transfer=number, to="bob", verified=True))


def test_an_offer_to_another_node_accepted(cluster: Cluster) -> None:
    a, b = cluster.start(2, lease=LEASE)
    alice = a.client("alice")
    bob = NodeClient(b, "bob")
    b.clients.append(bob)
    bob.request_ok("login", username="bob", offers=True)
    reachable(alice, bob)
    data = os.urandom(200_000)
    number = upload(alice, "bob", data)
    bob.expect(frame_is("file-offer", transfer=number))
    bob.request_ok("accept", transfer=number)
    end = bob.expect(frame_is("file-end", transfer=number))
    assert end["sha256"] == hashlib.sha256(data).hexdigest()
    assert received_data(bob, number) == data
    alice.expect(frame_is("file-delivered", transfer=number))


def test_an_offer_to_another_node_declined(cluster: Cluster) -> None:
    a, b = cluster.start(2, lease=LEASE)
    alice = a.client("alice")
    bob = NodeClient(b, "bob")
    b.clients.append(bob)
    bob.request_ok("login", username="bob", offers=True)
    reachable(alice, bob)
    number = upload(alice, "bob", b"x" * 1000)
    bob.expect(frame_is("file-offer", transfer=number))
    bob.request_ok("decline", transfer=number)
    alice.expect(frame_is("file-failed", transfer=number, reason="declined"))
    assert bob.request("accept", transfer=number)["code"] == "bad-transfer"


@pytest.mark.slow
def test_sender_node_killed_midway_the_addressee_is_told(cluster: Cluster) -> None:
    a, b = cluster.start(2, lease=LEASE)
    alice = a.client("alice")
    bob = b.client("bob")
    reachable(alice, bob)
    # bob reads nothing for now: the delivery stays midway
    number = upload(alice, "bob", os.urandom(3 * 1024 * 1024))
    bob.expect(frame_is("file-start", transfer=number))
    a.kill9()
    # within the lease once the node-lost event reaches RemoteFiles.node_gone; until
    # then, by the orphan timer (15 s after the pull was cut)
    aborted = bob.expect(frame_is("file-aborted", transfer=number), timeout=LEASE + 16)
    assert aborted["reason"] == "sender-disconnected"


@pytest.mark.slow
def test_addressee_node_killed_midway_the_sender_is_told(cluster: Cluster) -> None:
    a, b = cluster.start(2, lease=LEASE)
    alice = a.client("alice")
    bob = b.client("bob")
    reachable(alice, bob)
    number = upload(alice, "bob", os.urandom(3 * 1024 * 1024))
    bob.expect(frame_is("file-start", transfer=number))
    b.kill9()
    failed = alice.expect(frame_is("file-failed", transfer=number), timeout=LEASE + 4)
    assert failed["reason"] == "recipient-offline"
