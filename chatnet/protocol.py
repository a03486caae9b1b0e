"""
The wire: :class:`ChatServerProtocol` carries frames between one TCP (or TLS)
connection and one :class:`~chatnet.session.Session`, and
:class:`ChatServerFactory` builds one per connection around the server's
shared state.  Nothing here decides anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.python.failure import Failure

from chatnet import fastpath, frames
from chatnet.hub import Hub
from chatnet.inbound import FrameWatch, ReadGate
from chatnet.outbound import Outbound, StallWatch, WriteBatch
from chatnet.ratelimit import FloodGate
from chatnet.session import Session


def describe_peer(address: IAddress) -> str:
    """``127.0.0.1:5000`` for IP addresses, ``str(address)`` otherwise."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_loss(reason: Failure | None) -> str | None:
    """What a lost connection's ``reason`` says, for the ``DISCONNECT`` line."""
    if reason is None:
        return None
    if reason.check(ConnectionDone):
        return "closed by the client"
    return reason.getErrorMessage().rstrip(".")


class ChatServerProtocol(fastpath.FramingReceiver):
    """
    Frames in, frames out; the session decides.  On the fast path
    (:mod:`chatnet.fastpath`) data frames arrive as ``memoryview`` slices of
    the read and plain TCP connections write through.
    """

    MAX_LENGTH = frames.MAX_PAYLOAD

    factory: ChatServerFactory
    session: Session
    outbound: Outbound
    _deadline: IDelayedCall | None = None
    #: The factory's :class:`FrameWatch` (``None``: frames are not timed).
    _frame_watch: FrameWatch | None = None
    #: Whether part of a frame is buffered and timed by the frame watch.
    _partial = False
    #: The flood limit (``None``: off), and the timer ending its pause.
    _flood: FloodGate | None = None
    _flood_call: IDelayedCall | None = None
    _flooded = False

    def connectionMade(self) -> None:
        factory = self.factory
        hub = factory.hub
        if factory.fast_path:
            fastpath.adopt(self)
        # A small unsent backlog in the kernel: chat is not stuck behind
        # megabytes of file data.  (Twisted's buffer keeps its size: a file
        # chunk pauses the producer anyway, and a smaller one costs
        # loopback file speed.)
        fastpath.limit_backlog(self.transport, buffer=None)
        # Reading pauses for reasons: a request waiting for its answer (the
        # session, through the outbound) and the flood limit, without fighting.
        self.reading = ReadGate(self)
        self.outbound = Outbound(
            self.transport, factory.clock, hub.settings.max_output,
            self._slow_consumer, factory.batch, factory.stall_watch,
            reading=self.reading.handle("answer"),
        )
        self._frame_watch = factory.frame_watch
        settings = hub.settings
        if settings.flood_rate > 0:
            clock = factory.clock
            self._flood = FloodGate(settings.flood_rate, settings.flood_burst, clock.seconds())
            self._now = clock.seconds
        peer = self.transport.getPeer()
        self.session = Session(hub, self.outbound, describe_peer(peer), getattr(peer, "host", None))
        self._deadline = factory.clock.callLater(
            hub.settings.login_timeout, self._login_deadline
        )
        for option, on in (("setTcpNoDelay", not hub.settings.nagle), ("setTcpKeepAlive", True)):
            setter = getattr(self.transport, option, None)
            if setter is not None:  # TCP (and TLS over TCP); not in-memory transports
                setter(on)
        self.session.connected()

    def read_left(self, consumed: bool, left: int) -> None:
        """Time a frame begun in this read; forget one that completed (see FrameWatch)."""
        watch = self._frame_watch
        if watch is None:
            return
        if left and not self.paused:  # part of a frame is left
            if consumed or not self._partial:  # a frame completed: what is left began now
                self._partial = True
                watch.started(self, self._frame_expired)
        elif self._partial:
            self._partial = False
            watch.done(self)

    def stringReceived(self, payload: bytes) -> None:
        session = self.session
        frame = frames.decode_from_client(payload)
        session.received(frame)
        if self._deadline is not None and session.user is not None:
            self._cancel_deadline()
        flood = self._flood
        if flood is not None and type(frame) is not frames.DataFrame:
            wait = flood.spend(self._now())
            if wait:
                self._slow_down(wait)

    def lengthLimitExceeded(self, length: int) -> None:
        self.session.oversized(length)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel_deadline()
        if self._flood_call is not None:
            self._flood_call.cancel()
            self._flood_call = None
        self.reading.close()
        self._unwatch()
        self.outbound.connection_lost()
        self.session.lost(describe_loss(reason))

    def _login_deadline(self) -> None:
        self._deadline = None
        self.session.login_expired()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def pauseProducing(self) -> None:
        """Stop reading; a frame begun is not timed while we do not read."""
        super().pauseProducing()
        self._unwatch()

    def _unwatch(self) -> None:
        watch = self._frame_watch
        if self._partial and watch is not None:  # (_partial: there is a watch)
            self._partial = False
            watch.done(self)

    def pause_reading(self, reason: str) -> None:
        """Stop reading from the peer until ``reason`` is withdrawn (see :class:`ReadGate`)."""
        self.reading.pause(reason)

    def resume_reading(self, reason: str) -> None:
        """Withdraw ``reason``; reading resumes once no other reason holds."""
        self.reading.resume(reason)

    def _slow_down(self, wait: float) -> None:
        """Past the flood limit's burst: read nothing more for ``wait`` seconds."""
        if self._flood_call is not None:
            return
        self.reading.pause("flood")
        self._flood_call = self.factory.clock.callLater(wait, self._flood_over)
        if not self._flooded:  # logged once per connection
            self._flooded = True
            flood = self._flood
            assert flood is not None
            self.session.flooding(flood.rate, flood.burst)

    def _flood_over(self) -> None:
        self._flood_call = None
        self.reading.resume("flood")

    def _frame_expired(self, seconds: float) -> None:
        self._partial = False
        self.session.frame_expired(seconds, len(self.recvd))

    def _slow_consumer(self, why: str) -> None:
        self.session.slow_consumer(why)


if TYPE_CHECKING:  # Twisted's factories are generic from 25.5 on
    _ServerFactory = ServerFactory[ChatServerProtocol]
else:
    _ServerFactory = ServerFactory


class ChatServerFactory(_ServerFactory):
    """
    Builds a :class:`ChatServerProtocol` per connection; holds the server's
    users, rooms and transfers (in ``hub``).

    :param clock: the reactor, or a :class:`~twisted.internet.task.Clock` in
        tests.
    :param batch_writes: coalesce each connection's control frames per
        reactor turn (see :class:`~chatnet.outbound.WriteBatch`).
    """

    protocol = ChatServerProtocol
    noisy = False  # the service logs where it listens; the audit log the rest

    def __init__(self, hub: Hub, clock: IReactorTime, batch_writes: bool = True) -> None:
        self.hub = hub
        self.clock = clock
        self.batch = WriteBatch(clock) if batch_writes else None
        settings = hub.settings
        stall = settings.stall_timeout
        self.stall_watch = StallWatch(clock, stall) if stall > 0 else None
        frame = settings.frame_timeout
        self.frame_watch = FrameWatch(clock, frame) if frame > 0 else None
        #: zero-copy framing and write-through TCP (:mod:`chatnet.fastpath`)
        self.fast_path = fastpath.requested(hub.settings.fast_path)
