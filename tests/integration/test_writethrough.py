"""
The write-through transport of :mod:`chatnet.fastpath` over real loopback
sockets: bytes arrive whole and in order.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import cast

import pytest
import pytest_twisted
from twisted.internet import defer, error, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort, ITransport
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.tcp import Server
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from chatnet import fastpath
from chatnet.fastpath import FramingReceiver, WriteThroughServer


def adopt(transport: object) -> None:
    """What the server does in connectionMade, for a protocol of any kind."""
    receiver = FramingReceiver()
    receiver.transport = cast(ITransport, transport)  # any object, on purpose
    fastpath.adopt(receiver)


def listen(build: Callable[[], Protocol]) -> tuple[IListeningPort, int]:
    """Listen on 127.0.0.1, a free port; the port and its number."""
    factory = ServerFactory()
    factory.buildProtocol = lambda addr: build()  # type: ignore[method-assign]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    address = port.getHost()
    assert isinstance(address, IPv4Address)
    return port, address.port


Part = bytes | list[bytes]


class Burst(Protocol):
    """Writes a fixed series of writes and writeSequences on connect."""

    transport: ITransport

    def __init__(self, parts: list[Part], adopted: defer.Deferred[type]) -> None:
        self.parts = parts
        self.adopted = adopted

    def connectionMade(self) -> None:
        adopt(self.transport)
        self.adopted.callback(type(self.transport))
        for part in self.parts:
            if isinstance(part, list):
                self.transport.writeSequence(part)
            else:
                self.transport.write(part)
        self.transport.loseConnection()


def read_all(port: int, expected: int) -> bytes:
    """Connect and read until the server closes (the burst overflows the send buffer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        chunks: list[bytes] = []
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
    parts: list[Part] = [
        big[0],
        [b"hd", big[1]],
        [big[2], b"", b"x" * 65536],
        big[3],
        [b"end"],
    ]
    expected = b"".join(p if isinstance(p, bytes) else b"".join(p) for p in parts)
    adopted: defer.Deferred[type] = defer.Deferred()
    port, number = listen(lambda: Burst(parts, adopted))
    try:
        got = await deferToThread(read_all, number, len(expected))
        assert (await adopted) is WriteThroughServer
        assert got == expected
    finally:
        await defer.maybeDeferred(port.stopListening)


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
    port, number = listen(lambda: Burst([b"x"], adopted))
    try:
        got = await deferToThread(read_all, number, 1)
        assert (await adopted) is Server
        assert got == b"x"
    finally:
        await defer.maybeDeferred(port.stopListening)


class WriteAfterShutdown(Protocol):
    """Shuts its own socket for writing, then writes: the send fails with EPIPE."""

    transport: Server

    def __init__(self, lost: defer.Deferred[tuple[bool, Failure]]) -> None:
        self.lost = lost
        self.wrote = False

    def connectionMade(self) -> None:
        adopt(self.transport)
        self.transport.socket.shutdown(socket.SHUT_WR)
        self.transport.write(b"frame")
        self.transport.writeSequence([b"more", b"frames"])
        self.wrote = True  # neither call raised

    def connectionLost(self, reason: Failure | None = None) -> None:
        assert reason is not None
        self.lost.callback((self.wrote, reason))


@pytest_twisted.ensureDeferred
async def test_a_failing_send_ends_the_connection_not_the_caller() -> None:
    """A write that the kernel refuses goes the buffered way, which reports the loss."""
    lost: defer.Deferred[tuple[bool, Failure]] = defer.Deferred()
    port, number = listen(lambda: WriteAfterShutdown(lost))
    try:
        client = await deferToThread(socket.create_connection, ("127.0.0.1", number), 10)
        try:
            wrote, reason = await lost.addTimeout(10, reactor)
            assert wrote
            assert reason.check(error.ConnectionLost, error.ConnectionDone)
        finally:
            client.close()
    finally:
        await defer.maybeDeferred(port.stopListening)


class Named(Protocol):
    """Records what Twisted's transport said of itself before and after adopt."""

    transport: ITransport

    def __init__(self, seen: defer.Deferred[tuple[str, str, str, str, dict[str, object]]]) -> None:
        self.seen = seen

    def connectionMade(self) -> None:
        transport = cast(Server, self.transport)
        before = transport.logPrefix(), repr(transport)
        adopt(transport)
        self.seen.callback((*before, transport.logPrefix(), repr(transport), vars(transport)))
        transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_adopted_connection_names_itself_the_same_without_keeping_the_strings() -> None:
    """
    The log prefix and repr of an adopted connection are Twisted's, made on
    demand: the connection no longer keeps the two strings (memory per
    connection).
    """
    seen: defer.Deferred[tuple[str, str, str, str, dict[str, object]]] = defer.Deferred()
    port, number = listen(lambda: Named(seen))
    try:
        await deferToThread(read_all, number, 0)
        prefix, rep, adopted_prefix, adopted_rep, attributes = await seen
        assert (adopted_prefix, adopted_rep) == (prefix, rep)
        assert prefix.startswith("Named,") and rep.startswith("<Named #")
        assert "logstr" not in attributes and "repstr" not in attributes
    finally:
        await defer.maybeDeferred(port.stopListening)


class FileBurst(Protocol):
    """
    Sends a file as framed chunks on connect: each through ``write_file``,
    and the ones it refuses (the socket full, or bytes buffered) read and
    written the plain way, as a delivery does.
    """

    transport: Server

    def __init__(self, path: str, chunk: int, result: defer.Deferred[tuple[int, int]]) -> None:
        self.path = path
        self.chunk = chunk
        self.result = result

    def connectionMade(self) -> None:
        adopt(self.transport)
        # a small send buffer: the socket fills up long before the end
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        writer = fastpath.file_writer(self.transport)
        assert writer is not None
        direct = refused = 0
        fd = os.open(self.path, os.O_RDONLY)
        try:
            left = os.fstat(fd).st_size
            while left:
                count = min(self.chunk, left)
                header = count.to_bytes(4, "big")
                if writer(header, fd, count):
                    direct += 1
                else:
                    refused += 1
                    self.transport.writeSequence([header, os.read(fd, count)])
                left -= count
            assert os.lseek(fd, 0, os.SEEK_CUR) == os.fstat(fd).st_size
        finally:
            os.close(fd)
        self.transport.loseConnection()
        self.result.callback((direct, refused))


@pytest_twisted.ensureDeferred
async def test_file_frames_sent_from_the_file_arrive_intact(tmp_path: os.PathLike[str]) -> None:
    """
    Frames whose bytes go with sendfile, partly and whole, mixed with the
    ones written the plain way once the socket is full, arrive byte for byte
    and in order.
    """
    chunk = 65536
    data = os.urandom(2 * 1024 * 1024 + 123)
    path = os.path.join(tmp_path, "spooled")
    with open(path, "wb") as f:
        f.write(data)
    expected = b"".join(
        min(chunk, len(data) - at).to_bytes(4, "big") + data[at:at + chunk]
        for at in range(0, len(data), chunk)
    )
    result: defer.Deferred[tuple[int, int]] = defer.Deferred()
    port, number = listen(lambda: FileBurst(path, chunk, result))
    try:
        got = await deferToThread(read_all, number, len(expected))
        direct, refused = await result
        assert got == expected
        # some went from the file, and the socket filled up before the end
        assert direct >= 1 and refused >= 1
    finally:
        await defer.maybeDeferred(port.stopListening)


class Custom(Named):
    """A protocol whose log prefix is its own: Twisted's string is then kept."""

    def logPrefix(self) -> str:
        return "custom"


@pytest_twisted.ensureDeferred
async def test_a_prefix_it_cannot_make_is_kept() -> None:
    """When Twisted's log prefix is not the one made on demand, it stays as it was."""
    seen: defer.Deferred[tuple[str, str, str, str, dict[str, object]]] = defer.Deferred()
    port, number = listen(lambda: Custom(seen))
    try:
        await deferToThread(read_all, number, 0)
        prefix, _, adopted_prefix, _, attributes = await seen
        assert adopted_prefix == prefix and prefix.startswith("custom,")
        assert "logstr" in attributes and "repstr" not in attributes
    finally:
        await defer.maybeDeferred(port.stopListening)


def test_no_file_writer_off_the_fast_path() -> None:
    """A transport that is no write-through one has no file writer."""
    assert fastpath.file_writer(object()) is None
