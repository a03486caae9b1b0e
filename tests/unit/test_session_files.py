"""Tests for file transfers (PROTOCOL.md section 5) through sessions."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from support.chat import (
    error_code,
    logged_in,
    new_server,
    offer,
    received,
    start,
    upload,
)

from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server

MIB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return new_server(tmp_path / "spool")


def test_full_transfer(server: Server) -> None:
    """The whole exchange: ok, upload-start, upload-done, file-start, data, file-end, delivered."""
    a, b = logged_in(server, "alice", "bob")
    data = bytes(range(256)) * 1000
    assert a.request("sendfile", to="BOB", name="r\u00e9port.pdf", size=len(data)) == {
        "type": "ok", "id": 2, "transfer": 1, "position": 0}
    assert a.frames() == []  # upload-start comes on a later turn
    server.advance()
    assert a.frames() == [{"type": "upload-start", "transfer": 1, "waited": 0.0}]
    server.clock.advance(1.5)
    a.send_data(1, data[:50_000])
    assert a.frames() == [] and b.frames() == []
    for i in range(50_000, len(data), 65_536):
        a.send_data(1, data[i : i + 65_536])
    frames = b.frames()
    assert frames[0] == {"type": "file-start", "transfer": 1, "from": "alice",
                         "name": "r\u00e9port.pdf", "size": len(data)}
    chunks = frames[1:-1]
    assert all(t == 1 and 0 < len(c) <= 65536 for t, c in chunks)
    assert b"".join(c for _, c in chunks) == data
    assert frames[-1] == {"type": "file-end", "transfer": 1, "sha256": hashlib.sha256(data).hexdigest()}
    assert a.frames() == [
        {"type": "upload-done", "transfer": 1, "waited": 0.0, "seconds": 1.5},
        {"type": "file-delivered", "transfer": 1, "to": "bob"},
    ]
    assert server.spool.leftovers() == [] and server.transfers.active == {}
    (sendfile,) = server.audit.category("SENDFILE")
    assert "alice -> bob" in sendfile and "r\u00e9port.pdf" in sendfile and str(len(data)) in sendfile
    assert any("delivered to bob" in line for line in server.audit.category("FILE"))


def test_largest_file(server: Server) -> None:
    """A file of exactly 3 MiB goes through; 3 MiB + 1 is file-too-large."""
    a, b = logged_in(server, "alice", "bob")
    reply = a.request("sendfile", to="bob", name="big", size=3 * MIB + 1)
    assert error_code(reply) == "file-too-large" and "3.0 MiB" in reply["message"]
    data = b"\xab" * (3 * MIB)
    t = upload(server, a, "bob", "big", data)
    assert received(b, t) == data
    assert a.events("file-delivered")


def test_empty_file(server: Server) -> None:
    """A 0-byte file needs no data frames: start, done, file-start, file-end at once."""
    a, b = logged_in(server, "alice", "bob")
    t = offer(a, "bob", "empty.txt", 0)["transfer"]
    server.advance()
    assert [f["type"] for f in a.frames()] == ["upload-start", "upload-done", "file-delivered"]
    assert b.frames() == [
        {"type": "file-start", "transfer": t, "from": "alice", "name": "empty.txt", "size": 0},
        {"type": "file-end", "transfer": t, "sha256": hashlib.sha256(b"").hexdigest()},
    ]
    a.send_data(t, b"x")
    assert a.frames()[0]["code"] == "bad-transfer"


def test_send_to_self(server: Server) -> None:
    """A user may send a file to itself."""
    (a,) = logged_in(server, "alice")
    t = upload(server, a, "ALICE", "note.txt", b"hello")
    frames = a.frames()
    assert b"".join(f[1] for f in frames if isinstance(f, tuple)) == b"hello"
    assert [f["type"] for f in frames if isinstance(f, dict)] == [
        "upload-done", "file-start", "file-end", "file-delivered"]
    assert frames[-1] == {"type": "file-delivered", "transfer": t, "to": "alice"}


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"to": "ghost", "name": "a", "size": 1}, "no-such-user"),
        ({"to": None, "name": "a", "size": 1}, "no-such-user"),
        ({"to": "bob", "name": "", "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": ".", "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "..", "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "a/b", "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "a\\b", "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "a\x00b", "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "a\x1fb", "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "a\x7f", "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "x" * 256, "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "\u00e9" * 128, "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": None, "size": 1}, "invalid-filename"),
        ({"to": "bob", "name": "a", "size": 3 * MIB + 1}, "file-too-large"),
    ],
)
def test_sendfile_refused(server: Server, fields: dict[str, Any], code: str) -> None:
    """Bad addressees, names and sizes are refused with the contract's code."""
    a, _ = logged_in(server, "alice", "bob")
    assert error_code(a.request("sendfile", **fields)) == code
    assert server.transfers.active == {}


@pytest.mark.parametrize("name", ["x" * 255, "\u00e9" * 127 + "x", ".hidden", "a b.c d"])
def test_sendfile_name_limits(server: Server, name: str) -> None:
    """255-byte names, dotfiles and spaces are fine."""
    a, _ = logged_in(server, "alice", "bob")
    assert offer(a, "bob", name, 1)["transfer"] == 1


def test_file_type_not_allowed(tmp_path: Path) -> None:
    """Where types are restricted, other extensions are file-type-not-allowed."""
    server = new_server(tmp_path, allowed_extensions=frozenset({"txt", "pdf", "jpg", "png"}))
    a, _ = logged_in(server, "alice", "bob")
    for name in ("a.exe", "README", "x.txt.sh"):
        assert error_code(a.request("sendfile", to="bob", name=name, size=1)) == "file-type-not-allowed"
    for name in ("a.TXT", "b.pdf", "c.jpg", "d.png"):
        assert offer(a, "bob", name, 1)


def test_queue_positions_and_waits(tmp_path: Path) -> None:
    """Past the slots, uploads wait in order; positions, waits and FILE-QUEUE lines say so."""
    server = new_server(tmp_path, upload_slots=2)
    senders = logged_in(server, "s0", "s1", "s2", "s3", "s4")
    (bob,) = logged_in(server, "bob")
    positions = [offer(s, "bob", f"f{i}", 1)["position"] for i, s in enumerate(senders)]
    assert positions == [0, 0, 0, 1, 2]
    server.advance()
    started = [bool(s.events("upload-start")) for s in senders]
    assert started == [True, True, False, False, False]
    assert server.audit.category("FILE-QUEUE")[:3] == [
        "transfer #3 f2 from s2 queued at position 0 (queue size 1)",
        "transfer #4 f3 from s3 queued at position 1 (queue size 2)",
        "transfer #5 f4 from s4 queued at position 2 (queue size 3)",
    ]
    server.clock.advance(2.5)
    senders[0].send_data(1, b"x")
    server.advance()
    assert senders[2].events("upload-start") == [{"type": "upload-start", "transfer": 3, "waited": 2.5}]
    assert senders[3].frames() == []
    assert server.audit.category("FILE-QUEUE")[-1] == (
        "transfer #3 f2 from s2 started, waited 2.50s (queue size 2)")
    for line in server.audit.category("FILE-QUEUE"):
        if "started" in line:
            assert re.search(r"waited \d+\.\d\ds", line)
    senders[2].send_data(3, b"x")
    assert senders[2].events("upload-done") == [
        {"type": "upload-done", "transfer": 3, "waited": 2.5, "seconds": 0.0}]


def test_at_most_five_uploads_by_default(server: Server) -> None:
    """Seven uploads at once: five start, two wait."""
    senders = logged_in(server, *[f"s{i}" for i in range(7)])
    logged_in(server, "bob")
    for s in senders:
        offer(s, "bob", "f", 10)
    server.advance()
    assert [len(s.events("upload-start")) for s in senders] == [1] * 5 + [0] * 2
    assert (server.transfers.running, server.transfers.waiting) == (5, 2)


def test_queue_full(tmp_path: Path) -> None:
    """Past the queue limit, sendfile is queue-full."""
    server = new_server(tmp_path, upload_slots=1, upload_queue=2)
    (a,) = logged_in(server, "alice")
    logged_in(server, "bob")
    assert [offer(a, "bob", "f", 1)["position"] for _ in range(3)] == [0, 0, 1]
    reply = a.request("sendfile", to="bob", name="f", size=1)
    assert error_code(reply) == "queue-full"


def test_cancel_queued(tmp_path: Path) -> None:
    """Cancelling a queued upload: ok, then file-failed cancelled; it never starts."""
    server = new_server(tmp_path, upload_slots=1)
    a, b = logged_in(server, "alice", "bob")
    offer(a, "bob", "first", 1)
    t2 = offer(a, "bob", "second", 1)["transfer"]
    t3 = offer(a, "bob", "third", 1)["transfer"]
    server.advance()
    a.frames()
    a.send({"type": "cancel", "id": "c", "transfer": t2})
    assert a.frames() == [
        {"type": "ok", "id": "c", "transfer": t2},
        {"type": "file-failed", "transfer": t2, "reason": "cancelled"},
    ]
    assert server.transfers.waiting == 1
    a.send_data(1, b"x")
    server.advance()
    assert [f["transfer"] for f in a.events("upload-start")] == [t3]
    assert b.events("file-aborted") == []


def test_cancel_running(server: Server) -> None:
    """Cancelling a running upload frees its slot and removes its spool file."""
    a, b = logged_in(server, "alice", "bob")
    t = start(server, a, "bob", "f", 10)
    a.send_data(t, b"12345")
    assert len(server.spool.leftovers()) == 1
    a.send({"type": "cancel", "id": 7, "transfer": t})
    assert a.frames() == [
        {"type": "ok", "id": 7, "transfer": t},
        {"type": "file-failed", "transfer": t, "reason": "cancelled"},
    ]
    assert server.spool.leftovers() == [] and server.transfers.running == 0
    assert b.frames() == []
    a.send_data(t, b"12345")
    assert a.frames()[0]["code"] == "bad-transfer"


def test_cancel_refused(server: Server) -> None:
    """Unknown, finished, other people's or malformed transfer numbers are bad-transfer."""
    a, b = logged_in(server, "alice", "bob")
    t = offer(a, "bob", "f", 1)["transfer"]
    for number in (t + 1, str(t), None, -1, 1.0, True):
        assert error_code(a.request("cancel", transfer=number)) == "bad-transfer"
    assert error_code(b.request("cancel", transfer=t)) == "bad-transfer"
    assert server.transfers.active.keys() == {t}


def test_transfer_errors_say_what_was_given(server: Server) -> None:
    """No number: the message says none was given, not "Transfer None"."""
    (a,) = logged_in(server, "alice")
    for request in ("cancel", "accept", "decline", "received"):
        reply = a.request(request)
        assert reply["code"] == "bad-transfer"
        assert "no number given" in reply["message"] and "None" not in reply["message"], reply
    assert "Transfer 'x\\x1b'" in a.request("cancel", transfer="x\x1b")["message"]
    assert a.request("cancel", transfer=99)["message"].startswith("Transfer 99 ")


def test_cancel_while_delivering(server: Server) -> None:
    """Cancel after upload-done (still delivering) aborts the delivery on both sides."""
    a, b = logged_in(server, "alice", "bob")
    b.protocol.outbound.pauseProducing()
    t = upload(server, a, "bob", "f", b"data")
    a.frames()
    a.send({"type": "cancel", "transfer": t})
    assert a.frames() == [
        {"type": "ok", "transfer": t},
        {"type": "file-failed", "transfer": t, "reason": "cancelled"},
    ]
    b.protocol.outbound.resumeProducing()
    assert [f["type"] for f in b.frames()] == ["file-start", "file-aborted"]
    assert server.spool.leftovers() == []


def test_data_for_unknown_transfer(server: Server) -> None:
    """A data frame for no transfer is bad-transfer without an id."""
    (a,) = logged_in(server, "alice")
    a.send_data(42, b"x")
    (frame,) = a.frames()
    assert frame["type"] == "error" and frame["code"] == "bad-transfer" and "id" not in frame


def test_data_before_login(server: Server) -> None:
    """A data frame before login is bad-transfer."""
    c = server.connect()
    c.send_data(1, b"x")
    assert c.frames()[0]["code"] == "bad-transfer"


def test_data_for_someone_elses_transfer(server: Server) -> None:
    """Data for another sender's transfer is bad-transfer and does not harm it."""
    a, b, c = logged_in(server, "alice", "bob", "carol")
    t = start(server, a, "bob", "f", 3)
    c.send_data(t, b"xyz")
    assert c.frames()[0]["code"] == "bad-transfer"
    b.send_data(t, b"xyz")
    assert b.frames()[0]["code"] == "bad-transfer"
    a.send_data(t, b"abc")
    assert received(b, t) == b"abc"


def test_data_before_upload_start(tmp_path: Path) -> None:
    """Data for a queued upload is bad-transfer and fails it with size-mismatch."""
    server = new_server(tmp_path, upload_slots=1)
    a, _ = logged_in(server, "alice", "bob")
    offer(a, "bob", "first", 1)
    t = offer(a, "bob", "second", 1)["transfer"]
    server.advance()
    a.frames()
    a.send_data(t, b"x")
    frames = a.frames()
    assert {"type": "file-failed", "transfer": t, "reason": "size-mismatch"} in frames
    assert [f["code"] for f in frames if f["type"] == "error"] == ["bad-transfer"]
    assert server.transfers.waiting == 0


def test_data_beyond_size(server: Server) -> None:
    """Bytes beyond the declared size are bad-transfer and a size-mismatch failure."""
    a, b = logged_in(server, "alice", "bob")
    t = start(server, a, "bob", "f", 4)
    a.send_data(t, b"abc")
    a.send_data(t, b"de")
    failed, error = a.frames()
    assert failed == {"type": "file-failed", "transfer": t, "reason": "size-mismatch"}
    assert error["type"] == "error" and error["code"] == "bad-transfer" and "id" not in error
    assert b.frames() == [] and server.spool.leftovers() == []
    assert server.transfers.running == 0


def test_data_beyond_size_while_delivering(server: Server) -> None:
    """Extra bytes after upload-done fail the delivery too; the addressee gets file-aborted."""
    a, b = logged_in(server, "alice", "bob")
    b.protocol.outbound.pauseProducing()
    t = upload(server, a, "bob", "f", b"abcd")
    a.frames()
    a.send_data(t, b"e")
    assert [f["type"] for f in a.frames()] == ["file-failed", "error"]
    b.protocol.outbound.resumeProducing()
    events = b.events()
    assert [f["type"] for f in events] == ["file-start", "file-aborted"]
    assert events[-1]["reason"] == "size-mismatch"
    a.send_data(t, b"f")  # the number is unknown now: only bad-transfer
    (error,) = a.frames()
    assert error["code"] == "bad-transfer"


def _open_spool_readers(server: Server) -> int:
    return sum(1 for t in server.transfers.active.values() if t.reader is not None)


def one_turn_and_bob_not_reading(tmp_path: Path) -> tuple[Server, FakeClient, FakeClient]:
    """A server streaming one file at a time to each addressee; alice, and bob, who reads nothing."""
    server = new_server(tmp_path / "spool", deliveries_per_user=1)
    a, b = logged_in(server, "alice", "bob")
    b.protocol.outbound.pauseProducing()
    return server, a, b


def test_deliveries_to_one_addressee_take_turns(tmp_path: Path) -> None:
    """A client that reads nothing holds at most deliveries_per_user spool files open."""
    server = new_server(tmp_path / "spool", deliveries_per_user=2)
    a, b = logged_in(server, "alice", "bob")
    b.protocol.outbound.pauseProducing()  # bob stops reading
    files = {f"f{i}.bin": bytes([i]) * (70_000 + i) for i in range(5)}
    numbers = [upload(server, a, "bob", name, data) for name, data in files.items()]
    assert [e["transfer"] for e in a.history("upload-done")] == numbers  # every slot freed
    assert _open_spool_readers(server) == 2
    assert len(server.spool.leftovers()) == 5
    b.protocol.outbound.resumeProducing()
    server.settle()
    frames = b.frames()
    starts = [f for f in frames if isinstance(f, dict) and f["type"] == "file-start"]
    assert [s["transfer"] for s in starts] == numbers  # in upload order
    for (name, data), t in zip(files.items(), numbers, strict=True):
        got = b"".join(f[1] for f in frames if isinstance(f, tuple) and f[0] == t)
        assert got == data, name
    ends = {f["transfer"]: f["sha256"] for f in frames if isinstance(f, dict) and f["type"] == "file-end"}
    assert ends == {t: hashlib.sha256(d).hexdigest() for t, d in zip(numbers, files.values(), strict=True)}
    assert [e["transfer"] for e in a.events("file-delivered")] == numbers
    assert server.transfers.active == {} and server.spool.leftovers() == []
    assert server.transfers._inboxes == {}


def test_waiting_delivery_cancelled_and_addressee_gone(tmp_path: Path) -> None:
    """A delivery waiting its turn can be cancelled; the rest fail when the addressee goes."""
    server, a, b = one_turn_and_bob_not_reading(tmp_path)
    first, second, third = (upload(server, a, "bob", f"f{i}", b"x" * 100_000) for i in range(3))
    a.frames()
    assert error_code(a.request("cancel", transfer=second)) is None
    assert a.history("file-failed") == [{"type": "file-failed", "transfer": second, "reason": "cancelled"}]
    assert len(server.spool.leftovers()) == 2
    b.lose()
    server.flush()
    failed = {e["transfer"]: e["reason"] for e in a.history("file-failed")}
    assert failed == {first: "recipient-offline", second: "cancelled", third: "recipient-offline"}
    # the waiting one failed where it was: no turn to stream to a client that is gone
    assert any(f"#{third} f2 " in line and "failed (spooled)" in line for line in server.audit.category("FILE"))
    assert server.transfers.active == {} and server.spool.leftovers() == []
    assert server.transfers._inboxes == {}


def test_sender_gone_does_not_stop_a_waiting_delivery(tmp_path: Path) -> None:
    """An upload waiting for its delivery turn survives its sender leaving."""
    server, a, b = one_turn_and_bob_not_reading(tmp_path)
    numbers = [upload(server, a, "bob", f"f{i}", b"y" * 100_000) for i in range(2)]
    a.lose()
    server.flush()
    b.protocol.outbound.resumeProducing()
    server.settle()
    assert [f["transfer"] for f in b.events("file-end")] == numbers
    assert server.spool.leftovers() == []


def test_shutdown_starts_no_waiting_delivery(tmp_path: Path) -> None:
    """At shutdown, waiting deliveries fail without a file-start."""
    server, a, b = one_turn_and_bob_not_reading(tmp_path)
    first, second = (upload(server, a, "bob", f"f{i}", b"z" * 100_000) for i in range(2))
    assert server.transfers.shutdown() == 2
    b.protocol.outbound.resumeProducing()
    starts = [f["transfer"] for f in b.events("file-start")]
    assert starts == [first]
    assert server.spool.leftovers() == []


def test_audit_counts_are_singular_for_one(server: Server) -> None:
    """A one-byte file is logged as ``(1 byte)``, not ``(1 bytes)``."""
    a, _ = logged_in(server, "alice", "bob")
    a.request("sendfile", to="bob", name="one", size=1)
    (sendfile,) = server.audit.category("SENDFILE")
    assert "one (1 byte)," in sendfile
