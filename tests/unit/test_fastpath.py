"""
Tests for :mod:`chatnet.fastpath`: zero-copy framing on and off, the checks
that fall back to Twisted's plain path, the switches that turn it off, and
the rule that no other module touches Twisted's private attributes.
"""

from __future__ import annotations

import errno
import re
import struct
from pathlib import Path

import pytest
from twisted.internet import main, tcp
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import IntNStringReceiver

from chatnet import codec, fastpath, frames
from chatnet.config import Settings
from chatnet.protocol import ChatServerProtocol
from chatnet.testing import make_server

ROOT = Path(__file__).resolve().parents[2]

#: Private attributes of Twisted classes that chatnet's speed-ups rely on,
#: and the class switch; only chatnet/fastpath.py may name them.
PRIVATE = re.compile(
    r"_unprocessed|_compatibilityOffset|_tempDataLen|_tempDataBuffer|\bdataBuffer\b"
    r"|_writeDisconnected|__class__\s*=(?!=)|from twisted(\.\w+)*\s+import\s+_|twisted(\.\w+)*\._[A-Za-z]"
)


class Recording(ChatServerProtocol):
    """Records the payloads the framing hands over, instead of acting on them."""

    def __init__(self, zero_copy: bool = True) -> None:
        self.zero_copy = zero_copy
        self.payloads: list[bytes | memoryview] = []
        self.oversized: list[int] = []

    def stringReceived(self, payload: bytes) -> None:
        self.payloads.append(payload)

    def lengthLimitExceeded(self, length: int) -> None:
        self.oversized.append(length)


def _wire_of_mixed_frames() -> tuple[bytes, list[bytes]]:
    payloads = [
        frames.Ping(1).payload(),
        frames.DataFrame(7, bytes(range(256)) * 256).payload(),  # a full 64 KiB chunk
        frames.DataFrame(7, b"z").payload(),
        frames.Broadcast(2, "héllo").payload(),
        frames.DataFrame(9, b"\x00" * 1000).payload(),
    ]
    return b"".join(struct.pack(">I", len(p)) + p for p in payloads), payloads


def test_twisted_allows_the_fast_path() -> None:
    """The Twisted versions CI runs (24.7.0, the newest) pass both checks."""
    assert fastpath.FRAMING
    assert fastpath.WRITE_THROUGH


def test_data_frames_are_views_and_control_frames_bytes() -> None:
    """Zero-copy: data payloads come as memoryviews of the read, control payloads as bytes."""
    wire, payloads = _wire_of_mixed_frames()
    proto = Recording()
    proto.dataReceived(wire)
    assert [bytes(p) for p in proto.payloads] == payloads
    assert [type(p) for p in proto.payloads] == [bytes, memoryview, memoryview, bytes, memoryview]
    assert proto.recvd == b""


def test_plain_framing_gives_bytes() -> None:
    """Without zero-copy, Twisted's own framing hands over bytes only."""
    wire, payloads = _wire_of_mixed_frames()
    proto = Recording(zero_copy=False)
    proto.dataReceived(wire)
    assert proto.payloads == payloads
    assert {type(p) for p in proto.payloads} == {bytes}


@pytest.mark.parametrize("zero_copy", [True, False])
@pytest.mark.parametrize("step", [1, 3, 4, 5, 4096, 65_540, 65_545, 100_000])
def test_framing_across_reads(step: int, zero_copy: bool) -> None:
    """Frames cut at any byte, across reads of any size, come out whole and in order."""
    wire, payloads = _wire_of_mixed_frames()
    proto = Recording(zero_copy)
    for i in range(0, len(wire), step):
        proto.dataReceived(wire[i : i + step])
    assert [bytes(p) for p in proto.payloads] == payloads
    assert proto.recvd == b""


def test_a_read_completing_a_frame_is_parsed_in_place() -> None:
    """
    A read that completes a frame begun earlier: that frame alone is put
    together; the data frames after it are views of the read itself.
    """
    wire, payloads = _wire_of_mixed_frames()
    cut = 4 + len(payloads[0]) + 1000  # inside the 64 KiB data frame
    proto = Recording()
    proto.dataReceived(wire[:cut])
    second = wire[cut:]
    proto.dataReceived(second)
    assert [bytes(p) for p in proto.payloads] == payloads
    later = proto.payloads[2]
    assert isinstance(later, memoryview) and later.obj is second
    assert proto.recvd == b""


class PausingAfterFirst(Recording):
    """Pauses itself once it has been handed one frame."""

    def stringReceived(self, payload: bytes) -> None:
        super().stringReceived(payload)
        self.paused = True


def test_pausing_on_the_completed_frame_keeps_the_rest_of_the_read() -> None:
    """A pause while handling the completed frame leaves the rest of the read buffered."""
    wire, payloads = _wire_of_mixed_frames()
    proto = PausingAfterFirst()
    proto.dataReceived(wire[:10])
    proto.dataReceived(wire[10:])
    assert [bytes(p) for p in proto.payloads] == payloads[:1]
    assert proto.recvd == wire[4 + len(payloads[0]):]
    for n in range(2, len(payloads) + 1):
        proto.paused = False
        proto.dataReceived(b"")
        assert [bytes(p) for p in proto.payloads] == payloads[:n]


def test_switching_paths_mid_frame() -> None:
    """Both framings keep the unparsed rest in the same place: either continues the other."""
    wire, payloads = _wire_of_mixed_frames()
    proto = Recording()
    for n, i in enumerate(range(0, len(wire), 1000)):
        proto.zero_copy = n % 2 == 0
        proto.dataReceived(wire[i : i + 1000])
    assert [bytes(p) for p in proto.payloads] == payloads


@pytest.mark.parametrize("zero_copy", [True, False])
def test_oversized_prefix_after_good_frames(zero_copy: bool) -> None:
    """
    Frames before an oversized prefix are handed over; the limit is reported.
    (After it the session is closed and ignores whatever else is parsed.)
    """
    good = frames.Ping(1).payload()
    wire = struct.pack(">I", len(good)) + good + struct.pack(">I", codec.MAX_PAYLOAD + 1) + b"xx"
    proto = Recording(zero_copy)
    proto.dataReceived(wire)
    assert proto.payloads == [good]
    assert proto.oversized == [codec.MAX_PAYLOAD + 1]
    if zero_copy:
        proto.dataReceived(b"more")  # not reprocessing the frame already handed over
        assert proto.payloads == [good]


@pytest.mark.parametrize("zero_copy", [True, False])
def test_paused_framing_keeps_the_rest(zero_copy: bool) -> None:
    """While paused, nothing is handed over; the bytes wait for the next read."""
    wire, payloads = _wire_of_mixed_frames()
    proto = Recording(zero_copy)
    proto.paused = True  # what pauseProducing sets (it also pauses the transport)
    proto.dataReceived(wire)
    assert proto.payloads == []
    proto.paused = False
    proto.dataReceived(b"")
    assert [bytes(p) for p in proto.payloads] == payloads


def _server_connection(monkeypatch: pytest.MonkeyPatch, fast_path: bool) -> ChatServerProtocol:
    monkeypatch.delenv(fastpath.ENVIRONMENT, raising=False)
    server = make_server(Settings(fast_path=fast_path))
    return server.connect().protocol


def test_server_connections_use_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _server_connection(monkeypatch, True).zero_copy


def test_no_fast_path_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--no-fast-path`` (Settings.fast_path false): Twisted's framing."""
    assert not _server_connection(monkeypatch, False).zero_copy


@pytest.mark.parametrize("value", ["0", "off", "no", "false", " OFF "])
def test_environment_turns_it_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(fastpath.ENVIRONMENT, value)
    assert not fastpath.requested()
    assert not make_server(Settings()).connect().protocol.zero_copy


@pytest.mark.parametrize("value", ["1", "", "yes"])
def test_environment_leaves_it_on(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(fastpath.ENVIRONMENT, value)
    assert fastpath.requested()
    assert not fastpath.requested(False)


def test_framing_check_fails_when_twisted_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Twisted whose framing keeps its buffer elsewhere fails the check."""

    def elsewhere(self: IntNStringReceiver, data: bytes) -> None:
        self.__dict__["buffer"] = data

    monkeypatch.setattr(IntNStringReceiver, "dataReceived", elsewhere)
    assert not fastpath._framing_works()


def test_write_through_check_fails_when_twisted_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tcp.Server with a write of its own fails the check."""

    def write(self: tcp.Server, data: bytes) -> None:
        raise AssertionError("never called")

    assert fastpath._write_through_works()
    monkeypatch.setattr(tcp.Server, "write", write, raising=False)
    assert not fastpath._write_through_works()


def test_unavailable_parts_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the checks failed, adopt leaves Twisted's path in place."""
    monkeypatch.setattr(fastpath, "FRAMING", False)
    monkeypatch.setattr(fastpath, "WRITE_THROUGH", False)
    proto = Recording(zero_copy=False)
    proto.transport = StringTransport()
    fastpath.adopt(proto)
    assert not proto.zero_copy


def test_describe() -> None:
    assert "zero-copy framing on" in fastpath.describe(True)
    assert fastpath.describe(False).startswith("fast path off")


def test_no_private_twisted_attribute_outside_fastpath() -> None:
    """Only chatnet/fastpath.py names Twisted's private attributes or modules."""
    here = Path(__file__).resolve()
    allowed = {ROOT / "chatnet" / "fastpath.py", here}
    found = []
    for top in ("chatnet", "tests", "bench", "twisted"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path in allowed:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if PRIVATE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_grep_finds_what_it_should() -> None:
    for line in (
        "self._unprocessed = b''",
        "t._tempDataLen",
        "transport.__class__ = X",
        "from twisted.internet import _newtls",
        "import twisted.internet._sslverify",
    ):
        assert PRIVATE.search(line), line
    assert not PRIVATE.search("if type(x).__class__ == y")
    assert not PRIVATE.search("twisted.__version__")


def test_limit_backlog_sets_the_low_water_mark_and_the_buffer() -> None:
    """TCP_NOTSENT_LOWAT on the socket (where the platform has it) and a small bufferSize."""
    import socket

    from twisted.internet import abstract

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    sock = socket.create_connection(listener.getsockname())
    try:

        class Transport(abstract.FileDescriptor):
            connected = True

            def getHandle(self) -> socket.socket:
                return sock

            def startWriting(self) -> None:  # no reactor here
                pass

        transport = Transport()
        set_option = fastpath.limit_backlog(transport)
        assert transport.bufferSize == fastpath.BUFFER_SIZE
        option = fastpath._NOTSENT_LOWAT_OPTION
        if option is not None:
            assert set_option
            assert sock.getsockopt(socket.IPPROTO_TCP, option) == fastpath.NOTSENT_LOWAT
        assert fastpath.unsent(transport) == 0
        transport.write(b"x" * 100)  # buffered by Twisted, not yet sent
        assert fastpath.unsent(transport) == 100
        keep = Transport()
        fastpath.limit_backlog(keep, buffer=None)
        assert keep.bufferSize == abstract.FileDescriptor.bufferSize

        class TLSWrapper:
            """Like TLSMemoryBIOProtocol: its handle is the TLS connection."""

            def __init__(self, below: Transport) -> None:
                self.transport = below

            def getHandle(self) -> object:
                return object()

        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1 << 20)  # undo the call above
        below = Transport()
        assert fastpath.limit_backlog(TLSWrapper(below)) is (option is not None)
        assert below.bufferSize == fastpath.BUFFER_SIZE
        if option is not None:
            assert sock.getsockopt(socket.IPPROTO_TCP, option) == fastpath.NOTSENT_LOWAT
    finally:
        sock.close()
        listener.close()


def test_limit_backlog_leaves_other_transports_alone() -> None:
    from twisted.internet.testing import StringTransport

    assert fastpath.limit_backlog(StringTransport()) is False
    assert fastpath.unsent(StringTransport()) == 0


class Queued:
    """A socket with ``available`` bytes queued: what each recv asked for."""

    def __init__(self, available: int, fail: int | None = None) -> None:
        self.available = available
        self.fail = fail
        self.asked: list[int] = []

    def recv(self, size: int) -> bytes:
        self.asked.append(size)
        if self.fail is not None:
            raise OSError(self.fail, "failed")
        if not self.available:
            raise BlockingIOError(errno.EWOULDBLOCK, "would block")
        n = min(size, self.available)
        self.available -= n
        return b"x" * n


class Counting:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def dataReceived(self, data: bytes) -> None:
        self.sizes.append(len(data))


def _reading(sock: Queued) -> tuple[fastpath.WriteThroughServer, Counting]:
    server = object.__new__(fastpath.WriteThroughServer)  # no real socket needed
    server.socket = sock  # type: ignore[assignment]
    server.protocol = protocol = Counting()  # type: ignore[assignment]
    return server, protocol


def test_reads_grow_while_they_come_full_and_shrink_back() -> None:
    """After a read that filled the buffer the next asks for more; after one that did not, less."""
    size, bulk = fastpath.WriteThroughServer.bufferSize, fastpath.WriteThroughServer.BULK_READ
    sock = Queued(size + bulk + 10)
    server, protocol = _reading(sock)
    for _ in range(4):
        assert server.doRead() is None
    assert sock.asked == [size, bulk, bulk, size]  # the last would block
    assert protocol.sizes == [size, bulk, 10]
    assert "_read_size" not in vars(server)  # nothing kept once back to the usual size


def test_read_errors_and_end_of_stream() -> None:
    """A failed read loses the connection; an empty one ends it, as in Twisted."""
    server, _ = _reading(Queued(0, fail=errno.ECONNRESET))
    assert server.doRead() is main.CONNECTION_LOST
    closed = Queued(0)
    closed.recv = lambda size: b""  # type: ignore[method-assign]
    server, protocol = _reading(closed)
    assert server.doRead() is main.CONNECTION_DONE
    assert protocol.sizes == []
