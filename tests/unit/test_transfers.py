"""
Tests for :mod:`chatnet.transfers`: failures at each stage, name collisions,
and the manager's bookkeeping.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support.chat import logged_in, new_server, offer, start, upload

from chatnet.errors import FailReason
from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server

STAGES = ["queued", "uploading", "delivering"]


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return new_server(tmp_path / "spool", upload_slots=1)


def at_stage(server: Server, stage: str) -> tuple[FakeClient, FakeClient, int]:
    """alice sending 'f' (4 bytes) to bob, its transfer held at ``stage``."""
    (blocker,) = logged_in(server, "blocker")
    alice, bob = logged_in(server, "alice", "bob")
    if stage == "queued":
        start(server, blocker, "alice", "hold", 1)  # takes the only slot
        t = offer(alice, "bob", "f", 4)["transfer"]
        server.advance()
    elif stage == "uploading":
        t = start(server, alice, "bob", "f", 4)
        alice.send_data(t, b"ab")
    else:
        bob.protocol.outbound.pauseProducing()  # bob stops reading
        t = upload(server, alice, "bob", "f", b"abcd")
        assert alice.events("upload-done")
    alice.frames()
    bob.frames()
    return alice, bob, t


@pytest.mark.parametrize("stage", STAGES)
def test_recipient_disconnects(server: Server, stage: str) -> None:
    """An addressee that drops fails the transfer at once: recipient-offline."""
    alice, bob, t = at_stage(server, stage)
    bob.lose()
    assert alice.frames() == [{"type": "file-failed", "transfer": t, "reason": "recipient-offline"}]
    assert t not in server.transfers.active
    assert server.spool.leftovers() == [] or stage == "queued"
    assert any(f"failed ({stage})" in line and "recipient-offline" in line
               for line in server.audit.category("FILE"))


@pytest.mark.parametrize("stage", STAGES)
def test_recipient_exits(server: Server, stage: str) -> None:
    """An addressee that exits counts as offline too."""
    alice, bob, t = at_stage(server, stage)
    bob.request("exit")
    assert alice.events("file-failed") == [
        {"type": "file-failed", "transfer": t, "reason": "recipient-offline"}]


@pytest.mark.parametrize("stage", ["queued", "uploading"])
def test_sender_disconnects_before_upload_done(server: Server, stage: str) -> None:
    """A sender that drops before upload-done ends the transfer; the addressee hears nothing."""
    alice, bob, t = at_stage(server, stage)
    alice.lose()
    assert t not in server.transfers.active
    assert bob.frames() == []
    assert any("sender-disconnected" in line for line in server.audit.category("FILE"))
    if stage == "uploading":
        assert server.transfers.running == 0 and server.spool.leftovers() == []


def test_sender_disconnect_does_not_stop_delivery(server: Server) -> None:
    """After upload-done, the sender leaving does not stop the delivery."""
    alice, bob, t = at_stage(server, "delivering")
    alice.lose()
    bob.protocol.outbound.resumeProducing()
    frames = bob.frames()
    assert [f["type"] for f in frames if isinstance(f, dict)] == ["file-start", "file-end"]
    assert b"".join(f[1] for f in frames if isinstance(f, tuple)) == b"abcd"
    assert frames[-1]["sha256"] == hashlib.sha256(b"abcd").hexdigest()
    assert server.transfers.active == {} and server.spool.leftovers() == []


def test_freed_slot_starts_next_after_failure(server: Server) -> None:
    """When a running upload fails, the next queued one starts."""
    alice, bob, t = at_stage(server, "uploading")
    (carol,) = logged_in(server, "carol")
    t2 = offer(carol, "alice", "g", 1)["transfer"]
    server.advance()
    assert carol.frames() == []
    bob.lose()
    server.advance()
    assert carol.events("upload-start")[0]["transfer"] == t2


def test_both_stages_fail_on_shutdown(server: Server) -> None:
    """TransferManager.shutdown fails queued, running and delivering transfers alike."""
    (blocker,) = logged_in(server, "blocker")
    alice, bob, carol = logged_in(server, "alice", "bob", "carol")
    carol.protocol.outbound.pauseProducing()
    delivering = upload(server, alice, "carol", "d", b"data")
    running = start(server, blocker, "bob", "r", 10)
    queued = offer(alice, "bob", "q", 1)["transfer"]
    server.advance()
    alice.frames()
    blocker.frames()
    assert server.transfers.shutdown() == 3
    assert server.transfers.active == {}
    failed = {f["transfer"]: f["reason"] for c in (alice, blocker) for f in c.events("file-failed")}
    assert failed == {delivering: "shutdown", running: "shutdown", queued: "shutdown"}
    carol.protocol.outbound.resumeProducing()
    assert [f["type"] for f in carol.events()] == ["file-start", "file-aborted"]
    assert server.spool.leftovers() == []


def test_collision_renaming(tmp_path: Path) -> None:
    """Second and third files of one name are renamed _1, _2, with original and a FILE line."""
    server = new_server(tmp_path)
    alice, carol, bob = logged_in(server, "alice", "carol", "bob")
    names = []
    for sender, name in [(alice, "report.pdf"), (carol, "report.pdf"), (alice, "report.pdf"),
                         (alice, "a.tar.gz"), (alice, "a.tar.gz"), (alice, "README"),
                         (alice, "README"), (alice, "Report.pdf"), (alice, ".bashrc"),
                         (alice, ".bashrc")]:
        upload(server, sender, "bob", name, b"x")
        (fs,) = bob.events("file-start")
        names.append((fs["name"], fs.get("original")))
    assert names == [
        ("report.pdf", None), ("report_1.pdf", "report.pdf"), ("report_2.pdf", "report.pdf"),
        ("a.tar.gz", None), ("a.tar_1.gz", "a.tar.gz"), ("README", None),
        ("README_1", "README"), ("Report.pdf", None), (".bashrc", None), (".bashrc_1", ".bashrc"),
    ]
    conflicts = [line for line in server.audit.category("FILE") if "conflict" in line]
    assert len(conflicts) == 5
    assert "report.pdf" in conflicts[0] and "report_1.pdf" in conflicts[0]


def test_names_count_only_once_file_start_is_sent(tmp_path: Path) -> None:
    """A transfer that failed before file-start does not reserve its name."""
    server = new_server(tmp_path)
    alice, bob = logged_in(server, "alice", "bob")
    t = start(server, alice, "bob", "a.txt", 5)
    alice.send({"type": "cancel", "transfer": t})
    upload(server, alice, "bob", "a.txt", b"x")
    (fs,) = bob.events("file-start")
    assert fs["name"] == "a.txt" and "original" not in fs


def test_names_are_per_connection(tmp_path: Path) -> None:
    """A new connection of the addressee starts with no names received."""
    server = new_server(tmp_path)
    alice, bob = logged_in(server, "alice", "bob")
    upload(server, alice, "bob", "a.txt", b"x")
    bob.request("exit")
    server.settle()
    (bob2,) = logged_in(server, "bob")
    upload(server, alice, "bob", "a.txt", b"x")
    assert bob2.events("file-start")[0]["name"] == "a.txt"


def test_transfer_numbers_are_unique(tmp_path: Path) -> None:
    """Transfer numbers are never reused, even after failures."""
    server = new_server(tmp_path)
    alice, bob = logged_in(server, "alice", "bob")
    seen = set()
    for _ in range(5):
        t = offer(alice, "bob", "f", 1)["transfer"]
        alice.send({"type": "cancel", "transfer": t})
        seen.add(t)
    assert len(seen) == 5


def test_fail_twice_is_harmless(tmp_path: Path) -> None:
    """Failing an already-failed transfer does nothing more."""
    server = new_server(tmp_path)
    alice, bob = logged_in(server, "alice", "bob")
    t = start(server, alice, "bob", "f", 5)
    transfer = server.transfers.active[t]
    server.transfers.fail(transfer, FailReason.CANCELLED)
    server.transfers.fail(transfer, FailReason.SHUTDOWN)
    assert [f["reason"] for f in alice.events("file-failed")] == ["cancelled"]
    assert server.transfers.running == 0


def test_renamed_name_stays_within_255_bytes(tmp_path: Path) -> None:
    """A renamed 255-byte name loses the end of its stem, at a character boundary."""
    server = new_server(tmp_path)
    alice, bob = logged_in(server, "alice", "bob")
    name = "\u00e9" * 125 + ".txt"  # 254 bytes
    got = []
    for _ in range(3):
        upload(server, alice, "bob", name, b"x")
        (fs,) = bob.events("file-start")
        got.append(fs["name"])
    assert got == [name, "\u00e9" * 124 + "_1.txt", "\u00e9" * 124 + "_2.txt"]
    assert all(len(n.encode()) <= 255 for n in got)


def test_many_files_to_one_recipient_each_intact(tmp_path: Path) -> None:
    """Several files delivered to one addressee each arrive whole and in frames of their own."""
    server = new_server(tmp_path)
    alice, bob = logged_in(server, "alice", "bob")
    bob.protocol.outbound.pauseProducing()
    files = {upload(server, alice, "bob", f"f{i}", bytes([i]) * 150_000): bytes([i]) * 150_000
             for i in range(3)}
    bob.protocol.outbound.resumeProducing()
    frames = bob.frames()
    for t, data in files.items():
        assert b"".join(f[1] for f in frames if isinstance(f, tuple) and f[0] == t) == data
    assert len(alice.events("file-delivered")) == 3
    assert bob.frames() == []


def test_idle_upload_fails_and_frees_slot(server: Server) -> None:
    """An upload that sends no data for the idle timeout fails (size-mismatch) and frees its slot."""
    alice, bob, t = at_stage(server, "uploading")  # 2 of 4 bytes sent
    (carol,) = logged_in(server, "carol")
    offer(carol, "alice", "next", 1)
    server.advance(59.9)
    assert alice.frames() == [] and server.transfers.running == 1
    server.advance(0.2)
    assert alice.frames() == [{"type": "file-failed", "transfer": t, "reason": "size-mismatch"}]
    assert any("no data for 60s (2 of 4 bytes)" in line for line in server.audit.category("FILE"))
    assert [p.name for p in server.spool.leftovers()] == ["chatnet-upload-2.part"]  # carol's
    assert carol.events("upload-start")


def test_data_keeps_upload_alive(server: Server) -> None:
    """Each data frame restarts the idle clock; a finished upload leaves no timer."""
    alice, bob, t = at_stage(server, "uploading")
    server.advance(50)
    alice.send_data(t, b"c")
    server.advance(50)
    assert alice.frames() == []
    alice.send_data(t, b"d")
    assert [f["type"] for f in alice.frames()] == ["upload-done", "file-delivered"]
    assert server.clock.getDelayedCalls() == []


def test_queued_upload_never_idles(server: Server) -> None:
    """Waiting for a slot is not idleness: a queued upload waits as long as it must."""
    alice, bob, t = at_stage(server, "queued")
    server.advance(600)
    assert t in server.transfers.active
    assert alice.events("file-failed") == []


def test_recipient_closed_as_slow_consumer_mid_delivery(tmp_path: Path) -> None:
    """An addressee dropped as a slow consumer during delivery fails it: recipient-offline."""
    server = new_server(tmp_path, max_output=2000)
    alice, bob, carol = logged_in(server, "alice", "bob", "carol", room="r")
    bob.protocol.outbound.pauseProducing()  # bob stops reading
    t = upload(server, alice, "bob", "f", b"x" * 100_000)
    alice.frames()
    for _ in range(5):
        carol.request("broadcast", text="y" * 500)
    assert bob.transport.disconnected
    assert alice.events("file-failed") == [
        {"type": "file-failed", "transfer": t, "reason": "recipient-offline"}]
    server.settle()
    assert server.transfers.active == {} and server.spool.leftovers() == []
    assert "slow consumer" in server.audit.category("DISCONNECT")[-1]


def test_addressee_that_reads_nothing_is_closed_after_the_stall_timeout(tmp_path: Path) -> None:
    """A client that reads nothing while a file waits for it is dropped; the file fails, the spool empties."""
    server = new_server(tmp_path, stall_timeout=60)
    alice, bob = logged_in(server, "alice", "bob")
    bob.protocol.outbound.pauseProducing()  # bob's socket is full and he reads nothing
    t = upload(server, alice, "bob", "f", b"x" * 100_000)
    server.advance(59.9)
    assert not bob.transport.disconnecting
    server.advance(0.1)
    assert bob.lost
    assert alice.history("file-failed") == [
        {"type": "file-failed", "transfer": t, "reason": "recipient-offline"}]
    assert server.transfers.active == {} and server.spool.leftovers() == []
    port = bob.transport.getPeer().port
    assert server.audit.category("DISCONNECT")[-1] == (
        f"bob (127.0.0.1:{port}) closed as a slow consumer (read nothing for 60s)")


def test_stall_timeout_zero_never_closes(tmp_path: Path) -> None:
    """With --stall-timeout 0 a paused client stays, however long."""
    server = new_server(tmp_path, stall_timeout=0)
    _, bob = logged_in(server, "alice", "bob")
    bob.protocol.outbound.pauseProducing()
    server.advance(10_000)
    assert not bob.lost and server.clock.getDelayedCalls() == []


def test_a_file_planted_in_the_spool_fails_only_its_transfer(tmp_path: Path) -> None:
    """Something under the next spool file's name: that upload fails (cancelled), it is not written through."""
    server = new_server(tmp_path / "spool")
    alice, bob = logged_in(server, "alice", "bob")
    (tmp_path / "victim").write_bytes(b"precious")
    (server.spool.path / "chatnet-upload-1.part").symlink_to(tmp_path / "victim")
    t = offer(alice, "bob", "f", 4)["transfer"]
    server.advance()
    assert alice.frames() == [{"type": "file-failed", "transfer": t, "reason": "cancelled"}]
    assert server.transfers.running == 0 and server.transfers.budget.used == 0
    assert "cannot create its spool file: [Errno 17] File exists" in server.audit.category("FILE")[-2]
    assert (tmp_path / "victim").read_bytes() == b"precious"
    upload(server, alice, "bob", "g", b"next")  # the next one goes through
    assert alice.events("file-delivered")
