"""
The client core's connection: its life and the state front ends read.

:class:`CoreConnection` is the base of
:class:`~chatnet.client.core.ClientCore`: it holds the transport and its one
:class:`~chatnet.outbound.Outbound`, writes numbered requests, keeps the
subscribers and tells them events, knows when the core is idle, keeps the
connection alive, and winds everything up when the connection is lost.
The request API is in :mod:`chatnet.client.core_requests`, the incoming
frames in :mod:`chatnet.client.core`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import fastpath, frames
from chatnet.client.advice import lost_text
from chatnet.client.commands import Limits
from chatnet.client.downloads import Download, Downloads, DownloadStore
from chatnet.client.events import ClientEvent, ConnectionClosed, Disconnected
from chatnet.client.keepalive import Keepalive
from chatnet.client.replies import Replies
from chatnet.client.roster import Roster
from chatnet.client.transfers import Transfer
from chatnet.client.uploads import Upload, Uploads, fail
from chatnet.outbound import Outbound

__all__ = ["CLOSE_GRACE", "RECEIPT_WAIT", "CoreConnection"]

log = Logger()

#: Seconds :meth:`CoreConnection.close` lets the transport flush before aborting.
CLOSE_GRACE = 2.0
#: Seconds a sent file keeps the core :meth:`~CoreConnection.busy` while the
#: addressee's receipt (``file-received``) may still come.
RECEIPT_WAIT = 10.0


class CoreConnection:
    """
    One connection's life and state; see :class:`~chatnet.client.core.ClientCore`
    for the parameters.
    """

    def __init__(
        self, clock: IReactorTime, downloads: str = "downloads", login_timeout: float = 10.0,
        offers: bool = False, keepalive: float = 30.0,
    ) -> None:
        self.clock = clock
        self.login_timeout = login_timeout
        #: Log in with ``offers``: each file is offered (``file-offer``) and
        #: waits for :meth:`accept` or :meth:`decline`.  Otherwise files come
        #: straight away.
        self.offers = offers
        #: Why we closed the connection ourselves, when we did.
        self._why: str | None = None
        self.transport: ITransport | None = None
        self._outbound: Outbound | None = None
        self.roster = Roster()
        self.replies = Replies()
        self.outgoing = Uploads(clock, self.emit, self.request, self._unsent)
        self.incoming = Downloads(downloads, clock.seconds, self.emit)
        self.shutdown_message: str | None = None
        self._closed_waiters: list[Deferred[Disconnected]] = []
        self._listeners: list[Callable[[ClientEvent], None]] = []
        self._frame_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._idle: list[Deferred[None]] = []
        self._exiting = False
        #: Readable frames from the server so far: none means we never really
        #: connected (junk from some other protocol does not count).
        self.frames_received = 0
        self._gone: Disconnected | None = None
        #: Pings a silent server once logged in (``keepalive`` seconds of
        #: silence; 0: never), and gives up on one that stopped answering.
        self.keepalive = (
            Keepalive(clock, self._keepalive_ping, self._give_up, idle=keepalive)
            if keepalive > 0 else None
        )
        #: Ids of keepalive pings: their replies are nobody's business.
        self._quiet: set[int] = set()

    # -- what the front ends read -------------------------------------------

    @property
    def username(self) -> str | None:
        return self.roster.username

    @property
    def server(self) -> str | None:
        return self.roster.server

    @property
    def limits(self) -> Limits:
        return self.roster.limits

    @property
    def room(self) -> str | None:
        return self.roster.room

    @property
    def members(self) -> list[str]:
        return self.roster.members

    @property
    def users(self) -> set[str]:
        return self.roster.users

    @property
    def rooms(self) -> set[str]:
        return self.roster.rooms

    @property
    def uploads(self) -> dict[int, Upload]:
        return self.outgoing.by_transfer

    @property
    def downloads(self) -> dict[int, Download]:
        return self.incoming.by_transfer

    @property
    def store(self) -> DownloadStore:
        return self.incoming.store

    @property
    def outbound(self) -> Outbound | None:
        """The connection's one producer: requests first, then file data."""
        return self._outbound

    # -- subscriptions ---------------------------------------------------

    def subscribe(self, listener: Callable[[ClientEvent], None]) -> None:
        """Call ``listener`` with every :data:`ClientEvent`."""
        self._listeners.append(listener)

    def on_frame(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """
        Call ``listener`` with every control frame received, as its JSON
        object (``--json``).
        """
        self._frame_listeners.append(listener)

    def emit(self, event: ClientEvent) -> None:
        """Tell every subscriber; one failing listener does not stop the rest."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.failure("listener failed on {event!r}", event=event)

    # -- connection --------------------------------------------------------

    def connected(self, transport: ITransport) -> None:
        """
        The connection is up: requests and uploads go to ``transport``
        through one :class:`~chatnet.outbound.Outbound` (the server's
        multiplexer: control frames are never stuck behind file data).

        After a lost connection this starts a new one (a reconnect): what
        belonged to the old one is forgotten, what the front ends show
        (the roster, finished transfers) stays until the login replaces it.
        """
        if self._gone is not None:
            self._why = None
            self._gone = None
            self.shutdown_message = None
            self._exiting = False
            self.frames_received = 0
            self.replies = Replies()
        self.transport = transport
        # Our own unsent requests are never "a slow consumer" to drop.
        self._outbound = Outbound(transport, self.clock, max_output=sys.maxsize)
        self.outgoing.connected(self._outbound)

    def _unsent(self) -> int:
        """Bytes written that have not left this machine yet (0: cannot tell)."""
        return fastpath.unsent(self.transport) if self.transport is not None else 0

    @property
    def never_answered(self) -> bool:
        """We asked and the server never said a thing: not really connected."""
        return self.replies.asked and self.frames_received == 0

    @property
    def gone(self) -> Disconnected | None:
        """How the connection ended, or ``None`` while it lasts."""
        return self._gone

    @property
    def is_connected(self) -> bool:
        return self.transport is not None and self._gone is None

    def send_frame(self, frame: frames.Request) -> None:
        """Write one request as it is (``id`` included)."""
        if self._outbound is None or self._gone is not None:
            raise ConnectionClosed("Not connected")
        self._outbound.send(frame.wire())

    def request(self, request: frames.Request) -> Deferred[frames.Reply]:
        """
        Send ``request`` with a fresh ``id``.

        :returns: fires with the reply as its class (a
            :class:`~chatnet.frames.JoinOk` for a :class:`~chatnet.frames.Join`
            ...), fails with :class:`~chatnet.errors.ChatError` or
            :class:`ConnectionClosed`.
        """
        if not self.is_connected:
            return fail(ConnectionClosed("Not connected"))
        numbered, d = self.replies.expect(request)
        self.send_frame(numbered)
        if isinstance(request, frames.Exit):
            self._exiting = True
        d.addBoth(self._settled)
        return d

    def _settled(self, result: Any) -> Any:
        self._check_idle()
        return result

    def _give_up(self, why: str) -> None:
        """Close the connection ourselves, saying ``why`` when it has gone."""
        if self._why is None:
            self._why = why
        self.close()

    def _keepalive_ping(self) -> None:
        numbered, d = self.replies.expect(frames.Ping())
        assert isinstance(numbered.id, int)
        self._quiet.add(numbered.id)
        d.addErrback(lambda _: None)  # a lost connection says so itself
        self.send_frame(numbered)

    @property
    def transfers(self) -> list[Transfer]:
        """Unfinished transfers, both directions, oldest first."""
        items: list[Transfer] = [*self.outgoing.unfinished, *self.incoming.unfinished]
        return sorted(items, key=lambda t: t.created_at)

    def busy(self) -> bool:
        """
        Replies awaited or transfers unfinished (not counting files still on
        their way to us or offered to us: they may wait for long).
        """
        running = [t for t in self.transfers if t.state not in ("pending", "offered")]
        now = self.clock.seconds()
        receipts = [
            u for u in self.uploads.values()
            if u.state == "delivered" and u.delivered_at is not None
            and now < u.delivered_at + RECEIPT_WAIT
        ]
        return bool(self.replies.waiting or self.outgoing.offering or running or receipts)

    def when_idle(self) -> Deferred[None]:
        """Fires once nothing is :meth:`busy` (or the connection is gone)."""
        if not self.busy() or self._gone is not None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def _check_idle(self) -> None:
        if self._idle and (not self.busy() or self._gone is not None):
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def when_closed(self) -> Deferred[Disconnected]:
        """Fires with :class:`Disconnected` once the connection is gone."""
        if self._gone is not None:
            return succeed(self._gone)
        d: Deferred[Disconnected] = Deferred()
        self._closed_waiters.append(d)
        return d

    def close(self) -> None:
        """
        Drop the connection without ``exit``: uploads stop, requests already
        written still go; a server that does not close in
        :data:`CLOSE_GRACE` seconds is cut off.
        """
        if self._outbound is not None and self._gone is None:
            self._outbound.close(CLOSE_GRACE)

    # -- the end ------------------------------------------------------------

    def lost(self, reason: Failure) -> None:
        """The connection is gone: fail what waits, discard partial files."""
        if self._gone is not None:
            return
        if self.keepalive is not None:
            self.keepalive.stop()
        self._quiet.clear()
        if self._outbound is not None:
            self._outbound.connection_lost()
        clean = self._exiting and reason.check(ConnectionDone) is not None
        if self.shutdown_message is not None:
            text = f"Server shut down: {self.shutdown_message}"
        elif clean:
            text = "Disconnected"
        elif self._why is not None:
            text = self._why
        else:
            text = lost_text(
                reason.getErrorMessage(),
                asked=self.replies.asked, answered=self.frames_received > 0,
                clean=reason.check(ConnectionDone) is not None,
            )
        self._gone = Disconnected(clean, text)
        self.replies.fail_all(ConnectionClosed(text))
        self.outgoing.lost()
        self.incoming.lost()
        self.emit(self._gone)
        self._check_idle()
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            waiter.callback(self._gone)

