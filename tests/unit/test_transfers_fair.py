"""
Tests for the fairness rules of :mod:`chatnet.transfers` (PROTOCOL.md section
5, "Fairness"): queue places per sender, free slots round-robin by sender.
"""

from __future__ import annotations

from pathlib import Path

from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server
from unit.chat_helpers import error_code, logged_in, new_server
from unit.test_session_files import offer


def finish_running(server: Server, clients: list[FakeClient]) -> list[str]:
    """
    Upload the 1-byte file of whichever uploads have started, one slot's
    worth at a time, until none is left; :returns: the names in start order.
    """
    order = []
    while True:
        server.advance()
        started = [(c, f["transfer"]) for c in clients for f in c.events("upload-start")]
        if not started:
            return order
        for c, t in started:
            order.append(server.transfers.active[t].name)
            c.send_data(t, b"x")


def test_free_slots_go_round_robin_by_sender(tmp_path: Path) -> None:
    """A sender with many waiting uploads gets every other turn, not all of them."""
    server = new_server(tmp_path, upload_slots=1)
    mallory, alice, bob = logged_in(server, "mallory", "alice", "bob")
    logged_in(server, "carol")
    assert [offer(mallory, "carol", f"m{i}", 1)["position"] for i in range(1, 6)] == [0, 0, 1, 2, 3]
    assert offer(alice, "carol", "a1", 1)["position"] == 1  # m2 a1 m3 m4 m5
    assert offer(bob, "carol", "b1", 1)["position"] == 2  # m2 a1 b1 m3 m4 m5
    assert offer(alice, "carol", "a2", 1)["position"] == 4  # m2 a1 b1 m3 a2 m4 m5
    assert server.audit.category("FILE-QUEUE")[-1] == (
        "transfer #8 a2 from alice queued at position 4 (queue size 7)")
    assert finish_running(server, [mallory, alice, bob]) == [
        "m1", "m2", "a1", "b1", "m3", "a2", "m4", "m5"]


def test_one_sender_only_is_acceptance_order(tmp_path: Path) -> None:
    """One sender's uploads start in the order they were accepted."""
    server = new_server(tmp_path, upload_slots=2)
    (alice,) = logged_in(server, "alice")
    assert [offer(alice, "alice", f"f{i}", 1)["position"] for i in range(6)] == [0, 0, 0, 1, 2, 3]
    assert finish_running(server, [alice]) == [f"f{i}" for i in range(6)]


def test_a_sender_holds_a_bounded_number_of_queue_places(tmp_path: Path) -> None:
    """Past its own bound a sender gets queue-full saying so; others still queue."""
    server = new_server(tmp_path, upload_slots=1, upload_queue=4, upload_queue_per_user=2)
    mallory, alice, bob, carol = logged_in(server, "mallory", "alice", "bob", "carol")
    assert [offer(mallory, "bob", "m", 1)["position"] for _ in range(3)] == [0, 0, 1]
    reply = mallory.request("sendfile", to="bob", name="m", size=1)
    assert error_code(reply) == "queue-full"
    assert reply["message"] == (
        "You have 2 uploads waiting for a slot, the most one user may have; "
        "send more once one has started")
    assert server.audit.category("ERROR")[-1].endswith(reply["message"])
    assert offer(alice, "bob", "a", 1)["position"] == 1
    assert offer(carol, "bob", "c", 1)["position"] == 2
    reply = bob.request("sendfile", to="alice", name="b", size=1)
    assert error_code(reply) == "queue-full"
    assert reply["message"] == "The upload queue is full (4 waiting); try again later"


def test_places_come_back_as_uploads_start(tmp_path: Path) -> None:
    """A sender at its bound may queue again once one of its uploads has started or ended."""
    server = new_server(tmp_path, upload_slots=1, upload_queue_per_user=1)
    (alice,) = logged_in(server, "alice")
    offer(alice, "alice", "running", 1)
    queued = offer(alice, "alice", "queued", 1)["transfer"]
    assert error_code(alice.request("sendfile", to="alice", name="x", size=1)) == "queue-full"
    assert alice.request("cancel", transfer=queued)["type"] == "ok"
    assert offer(alice, "alice", "again", 1)["position"] == 0


def test_default_bound_takes_a_batch_of_twenty(tmp_path: Path) -> None:
    """By default one user may queue 20 files while every slot is busy; the 21st is refused."""
    server = new_server(tmp_path)
    busy = logged_in(server, *[f"busy{i}" for i in range(5)])
    alice, bob = logged_in(server, "alice", "bob")
    for b in busy:
        offer(b, "bob", "hold", 10)
    assert [offer(alice, "bob", f"f{i}", 1)["position"] for i in range(20)] == list(range(20))
    assert error_code(alice.request("sendfile", to="bob", name="f", size=1)) == "queue-full"
    assert offer(bob, "alice", "g", 1)["position"] == 1  # f0 g f1 ...
