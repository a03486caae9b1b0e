"""Tests for chatnet.outbound.WriteBatch: frames coalesced per reactor turn."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatnet.outbound import Outbound, WriteBatch


class CountingTransport(StringTransport):
    """A StringTransport that remembers each write separately."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


def make(max_output: int = 1 << 20) -> tuple[Clock, WriteBatch, CountingTransport, Outbound]:
    clock = Clock()
    batch = WriteBatch(clock)
    transport = CountingTransport()
    return clock, batch, transport, Outbound(transport, clock, max_output, batch=batch)


def test_frames_of_one_turn_become_one_write() -> None:
    """Three sends in one turn reach the transport as one write, in order, when the turn ends."""
    clock, _, transport, out = make()
    for frame in (b"a", b"b", b"c"):
        out.send(frame)
    assert transport.writes == []
    clock.advance(0)
    assert transport.writes == [b"abc"]
    assert clock.getDelayedCalls() == []


def test_one_flush_call_serves_every_connection() -> None:
    """Two connections written to in one turn share a single scheduled flush."""
    clock = Clock()
    batch = WriteBatch(clock)
    t1, t2 = CountingTransport(), CountingTransport()
    o1 = Outbound(t1, clock, 1 << 20, batch=batch)
    o2 = Outbound(t2, clock, 1 << 20, batch=batch)
    o1.send(b"1")
    o2.send(b"2")
    o1.send(b"3")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert (t1.writes, t2.writes) == ([b"13"], [b"2"])


def test_explicit_flush_cancels_the_scheduled_call() -> None:
    """flush() writes at once and leaves no timer behind."""
    clock, batch, transport, out = make()
    out.send(b"x")
    batch.flush()
    assert transport.writes == [b"x"]
    assert clock.getDelayedCalls() == []


def test_pending_frames_go_before_queued_ones() -> None:
    """Frames batched before a pause are written before frames queued during it."""
    clock, _, transport, out = make()
    out.send(b"early")
    out.pauseProducing()
    out.send(b"late")
    out.resumeProducing()
    assert transport.value() == b"earlylate"
    clock.advance(0)
    assert transport.value() == b"earlylate"


def test_on_written_flushes_the_batch_first() -> None:
    """A frame with a written-callback is written after the batch, then the callback runs."""
    _, _, transport, out = make()
    seen: list[bytes] = []
    out.send(b"a")
    out.send(b"end", lambda: seen.append(transport.value()))
    assert seen == [b"aend"]


def test_close_writes_the_batch() -> None:
    """Closing hands the batched frames to the transport before losing the connection."""
    clock, _, transport, out = make()
    out.send(b"bye")
    out.close(grace=5)
    assert transport.value() == b"bye"
    assert transport.disconnecting
    clock.advance(0)
    assert transport.value() == b"bye"


def test_abort_drops_the_batch() -> None:
    """An aborted connection writes nothing more, even when the turn ends."""
    clock, _, transport, out = make()
    out.send(b"lost")
    out.abort()
    clock.advance(0)
    assert transport.writes == []
