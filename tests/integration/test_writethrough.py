"""
The write-through transport of :mod:`chatnet.fastpath` over real loopback
sockets: bytes arrive whole and in order.
"""

from __future__ import annotations

import os
import socket

import pytest
import pytest_twisted
from twisted.internet import defer, error, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.tcp import Server
from twisted.internet.threads import deferToThread

from chatnet import fastpath
from chatnet.fastpath import FramingReceiver, WriteThroughServer


def adopt(transport: object) -> None:
    """What the server does in connectionMade, for a protocol of any kind."""
    receiver = FramingReceiver()
    receiver.transport = transport  # type: ignore[assignment]
    fastpath.adopt(receiver)


class Burst(Protocol):
    """Writes a fixed series of writes and writeSequences on connect."""

    def __init__(self, parts: list[object], adopted: defer.Deferred[type]) -> None:
        self.parts = parts
        self.adopted = adopted

    def connectionMade(self) -> None:
        adopt(self.transport)
        self.adopted.callback(type(self.transport))
        for part in self.parts:
            if isinstance(part, list):
                self.transport.writeSequence(part)
            else:
                self.transport.write(part)  # type: ignore[arg-type]
        self.transport.loseConnection()


def read_all(port: int, expected: int) -> bytes:
    """Connect and read until the server closes (the burst overflows the send buffer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        chunks = []
        total = 0
        while True:
            data = s.recv(1 << 20)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
            total += len(data)
            assert total <= expected


@pytest_twisted.ensureDeferred
async def test_large_writes_and_sequences_arrive_intact() -> None:
    """Writes far larger than the socket buffer, single and gathered, arrive byte for byte."""
    big = [os.urandom(n) for n in (10, 300_000, 7, 2_000_000)]
    parts: list[object] = [
        big[0],
        [b"hd", big[1]],
        [big[2], b"", b"x" * 65536],
        big[3],
        [b"end"],
    ]
    expected = b"".join(p if isinstance(p, bytes) else b"".join(p) for p in parts)  # type: ignore[misc]
    adopted: defer.Deferred[type] = defer.Deferred()
    factory = Factory.forProtocol(lambda: Burst(parts, adopted))
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        got = await deferToThread(read_all, port.getHost().port, len(expected))
        assert (await adopted) is WriteThroughServer
        assert got == expected
    finally:
        await port.stopListening()


def test_adopt_leaves_other_transports_alone() -> None:
    """Only plain tcp.Server connections change class."""

    class Other:
        pass

    other = Other()
    adopt(other)
    assert type(other) is Other
    assert issubclass(WriteThroughServer, Server)


@pytest_twisted.ensureDeferred
async def test_no_write_through_when_twisted_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the check at import failed, connections stay plain tcp.Server."""
    monkeypatch.setattr(fastpath, "WRITE_THROUGH", False)
    adopted: defer.Deferred[type] = defer.Deferred()
    factory = Factory.forProtocol(lambda: Burst([b"x"], adopted))
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        got = await deferToThread(read_all, port.getHost().port, 1)
        assert (await adopted) is Server
        assert got == b"x"
    finally:
        await port.stopListening()


class WriteAfterShutdown(Protocol):
    """Shuts its own socket for writing, then writes: the send fails with EPIPE."""

    def __init__(self, lost: defer.Deferred[list[object]]) -> None:
        self.lost = lost
        self.wrote = False

    def connectionMade(self) -> None:
        adopt(self.transport)
        self.transport.socket.shutdown(socket.SHUT_WR)  # type: ignore[attr-defined]
        self.transport.write(b"frame")
        self.transport.writeSequence([b"more", b"frames"])
        self.wrote = True  # neither call raised

    def connectionLost(self, reason: object) -> None:
        self.lost.callback([self.wrote, reason])


@pytest_twisted.ensureDeferred
async def test_a_failing_send_ends_the_connection_not_the_caller() -> None:
    """A write that the kernel refuses goes the buffered way, which reports the loss."""
    lost: defer.Deferred[list[object]] = defer.Deferred()
    factory = Factory.forProtocol(lambda: WriteAfterShutdown(lost))
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        client = await deferToThread(socket.create_connection, ("127.0.0.1", port.getHost().port), 10)
        try:
            wrote, reason = await lost.addTimeout(10, reactor)
            assert wrote
            assert reason.check(error.ConnectionLost, error.ConnectionDone)  # type: ignore[attr-defined]
        finally:
            client.close()
    finally:
        await port.stopListening()
