"""
Tests for the fairness rules of :mod:`chatnet.transfers` (PROTOCOL.md section
5, "Fairness"): queue places per sender, free slots round-robin by sender,
and the spool's bounds per addressee and in all.
"""

from __future__ import annotations

from pathlib import Path

from support.chat import error_code, logged_in, new_server, offer, start, upload

from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server


def finish_running(server: Server, clients: list[FakeClient]) -> list[str]:
    """
    Upload the 1-byte file of whichever uploads have started, one slot's
    worth at a time, until none is left; :returns: the names in start order.
    """
    order: list[str] = []
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


def started(client: FakeClient) -> list[int]:
    """Transfers of ``client`` that got upload-start since last asked."""
    return [f["transfer"] for f in client.events("upload-start")]


def test_uploads_to_a_full_addressee_wait_and_others_pass(tmp_path: Path) -> None:
    """
    With as many files held for bob as one addressee may have, an upload to
    him keeps its place but does not start, even with slots free; uploads to
    others start; once bob reads, his starts.
    """
    server = new_server(tmp_path, addressee_spool_files=2)
    alice, bob, carol = logged_in(server, "alice", "bob", "carol")
    bob.protocol.outbound.pauseProducing()  # bob reads nothing
    upload(server, alice, "bob", "f1", b"1")
    upload(server, alice, "bob", "f2", b"2")
    third = offer(alice, "bob", "f3", 1)
    assert third["position"] == 0
    server.advance()
    assert started(alice) == [] and server.transfers.running == 0
    assert server.audit.category("FILE-QUEUE")[-1] == (
        f"transfer #{third['transfer']} f3 from alice queued at position 0 (queue size 1); "
        "held back: 2 files (2 B) already held for bob")
    other = offer(carol, "alice", "g", 1)["transfer"]
    server.advance()
    assert started(carol) == [other]
    bob.protocol.outbound.resumeProducing()  # two deliveries end
    server.advance()
    assert started(alice) == [third["transfer"]]


def test_uploads_in_progress_count_by_declared_size(tmp_path: Path) -> None:
    """A running upload to bob counts in full before any byte of it has arrived."""
    server = new_server(tmp_path, addressee_spool_bytes=100)
    alice, bob, carol = logged_in(server, "alice", "bob", "carol")
    start(server, alice, "bob", "big", 60)
    offer(carol, "bob", "c", 41)  # 60 + 41 > 100: waits
    small = offer(carol, "bob", "d", 40)["transfer"]  # 60 + 40 fits: goes first
    server.advance()
    assert started(carol) == [small]
    assert server.transfers.budget.held(bob.protocol.session.user) == (2, 100)


def test_one_file_larger_than_the_addressee_bound_still_goes(tmp_path: Path) -> None:
    """A file over the per-addressee byte bound starts when nothing else is held for its addressee."""
    server = new_server(tmp_path, addressee_spool_bytes=10)
    alice, bob = logged_in(server, "alice", "bob")
    bob.protocol.outbound.pauseProducing()
    upload(server, alice, "bob", "a", b"x" * 20)
    t = offer(alice, "bob", "b", 20)["transfer"]
    server.advance()
    assert started(alice) == []
    bob.protocol.outbound.resumeProducing()
    server.advance()
    assert started(alice) == [t]


def test_spool_full_is_queue_full_saying_so(tmp_path: Path) -> None:
    """Past the total spool bound sendfile gets queue-full naming the spool; a smaller file fits."""
    server = new_server(tmp_path, spool_size=10)
    alice, bob, carol = logged_in(server, "alice", "bob", "carol")
    start(server, alice, "bob", "a", 6)
    reply = carol.request("sendfile", to="alice", name="c", size=5)
    assert error_code(reply) == "queue-full"
    assert reply["message"] == "The server's spool is full (6 B of 10 B in use); try again later"
    assert offer(carol, "alice", "c", 4)["position"] == 0
    assert error_code(carol.request("sendfile", to="alice", name="c", size=1)) == "queue-full"


def test_an_upload_accepted_waits_while_the_spool_is_full(tmp_path: Path) -> None:
    """An upload accepted while there was room waits, without failing, until the spool drains."""
    server = new_server(tmp_path, upload_slots=1, spool_size=10)
    alice, bob, carol, dave = logged_in(server, "alice", "bob", "carol", "dave")
    bob.protocol.outbound.pauseProducing()
    t1 = start(server, alice, "bob", "a", 6)
    t2 = offer(carol, "bob", "c", 4)["transfer"]
    t3 = offer(dave, "carol", "d", 3)["transfer"]
    alice.send_data(t1, b"x" * 6)  # uploaded; bob holds it: 6 in use
    server.advance()
    assert started(carol) == [t2]
    carol.send_data(t2, b"y" * 4)  # 10 in use: d (3) does not fit
    server.advance()
    assert started(dave) == [] and server.transfers.running == 0
    assert dave.events("file-failed") == []
    bob.protocol.outbound.resumeProducing()
    server.advance()
    assert started(dave) == [t3]


def test_a_receiver_that_never_reads_holds_a_bounded_spool(tmp_path: Path) -> None:
    """Five senders pushing 30 files each at a receiver that reads nothing: at most 16 files on disk."""
    server = new_server(tmp_path / "spool")
    senders = logged_in(server, *[f"s{i}" for i in range(5)])
    (bob,) = logged_in(server, "bob")
    bob.protocol.outbound.pauseProducing()
    for _ in range(30):
        for s in senders:
            s.request("sendfile", to="bob", name="f", size=1000)  # ok until s has 20 waiting
        server.advance()
        for s in senders:
            for t in started(s):
                s.send_data(t, b"z" * 1000)
        assert len(server.spool.leftovers()) <= 16
    assert server.transfers.budget.held(bob.protocol.session.user) == (16, 16_000)
    assert server.transfers.waiting == 100 and server.transfers.running == 0
