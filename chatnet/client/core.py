"""
The client core: one connection to a chatnet server, no terminal code.

:class:`ClientCore` writes requests to an
:class:`~twisted.internet.interfaces.ITransport` and is fed what the
protocol reads.  It is built in three layers, one module each:

* :mod:`chatnet.client.core_connection` (:class:`CoreConnection`): the
  connection's life (connected, lost, closed, idle), the state front ends
  read, subscriptions and events;
* :mod:`chatnet.client.core_requests` (:class:`CoreRequests`): the request
  API (login, commands, files);
* this module: the incoming frames, each dispatched to the part that
  handles it.

The core hands each job to the part that does it:

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

from collections.abc import Callable
from typing import Any

from chatnet import frames
from chatnet.client.advice import not_chatnet
from chatnet.client.core_connection import CLOSE_GRACE, RECEIPT_WAIT, CoreConnection
from chatnet.client.core_requests import CoreRequests
from chatnet.client.events import ServerEvent
from chatnet.errors import ErrorCode

__all__ = ["CLOSE_GRACE", "RECEIPT_WAIT", "ClientCore", "CoreConnection", "CoreRequests"]

#: After one of our uploads failed (``/cancel``), the data frames already on
#: their way are refused by the server with ``bad-transfer`` and no ``id``;
#: for this long such errors are echoes of that failure, not news.
IN_FLIGHT_ECHO = 10.0


class ClientCore(CoreRequests):
    """
    Everything a front end needs from one connection.

    :param clock: the reactor, or a ``task.Clock`` in tests.
    :param downloads: folder for received files (created on first use).
    :param login_timeout: seconds to wait for the answer to ``login``
        before giving up on the server and closing the connection.
    :param offers: log in with ``offers``: each file waits for
        :meth:`accept` or :meth:`decline`.
    :param keepalive: seconds of silence before pinging the server (0: never).
    """

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
