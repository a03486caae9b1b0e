"""
Tests for upload slots that answer later (a cluster's, see
:mod:`chatnet.cluster.slots`): the ``sendfile`` reply waits for the answer
and keeps its place among the replies, refusals and ``unavailable`` reach
the client, and an upload whose sender or addressee went while its answer
was coming is withdrawn.
"""

from __future__ import annotations

from pathlib import Path

from support.chat import logged_in, new_server
from twisted.internet.defer import Deferred

from chatnet.config import Settings
from chatnet.errors import ChatError, ErrorCode
from chatnet.testing import TestServer as Server
from chatnet.transfer_state import Transfer
from chatnet.transfers import TransferManager
from chatnet.upload_slots import Admission, Counter, LocalSlots, SlotOwner


class LaterSlots:
    """:class:`LocalSlots` whose admissions the test answers, when it wants."""

    def __init__(self, settings: Settings) -> None:
        self.local = LocalSlots(settings)
        self.asked: list[tuple[Deferred[Admission], Transfer, bool]] = []

    def attach(self, owner: SlotOwner) -> None:
        self.local.attach(owner)

    @property
    def running(self) -> int:
        return self.local.running

    @property
    def waiting(self) -> int:
        return self.local.waiting

    def admit(self, t: Transfer, startable: bool) -> Deferred[Admission]:
        d: Deferred[Admission] = Deferred()
        self.asked.append((d, t, startable))
        return d

    def answer(self) -> None:
        d, t, startable = self.asked.pop(0)
        try:
            admission = self.local.admit(t, startable)
        except ChatError as e:
            d.errback(e)
            return
        assert isinstance(admission, Admission)
        d.callback(admission)

    def fail(self, error: Exception) -> None:
        self.asked.pop(0)[0].errback(error)

    def dispatch(self) -> None:
        self.local.dispatch()

    def release(self, t: Transfer) -> None:
        self.local.release(t)

    def remove(self, t: Transfer) -> None:
        self.local.remove(t)


def server_with(tmp_path: Path, **settings: int) -> tuple[Server, LaterSlots]:
    server = new_server(tmp_path / "spool", **settings)
    slots = LaterSlots(server.settings)
    server.transfers = TransferManager(
        server.settings, server.spool, server.clock, server.audit, server.stats, slots=slots)
    server.hub.transfers = server.transfers
    return server, slots


def test_the_reply_waits_for_the_answer_and_keeps_its_place(tmp_path: Path) -> None:
    """Requests after the sendfile are answered after it, in order."""
    server, slots = server_with(tmp_path, upload_slots=1)
    alice, bob = logged_in(server, "alice", "bob")
    alice.send({"type": "sendfile", "id": 1, "to": "bob", "name": "a", "size": 1})
    alice.send({"type": "ping", "id": 2})
    assert alice.frames() == []
    alice.send({"type": "sendfile", "id": 3, "to": "bob", "name": "b", "size": 1})
    slots.answer()
    server.advance()
    frames = alice.frames()
    assert frames[:2] == [{"type": "ok", "id": 1, "transfer": 1, "position": 0},
                          {"type": "ok", "id": 2}]
    slots.answer()
    server.advance()
    frames += alice.frames()
    assert {"type": "ok", "id": 3, "transfer": 2, "position": 0} in frames
    assert [f["transfer"] for f in frames if f.get("type") == "upload-start"] == [1]
    assert server.transfers.running == 1 and server.transfers.waiting == 1


def test_a_refusal_and_unavailable_reach_the_client(tmp_path: Path) -> None:
    server, slots = server_with(tmp_path, upload_slots=1, upload_queue=1)
    alice, bob = logged_in(server, "alice", "bob")
    for n in range(3):
        alice.send({"type": "sendfile", "id": n, "to": "bob", "name": f"f{n}", "size": 1})
        slots.answer()
    assert alice.frames()[-1]["code"] == "queue-full"
    alice.send({"type": "sendfile", "id": 9, "to": "bob", "name": "g", "size": 1})
    slots.fail(ChatError(ErrorCode.UNAVAILABLE, "Redis away", 1.0))
    (reply,) = alice.frames()
    assert reply == {"type": "error", "id": 9, "code": "unavailable", "message": "Redis away",
                     "retry_after": 1.0}
    assert len(server.transfers.active) == 2


def test_an_addressee_gone_before_the_answer_is_no_such_user(tmp_path: Path) -> None:
    """Its slot, taken by the answer, is given back at once."""
    server, slots = server_with(tmp_path)
    alice, bob = logged_in(server, "alice", "bob")
    alice.send({"type": "sendfile", "id": 1, "to": "bob", "name": "f", "size": 1})
    bob.lose()
    slots.answer()
    (reply,) = alice.frames()
    assert reply["code"] == "no-such-user" and reply["id"] == 1
    assert server.transfers.active == {} and server.transfers.running == 0


def test_a_sender_gone_before_the_answer_leaves_nothing(tmp_path: Path) -> None:
    server, slots = server_with(tmp_path, upload_slots=1)
    alice, bob, carol = logged_in(server, "alice", "bob", "carol")
    carol.send({"type": "sendfile", "id": 1, "to": "bob", "name": "c", "size": 1})
    slots.answer()
    alice.send({"type": "sendfile", "id": 1, "to": "bob", "name": "a", "size": 1})
    alice.lose()
    slots.answer()  # queued behind carol's, then withdrawn
    server.advance()
    assert list(server.transfers.active) == [1]
    assert server.transfers.waiting == 0 and server.transfers.running == 1


def test_shutdown_before_the_answer_withdraws_it(tmp_path: Path) -> None:
    server, slots = server_with(tmp_path)
    alice, bob = logged_in(server, "alice", "bob")
    alice.send({"type": "sendfile", "id": 1, "to": "bob", "name": "f", "size": 1})
    assert server.transfers.shutdown() == 0
    slots.answer()
    assert server.transfers.active == {} and server.transfers.running == 0


class Blocks:
    """Numbers that come in blocks of 2, each asked for when none is at hand."""

    def __init__(self) -> None:
        self.counter = Counter()
        self.at_hand: list[int] = []
        self.asked: list[Deferred[None]] = []

    def take(self) -> int | None:
        return self.at_hand.pop(0) if self.at_hand else None

    def refill(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.asked.append(d)
        return d

    def give(self) -> None:
        self.at_hand += [self.counter.take() + 100, self.counter.take() + 100]
        self.asked.pop(0).callback(None)


def test_local_slots_with_numbers_from_elsewhere(tmp_path: Path) -> None:
    """Slots of one node still numbered cluster-wide: only a refill makes the reply wait."""
    server = new_server(tmp_path / "spool")
    blocks = Blocks()
    server.transfers = TransferManager(
        server.settings, server.spool, server.clock, server.audit, server.stats,
        slots=LocalSlots(server.settings, blocks))
    server.hub.transfers = server.transfers
    alice, bob = logged_in(server, "alice", "bob")
    alice.send({"type": "sendfile", "id": 1, "to": "bob", "name": "a", "size": 1})
    assert alice.frames() == []
    blocks.give()
    assert alice.frames() == [{"type": "ok", "id": 1, "transfer": 101, "position": 0}]
    assert alice.request("sendfile", to="bob", name="b", size=1)["transfer"] == 102
