"""
The fast path: every use chatnet makes of Twisted's private attributes.

Four speed-ups reach below Twisted's public API, and this module is the
only place that does (``tests/unit/test_fastpath.py`` fails if another module
names one of these attributes):

*Zero-copy framing* (:class:`FramingReceiver`).  Twisted's
``IntNStringReceiver.dataReceived`` hands every payload over as a ``bytes``
copy.  Ours hands a data frame's payload (first byte 0) over as a
``memoryview`` slice of the bytes read, so each 64 KiB chunk of an upload is
copied once less on its way to the spool file and the hash.  It keeps the
unparsed rest of a read where Twisted keeps it, in ``_unprocessed`` (with
``_compatibilityOffset`` at 0), so the public ``recvd`` attribute, pausing,
and Twisted's own ``dataReceived`` keep working on the same buffer.

*Write-through TCP* (:class:`WriteThroughServer`).  Twisted's TCP transport
buffers every ``write`` and sends it when the reactor next reports the
socket writable: for a lone write to an idle connection that is an
``epoll_ctl`` to watch the socket, a turn of the loop, the ``send``, and
another ``epoll_ctl`` to stop watching.  When nothing is buffered
(``_tempDataLen``, ``dataBuffer`` and ``offset`` of
``twisted.internet.abstract.FileDescriptor``) the socket almost always has
room, so the write-through transport calls ``send`` at once and falls back
to the buffered path for whatever the kernel did not take (or on any error,
which the buffered path then reports the usual way).  :func:`adopt` makes an
accepted plain TCP connection one by switching its ``__class__`` (same
layout, two methods more); TLS and other transports are left alone.
Together with :class:`~chatnet.outbound.WriteBatch` a busy connection costs
one ``send`` per reactor turn and no ``epoll_ctl`` at all.  Its reads are
Twisted's but for the size: after a read that filled the 256 KiB buffer
(an upload in full flow) the next asks for 1 MiB.

*Data frames from the spool file* (:meth:`WriteThroughServer.write_file`,
found by :func:`file_writer`).  A delivery's
:class:`~chatnet.outbound.ChunkSender` offers each data frame to the
write-through transport first: when nothing is buffered it sends the 9-byte
header (``MSG_MORE``) and then the chunk with ``sendfile`` straight from
the spool file's pages, so the chunk is neither read into Python nor copied
into the socket.  A frame it refuses is read and written as bytes as on the
plain path, from the same file offset.

*Direct dispatch* (:func:`dispatch_directly`).  Twisted's epoll reactor
calls each ready descriptor's ``doRead`` or ``doWrite`` through
``twisted.python.log.callWithLogger``, which asks the descriptor for its log
prefix and pushes a copy of the legacy log context for the call: about a
sixth of the server's time when every client sends one message at a time.
The reactor's ``doIteration`` is replaced, on the reactor object only, by
the same loop without it; an exception that escapes ``_doReadOrWrite`` is
still logged with the descriptor's prefix, as Twisted logs it.  What is lost
is that prefix as the ``system`` of legacy (``twisted.python.log``) lines
written during a read: chatnet's own lines use ``twisted.logger``.

Checked against Twisted 24.7.0 (the oldest ``setup.cfg`` allows) and
26.10.0 (:data:`CHECKED`).  Rather than trust version numbers, each part
checks on import that Twisted still works the way it relies on
(:data:`FRAMING`, :data:`WRITE_THROUGH`): the framing by feeding a probe
receiver through both Twisted's ``dataReceived`` and ours, the transport by
checking that ``tcp.Server`` still writes through ``FileDescriptor``'s
buffers.  A part whose check fails is not used; chatnet then runs on
Twisted's plain path, only slower.

It can be turned off: ``twistd chatnet --no-fast-path`` (the server's
:attr:`~chatnet.config.Settings.fast_path`), or ``CHATNET_FAST_PATH=0`` in
the environment for everything in the process (how CI runs the test suite
on the plain path).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import types
from collections.abc import Callable
from typing import Any, cast

from twisted.internet import abstract, main, tcp
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ITransport
from twisted.protocols.basic import Int32StringReceiver
from twisted.python import log

import twisted

#: Twisted releases this module was checked against, oldest and newest.
CHECKED = ("24.7.0", "26.10.0")

#: The environment variable that turns the fast path off (``0``, ``no``,
#: ``off`` or ``false``) for every server in the process.
ENVIRONMENT = "CHATNET_FAST_PATH"

_unpack_length = struct.Struct(">I").unpack_from


def requested(setting: bool = True) -> bool:
    """
    Whether to use the fast path: ``setting`` (the server's
    ``--no-fast-path`` turns it off), unless :data:`ENVIRONMENT` says no.
    """
    value = os.environ.get(ENVIRONMENT, "").strip().lower()
    return setting and value not in ("0", "no", "off", "false")


class FramingReceiver(Int32StringReceiver):
    """
    :class:`~twisted.protocols.basic.Int32StringReceiver` that, while
    :attr:`zero_copy` is true, hands data frames (payloads starting with a 0
    byte) to ``stringReceived`` as ``memoryview`` slices of the read rather
    than ``bytes`` copies.  Control frames are ``bytes`` either way.
    """

    #: Set by :func:`adopt`; false: Twisted's own ``dataReceived``.
    zero_copy: bool = False
    #: Whether the last read left part of a frame buffered (see :meth:`read_left`).
    left_over: bool = False
    #: Set by ``makeConnection`` before anything else runs.
    transport: ITransport

    # Typed versions of what Twisted leaves unannotated.

    def makeConnection(self, transport: ITransport) -> None:
        Int32StringReceiver.makeConnection(self, transport)

    def stringReceived(self, string: bytes) -> None:
        """A whole frame's payload (a ``memoryview`` for data frames, see above)."""
        raise NotImplementedError

    def read_left(self, consumed: bool, left: int) -> None:
        """
        Called after a read that leaves ``left`` bytes buffered (part of a
        frame, or whole frames while paused), and after the first read that
        leaves none again; ``consumed``: whether the read completed a frame.
        The common read, ending on a frame boundary after another that did,
        costs one attribute test.  Override it (the frame deadline does).
        """

    def lengthLimitExceeded(self, length: int) -> None:
        Int32StringReceiver.lengthLimitExceeded(self, length)

    def pauseProducing(self) -> None:
        Int32StringReceiver.pauseProducing(self)

    def resumeProducing(self) -> None:
        Int32StringReceiver.resumeProducing(self)

    def dataReceived(self, data: bytes) -> None:
        if not self.zero_copy:
            before = len(self.recvd) + len(data)
            Int32StringReceiver.dataReceived(self, data)
            left = len(self.recvd)
            if left or self.left_over:
                self.left_over = left > 0
                self.read_left(left != before, left)
            return
        buffered = self._unprocessed
        alldata: bytes = data
        offset = 0
        if buffered:
            need = self._completing(buffered, len(data))
            if need and not self.paused:
                # The frame begun in an earlier read ends in this one:
                # complete it alone (at most one frame's bytes copied), and
                # parse the rest of this read where it lies, instead of
                # copying all of it behind the buffered bytes.
                self._parse(buffered + memoryview(data)[:need], 0)
                offset = need
            else:
                alldata = buffered + data
        end = self._parse(alldata, offset)
        if end < 0:
            return
        rest = self._unprocessed = alldata[end:] if end else alldata
        self._compatibilityOffset = 0
        if rest or self.left_over:
            self.left_over = len(rest) > 0
            self.read_left(end > 0, len(rest))

    def _completing(self, buffered: bytes, size: int) -> int:
        """
        The bytes of a read of ``size`` that complete the frame ``buffered``
        begins, when they are in it (0 when not: the length is not all
        there yet, is too long, or the frame goes on past the read).
        """
        if len(buffered) < 4:
            return 0
        (length,) = _unpack_length(buffered, 0)
        need = 4 + length - len(buffered)
        return need if length <= self.MAX_LENGTH and 0 < need <= size else 0

    def _parse(self, alldata: bytes, offset: int) -> int:
        """
        Hand over the whole frames of ``alldata`` from ``offset`` on while
        not paused; :returns: where the first one not handed over begins,
        or -1 after a length past the limit (then handled).
        """
        available = len(alldata)
        view = None
        while available - offset >= 4 and not self.paused:
            (length,) = _unpack_length(alldata, offset)
            if length > self.MAX_LENGTH:
                self._unprocessed = alldata[offset:]
                self._compatibilityOffset = 0
                self.lengthLimitExceeded(length)
                return -1
            start = offset + 4
            end = start + length
            if end > available:
                break
            payload: bytes | memoryview
            if length and alldata[start] == 0:  # a data frame
                if view is None:
                    view = memoryview(alldata)
                payload = view[start:end]
            else:
                payload = alldata[start:end]
            offset = end
            # By design a data frame's payload is a memoryview where
            # Twisted's signature says bytes: the decoder slices it into
            # DataFrame.data (bytes | memoryview) for the spool and hashlib.
            self.stringReceived(payload)  # type: ignore[arg-type]
        return offset


class WriteThroughServer(tcp.Server):
    """:class:`twisted.internet.tcp.Server` that sends at once when idle."""

    #: Read up to 256 KiB a ``recv`` (Twisted's default is 64 KiB): a file
    #: upload's 64 KiB data frames then cost a fraction of a read each.
    #: (Twisted also pauses the producer when more than this is buffered
    #: for writing.)
    bufferSize = 256 * 1024

    #: After a read that filled :attr:`bufferSize` (an upload in full
    #: flow), read up to this much the next time: fewer reads and turns of
    #: the loop per byte.  Back to :attr:`bufferSize` after a read that
    #: did not fill it, so a chat connection never asks for more.
    BULK_READ = 1024 * 1024

    #: What the next read asks for.
    _read_size = bufferSize

    # Twisted's own doRead, but for the size; abortConnection still replaces
    # it on the instance (mypy sees that mixin's assignment as the signature).
    def doRead(self) -> ConnectionLost | ConnectionDone | None:  # type: ignore[override]
        size = self._read_size
        try:
            data = self.socket.recv(size)
        except OSError as e:
            if e.errno == errno.EWOULDBLOCK:
                return None
            return main.CONNECTION_LOST
        if len(data) == size:
            if size != self.BULK_READ:
                self._read_size = self.BULK_READ
        elif size == self.BULK_READ:
            # back to the class's size: a connection keeps nothing of it
            self.__dict__.pop("_read_size", None)
        return self._dataReceived(data)

    # Twisted keeps both strings below per connection (``logstr`` and
    # ``repstr``, 166 bytes); :func:`adopt` drops them when these make the
    # same, so they are made only when asked for.

    def logPrefix(self) -> str:
        # asked on every read event, by the reactor: kept cheap
        kept: str | None = self.__dict__.get("logstr")
        return kept if kept is not None else self._made_prefix()

    def _made_prefix(self) -> str:
        protocol = getattr(self, "protocol", None)  # gone once the connection is
        owner = protocol.__class__.__name__ if protocol is not None else "Server"
        return f"{owner},{self.sessionno},{self.hostname}"

    def __repr__(self) -> str:
        kept: str | None = self.__dict__.get("repstr")
        return kept if kept is not None else self._made_repr()

    def _made_repr(self) -> str:
        protocol = getattr(self, "protocol", None)
        name = protocol.__class__.__name__ if protocol is not None else "Server"
        return f"<{name} #{self.sessionno} on {self.server._realPortNumber}>"

    def write(self, data: bytes) -> None:
        if (
            self.connected
            and not self.disconnecting
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
            and type(data) is bytes
        ):
            # socket.send itself, not writeSomeData: no memoryview, no
            # EINTR loop (Python retries EINTR), on the path of every frame.
            try:
                sent = self.socket.send(data)
            except OSError:
                sent = 0  # would block, or an error the buffered path reports
            if sent:
                if sent == len(data):
                    return
                data = data[sent:]
        tcp.Server.write(self, data)

    def writeSequence(self, iovec: list[bytes]) -> None:  # type: ignore[override]
        # Twisted declares Iterable[bytes]; every caller in chatnet passes a
        # list, which sendmsg needs (and a generator could not be re-read by
        # the buffered path below).
        if (
            self.connected
            and not self.disconnecting
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
        ):
            try:
                sent = self.socket.sendmsg(iovec)  # one gathered send, no join
            except OSError:
                sent = 0  # would block, or an error the buffered path reports
            if sent:
                rest: list[bytes] = []
                for part in iovec:
                    if sent >= len(part):
                        sent -= len(part)
                    else:
                        rest.append(part[sent:] if sent else part)
                        sent = 0
                if not rest:
                    return
                iovec = rest
        tcp.Server.writeSequence(self, iovec)

    def write_file(self, header: bytes, fd: int, count: int) -> bool:
        """
        Write ``header`` and the next ``count`` bytes of the regular file
        ``fd`` (from its offset, which advances by ``count``), as
        ``writeSequence([header, os.read(fd, count)])`` would, but with
        ``sendfile``: the bytes go from the page cache to the socket without
        being read into Python.  Only while nothing is buffered, like
        :meth:`write`; whatever the kernel does not take of the file's
        bytes is read and buffered the usual way (and an error is left to
        the buffered path to report).

        :returns: false, having written and read nothing, when the
            transport has data buffered or the socket takes nothing now
            (the caller writes the frame itself).
        """
        if not (
            self.connected
            and not self.disconnecting
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
        ):
            return False
        sock = self.socket
        try:
            # MSG_MORE: the header waits for the file's bytes, one segment
            sent = sock.send(header, _MSG_MORE)
        except OSError:
            return False
        if sent < len(header):
            tcp.Server.writeSequence(self, [header[sent:], os.read(fd, count)])
            return True
        try:
            done = os.sendfile(sock.fileno(), fd, None, count)
        except OSError:
            done = 0  # would block, or an error the buffered path reports
        if done < count:
            tcp.Server.write(self, os.read(fd, count - done))
        return True


#: ``MSG_MORE`` where the platform has it (Linux).
_MSG_MORE: int = getattr(socket, "MSG_MORE", 0)


def file_writer(transport: object) -> Callable[[bytes, int, int], bool] | None:
    """
    ``transport``'s :meth:`WriteThroughServer.write_file` when it is on the
    fast path and the platform has ``sendfile`` (``None`` otherwise: write
    data frames as bytes).
    """
    if isinstance(transport, WriteThroughServer) and _SENDFILE:
        return transport.write_file
    return None


#: Whether ``os.sendfile`` can send from a file's current offset (Linux).
_SENDFILE = hasattr(os, "sendfile") and sys.platform.startswith("linux")


def _framing_works() -> bool:
    """Twisted's and our ``dataReceived`` share one buffer, as we rely on."""

    class Probe(FramingReceiver):
        zero_copy = True

        def __init__(self) -> None:
            self.got: list[bytes] = []

        def stringReceived(self, string: bytes) -> None:
            self.got.append(bytes(string))

    try:
        probe = Probe()
        Int32StringReceiver.dataReceived(probe, b"\x00\x00\x00\x03ab")
        if probe._unprocessed != b"\x00\x00\x00\x03ab" or probe._compatibilityOffset:
            return False
        probe.dataReceived(b"c\x00\x00\x00\x02\x00")
        if probe.got != [b"abc"] or probe.recvd != b"\x00\x00\x00\x02\x00":
            return False
        Int32StringReceiver.dataReceived(probe, b"d")
        return probe.got == [b"abc", b"\x00d"] and probe.recvd == b""
    except Exception:  # anything unexpected: Twisted changed; use its path
        return False


#: The classes whose ``write`` and ``writeSequence`` ``tcp.Server`` may
#: use: the buffers, and the TLS switch in front of them (TLS is never
#: started on a chatnet connection; :func:`adopt` checks).
_KNOWN_WRITERS = {
    "twisted.internet.abstract.FileDescriptor",
    "twisted.internet._newtls.ConnectionMixin",
}


def _write_through_works() -> bool:
    """``tcp.Server`` still writes through ``FileDescriptor``'s buffers."""
    fd = abstract.FileDescriptor
    writers = {
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in tcp.Server.__mro__
        if "write" in vars(cls) or "writeSequence" in vars(cls)
    }
    init = getattr(fd.__init__, "__code__", None)
    return (
        writers <= _KNOWN_WRITERS
        and isinstance(getattr(fd, "dataBuffer", None), bytes)
        and getattr(fd, "offset", None) == 0
        and init is not None
        and "_tempDataLen" in init.co_names
        and getattr(tcp.Server, "TLS", False) is False
        and not hasattr(tcp.Server, "__slots__")
        and callable(getattr(tcp.Server, "_dataReceived", None))
    )


#: Whether zero-copy framing works with the installed Twisted.
FRAMING: bool = _framing_works()
#: Whether the write-through transport works with the installed Twisted.
WRITE_THROUGH: bool = _write_through_works()


#: The names Twisted's ``EPollReactor.doPoll`` uses, when it is the loop
#: :func:`_direct_poll` replaces (24.7.0 to 26.10.0).
_DO_POLL_NAMES = frozenset({
    "errno", "EINTR", "OSError", "_poller", "poll", "len", "_selectables", "KeyError",
    "_doReadOrWrite", "log", "callWithLogger",
})


def _direct_dispatch_works() -> bool:
    """``EPollReactor.doPoll`` is still the loop :func:`_direct_poll` replaces."""
    try:
        from twisted.internet import epollreactor
    except ImportError:  # not Linux
        return False
    do_poll = getattr(epollreactor.EPollReactor, "doPoll", None)
    code = getattr(do_poll, "__code__", None)
    return (
        code is not None
        and set(code.co_names) == _DO_POLL_NAMES
        and epollreactor.EPollReactor.doIteration is do_poll
    )


#: Whether direct dispatch fits the installed Twisted's epoll reactor.
DIRECT_DISPATCH: bool = _direct_dispatch_works()


def _direct_poll(self: Any, timeout: float | None) -> None:
    """``EPollReactor.doPoll`` without a log context per ready descriptor."""
    if timeout is None:
        timeout = -1  # wait until something happens
    try:
        ready = self._poller.poll(timeout, len(self._selectables))
    except OSError as err:
        if err.errno == errno.EINTR:
            return
        raise
    selectables = self._selectables
    handle = self._doReadOrWrite
    for fd, event in ready:
        selectable = selectables.get(fd)
        if selectable is not None:
            try:
                handle(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                # what callWithLogger would have done
                log.callWithLogger(selectable, _reraise, sys.exc_info())


def _reraise(info: Any) -> None:
    raise info[1].with_traceback(info[2])


def dispatch_directly(reactor: object) -> bool:
    """
    Make ``reactor`` (when it is Twisted's epoll reactor itself, and
    :data:`DIRECT_DISPATCH`) dispatch ready descriptors without a log
    context each.  Idempotent.

    :returns: whether ``reactor`` dispatches directly now.
    """
    from twisted.internet import epollreactor

    if not DIRECT_DISPATCH or type(reactor) is not epollreactor.EPollReactor:
        return False
    direct = types.MethodType(_direct_poll, reactor)
    vars(reactor)["doIteration"] = vars(reactor)["doPoll"] = direct
    return True


def dispatches_directly(reactor: object) -> bool:
    """Whether :func:`dispatch_directly` has been applied to ``reactor``."""
    poll = vars(reactor).get("doIteration") if hasattr(reactor, "__dict__") else None
    return getattr(poll, "__func__", None) is _direct_poll


def adopt(receiver: FramingReceiver) -> None:
    """
    Put a newly connected receiver and its transport on the fast path, as
    far as the installed Twisted allows (call from ``connectionMade``, when
    :func:`requested`).
    """
    if FRAMING:
        receiver.zero_copy = True
    transport = receiver.transport
    if (
        WRITE_THROUGH
        and type(transport) is tcp.Server
        and not transport.TLS
        # the buffers write() reads, set in FileDescriptor.__init__
        and isinstance(getattr(transport, "_tempDataLen", None), int)
    ):
        transport.__class__ = WriteThroughServer
        adopted = cast(WriteThroughServer, transport)
        attributes = vars(adopted)
        if attributes.get("logstr") == adopted._made_prefix():
            del attributes["logstr"]
        if attributes.get("repstr") == adopted._made_repr():
            del attributes["repstr"]


#: Unsent bytes the kernel may hold for one socket before it reports it
#: unwritable (``TCP_NOTSENT_LOWAT``), and bytes Twisted may buffer before it
#: pauses the connection's producer.  Without them the kernel takes
#: megabytes and Twisted 64 KiB before the producer hears of a slow link,
#: and a chat frame or a ``cancel`` waits behind all of it (10 s at
#: 200 KB/s); with them, at most about one data frame and these few KiB.
NOTSENT_LOWAT = 16 * 1024
BUFFER_SIZE = 16 * 1024

#: ``TCP_NOTSENT_LOWAT`` where the platform has it (Linux since 3.12 and
#: macOS; Python names it from 3.12 on Linux); ``None`` elsewhere.
_NOTSENT_LOWAT_OPTION: int | None = getattr(
    socket, "TCP_NOTSENT_LOWAT", 25 if sys.platform.startswith("linux") else None
)


def limit_backlog(
    transport: object, lowat: int = NOTSENT_LOWAT, buffer: int | None = BUFFER_SIZE
) -> bool:
    """
    Keep the unsent output of a TCP connection small, so that what is
    written now (a chat frame) does not wait behind megabytes of file data
    already handed over: ``TCP_NOTSENT_LOWAT`` on its socket where the
    platform has it, and a small ``bufferSize`` (the public attribute of
    ``twisted.internet.abstract.FileDescriptor`` past which Twisted pauses
    the producer).  Under TLS (a wrapper such as ``TLSMemoryBIOProtocol``,
    whose handle is no socket) the TCP transport it wraps is limited;
    other transports (in-memory) are left alone.

    :returns: whether the socket option was set.
    """
    inner = getattr(transport, "transport", None)
    if inner is not None and not isinstance(transport, abstract.FileDescriptor):
        get_handle = getattr(transport, "getHandle", None)
        if get_handle is None or not isinstance(get_handle(), socket.socket):
            return limit_backlog(inner, lowat, buffer)
    if buffer is not None and isinstance(transport, abstract.FileDescriptor) and isinstance(
        getattr(transport, "bufferSize", None), int
    ):
        transport.bufferSize = buffer
    get_handle = getattr(transport, "getHandle", None)
    option = _NOTSENT_LOWAT_OPTION
    if get_handle is None or option is None:
        return False
    handle = get_handle()
    if not isinstance(handle, socket.socket) or handle.type != socket.SOCK_STREAM:
        return False
    try:
        handle.setsockopt(socket.IPPROTO_TCP, option, lowat)
    except OSError:  # an older kernel
        return False
    return True


def unsent(transport: object) -> int:
    """
    Bytes written to ``transport`` that have not left this machine yet:
    Twisted's buffer, plus the socket's send queue (``SIOCOUTQ``, Linux:
    bytes not yet acknowledged by the peer).  0 where it cannot tell.
    """
    total = 0
    if isinstance(transport, abstract.FileDescriptor):
        buffered = getattr(transport, "_tempDataLen", None)
        data = getattr(transport, "dataBuffer", None)
        offset = getattr(transport, "offset", None)
        if isinstance(buffered, int) and isinstance(offset, int) and data is not None:
            total += buffered + len(data) - offset
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is not None and _SIOCOUTQ is not None:
        handle = get_handle()
        if isinstance(handle, socket.socket):
            try:
                raw = fcntl.ioctl(handle.fileno(), _SIOCOUTQ, b"\0\0\0\0")
            except OSError:
                return total
            total += struct.unpack("i", raw)[0]
    return total


try:
    import fcntl
    import termios

    #: ``SIOCOUTQ`` is ``TIOCOUTQ`` on Linux.
    _SIOCOUTQ: int | None = termios.TIOCOUTQ if sys.platform.startswith("linux") else None
except ImportError:  # pragma: no cover - not on POSIX
    _SIOCOUTQ = None


def describe(on: bool, reactor: object = None) -> str:
    """
    One line for the log: whether the fast path is on, and which parts
    (direct dispatch as far as ``reactor`` tells, when given).
    """
    if not on:
        return f"fast path off (Twisted {twisted.__version__})"
    parts = [
        f"zero-copy framing {'on' if FRAMING else 'unavailable'}",
        f"write-through TCP {'on' if WRITE_THROUGH else 'unavailable'}",
    ]
    if reactor is not None:
        if dispatches_directly(reactor):
            parts.append("direct dispatch on")
        else:
            parts.append(
                "direct dispatch unavailable" if not DIRECT_DISPATCH
                else f"direct dispatch not on {type(reactor).__name__}"
            )
    return f"fast path on Twisted {twisted.__version__}: {', '.join(parts)}"
