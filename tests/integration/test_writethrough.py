"""WriteThroughServer over real loopback sockets: bytes arrive whole and in order."""

from __future__ import annotations

import os
import socket

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.tcp import Server
from twisted.internet.threads import deferToThread

from chatnet.writethrough import WriteThroughServer, adopt


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
