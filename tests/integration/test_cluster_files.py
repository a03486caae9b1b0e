"""
Files between nodes end to end (PROTOCOL.md sections 5 and 9): real
``twistd --cluster`` nodes on a real ``redis-server``; the sender on one
node, the addressee on another; whole, cut by ``kill -9`` of either side's
node, and the upload slots shared by every node.

Marked ``scenario`` (``slow`` where a lease has to run out).  From a checkout::

    PYTHONPATH=$PWD python -m pytest -q tests/integration/test_cluster_files.py
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from typing import Any

import pytest
from support.cluster_nodes import Cluster, NodeClient, frame_is

pytestmark = pytest.mark.scenario

LEASE = 2.0
NOTICED = LEASE + 2.0
CHUNK = 65536
MIB = 1024 * 1024
REASONS = {"recipient-offline", "sender-disconnected", "size-mismatch", "cancelled", "shutdown", "declined"}


def upload(sender: NodeClient, to: str, name: str, data: bytes) -> int:
    """Offer a file, wait for its slot, send it whole; :returns: the transfer number."""
    t: int = sender.request_ok("sendfile", to=to, name=name, size=len(data))["transfer"]
    sender.expect_event("upload-start", transfer=t)
    for i in range(0, len(data), CHUNK):
        sender.send_data(t, data[i : i + CHUNK])
    return t


def file_of(client: NodeClient, t: int) -> bytes:
    """The bytes of transfer ``t`` among the frames the client has seen."""
    return b"".join(f[1] for f in client.seen if isinstance(f, tuple) and f[0] == t)


def data_of(t: int) -> Any:
    def check(frame: Any) -> bool:
        return isinstance(frame, tuple) and frame[0] == t

    check.__doc__ = f"data of transfer {t}"
    return check


def test_a_file_crosses_nodes_whole_with_receipt(cluster: Cluster) -> None:
    """
    alice (a) sends bob (b) a file of several data frames: upload-done,
    file-start, the bytes, file-end with the right sha256, file-delivered;
    bob's receipt reaches alice as file-received verified.
    """
    a, b = cluster.start(2, lease=LEASE)
    alice, bob = a.client("alice"), b.client("bob")
    data = os.urandom(5 * CHUNK + 123)
    t = upload(alice, "BOB", "report.pdf", data)
    alice.expect_event("upload-done", transfer=t)
    start = bob.expect(frame_is("file-start", **{"from": "alice"}))
    tb = start["transfer"]
    assert start["name"] == "report.pdf" and start["size"] == len(data), start
    end = bob.expect_event("file-end", transfer=tb)
    assert file_of(bob, tb) == data
    assert end["sha256"] == hashlib.sha256(data).hexdigest()
    alice.expect_event("file-delivered", transfer=t, to="bob")
    bob.request_ok("received", transfer=tb, sha256=hashlib.sha256(data).hexdigest())
    assert alice.expect_event("file-received", transfer=t, to="bob")["verified"] is True


def test_upload_slots_are_shared_by_every_node(cluster: Cluster) -> None:
    """
    Six uploads from senders on three nodes with five slots in the cluster:
    five start, the sixth waits until one of them is done, then starts.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    nodes = (a, b, c)
    target = c.client("target")
    senders = [nodes[i % 3].client(f"s{i}") for i in range(6)]
    assert senders[0].seen[0]["limits"]["upload_slots"] == 5
    assert senders[0].seen[0]["limits"].get("upload_per_node") == 0
    offers = [s.request_ok("sendfile", to="target", name=f"f{i}.txt", size=10)
              for i, s in enumerate(senders)]
    assert offers[5]["position"] == 0 and all("transfer" in o for o in offers)
    for sender, offer in list(zip(senders, offers, strict=True))[:5]:
        sender.expect_event("upload-start", transfer=offer["transfer"])
    last, last_offer = senders[5], offers[5]
    last.ping()
    assert last.events("upload-start") == [], "a sixth upload started with five slots taken"
    senders[0].send_data(offers[0]["transfer"], b"0123456789")
    senders[0].expect_event("upload-done", transfer=offers[0]["transfer"])
    started = last.expect_event("upload-start", transfer=last_offer["transfer"])
    assert started["waited"] > 0
    last.send_data(last_offer["transfer"], b"abcdefghij")
    last.expect_event("upload-done", transfer=last_offer["transfer"])
    names = {target.expect(frame_is("file-start"))["name"] for _ in range(2)}
    assert names == {"f0.txt", "f5.txt"}


@pytest.mark.slow
@pytest.mark.parametrize("size", [3 * MIB, 48 * MIB], ids=["streamed-before-the-kill", "cut-mid-stream"])
def test_kill9_of_the_senders_node_during_delivery_aborts_the_file(cluster: Cluster, size: int) -> None:
    """
    The file is spooled on alice's node (a) and bob (b) has its file-start
    and some bytes when a is killed (3 MiB: all of them already on their way
    to bob, but not file-end; 48 MiB: the pull is cut mid-file): bob gets
    file-aborted with a contract reason within the lease + 2 s (after the
    bytes he had not read yet), and no file-end; his connection stays and works.
    """
    a, b = cluster.start(2, lease=LEASE, extra_args=["--max-file-size", "64MiB"])
    alice, bob = a.client("alice", room="r"), b.client("bob", room="r")
    data = os.urandom(size)
    t = upload(alice, "bob", "big.bin", data)
    alice.expect_event("upload-done", transfer=t, timeout=30.0)
    tb = bob.expect(frame_is("file-start", **{"from": "alice"}))["transfer"]
    bob.expect(data_of(tb))  # delivery under way; bob stops reading for now
    killed = time.monotonic()
    a.kill9()
    aborted = bob.expect_event("file-aborted", transfer=tb, timeout=NOTICED + 20.0)
    assert aborted["reason"] in REASONS, aborted
    assert time.monotonic() - killed <= NOTICED + 1.0, "file-aborted came late (bob read a backlog?)"
    assert bob.events("file-end", transfer=tb) == []
    bob.ping()
    # alice's node reaped (her disconnect in the room): the cluster has bob alone
    bob.expect(frame_is("presence", user="alice", event="disconnect"), timeout=NOTICED + 5.0)
    assert bob.request_ok("users")["users"] == ["bob"]


@pytest.mark.slow
def test_kill9_of_the_addressees_node_fails_the_transfer_for_the_sender(cluster: Cluster) -> None:
    """
    bob's node (b) is killed while alice (a) uploads a file to him: alice
    gets file-failed recipient-offline within the lease + 2 s, and her slot
    is free again (a new upload to carol starts at once).
    """
    a, b, c = cluster.start(3, lease=LEASE, extra_args=["--upload-slots", "1"])
    alice, _bob, carol = a.client("alice"), b.client("bob"), c.client("carol")
    t = alice.request_ok("sendfile", to="bob", name="cut.bin", size=4 * CHUNK)["transfer"]
    alice.expect_event("upload-start", transfer=t)
    alice.send_data(t, os.urandom(CHUNK))
    killed = time.monotonic()
    b.kill9()
    failed = alice.expect_event("file-failed", transfer=t, timeout=NOTICED)
    assert failed["reason"] == "recipient-offline", failed
    assert time.monotonic() - killed <= NOTICED
    t2 = alice.request_ok("sendfile", to="carol", name="next.txt", size=3)["transfer"]
    alice.expect_event("upload-start", transfer=t2)
    alice.send_data(t2, b"abc")
    carol.expect(frame_is("file-start", name="next.txt"))


@pytest.mark.slow
def test_kill9_of_a_node_frees_the_upload_slots_its_users_held(cluster: Cluster) -> None:
    """
    Five uploads from node a hold the cluster's five slots; a sixth, from
    node b, waits; kill -9 of a: the sixth starts within the lease + 2 s.
    """
    a, b = cluster.start(2, lease=LEASE)
    target = b.client("target")
    holders = [a.client(f"h{i}") for i in range(5)]
    for i, holder in enumerate(holders):
        t = holder.request_ok("sendfile", to="target", name=f"h{i}.bin", size=100)["transfer"]
        holder.expect_event("upload-start", transfer=t)
    waiting = b.client("waiting")
    offer = waiting.request_ok("sendfile", to="target", name="next.txt", size=3)
    assert offer["position"] == 0, offer
    waiting.ping()
    assert waiting.events("upload-start") == []
    killed = time.monotonic()
    a.kill9()
    waiting.expect_event("upload-start", transfer=offer["transfer"], timeout=NOTICED)
    assert time.monotonic() - killed <= NOTICED
    waiting.send_data(offer["transfer"], b"abc")
    assert target.expect(frame_is("file-start", name="next.txt"))["size"] == 3


@pytest.mark.slow
def test_a_clean_sigint_of_the_addressees_node_fails_the_upload_at_once(cluster: Cluster) -> None:
    """
    SIGINT to bob's node (lease 10 s) while alice (a) uploads to him: alice
    gets file-failed recipient-offline within 3 s, well within the lease.
    """
    a, b = cluster.start(2, lease=10.0, extra_args=["--shutdown-grace", "1"])
    alice, bob = a.client("alice"), b.client("bob")
    t = alice.request_ok("sendfile", to="bob", name="cut.bin", size=4 * CHUNK)["transfer"]
    alice.expect_event("upload-start", transfer=t)
    alice.send_data(t, os.urandom(CHUNK))
    alice.ping()
    signalled = time.monotonic()
    b.signal(signal.SIGINT)
    failed = alice.expect_event("file-failed", transfer=t, timeout=3.0)
    assert failed["reason"] == "recipient-offline", failed
    assert time.monotonic() - signalled <= 3.0
    bob.expect_closed()
