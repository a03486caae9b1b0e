"""
How fast a file goes from one node's spool to an addressee's connection on
another node, three ways (docs/cluster.rst, "Files between nodes"):

* ``pull, streamed``: the addressee's node pulls over TCP and writes each
  data frame to the addressee's connection as it arrives (what chatnet does);
* ``pull, spooled``: it pulls the whole file into a local file first, then
  streams that to the addressee as a single node does;
* ``redis stream``: the owning node appends the chunks to a capped Redis
  stream, the addressee's node reads them (``XREAD BLOCK``), with credits
  so the stream's cap never drops a chunk.

Each run is in one process (the two nodes, the addressee's client and, for
the third, a real redis-server beside it), over loopback, with the file
on disk; the client parses every frame and hashes the data.  The test
prints MB/s and checks only that every run is intact (no timing asserts):
``pytest -s -m slow tests/integration/test_files_between_nodes_speed.py``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
import pytest_twisted
from support.redis import RedisServer
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.basic import Int32StringReceiver

from chatnet import codec
from chatnet.cluster.filepull import FileServer, Pull
from chatnet.cluster.keys import parse_url
from chatnet.cluster.redis import Redis
from chatnet.outbound import Outbound

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
SIZE = int(os.environ.get("CHATNET_FILES_MIB", "32")) * MIB
WAIT = 120.0


class Sink(Int32StringReceiver):
    """The addressee's client: parses data frames, hashes them, fires when all came."""

    MAX_LENGTH = codec.MAX_PAYLOAD

    def __init__(self, size: int, done: Deferred[str]) -> None:
        self.size = size
        self.got = 0
        self.hasher = hashlib.sha256()
        self.done = done
        self.first = 0.0

    def stringReceived(self, payload: bytes) -> None:
        if not self.got:
            self.first = time.perf_counter()
        data = memoryview(payload)[codec.DATA_HEADER:]
        self.got += len(data)
        self.hasher.update(data)
        if self.got >= self.size and not self.done.called:
            self.done.callback(self.hasher.hexdigest())


class Addressee:
    """A real loopback connection with an Outbound on the server's side, a Sink on the other."""

    async def open(self, size: int) -> None:
        self.done: Deferred[str] = Deferred()
        made: Deferred[Outbound] = Deferred()

        class Side(Protocol):
            def connectionMade(self) -> None:
                made.callback(Outbound(cast(Any, self.transport), reactor, 8 * MIB))

        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(Side))
        self.sink = Sink(size, self.done)
        self.client = await TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port) \
            .connect(Factory.forProtocol(lambda: self.sink))
        self.outbound = await made

    async def close(self) -> None:
        self.outbound.abort()
        cast(Any, self.client).transport.loseConnection()
        await self.port.stopListening()


class ToFile:
    """A FileOutbox that writes the data frames' bytes to a file (the spooled variant)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        self.file.write(memoryview(data)[4 + codec.DATA_HEADER:])
        if on_written is not None:
            on_written()

    def send_file(self, transfer: int, file: Any) -> Deferred[bytes]:
        raise NotImplementedError

    def cancel_file(self, transfer: int) -> None:
        raise NotImplementedError


def make_file(folder: Path, size: int) -> tuple[Path, str]:
    path = folder / "spooled.part"
    hasher = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(MIB, left))
            hasher.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return path, hasher.hexdigest()


async def pull_streamed(path: Path, size: int, sha: str) -> tuple[float, float]:
    server = FileServer(reactor)
    host, port = await server.listen(reactor, "tcp:0:interface=127.0.0.1")
    to = Addressee()
    await to.open(size)
    with open(path, "rb") as f:
        g = server.grant(1, "bob", "b", f, size, sha)
        start = time.perf_counter()
        await Pull(g.message(), to.outbound).start(reactor, host, port).addTimeout(WAIT, reactor)
        got = await to.done.addTimeout(WAIT, reactor)
        seconds = time.perf_counter() - start
    assert got == sha
    await to.close()
    await server.stop()
    return seconds, to.sink.first - start


async def pull_spooled(path: Path, size: int, sha: str, folder: Path) -> tuple[float, float]:
    server = FileServer(reactor)
    host, port = await server.listen(reactor, "tcp:0:interface=127.0.0.1")
    to = Addressee()
    await to.open(size)
    with open(path, "rb") as f, tempfile.TemporaryFile(dir=folder) as local:
        g = server.grant(1, "bob", "b", f, size, sha)
        start = time.perf_counter()
        await Pull(g.message(), ToFile(local)).start(reactor, host, port) \
            .addTimeout(WAIT, reactor)
        local.flush()
        local.seek(0)
        await to.outbound.send_file(1, local).addTimeout(WAIT, reactor)
        got = await to.done.addTimeout(WAIT, reactor)
        seconds = time.perf_counter() - start
    assert got == sha
    await to.close()
    await server.stop()
    return seconds, to.sink.first - start


async def redis_stream(path: Path, size: int, sha: str, url: str, credits: int = 16) -> tuple[float, float]:
    """Chunks through a capped stream; the reader grants ``credits`` chunks at a time."""
    writer, reader = (Redis(parse_url(url), reactor, timeout=5.0) for _ in range(2))
    key, acks = "test:file:1", "test:file:1:acks"
    to = Addressee()
    await to.open(size)
    chunks = -(-size // codec.MAX_DATA)

    async def produce() -> None:
        with open(path, "rb") as f:
            sent, granted, last_ack = 0, credits, "0"
            while sent < chunks:
                window = []
                while sent < granted and sent < chunks:  # pipelined, a window at a time
                    chunk = f.read(codec.MAX_DATA)
                    window.append(writer.command("XADD", key, "MAXLEN", "~", 4 * credits, "*",
                                                 "d", chunk))
                    sent += 1
                await gatherResults(window)
                if sent < chunks:
                    reply = await writer.command("XREAD", "BLOCK", 2000, "STREAMS", acks, last_ack)
                    for _, entries in reply or []:
                        for entry_id, _ in entries:
                            last_ack = entry_id
                            granted += credits

    async def consume() -> None:
        got, last = 0, "0"
        while got < chunks:
            reply = await reader.command("XREAD", "BLOCK", 2000, "COUNT", credits,
                                         "STREAMS", key, last)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    data = fields[1] if isinstance(fields, list) else fields["d"]
                    if isinstance(data, str):  # txredisapi decoded valid UTF-8
                        data = data.encode()
                    to.outbound.send(codec.data_header(1, len(data)) + data, lambda: None)
                    got += 1
                    if got % credits == 0:
                        await reader.command("XADD", acks, "*", "n", got)

    start = time.perf_counter()
    producing = Deferred.fromCoroutine(produce())
    await Deferred.fromCoroutine(consume()).addTimeout(WAIT, reactor)
    await producing
    got = await to.done.addTimeout(WAIT, reactor)
    seconds = time.perf_counter() - start
    assert got == sha
    first = to.sink.first - start
    await to.close()
    await writer.command("DEL", key, acks)
    await writer.disconnect()
    await reader.disconnect()
    return seconds, first


@pytest_twisted.ensureDeferred
async def test_files_between_nodes_speed(tmp_path: Path, redis_server: RedisServer) -> None:
    """Each way moves the file intact; the figures are printed."""
    path, sha = make_file(tmp_path, SIZE)
    assert redis_server.process is not None
    pid = redis_server.process.proc.pid
    ways: dict[str, Callable[[], Any]] = {
        "pull, streamed": lambda: pull_streamed(path, SIZE, sha),
        "pull, spooled": lambda: pull_spooled(path, SIZE, sha, tmp_path),
        "redis stream": lambda: redis_stream(path, SIZE, sha, redis_server.url),
    }
    print(f"\nfiles between nodes, {SIZE // MIB} MiB over loopback, one process, best of 3:")
    for name, way in ways.items():
        best, first, cpu = float("inf"), 0.0, 0.0
        for _ in range(3):
            before = cpu_seconds(pid)
            seconds, to_first = await way()
            if seconds < best:
                best, first, cpu = seconds, to_first, cpu_seconds(pid) - before
        print(f"  {name:15} {SIZE / MIB / best:8.1f} MiB/s  ({best:.2f} s, first byte after "
              f"{first * 1000:.1f} ms; redis-server CPU {cpu:.2f} s)")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
