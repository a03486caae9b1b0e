"""Tests for :mod:`chatnet.inbound`: the deadline on a begun frame, and reading paused for reasons."""

from __future__ import annotations

import struct
from pathlib import Path

from support import raw
from support.chat import new_server
from twisted.internet.task import Clock

from chatnet.inbound import FrameWatch, ReadGate
from chatnet.testing import FakeClient, TestServer


def _partial(client: FakeClient, size: int, sent: int) -> None:
    """Send the prefix of a ``size``-byte control frame and ``sent`` bytes of it."""
    body = b'{"type":"ping","pad":"' + b"x" * (size - 24) + b'"}'
    assert len(body) == size
    client.protocol.dataReceived(struct.pack(">I", size) + body[:sent])


def _closed(server: TestServer, client: FakeClient) -> bool:
    server.settle()
    return client.transport.disconnecting


def test_frame_watch_expires_the_oldest_first() -> None:
    """One timer serves every connection; each expires ``timeout`` after its frame began."""
    clock = Clock()
    watch = FrameWatch(clock, 30)
    expired: list[tuple[str, float]] = []
    watch.started("a", lambda s: expired.append(("a", s)))
    clock.advance(10)
    watch.started("b", lambda s: expired.append(("b", s)))
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(20)
    assert expired == [("a", 30)]
    clock.advance(9.9)
    assert expired == [("a", 30)]
    clock.advance(0.1)
    assert expired == [("a", 30), ("b", 30)]
    assert clock.getDelayedCalls() == []


def test_frame_watch_done_and_restart() -> None:
    """``done`` forgets a connection; ``started`` again restarts its time."""
    clock = Clock()
    watch = FrameWatch(clock, 30)
    expired: list[str] = []
    watch.started("a", lambda s: expired.append("a"))
    clock.advance(25)
    watch.started("a", lambda s: expired.append("a"))  # a new frame began
    clock.advance(25)
    assert expired == []
    watch.done("a")
    assert clock.getDelayedCalls() == [] and len(watch) == 0
    clock.advance(100)
    assert expired == []


def test_read_gate_resumes_when_no_reason_is_left() -> None:
    """Two reasons pause once; reading resumes only when both are withdrawn."""
    calls: list[str] = []

    class Target:
        def pauseProducing(self) -> None:
            calls.append("pause")

        def resumeProducing(self) -> None:
            calls.append("resume")

    gate = ReadGate(Target())
    gate.pause("flood")
    gate.pause("auth")
    gate.pause("auth")
    gate.resume("flood")
    assert calls == ["pause"] and gate.paused
    gate.resume("auth")
    assert calls == ["pause", "resume"] and not gate.paused
    # back to the one shared empty set: a running gate holds no set of its own
    assert gate.reasons is ReadGate(Target()).reasons
    gate.resume("auth")  # not held: no change
    gate.close()
    gate.pause("x")
    gate.resume("x")
    assert calls == ["pause", "resume"]


def test_partial_frame_closed_at_the_deadline(tmp_path: Path) -> None:
    """A logged-in client that stops half way through a frame is closed after --frame-timeout."""
    server = new_server(tmp_path, frame_timeout=30.0)
    alice = server.connect()
    alice.login("alice")
    _partial(alice, 65_000, 60 * 1024)
    server.advance(29.9)
    assert not _closed(server, alice)
    server.advance(0.2)
    assert _closed(server, alice)
    [line] = server.audit.category("DISCONNECT")
    assert line.startswith("alice (127.0.0.1:")
    assert "closed: a frame was left incomplete for 30.1s (61444 bytes held; --frame-timeout 30s)" in line
    assert server.clock.getDelayedCalls() == []


def test_a_four_byte_prefix_alone_counts(tmp_path: Path) -> None:
    """Even two bytes of a length prefix begin a frame."""
    server = new_server(tmp_path, frame_timeout=5.0, login_timeout=300.0)
    c = server.connect()
    c.protocol.dataReceived(b"\x00\x00")
    server.advance(5)
    assert _closed(server, c)


def test_a_slow_link_still_passes(tmp_path: Path) -> None:
    """64 KiB at 10 KB/s (6.5 s) completes well within the default deadline."""
    server = new_server(tmp_path)
    alice = server.connect()
    alice.login("alice")
    body = b'{"type":"ping","id":1,"pad":"' + b"x" * 65_000 + b'"}'
    wire = struct.pack(">I", len(body)) + body
    for i in range(0, len(wire), 1000):
        alice.protocol.dataReceived(wire[i : i + 1000])
        server.advance(0.1)
    assert not _closed(server, alice)
    assert alice.frames()[-1] == {"type": "ok", "id": 1}
    assert server.clock.getDelayedCalls() == []


def test_back_to_back_frames_each_get_their_own_time(tmp_path: Path) -> None:
    """Frames streaming for longer than the deadline pass while each one completes in time."""
    server = new_server(tmp_path, frame_timeout=5.0)
    alice = server.connect()
    alice.login("alice")
    wire = b"".join(raw.encode_frame({"type": "ping", "id": i}) for i in range(200))
    # Reads of 7 bytes a second: each frame (26-28 bytes) takes at most 4 s,
    # the stream about 800 s, and reads rarely end on a frame boundary.
    for i in range(0, len(wire), 7):
        alice.protocol.dataReceived(wire[i : i + 7])
        server.advance(1.0)
    assert not _closed(server, alice)
    assert [f["id"] for f in alice.frames()] == list(range(200))


def test_no_deadline_while_the_server_pauses_reading(tmp_path: Path) -> None:
    """Time the server keeps reading paused is not held against the peer."""
    server = new_server(tmp_path, frame_timeout=30.0)
    alice = server.connect()
    alice.login("alice")
    _partial(alice, 100, 50)
    alice.protocol.pause_reading("test")
    server.advance(100)
    assert not _closed(server, alice)
    alice.protocol.resume_reading("test")  # the frame's time starts again
    server.advance(29)
    assert not _closed(server, alice)
    server.advance(1)
    assert _closed(server, alice)


def test_frames_held_while_paused_are_answered_on_resume(tmp_path: Path) -> None:
    """Requests read while reading is paused wait, in order, and are answered on resume."""
    server = new_server(tmp_path)
    alice = server.connect()
    alice.login("alice")
    alice.protocol.pause_reading("test")
    assert alice.transport.producerState == "paused"
    alice.protocol.dataReceived(b"".join(raw.encode_frame({"type": "ping", "id": i}) for i in range(3)))
    assert alice.frames() == []
    alice.protocol.resume_reading("test")
    assert [f["id"] for f in alice.frames()] == [0, 1, 2]


def test_no_frame_timeout(tmp_path: Path) -> None:
    """--frame-timeout 0: no deadline at all."""
    server = new_server(tmp_path, frame_timeout=0.0, login_timeout=1e9)
    c = server.connect()
    _partial(c, 100, 50)
    server.advance(1e6)
    assert not _closed(server, c)


def test_connection_lost_with_a_partial_frame_leaves_no_timer(tmp_path: Path) -> None:
    """A connection lost mid-frame is forgotten by the watch."""
    server = new_server(tmp_path)
    alice = server.connect()
    alice.login("alice")
    _partial(alice, 100, 50)
    alice.lose()
    assert server.factory.frame_watch is not None and len(server.factory.frame_watch) == 0
    assert server.clock.getDelayedCalls() == []
