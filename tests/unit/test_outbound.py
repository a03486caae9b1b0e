"""Tests for :mod:`chatnet.outbound`: one connection's control frames and file streams."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from support import raw
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatnet import codec, fastpath
from chatnet.outbound import Outbound, StallWatch

CHUNK = codec.MAX_DATA


class PausingTransport(StringTransport):
    """A transport that, when told to, pauses its producer after every write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.pause_each_write = False

    def write(self, data: bytes) -> None:
        super().write(data)
        self.writes.append(data)
        if self.pause_each_write and self.producer is not None:
            self.producer.pauseProducing()

    def writeSequence(self, data: list[bytes]) -> None:
        """A data frame comes as header + chunk: record it as one write."""
        self.write(b"".join(data))


def make(max_output: int = 10_000) -> tuple[Outbound, PausingTransport, Clock, list[str]]:
    transport, clock = PausingTransport(), Clock()
    overflows: list[str] = []
    out = Outbound(transport, clock, max_output, overflows.append)
    return out, transport, clock, overflows


def kind(data: bytes) -> Any:
    """``("control", type)`` or ``("data", transfer)`` for one written frame."""
    payload = data[4:]
    if payload[:1] == b"\x00":
        return ("data", int.from_bytes(payload[1:5], "big"))
    return ("control", raw.decode(payload).type)  # type: ignore[union-attr]


def outcome(d: Deferred[Any]) -> list[Any]:
    """Collect what ``d`` fires with (a Failure for an error), consuming errors."""
    results: list[Any] = []
    d.addBoth(results.append)
    return results


def test_registers_as_streaming_producer() -> None:
    """The Outbound is the transport's one streaming producer."""
    out, transport, _, _ = make()
    assert transport.producer is out and transport.streaming


def test_writes_through_when_not_paused() -> None:
    """Frames go straight to the transport; on_written runs at once."""
    out, transport, _, _ = make()
    written: list[str] = []
    out.send(b"one")
    out.send(b"two", lambda: written.append("two"))
    assert transport.value() == b"onetwo" and written == ["two"] and out.unsent == 0


def test_queues_while_paused_and_flushes_in_order() -> None:
    """While paused, frames wait (and count as unsent); resume writes them in order."""
    out, transport, _, _ = make()
    written: list[str] = []
    out.pauseProducing()
    out.send(b"aa")
    out.send(b"bbb", lambda: written.append("b"))
    assert transport.value() == b"" and out.unsent == 5 and written == []
    out.resumeProducing()
    assert transport.value() == b"aabbb" and out.unsent == 0 and written == ["b"]


def test_frames_after_resume_follow_queued_ones() -> None:
    """A frame sent while older ones wait goes behind them."""
    out, transport, _, _ = make()
    transport.pause_each_write = True
    out.pauseProducing()
    out.send(b"1")
    out.send(b"2")
    out.resumeProducing()  # writes "1", and the transport pauses again
    out.send(b"3")
    out.resumeProducing()
    out.resumeProducing()
    assert transport.writes == [b"1", b"2", b"3"]


def test_slow_consumer_aborted() -> None:
    """Past max_output unsent bytes, the connection is aborted and reported."""
    out, transport, _, overflows = make(max_output=100)
    out.pauseProducing()
    out.send(b"x" * 60)
    out.send(b"x" * 40)
    assert not transport.disconnecting and overflows == []  # exactly at the limit
    out.send(b"x")
    assert transport.disconnected and overflows == ["101 bytes unsent"]
    assert out.closed and out.unsent == 0 and transport.producer is None
    out.send(b"late")
    out.resumeProducing()
    assert transport.value() == b""


def test_file_streamed_as_data_frames() -> None:
    """A file goes out as 64 KiB data frames of its transfer; the Deferred fires."""
    out, transport, _, _ = make()
    data = bytes(range(256)) * 600  # 153,600 bytes: 3 frames
    done = outcome(out.send_file(9, io.BytesIO(data)))
    assert done and not isinstance(done[0], Failure)
    frames = [raw.decode(w[4:]) for w in transport.writes]
    assert [len(f.data) for f in frames] == [CHUNK, CHUNK, len(data) - 2 * CHUNK]  # type: ignore[union-attr]
    assert all(f.transfer == 9 for f in frames)  # type: ignore[union-attr]
    assert b"".join(f.data for f in frames) == data  # type: ignore[union-attr]


def test_empty_file_sends_nothing() -> None:
    """An empty file finishes at once with no data frame."""
    out, transport, _, _ = make()
    assert len(outcome(out.send_file(1, io.BytesIO(b"")))) == 1
    assert transport.value() == b""


def test_two_files_interleave() -> None:
    """Two files on one connection take turns, one chunk each."""
    out, transport, _, _ = make()
    out.pauseProducing()
    outcome(out.send_file(1, io.BytesIO(b"a" * (3 * CHUNK))))
    outcome(out.send_file(2, io.BytesIO(b"b" * (3 * CHUNK))))
    transport.pause_each_write = True
    for _ in range(8):
        out.resumeProducing()
    assert [kind(w) for w in transport.writes] == [("data", 1), ("data", 2)] * 3


def test_control_frames_go_before_file_chunks() -> None:
    """A control frame sent during a file stream is written before the next chunk."""
    out, transport, _, _ = make()
    transport.pause_each_write = True
    done = outcome(out.send_file(5, io.BytesIO(b"z" * (3 * CHUNK))))
    assert [kind(w) for w in transport.writes] == [("data", 5)]
    out.send(raw.encode_frame({"type": "message", "text": "hi"}))
    out.send(raw.encode_frame({"type": "presence"}))
    out.resumeProducing()
    out.resumeProducing()
    out.resumeProducing()
    assert [kind(w) for w in transport.writes] == [
        ("data", 5), ("control", "message"), ("control", "presence"), ("data", 5)]
    while not done:
        out.resumeProducing()
    assert [kind(w) for w in transport.writes][-1] == ("data", 5)


def test_file_chunks_do_not_count_as_unsent() -> None:
    """A paused file stream does not push the connection over its limit."""
    out, transport, _, overflows = make(max_output=10)
    out.pauseProducing()
    outcome(out.send_file(1, io.BytesIO(b"x" * (5 * CHUNK))))
    assert out.unsent == 0 and overflows == [] and transport.value() == b""


def test_cancel_file() -> None:
    """cancel_file stops a stream; its Deferred fails; the other goes on."""
    out, transport, _, _ = make()
    out.pauseProducing()
    one = outcome(out.send_file(1, io.BytesIO(b"a" * (2 * CHUNK))))
    two = outcome(out.send_file(2, io.BytesIO(b"b" * (2 * CHUNK))))
    out.cancel_file(1)
    out.cancel_file(99)  # unknown: ignored
    assert len(one) == 1 and isinstance(one[0], Failure)
    out.resumeProducing()
    assert {kind(w) for w in transport.writes} == {("data", 2)}
    assert len(two) == 1 and not isinstance(two[0], Failure)


def test_close_flushes_even_while_paused_then_aborts_after_grace() -> None:
    """close hands everything queued over, closes, and aborts only after the grace period."""
    out, transport, clock, _ = make()
    out.pauseProducing()
    out.send(b"bye")
    stream = outcome(out.send_file(1, io.BytesIO(b"x" * 10)))
    out.close(5.0)
    assert transport.value() == b"bye" and transport.disconnecting
    assert isinstance(stream[0], Failure)
    assert transport.producer is None and not transport.disconnected
    clock.advance(4.9)
    assert not transport.disconnected
    clock.advance(0.2)
    assert transport.disconnected
    assert clock.getDelayedCalls() == []


def test_connection_lost_cancels_pending_abort() -> None:
    """Once the connection is gone no abort timer is left behind."""
    out, transport, clock, _ = make()
    out.close(5.0)
    out.connection_lost()
    assert clock.getDelayedCalls() == []
    out.close(5.0)  # already closed: nothing more
    assert clock.getDelayedCalls() == []


def test_stop_producing_drops_everything() -> None:
    """stopProducing (the transport going away) drops the queue and fails streams."""
    out, transport, _, _ = make()
    out.pauseProducing()
    out.send(b"lost")
    stream = outcome(out.send_file(1, io.BytesIO(b"x")))
    out.stopProducing()
    assert isinstance(stream[0], Failure) and out.closed and out.unsent == 0
    late = outcome(out.send_file(2, io.BytesIO(b"y")))
    assert isinstance(late[0], Failure)
    out.resumeProducing()
    assert transport.value() == b""


def test_abort_drops_queue() -> None:
    """abort discards what is unsent and aborts the connection now."""
    out, transport, clock, _ = make()
    out.pauseProducing()
    out.send(b"never")
    out.abort()
    assert transport.disconnected and transport.value() == b""
    assert clock.getDelayedCalls() == []



def test_batched_frames_go_before_file_chunks() -> None:
    """With a WriteBatch, a frame pending for the turn is written before a file's first chunk.

    (The batch itself is tested in test_outbound_batch.py.)
    """
    from chatnet.outbound import WriteBatch

    transport = PausingTransport()
    out = Outbound(transport, Clock(), 10_000, lambda n: None, WriteBatch(Clock()))
    out.send(raw.encode_frame({"type": "file-start"}))
    outcome(out.send_file(3, io.BytesIO(b"data")))
    assert [kind(w) for w in transport.writes] == [("control", "file-start"), ("data", 3)]


def watched(clock: Clock, watch: StallWatch) -> tuple[Outbound, PausingTransport, list[str]]:
    transport = PausingTransport()
    reasons: list[str] = []
    return Outbound(transport, clock, 10_000, reasons.append, stall_watch=watch), transport, reasons


def test_stalled_connection_aborted_after_the_timeout() -> None:
    """Paused for the whole timeout: aborted as a slow consumer; a resume restarts the count."""
    clock = Clock()
    watch = StallWatch(clock, 60)
    out, transport, reasons = watched(clock, watch)
    out.pauseProducing()
    clock.advance(50)
    out.resumeProducing()  # the client read something
    out.pauseProducing()
    clock.advance(59)
    assert reasons == [] and not transport.disconnected
    clock.advance(1)
    assert reasons == ["read nothing for 60s"]
    assert transport.disconnected and out.closed
    assert clock.getDelayedCalls() == []


def test_one_timer_serves_every_paused_connection() -> None:
    """Connections paused at different times are each cut at their own time, by one timer."""
    clock = Clock()
    watch = StallWatch(clock, 10)
    (a, _, ra), (b, _, rb), (c, _, rc) = (watched(clock, watch) for _ in range(3))
    a.pauseProducing()
    clock.advance(3)
    b.pauseProducing()
    c.pauseProducing()
    assert len(clock.getDelayedCalls()) == 1
    c.pauseProducing()  # a second pause changes nothing
    clock.advance(7)
    assert (ra, rb, rc) == (["read nothing for 10s"], [], [])
    c.resumeProducing()
    clock.advance(2.5)
    assert rb == []
    clock.advance(0.5)
    assert (rb, rc) == (["read nothing for 10s"], [])
    assert clock.getDelayedCalls() == []


def test_resumed_or_closed_connections_leave_no_timer() -> None:
    """Once nothing is paused, the timer is gone; a closed connection is never cut."""
    clock = Clock()
    watch = StallWatch(clock, 10)
    out, transport, reasons = watched(clock, watch)
    out.pauseProducing()
    out.resumeProducing()
    assert clock.getDelayedCalls() == []
    out.pauseProducing()
    out.connection_lost()
    assert clock.getDelayedCalls() == []
    out.pauseProducing()  # a late pause from a transport going away
    clock.advance(100)
    assert reasons == []


def test_a_pause_during_the_check_leaves_one_timer() -> None:
    """A connection paused while the watch aborts another: one timer, for the oldest pause."""
    clock = Clock()
    watch = StallWatch(clock, 10)
    (b, _, rb), (c, _, rc) = (watched(clock, watch) for _ in range(2))
    ra: list[str] = []

    def aborted(why: str) -> None:  # a callback that makes another connection pause
        ra.append(why)
        c.pauseProducing()

    a = Outbound(PausingTransport(), clock, 10_000, aborted, stall_watch=watch)
    a.pauseProducing()
    clock.advance(4)
    b.pauseProducing()
    clock.advance(6)
    assert ra == ["read nothing for 10s"]
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(4)
    assert rb == ["read nothing for 10s"] and rc == []
    clock.advance(6)
    assert rc == ["read nothing for 10s"]
    assert clock.getDelayedCalls() == []


class DirectWriter:
    """
    Stands in for the fast path's ``write_file``: takes the frames it is
    told to (writing header and file bytes to the transport as one write,
    marked as sent directly) and refuses the others.
    """

    def __init__(self, transport: PausingTransport, refuse: set[int]) -> None:
        self.transport = transport
        self.refuse = refuse
        self.calls = 0
        self.direct: list[int] = []

    def __call__(self, header: bytes, fd: int, count: int) -> bool:
        call = self.calls
        self.calls += 1
        if call in self.refuse:
            return False
        self.direct.append(len(self.transport.writes))
        self.transport.write(header + os.read(fd, count))
        return True


def spooled(tmp_path: Path, data: bytes) -> io.FileIO:
    path = tmp_path / "spooled"
    path.write_bytes(data)
    return io.FileIO(path, "r")


def test_file_frames_go_through_the_transports_file_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    On a transport with a file writer, each frame of a regular file is
    offered to it; those it refuses are read and written as bytes, from the
    same offset, so the frames stay whole and in order either way.
    """
    transport = PausingTransport()
    writer = DirectWriter(transport, refuse={1, 3})
    monkeypatch.setattr(fastpath, "file_writer", lambda t: writer if t is transport else None)
    out = Outbound(transport, Clock(), 10_000)
    data = os.urandom(4 * CHUNK + 100)
    file = spooled(tmp_path, data)
    done = outcome(out.send_file(7, file))
    assert done and not isinstance(done[0], Failure)
    frames = [raw.decode(w[4:]) for w in transport.writes]
    assert [len(f.data) for f in frames] == [CHUNK] * 4 + [100]  # type: ignore[union-attr]
    assert all(f.transfer == 7 for f in frames)  # type: ignore[union-attr]
    assert b"".join(f.data for f in frames) == data  # type: ignore[union-attr]
    assert writer.direct == [0, 2, 4]  # frames 1 and 3 were written as bytes
    assert file.tell() == len(data)


def test_file_writer_frames_take_turns_with_control_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames sent from the file still yield to control frames and to other files."""
    transport = PausingTransport()
    writer = DirectWriter(transport, refuse=set())
    monkeypatch.setattr(fastpath, "file_writer", lambda t: writer)
    out = Outbound(transport, Clock(), 10_000)
    out.pauseProducing()
    outcome(out.send_file(1, spooled(tmp_path, b"a" * (2 * CHUNK))))
    outcome(out.send_file(2, io.BytesIO(b"b" * (2 * CHUNK))))  # no descriptor: bytes
    transport.pause_each_write = True
    out.resumeProducing()
    out.send(raw.encode_frame({"type": "message", "text": "hi"}))
    for _ in range(6):
        out.resumeProducing()
    assert [kind(w) for w in transport.writes] == [
        ("data", 1), ("control", "message"), ("data", 2), ("data", 1), ("data", 2)]
    assert writer.calls == 2


def test_empty_regular_file_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty spool file ends at once, without asking the file writer."""
    transport = PausingTransport()
    writer = DirectWriter(transport, refuse=set())
    monkeypatch.setattr(fastpath, "file_writer", lambda t: writer)
    out = Outbound(transport, Clock(), 10_000)
    assert len(outcome(out.send_file(1, spooled(tmp_path, b"")))) == 1
    assert transport.value() == b"" and writer.calls == 0
