"""
One connection's outgoing side: control frames and file streams sharing one
transport, with backpressure and the slow-consumer limit.

:class:`Outbound` is the only producer registered on its transport (a
transport takes one).  Control frames are written straight through while the
transport keeps up and queued while it has paused us; file deliveries are
:class:`~twisted.protocols.basic.FileSender` pull producers, each behind a small
consumer of ours, and are asked for a chunk only when no control frame waits
and the transport is not paused, in turn, so chat keeps flowing between
chunks and several files share the line fairly.  A slow addressee therefore
slows only the reading of its own spool files.

Files never count against the unsent-output limit (they are pulled, not
pushed); control frames do.  Past the limit the connection is aborted.  So
is a connection whose transport has kept us paused for ``stall_timeout``
seconds on end (its client reads nothing at all): one shared
:class:`StallWatch` times every paused connection.
"""

from __future__ import annotations

import io
import os
import stat
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IProducer,
    IPullProducer,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from twisted.protocols.basic import FileSender
from zope.interface import implementer

from chatnet import codec, fastpath
from chatnet.deadlines import Deadlines


class Reading(Protocol):
    """What reads a connection, and can stop for a while (its protocol)."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


class Readable(Protocol):
    """What a file stream reads: an open file, or a wrapper of one."""

    def read(self, size: int, /) -> bytes: ...


class ChunkSender(FileSender):
    """
    A :class:`FileSender` that sends a file as data frames of one transfer:
    64 KiB chunks, the most one frame carries, each written with its 9-byte
    frame header as a two-part ``writeSequence`` (no 64 KiB concatenation).

    :param direct: the transport's :meth:`~chatnet.fastpath.WriteThroughServer.write_file`
        (:func:`chatnet.fastpath.file_writer`): when given, and the file is
        a regular file, each frame is handed to it first, which sends the
        chunk from the file with ``sendfile`` when it can; a frame it
        refuses is read and written as above.
    """

    CHUNK_SIZE = codec.MAX_DATA

    def __init__(
        self, transfer: int, chunk: int = codec.MAX_DATA,
        direct: Callable[[bytes, int, int], bool] | None = None,
    ) -> None:
        self.transfer = transfer
        self.CHUNK_SIZE = chunk
        self._direct = direct
        #: The file's descriptor and its bytes not sent yet, on the direct path.
        self._fd = -1
        self._left = 0

    def beginFileTransfer(
        self, file: Readable, consumer: IConsumer, transform: None = None
    ) -> Deferred[bytes]:
        """Start sending ``file``; fires with its last byte once all is written."""
        if self._direct is not None:
            self._fd, self._left = _regular_file(file)
        d: Deferred[bytes] = FileSender.beginFileTransfer(self, file, consumer)
        return d

    def resumeProducing(self) -> None:
        file = self.file
        if file and self._fd >= 0:
            count = min(self.CHUNK_SIZE, self._left)
            if not count:
                FileSender.resumeProducing(self)  # end of file: unregister, fire
                return
            direct = self._direct
            assert direct is not None
            if direct(codec.data_header(self.transfer, count), self._fd, count):
                self._left -= count
                return
            chunk = file.read(count)  # the same offset: sendfile moves it as read does
            self._left -= len(chunk)
        else:
            chunk = file.read(self.CHUNK_SIZE) if file else b""
        if not chunk:
            FileSender.resumeProducing(self)  # end of file: unregister, fire
            return
        self.consumer.writeSequence([codec.data_header(self.transfer, len(chunk)), chunk])


def _regular_file(file: Readable) -> tuple[int, int]:
    """
    ``(descriptor, bytes from its offset to its end)`` of an open regular
    file, unbuffered (a buffered reader with bytes read ahead, or anything
    else: ``(-1, 0)``).
    """
    fileno = getattr(file, "fileno", None)
    if fileno is None or not isinstance(file, io.FileIO):
        return -1, 0
    try:
        fd = fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return -1, 0
        return fd, max(0, st.st_size - os.lseek(fd, 0, os.SEEK_CUR))
    except (OSError, ValueError):
        return -1, 0


@implementer(IConsumer)
class _FileStream:
    """The consumer one :class:`ChunkSender` writes its framed chunks to."""

    __slots__ = ("outbound", "transfer", "producer")

    def __init__(self, outbound: Outbound, transfer: int) -> None:
        self.outbound = outbound
        self.transfer = transfer
        self.producer: IPullProducer | None = None

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        # only ever a ChunkSender: a pull producer
        self.producer = cast(IPullProducer, producer)
        streams = self.outbound._streams
        assert streams is not None
        streams.append(self)

    def unregisterProducer(self) -> None:
        self.producer = None
        self.outbound._forget(self)

    def write(self, data: bytes) -> None:
        self.outbound._transport.write(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.outbound._transport.writeSequence(data)


class WriteBatch:
    """
    Coalesces the writes of one reactor turn.

    A broadcast reaches each member as one more small write; a member of a
    busy room gets many in one turn.  Each :class:`Outbound` given a batch
    keeps its control frames of the turn in a list and the batch hands each
    connection its frames as one write when the turn ends (a ``callLater(0)``,
    which runs before the reactor next waits for I/O): one ``send`` per
    connection per turn instead of one per frame.
    """

    __slots__ = ("_clock", "_dirty", "_call")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._dirty: list[Outbound] = []
        self._call: IDelayedCall | None = None

    def mark(self, outbound: Outbound) -> None:
        if self._call is None:
            self._call = self._clock.callLater(0, self.flush)
        self._dirty.append(outbound)

    def flush(self) -> None:
        """Write every connection's pending frames now."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        while self._dirty:
            dirty, self._dirty = self._dirty, []
            for outbound in dirty:
                outbound._write_batch()


class StallWatch:
    """
    Aborts connections whose output has been blocked too long.

    An :class:`Outbound` reports when its transport pauses it and when it
    resumes it; one timer, for the oldest pause, serves every connection
    (:class:`~chatnet.deadlines.Deadlines`).  A client that reads slowly
    still resumes its transport now and then and is never cut; one that
    reads nothing is, ``timeout`` seconds after its output stopped moving.
    """

    __slots__ = ("_deadlines",)

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self._deadlines: Deadlines[Outbound] = Deadlines(clock, timeout)

    @property
    def timeout(self) -> float:
        return self._deadlines.timeout

    def __len__(self) -> int:
        """Outbounds blocked now."""
        return len(self._deadlines)

    def blocked(self, outbound: Outbound) -> None:
        """``outbound``'s transport paused it (timed from the first pause)."""
        timeout = self._deadlines.timeout
        self._deadlines.start(outbound, lambda _: outbound.stalled(timeout))

    def unblocked(self, outbound: Outbound) -> None:
        self._deadlines.stop(outbound)


@implementer(IPushProducer)
class Outbound:
    """
    The single producer on ``transport``.

    :param max_output: bytes of control frames that may wait unsent before
        the connection counts as a slow consumer.
    :param on_overflow: called with why (``"8392392 bytes unsent"``) just
        before the connection is aborted for being a slow consumer.
    :param batch: coalesce control frames per reactor turn through this
        :class:`WriteBatch`; without one, every frame is written at once.
    :param stall_watch: report pauses to this :class:`StallWatch`; without
        one, a connection may stay paused for ever.
    :param reading: what reads this connection (its protocol), paused and
        resumed by :meth:`pause_reading` and :meth:`resume_reading`;
        without it, the transport itself.
    """

    __slots__ = (
        "_transport", "_clock", "_max_output", "_on_overflow", "_queue",
        "_queued", "_paused", "_closed", "_streams", "_by_transfer",
        "_abort_call", "_batch", "_pending", "_stall_watch", "_reading", "__weakref__",
    )

    def __init__(
        self,
        transport: ITransport,
        clock: IReactorTime,
        max_output: int,
        on_overflow: Callable[[str], None] = lambda why: None,
        batch: WriteBatch | None = None,
        stall_watch: StallWatch | None = None,
        reading: Reading | None = None,
    ) -> None:
        self._transport = transport
        self._reading = reading
        self._clock = clock
        self._max_output = max_output
        self._on_overflow = on_overflow
        # The queue and the stream list are made on first use: most
        # connections never need them, and an empty deque costs 600 bytes.
        self._queue: deque[bytes | tuple[bytes, Callable[[], None]]] | None = None
        self._queued = 0
        self._paused = False
        self._closed = False
        self._streams: deque[_FileStream] | None = None
        self._by_transfer: dict[int, _FileStream] | None = None
        self._abort_call: IDelayedCall | None = None
        self._batch = batch
        #: Frames of this turn not yet written (older than anything queued).
        self._pending: list[bytes] | None = None
        self._stall_watch = stall_watch
        # Twisted's transports are consumers too, though ITransport does not say so
        cast(IConsumer, transport).registerProducer(self, True)

    @property
    def unsent(self) -> int:
        """Bytes of control frames waiting for the transport."""
        return self._queued

    @property
    def closed(self) -> bool:
        return self._closed

    # sending

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        """
        Write ``data`` (whole frames) now, or queue it while the transport
        is paused.  ``on_written`` runs once ``data`` is handed to the
        transport.
        """
        if self._closed:
            return
        if not self._paused and not self._queue:
            if on_written is None and self._batch is not None:
                pending = self._pending
                if pending is None:
                    self._pending = [data]
                    self._batch.mark(self)
                else:
                    pending.append(data)
                return
            self._write_batch()
            self._transport.write(data)
            if on_written is not None:
                on_written()
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(data if on_written is None else (data, on_written))
        self._queued += len(data)
        if self._queued > self._max_output:
            unsent = self._queued
            self.abort()
            self._on_overflow(f"{unsent} bytes unsent")

    def send_file(
        self, transfer: int, file: Readable, chunk: int = codec.MAX_DATA
    ) -> Deferred[bytes]:
        """
        Stream ``file`` as data frames of ``transfer``, of ``chunk`` bytes
        each (the last may be shorter).

        :returns: fires when the last chunk was handed to the transport;
            fails if the stream is cancelled or the connection goes away.
        """
        stream = _FileStream(self, transfer)
        if self._by_transfer is None:
            self._by_transfer = {}
            self._streams = deque()
        self._by_transfer[transfer] = stream
        sender = ChunkSender(transfer, chunk, fastpath.file_writer(self._transport))
        d = sender.beginFileTransfer(file, stream)
        if self._closed:
            self._stop_stream(stream)
        else:
            self._pump()
        return d

    def cancel_file(self, transfer: int) -> None:
        """Stop streaming ``transfer``; its Deferred fails."""
        stream = self._by_transfer.get(transfer) if self._by_transfer else None
        if stream is not None:
            self._stop_stream(stream)

    # the incoming side, for a session waiting for an answer

    def pause_reading(self) -> None:
        """Stop reading from the peer (a request waits for its answer)."""
        if not self._closed:
            (self._reading or cast(IPushProducer, self._transport)).pauseProducing()

    def resume_reading(self) -> None:
        """Read from the peer again."""
        if not self._closed:
            (self._reading or cast(IPushProducer, self._transport)).resumeProducing()

    # IPushProducer, called by the transport

    def pauseProducing(self) -> None:
        self._paused = True
        if self._stall_watch is not None and not self._closed:
            self._stall_watch.blocked(self)

    def resumeProducing(self) -> None:
        self._paused = False
        if self._stall_watch is not None:
            self._stall_watch.unblocked(self)
        self._pump()

    def stopProducing(self) -> None:
        """The connection is gone: drop the queue, stop every file stream."""
        self._shut()

    # closing

    def close(self, grace: float) -> None:
        """
        Hand everything queued to the transport and close it; abort it if it
        has not closed after ``grace`` seconds (a peer that never reads).
        """
        if self._closed:
            return
        # Everything queued goes to the transport, paused or not: it buffers
        # it and sends what the peer reads before the grace period ends.
        self._paused = False
        self._flush()
        self._shut()
        cast(IConsumer, self._transport).unregisterProducer()
        self._transport.loseConnection()
        self._abort_call = self._clock.callLater(grace, self._abort_now)

    def abort(self) -> None:
        """Drop everything unsent and abort the connection now."""
        if self._closed:
            return
        self._shut()
        cast(IConsumer, self._transport).unregisterProducer()
        self._abort_now()

    def stalled(self, seconds: float) -> None:
        """The transport has kept us paused for ``seconds``: a slow consumer."""
        if self._closed:
            return
        self.abort()
        self._on_overflow(f"read nothing for {seconds:g}s")

    def connection_lost(self) -> None:
        """The protocol saw the connection go: cancel any pending abort."""
        self._shut()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None

    # internals

    def _abort_now(self) -> None:
        self._abort_call = None
        abort = getattr(self._transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:  # pragma: no cover - every TCP/TLS/UNIX transport has it
            self._transport.loseConnection()

    def _shut(self) -> None:
        self._closed = True
        if self._stall_watch is not None:
            self._stall_watch.unblocked(self)
        self._queue = None
        self._pending = None
        self._queued = 0
        for stream in list(self._streams or ()):
            self._stop_stream(stream)

    def _stop_stream(self, stream: _FileStream) -> None:
        producer = stream.producer
        self._forget(stream)
        stream.producer = None
        if producer is not None:
            producer.stopProducing()

    def _forget(self, stream: _FileStream) -> None:
        streams, by_transfer = self._streams, self._by_transfer
        if streams is not None and stream in streams:
            streams.remove(stream)
        if by_transfer is not None and by_transfer.get(stream.transfer) is stream:
            del by_transfer[stream.transfer]

    def _write_batch(self) -> None:
        """Write this turn's pending frames as one write."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            if not self._closed:
                self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def _flush(self) -> None:
        """Write pending, then queued, control frames until the transport pauses us."""
        self._write_batch()
        queue = self._queue
        if not queue:
            return
        write = self._transport.write
        while queue and not self._paused:
            item = queue.popleft()
            if type(item) is tuple:
                data, on_written = item
                self._queued -= len(data)
                write(data)
                on_written()
            else:
                self._queued -= len(item)
                write(item)  # type: ignore[arg-type]  # mypy does not narrow on type() is

    def _pump(self) -> None:
        """Control frames first, then one chunk per file stream in turn."""
        self._flush()
        streams = self._streams
        while streams and not self._paused and not self._queue and not self._closed:
            stream = streams[0]
            streams.rotate(-1)
            producer = stream.producer
            if producer is not None:
                producer.resumeProducing()
