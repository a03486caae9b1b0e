"""
The client core: one connection to a chatnet server, no terminal code.

:class:`ClientCore` writes requests to an
:class:`~twisted.internet.interfaces.ITransport` and is fed what the
protocol reads; it hands each job to the part that does it:

* :class:`~chatnet.client.replies.Replies` matches replies to requests by
  ``id`` (one :class:`~twisted.internet.defer.Deferred` per request);
* :class:`~chatnet.client.roster.Roster` keeps our name, room, members and
  the users and rooms we know of;
* :class:`~chatnet.client.uploads.Uploads` sends our files;
* :class:`~chatnet.client.downloads.Downloads` writes, hashes and names the
  files we receive;
* :func:`~chatnet.client.advice.lost_text` says why a connection went.

Front ends subscribe with :meth:`ClientCore.subscribe` and receive
:data:`~chatnet.client.events.ClientEvent` values; ``--json`` uses
:meth:`ClientCore.on_frame` for the raw frames.  The core never imports the
protocol: :mod:`chatnet.client.protocol` imports it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import fastpath, frames, validation
from chatnet.client.advice import lost_text, no_login_reply, not_chatnet
from chatnet.client.commands import (
    Command,
    Exit,
    Help,
    Limits,
    Nothing,
    ParseError,
    Reconnect,
    Send,
    SendFile,
    check_state,
)
from chatnet.client.downloads import Download, Downloads, DownloadStore
from chatnet.client.events import (
    ClientEvent,
    ConnectionClosed,
    Disconnected,
    LocalError,
    ServerEvent,
)
from chatnet.client.keepalive import Keepalive
from chatnet.client.replies import Replies
from chatnet.client.roster import Roster
from chatnet.client.transfers import Transfer
from chatnet.client.uploads import Upload, Uploads, fail
from chatnet.errors import ChatError, ErrorCode
from chatnet.outbound import Outbound

__all__ = ["ClientCore"]

log = Logger()

#: Seconds :meth:`ClientCore.close` lets the transport flush before aborting.
CLOSE_GRACE = 2.0
#: Seconds a sent file keeps the core :meth:`~ClientCore.busy` while the
#: addressee's receipt (``file-received``) may still come.
RECEIPT_WAIT = 10.0
#: After one of our uploads failed (``/cancel``), the data frames already on
#: their way are refused by the server with ``bad-transfer`` and no ``id``;
#: for this long such errors are echoes of that failure, not news.
IN_FLIGHT_ECHO = 10.0


class ClientCore:
    """
    Everything a front end needs from one connection.

    :param clock: the reactor, or a ``task.Clock`` in tests.
    :param downloads: folder for received files (created on first use).
    :param login_timeout: seconds to wait for the answer to ``login``
        before giving up on the server and closing the connection.
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

    # -- API ----------------------------------------------------------------

    def login(self, username: str, password: str | None = None) -> Deferred[frames.LoginOk]:
        """
        Log in; on success ``username``, ``server`` and ``limits`` are set.
        A name the server would refuse fails with :class:`LocalError` first.
        """
        try:
            validation.check_username(username)
        except ChatError as e:
            return fail(LocalError(e.message))
        # notices: told of files on their way (a chatnet extension; other
        # servers ignore the field).
        request = frames.Login(
            username=username, password=password, offers=self.offers or None, notices=True,
        )
        d = self.request(request)
        if self.is_connected:
            why = no_login_reply(self.login_timeout)
            timer = self.clock.callLater(self.login_timeout, self._give_up, why)
            d.addBoth(_cancelling, timer)
        return d.addCallback(self._logged_in)

    def _give_up(self, why: str) -> None:
        """Close the connection ourselves, saying ``why`` when it has gone."""
        if self._why is None:
            self._why = why
        self.close()

    def _logged_in(self, reply: frames.Reply) -> frames.LoginOk:
        assert isinstance(reply, frames.LoginOk)
        self.roster.logged_in(reply)
        if self.keepalive is not None and self._gone is None:
            self.keepalive.start()
        return reply

    def _keepalive_ping(self) -> None:
        numbered, d = self.replies.expect(frames.Ping())
        assert isinstance(numbered.id, int)
        self._quiet.add(numbered.id)
        d.addErrback(lambda _: None)  # a lost connection says so itself
        self.send_frame(numbered)

    def execute(self, command: Command) -> Deferred[Any]:
        """
        Carry out a parsed command.

        :returns: the reply (a :class:`~chatnet.frames.Reply`) for requests, the
            :class:`~chatnet.client.uploads.Upload` for ``SendFile``,
            ``None`` for local commands.
        """
        if isinstance(command, Send):
            try:
                check_state(command, self.room if self.username else "")
            except ParseError as e:
                return fail(LocalError(e.message))
            if command.type == "accept":
                return self.accept(command.fields["transfer"])
            if command.type == "decline":
                return self.decline(command.fields["transfer"])
            request = command.request()
            if isinstance(request, frames.Rooms | frames.Users):
                return self._every_page(request).addCallback(self._track, request)
            return self.request(request).addCallback(self._track, request)
        if isinstance(command, SendFile):
            return self.send_file(command.path, command.to)
        if isinstance(command, Exit):
            return self.exit()
        if isinstance(command, Help | Nothing | Reconnect):  # the front ends' own
            return succeed(None)
        raise TypeError(command)

    def _every_page(self, request: frames.Rooms | frames.Users) -> Deferred[frames.Reply]:
        """
        ``/rooms`` and ``/users``: ask page after page (``after`` the last
        name) while the server says ``more``.

        :returns: fires with one reply holding every page's entries.
        """
        pages: list[Any] = []

        def got(reply: frames.Reply) -> Any:
            if not isinstance(reply, frames.RoomsOk | frames.UsersOk):
                return reply
            pages.append(reply)
            if isinstance(reply, frames.RoomsOk):
                names = [r.name for r in reply.rooms]
            else:
                names = list(reply.users)
            if reply.more and names and len(pages) < _MOST_PAGES:
                following = dataclasses.replace(request, id=None, after=names[-1])
                return self.request(following).addCallback(got)
            if isinstance(reply, frames.RoomsOk):
                rooms = tuple(r for page in pages for r in page.rooms)
                return dataclasses.replace(pages[0], rooms=rooms, more=False)
            users = tuple(u for page in pages for u in page.users)
            return dataclasses.replace(pages[0], users=users, more=False)

        return self.request(request).addCallback(got)

    def _track(self, reply: frames.Reply, request: frames.Request) -> frames.Reply:
        self.roster.replied(request, reply)
        return reply

    def exit(self) -> Deferred[Any]:
        """Say ``exit``; fires when the server closed the connection."""
        if not self.is_connected:
            return succeed(None)
        self.request(frames.Exit()).addErrback(lambda f: None)
        return self.when_closed()

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

    def send_file(self, path: str, to: str) -> Deferred[Upload]:
        """
        Check and offer a file; fires with the
        :class:`~chatnet.client.uploads.Upload` once queued (its ``done``
        fires when delivered or failed).
        """
        return self.outgoing.offer(path, to, self.limits.file_size)

    def cancel(self, transfer: int) -> Deferred[frames.Reply]:
        """Cancel one of our uploads."""
        return self.request(frames.Cancel(transfer=transfer))

    def accept(self, transfer: int) -> Deferred[frames.Reply]:
        """Accept a file offered to us: ``file-start`` and the data follow."""
        return self.request(frames.Accept(transfer=transfer))

    def decline(self, transfer: int) -> Deferred[frames.Reply]:
        """Decline a file offered to us."""
        d = self.request(frames.Decline(transfer=transfer))

        def declined(reply: frames.Reply) -> frames.Reply:
            self.incoming.declined(transfer)
            return reply

        return d.addCallback(declined)

    def _delivered(self, frame: frames.FileDelivered) -> None:
        self.outgoing.delivered(frame)
        if self._idle:  # someone waits for us to be idle: the receipt may not come
            self.clock.callLater(RECEIPT_WAIT, self._check_idle)

    def _offered(self, frame: frames.FileOffer) -> None:
        self.incoming.offered(frame)
        if not self.offers:  # we did not ask to be asked: take it
            self.accept(frame.transfer).addErrback(lambda f: None)

    def _file_end(self, frame: frames.FileEnd) -> None:
        """Save the file, then confirm what we saved (a receipt)."""
        download = self.incoming.end(frame)
        if download is not None and download.sha256 is not None and self.is_connected:
            receipt = frames.Received(transfer=frame.transfer, sha256=download.sha256)
            # A server of revision 1 does not know receipts: no matter.
            self.request(receipt).addErrback(lambda f: None)

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

    # -- incoming -----------------------------------------------------------

    def received(self, frame: frames.FromServer) -> None:
        """Handle one decoded frame from the server."""
        if not isinstance(frame, frames.BadFrame):  # junk is no answer
            self.frames_received += 1
            if self.keepalive is not None:
                self.keepalive.heard()
        if isinstance(frame, frames.DataFrame):
            self.incoming.data(frame.transfer, frame.data)
        elif isinstance(frame, frames.UnknownEvent):
            # A newer server's event: only --json shows it.
            for listener in list(self._frame_listeners):
                listener(frame.to_json())
        elif isinstance(frame, frames.BadFrame):
            self.emit(ServerEvent(frames.ErrorReply(
                None, ErrorCode.BAD_FRAME, f"Unreadable frame from the server: {frame.message}",
            )))
        elif self._quiet and isinstance(frame, frames.Ok) and frame.id in self._quiet:
            self._quiet.discard(frame.id)  # a keepalive's answer
            self._control(frame)
        else:
            for listener in list(self._frame_listeners):
                listener(frame.to_json())
            self._control(frame)
        self._check_idle()

    def oversized(self, length: int) -> None:
        """The server announced a frame longer than the contract allows."""
        if self.frames_received == 0:  # its first bytes: some other protocol
            self._give_up(not_chatnet(length))
            return
        message = f"Server sent a frame of {length} bytes; closing"
        self.emit(ServerEvent(frames.ErrorReply(None, ErrorCode.FRAME_TOO_LARGE, message)))
        self._give_up(f"the server sent a frame of {length:,} bytes, more than the protocol allows")

    def _control(self, frame: frames.Reply | frames.Event) -> None:
        if isinstance(frame, frames.Ok | frames.ErrorReply) and frame.id is not None:
            self.replies.answer(frame)
            return
        handler = _HANDLERS.get(type(frame))
        if handler is not None:
            handler(self, frame)
            return
        if isinstance(frame, frames.Presence):
            self.roster.presence(frame)
        elif isinstance(frame, frames.Shutdown):
            self.shutdown_message = frame.message
        elif isinstance(frame, frames.Message | frames.WhisperEvent):
            self.roster.heard_from(frame.sender)
        if isinstance(frame, frames.ErrorReply) and self._echo_of_failed_upload(frame):
            return
        if isinstance(frame, frames.Event | frames.ErrorReply):
            self.emit(ServerEvent(frame))

    def _echo_of_failed_upload(self, frame: frames.ErrorReply) -> bool:
        """An id-less ``bad-transfer`` just after one of our uploads failed."""
        if frame.code != ErrorCode.BAD_TRANSFER:
            return False
        now = self.clock.seconds()
        return any(
            u.state == "failed" and u.finished_at is not None and now - u.finished_at < IN_FLIGHT_ECHO
            for u in self.uploads.values()
        )

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


def _cancelling(result: Any, timer: IDelayedCall) -> Any:
    """Pass ``result`` on, cancelling ``timer`` if it has not run."""
    if timer.active():
        timer.cancel()
    return result


#: ``/rooms`` and ``/users`` stop asking for pages after this many (a server
#: that always says ``more`` cannot keep the client asking for ever).
_MOST_PAGES = 1000

_HANDLERS: dict[type[frames.Control], Callable[[ClientCore, Any], None]] = {
    frames.UploadStart: lambda core, f: core.outgoing.started(f),
    frames.UploadDone: lambda core, f: core.outgoing.uploaded(f),
    frames.FileDelivered: lambda core, f: core._delivered(f),
    frames.FileFailed: lambda core, f: core.outgoing.failed(f),
    frames.FileStart: lambda core, f: core.incoming.start(f, core.limits.file_size),
    frames.FileEnd: lambda core, f: core._file_end(f),
    frames.FileAborted: lambda core, f: core.incoming.aborted(f),
    frames.FileReceived: lambda core, f: core.outgoing.receipt(f),
    frames.FileOffer: lambda core, f: core._offered(f),
    frames.FilePending: lambda core, f: core.incoming.pending(f),
}
