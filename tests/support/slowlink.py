"""
A throttling TCP proxy: a real Twisted proxy on ``127.0.0.1`` port 0 that
paces the bytes of each direction to a set rate (about 200 KB/s), the way a
slow link would.

It reads from one side only while its paced buffer for that direction is
short (it pauses the reading transport otherwise), and its sockets have
small kernel buffers, so that, as on a real slow link, the sender's own
connection fills up and pushes back: what the sender queues on its side is
what a chat line typed during an upload waits behind.
"""

from __future__ import annotations

import socket
from typing import Any, cast

from twisted.internet import protocol
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.task import LoopingCall

#: Bytes a second each way.
RATE = 200_000
#: How often bytes are released, in seconds.
TICK = 0.01
#: Bytes held by the proxy per direction before it stops reading.
HELD = 4 * 1024
#: Kernel buffers of the proxy's sockets (a link holds little in flight).
SOCKET_BUFFER = 8 * 1024


def _small_buffers(handle: object) -> None:
    if isinstance(handle, socket.socket):
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        # An Ethernet-sized segment, not loopback's 64 KiB: a window of
        # SOCKET_BUFFER then holds several segments, as on a real link.
        handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)


class _Pipe:
    """One direction: bytes read from ``source``, written to ``sink`` at the rate."""

    def __init__(self, source: Any, rate: float) -> None:
        self.source = source
        self.sink: Any = None
        self.rate = rate
        self.held = bytearray()
        self.credit = 0.0
        self.paused = False
        self.closing = False
        #: Bytes read from the source, and passed on to the sink, so far.
        self.taken = 0
        self.passed = 0

    def take(self, data: bytes) -> None:
        self.taken += len(data)
        self.held += data
        if len(self.held) >= HELD and not self.paused:
            self.paused = True
            self.source.pauseProducing()

    def tick(self, dt: float) -> None:
        if self.sink is None:
            return
        self.credit = min(self.credit + self.rate * dt, self.rate * 0.05)
        n = min(int(self.credit), len(self.held))
        if n:
            chunk = bytes(self.held[:n])
            del self.held[:n]
            self.credit -= n
            self.passed += n
            self.sink.write(chunk)
        if self.paused and len(self.held) < HELD:
            self.paused = False
            self.source.resumeProducing()
        if self.closing and not self.held:
            self.sink.loseConnection()
            self.sink = None


class _Side(protocol.Protocol):
    transport: Any

    def __init__(self, link: _Link, outgoing: bool) -> None:
        self.link = link
        self.outgoing = outgoing

    def connectionMade(self) -> None:
        self.link.side_up(self)

    def dataReceived(self, data: bytes) -> None:
        self.link.pipe_from(self).take(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.link.side_lost(self)


class _Link:
    """One proxied connection: the client's side and the server's."""

    def __init__(self, proxy: SlowLink) -> None:
        self.proxy = proxy
        self.client: _Side | None = None
        self.server: _Side | None = None
        self.up: _Pipe | None = None  # client -> server
        self.down: _Pipe | None = None  # server -> client

    def side_up(self, side: _Side) -> None:
        if side.outgoing:
            self.server = side
            self.down = _Pipe(side.transport, self.proxy.rate)
            assert self.up is not None and self.client is not None
            self.up.sink = side.transport
            self.down.sink = self.client.transport
            self.client.transport.resumeProducing()
        else:
            self.client = side
            self.up = _Pipe(side.transport, self.proxy.rate)
            side.transport.pauseProducing()  # until the server side is up
            # Small buffers before connecting, so the window fits them from
            # the start; then the reactor adopts the connected socket.
            sock = socket.socket()
            _small_buffers(sock)
            sock.connect(("127.0.0.1", self.proxy.target))  # loopback: at once
            sock.setblocking(False)
            factory = protocol.Factory.forProtocol(lambda: _Side(self, True))
            self.proxy.reactor.adoptStreamConnection(sock.fileno(), socket.AF_INET, factory)
            sock.close()  # the reactor has its own copy of the descriptor
        self.proxy.links.add(self)

    def pipe_from(self, side: _Side) -> _Pipe:
        pipe = self.down if side.outgoing else self.up
        assert pipe is not None
        return pipe

    def side_lost(self, side: _Side) -> None:
        other = self.client if side.outgoing else self.server
        pipe = self.down if side.outgoing else self.up
        if pipe is not None:
            pipe.closing = True  # pass on what is held, then close
        if other is not None and pipe is None:
            other.transport.loseConnection()

    def tick(self, dt: float) -> None:
        for pipe in (self.up, self.down):
            if pipe is not None:
                pipe.tick(dt)


class SlowLink(protocol.Factory):
    """
    The proxy: ``listen()`` it, connect to ``port``; it connects on to
    ``127.0.0.1:target``.  ``stop()`` when done.
    """

    def __init__(self, reactor: Any, target: int, rate: float = RATE) -> None:
        self.reactor = reactor
        self.target = target
        self.rate = rate
        self.links: set[_Link] = set()
        self.port = 0
        self._listening: IListeningPort | None = None
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._last = 0.0
        self._call: IDelayedCall | None = None

    def buildProtocol(self, addr: Any) -> _Side:
        return _Side(_Link(self), False)

    def listen(self) -> int:
        self._listening = self.reactor.listenTCP(0, self, interface="127.0.0.1")
        # Set before any connection: accepted sockets inherit them, and the
        # window they advertise from the start fits them.
        _small_buffers(cast(Any, self._listening).socket)
        self.port = cast(Any, self._listening.getHost()).port
        self._last = self.reactor.seconds()
        self._loop.start(TICK, now=False)
        return self.port

    def _tick(self) -> None:
        now = self.reactor.seconds()
        dt, self._last = now - self._last, now
        for link in list(self.links):
            link.tick(dt)

    def stop(self) -> Any:
        if self._loop.running:
            self._loop.stop()
        for link in self.links:
            for side in (link.client, link.server):
                if side is not None:
                    side.transport.abortConnection()
        return self._listening.stopListening() if self._listening is not None else None
