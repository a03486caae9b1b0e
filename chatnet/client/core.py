"""
The client core: one connection to a chatnet server, no terminal code.

:class:`ClientCore` matches replies to requests by ``id`` (one
:class:`~twisted.internet.defer.Deferred` per request), keeps what the front
ends show (user, room, members, known users and rooms), runs uploads through
an :class:`~chatnet.client.transfers.UploadMux` and saves downloads through a
:class:`~chatnet.client.transfers.DownloadStore`.  Front ends subscribe with
:meth:`ClientCore.subscribe` and receive :data:`ClientEvent` values;
``--json`` uses :meth:`ClientCore.on_frame` for the raw frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import codec, validation
from chatnet.client.commands import (
    Command,
    Exit,
    Help,
    Limits,
    Nothing,
    ParseError,
    Send,
    SendFile,
    check_state,
)
from chatnet.client.events import (
    ClientEvent,
    ConnectionClosed,
    Disconnected,
    ServerError,
    ServerEvent,
    TransferEvent,
)
from chatnet.client.transfers import (
    Download,
    DownloadStore,
    LocalError,
    Transfer,
    Upload,
    UploadMux,
    inspect_file,
)
from chatnet.errors import ChatError

if TYPE_CHECKING:
    from chatnet.client.protocol import ClientProtocol

__all__ = [
    "ClientCore", "ClientEvent", "ConnectionClosed", "Disconnected",
    "ServerError", "ServerEvent", "TransferEvent",
]

log = Logger()


class ClientCore:
    """
    Everything a front end needs from one connection.

    :param clock: the reactor, or a ``task.Clock`` in tests.
    :param downloads: folder for received files (created on first use).
    """

    def __init__(self, clock: IReactorTime, downloads: str = "downloads") -> None:
        self.clock = clock
        self.store = DownloadStore(downloads)
        self.protocol: ClientProtocol | None = None
        self.mux: UploadMux | None = None
        self.username: str | None = None
        self.server: str | None = None
        self.limits = Limits()
        self.room: str | None = None
        self.members: list[str] = []
        self.users: set[str] = set()
        self.rooms: set[str] = set()
        self.uploads: dict[int, Upload] = {}
        self.downloads: dict[int, Download] = {}
        self.offering: list[Upload] = []
        self.shutdown_message: str | None = None
        self._closed_waiters: list[Deferred[Disconnected]] = []
        self._pending: dict[int, Deferred[dict[str, Any]]] = {}
        self._next_id = 1
        self._listeners: list[Callable[[ClientEvent], None]] = []
        self._frame_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._idle: list[Deferred[None]] = []
        self._exiting = False
        #: Frames from the server so far: none means we never really connected.
        self.frames_received = 0
        self._gone: Disconnected | None = None

    # -- subscriptions ---------------------------------------------------

    def subscribe(self, listener: Callable[[ClientEvent], None]) -> None:
        """Call ``listener`` with every :data:`ClientEvent`."""
        self._listeners.append(listener)

    def on_frame(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener`` with every control frame received (``--json``)."""
        self._frame_listeners.append(listener)

    def emit(self, event: ClientEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.failure("listener failed on {event!r}", event=event)

    # -- connection --------------------------------------------------------

    def connected(self, protocol: ClientProtocol) -> None:
        self.protocol = protocol
        self.mux = UploadMux(protocol.transport, self.clock)

    @property
    def never_answered(self) -> bool:
        """We asked and the server never said a thing: not really connected."""
        return self._next_id > 1 and self.frames_received == 0

    @property
    def gone(self) -> Disconnected | None:
        """How the connection ended, or ``None`` while it lasts."""
        return self._gone

    @property
    def is_connected(self) -> bool:
        return self.protocol is not None and self._gone is None

    def send_frame(self, frame: dict[str, Any]) -> None:
        """Write one control frame."""
        if not self.is_connected:
            raise ConnectionClosed("Not connected")
        assert self.protocol is not None
        self.protocol.transport.write(codec.encode_frame(frame))

    def request(self, type: str, **fields: Any) -> Deferred[dict[str, Any]]:
        """
        Send a request with a fresh ``id``.

        :returns: fires with the ``ok`` reply, fails with :class:`ServerError`
            or :class:`ConnectionClosed`.
        """
        if not self.is_connected:
            return _fail(ConnectionClosed("Not connected"))
        ident = self._next_id
        self._next_id += 1
        d: Deferred[dict[str, Any]] = Deferred()
        self._pending[ident] = d
        self.send_frame({"type": type, "id": ident, **fields})
        if type == "exit":
            self._exiting = True
        d.addBoth(self._settled)
        return d

    def _settled(self, result: Any) -> Any:
        self._check_idle()
        return result

    # -- API ----------------------------------------------------------------

    def login(self, username: str, password: str | None = None) -> Deferred[dict[str, Any]]:
        """
        Log in; on success ``username``, ``server`` and ``limits`` are set.
        A name the server would refuse fails with :class:`LocalError` first.
        """
        try:
            validation.check_username(username)
        except ChatError as e:
            return _fail(LocalError(e.message))
        fields: dict[str, Any] = {"username": username}
        if password is not None:
            fields["password"] = password
        return self.request("login", **fields).addCallback(self._logged_in)

    def _logged_in(self, reply: dict[str, Any]) -> dict[str, Any]:
        self.username = reply.get("username") or self.username
        self.server = reply.get("server") if isinstance(reply.get("server"), str) else None
        self.limits = Limits.from_reply(reply.get("limits"))
        if self.username:
            self.users.add(self.username)
        return reply

    def execute(self, command: Command) -> Deferred[Any]:
        """
        Carry out a parsed command.

        :returns: the ``ok`` reply (a dict) for requests, the
            :class:`Upload` for ``SendFile``, ``None`` for local commands.
        """
        if isinstance(command, Send):
            try:
                check_state(command, self.room if self.username else "")
            except ParseError as e:
                return _fail(LocalError(e.message))
            return self.request(command.type, **command.fields).addCallback(
                self._track, command
            )
        if isinstance(command, SendFile):
            return self.send_file(command.path, command.to)
        if isinstance(command, Exit):
            return self.exit()
        if isinstance(command, Help | Nothing):
            return succeed(None)
        raise TypeError(command)

    def _track(self, reply: dict[str, Any], command: Send) -> dict[str, Any]:
        if command.type == "join" or (
            command.type == "who" and "room" not in command.fields
        ):
            self.room = reply.get("room", self.room)
            self.members = list(reply.get("members", []))
            self.users.update(self.members)
        elif command.type == "who" and isinstance(reply.get("members"), list):
            self.users.update(reply["members"])
            self.rooms.add(reply.get("room", command.fields["room"]))
        elif command.type == "leave":
            self.room, self.members = None, []
        elif command.type == "users" and isinstance(reply.get("users"), list):
            self.users = set(reply["users"])
        elif command.type == "rooms" and isinstance(reply.get("rooms"), list):
            self.rooms = {r["name"] for r in reply["rooms"] if isinstance(r, dict)}
        if self.room:
            self.rooms.add(self.room)
        return reply

    def exit(self) -> Deferred[Any]:
        """Say ``exit``; fires when the server closed the connection."""
        if not self.is_connected:
            return succeed(None)
        self.request("exit").addErrback(lambda f: None)
        return self.when_closed()

    def when_closed(self) -> Deferred[Disconnected]:
        """Fires with :class:`Disconnected` once the connection is gone."""
        if self._gone is not None:
            return succeed(self._gone)
        d: Deferred[Disconnected] = Deferred()
        self._closed_waiters.append(d)
        return d

    def close(self) -> None:
        """Drop the connection without ``exit``."""
        if self.protocol is not None and self._gone is None:
            self.protocol.transport.loseConnection()

    def send_file(self, path: str, to: str) -> Deferred[Upload]:
        """
        Check and offer a file; fires with the :class:`Upload` once queued
        (its ``done`` fires when delivered or failed).
        """
        try:
            file, name, size = inspect_file(path, self.limits.file_size)
        except LocalError as e:
            return _fail(e)
        upload = Upload(
            name=name, size=size, peer=to, path=path, file=file,
            created_at=self.clock.seconds(),
        )
        self.offering.append(upload)
        d = self.request("sendfile", to=to, name=name, size=size)

        def queued(reply: dict[str, Any]) -> Upload:
            self.offering.remove(upload)
            upload.transfer = int(reply["transfer"])
            upload.position = int(reply.get("position", 0))
            upload.state = "queued"
            self.uploads[upload.transfer] = upload
            self.emit(TransferEvent("queued", upload, reply))
            return upload

        def refused(failure: Failure) -> Failure:
            self.offering.remove(upload)
            file.close()
            return failure

        return d.addCallbacks(queued, refused)

    def cancel(self, transfer: int) -> Deferred[dict[str, Any]]:
        """Cancel one of our uploads."""
        return self.request("cancel", transfer=transfer)

    @property
    def transfers(self) -> list[Transfer]:
        """Unfinished transfers, both directions, oldest first."""
        items: list[Transfer] = [u for u in self.uploads.values() if not u.finished]
        items += [d for d in self.downloads.values() if not d.finished]
        return sorted(items, key=lambda t: t.created_at)

    def busy(self) -> bool:
        """Replies awaited or own transfers unfinished."""
        return bool(self._pending or self.offering or self.transfers)

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

    def received(self, frame: codec.Frame) -> None:
        """Handle one decoded frame from the server."""
        self.frames_received += 1
        if isinstance(frame, codec.DataFrame):
            self._data(frame)
        elif isinstance(frame, codec.BadFrame):
            self.emit(ServerEvent({
                "type": "error", "code": "bad-frame",
                "message": f"Unreadable frame from the server: {frame.message}",
            }))
        else:
            self._control(frame)
        self._check_idle()

    def _control(self, frame: codec.Request) -> None:
        obj = frame.fields
        for listener in list(self._frame_listeners):
            listener(obj)
        if frame.type in ("ok", "error") and frame.id is not None:
            d = self._pending.pop(frame.id, None) if isinstance(frame.id, int) else None
            if d is None:
                log.warn("reply to unknown id {id!r}", id=frame.id)
            elif frame.type == "ok":
                d.callback(obj)
            else:
                d.errback(ServerError(str(obj.get("code")), str(obj.get("message", ""))))
            return
        handler = _HANDLERS.get(frame.type)
        if handler is not None:
            handler(self, obj)
        else:
            if frame.type == "presence":
                self._presence(obj)
            elif frame.type == "shutdown":
                self.shutdown_message = str(obj.get("message", ""))
            elif frame.type in ("message", "whisper") and isinstance(obj.get("from"), str):
                self.users.add(obj["from"])
            self.emit(ServerEvent(obj))

    def _presence(self, obj: dict[str, Any]) -> None:
        user, room, event = obj.get("user"), obj.get("room"), obj.get("event")
        if not isinstance(user, str):
            return
        if event == "join":
            self.users.add(user)
        if self.room is not None and isinstance(room, str) and room.lower() == self.room.lower():
            if event == "join" and user not in self.members:
                self.members.append(user)
            elif event in ("leave", "disconnect") and user in self.members:
                self.members.remove(user)
        if event == "disconnect":
            self.users.discard(user)

    # -- uploads ------------------------------------------------------------

    def _upload(self, obj: dict[str, Any]) -> Upload | None:
        transfer = obj.get("transfer")
        return self.uploads.get(transfer) if isinstance(transfer, int) else None

    def _upload_start(self, obj: dict[str, Any]) -> None:
        upload = self._upload(obj)
        if upload is None or upload.finished or self.mux is None:
            return
        assert upload.transfer is not None and upload.file is not None
        if upload.state == "queued":
            # It left the queue: our own uploads queued after it move up.
            # (Others' uploads are invisible to us, so positions stay an
            # upper bound.)
            for other in self.uploads.values():
                if other.state == "queued" and other.transfer is not None and \
                        other.transfer > upload.transfer and other.position > 0:
                    other.position -= 1
        upload.state = "sending"
        upload.position = 0
        upload.started_at = self.clock.seconds()
        self.emit(TransferEvent("started", upload, obj))

        def progress(n: int) -> None:
            upload.done_bytes += n
            self.emit(TransferEvent("progress", upload))

        def written(_: Any) -> None:
            if upload.done_bytes < upload.size and not upload.finished:
                # The file shrank since it was offered: the server would wait.
                self.cancel(upload.transfer).addErrback(lambda f: None)  # type: ignore[arg-type]
                upload.reason = "the file changed while it was being sent"

        d = self.mux.start(upload.transfer, upload.file, upload.size, progress)
        d.addCallbacks(written, lambda f: None)

    def _upload_done(self, obj: dict[str, Any]) -> None:
        upload = self._upload(obj)
        if upload is None or upload.finished:
            return
        upload.state = "uploaded"
        upload.finished_at = self.clock.seconds()
        self._close_upload(upload)
        self.emit(TransferEvent("uploaded", upload, obj))

    def _file_delivered(self, obj: dict[str, Any]) -> None:
        upload = self._upload(obj)
        if upload is None or upload.finished:
            return
        upload.state = "delivered"
        self._close_upload(upload)
        self.emit(TransferEvent("delivered", upload, obj))
        upload.done.callback(upload)

    def _file_failed(self, obj: dict[str, Any]) -> None:
        upload = self._upload(obj)
        if upload is None or upload.finished:
            return
        self._fail_upload(upload, upload.reason or str(obj.get("reason", "unknown")), obj)

    def _fail_upload(self, upload: Upload, reason: str, obj: dict[str, Any] | None) -> None:
        upload.state = "failed"
        upload.reason = reason
        upload.finished_at = self.clock.seconds()
        if self.mux is not None and upload.transfer is not None:
            self.mux.stop(upload.transfer)
        self._close_upload(upload)
        self.emit(TransferEvent("failed", upload, obj))
        upload.done.callback(upload)

    @staticmethod
    def _close_upload(upload: Upload) -> None:
        if upload.file is not None:
            upload.file.close()
            upload.file = None

    # -- downloads ----------------------------------------------------------

    def _file_start(self, obj: dict[str, Any]) -> None:
        transfer, size = obj.get("transfer"), obj.get("size")
        if not isinstance(transfer, int) or not isinstance(size, int) or size < 0:
            log.warn("ignoring malformed file-start {obj!r}", obj=obj)
            return
        now = self.clock.seconds()
        download = Download(
            name=str(obj.get("name", "")), size=size, peer=str(obj.get("from", "?")),
            transfer=transfer, state="receiving", created_at=now, started_at=now,
            original=obj.get("original") if isinstance(obj.get("original"), str) else None,
        )
        if size > self.limits.file_size:  # a server breaking its own limit
            download.state, download.finished_at = "discarded", now
            download.reason = f"larger than the server's own limit ({size} bytes)"
            self.downloads[transfer] = download
            self.emit(TransferEvent("discarded", download, obj))
            return
        try:
            self.store.open(download)
        except OSError as e:
            download.state, download.reason = "discarded", f"cannot write: {e.strerror or e}"
            download.finished_at = now
            self.downloads[transfer] = download
            self.emit(TransferEvent("discarded", download, obj))
            return
        self.downloads[transfer] = download
        self.emit(TransferEvent("receiving", download, obj))

    def _data(self, frame: codec.DataFrame) -> None:
        download = self.downloads.get(frame.transfer)
        if download is None or download.finished or download.file is None:
            log.warn("data for unknown transfer {t}", t=frame.transfer)
            return
        if download.done_bytes + len(frame.data) > download.size:
            self._discard(download, "more data than announced")
            return
        download.file.write(frame.data)
        download.hasher.update(frame.data)
        download.done_bytes += len(frame.data)
        self.emit(TransferEvent("progress", download))

    def _file_end(self, obj: dict[str, Any]) -> None:
        download = self._download(obj)
        if download is None:
            return
        if download.done_bytes != download.size:
            self._discard(download, f"got {download.done_bytes} of {download.size} bytes", obj)
        elif str(obj.get("sha256", "")).lower() != download.hasher.hexdigest():
            self._discard(download, "sha256 mismatch: the file was damaged", obj)
        else:
            try:
                self.store.save(download)
            except OSError as e:
                self._discard(download, f"cannot save: {e.strerror or e}", obj)
                return
            download.state = "saved"
            download.finished_at = self.clock.seconds()
            self.emit(TransferEvent("saved", download, obj))

    def _file_aborted(self, obj: dict[str, Any]) -> None:
        download = self._download(obj)
        if download is not None:
            self._discard(download, str(obj.get("reason", "aborted")), obj)

    def _download(self, obj: dict[str, Any]) -> Download | None:
        transfer = obj.get("transfer")
        download = self.downloads.get(transfer) if isinstance(transfer, int) else None
        return None if download is None or download.finished else download

    def _discard(self, download: Download, reason: str, obj: dict[str, Any] | None = None) -> None:
        self.store.discard(download)
        download.state, download.reason = "discarded", reason
        download.finished_at = self.clock.seconds()
        self.emit(TransferEvent("discarded", download, obj))

    # -- the end ------------------------------------------------------------

    def lost(self, reason: Failure) -> None:
        """The connection is gone: fail what waits, discard partial files."""
        if self._gone is not None:
            return
        clean = self._exiting and reason.check(ConnectionDone) is not None
        if self.shutdown_message is not None:
            text = f"Server shut down: {self.shutdown_message}"
        elif clean:
            text = "Disconnected"
        else:
            text = _lost_text(reason, asked=self._next_id > 1, answered=self.frames_received > 0)
        self._gone = Disconnected(clean, text)
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(ConnectionClosed(text))
        for upload in list(self.uploads.values()):
            if not upload.finished:
                self._fail_upload(upload, "connection lost", None)
        for download in list(self.downloads.values()):
            if not download.finished:
                self._discard(download, "connection lost")
        self.emit(self._gone)
        self._check_idle()
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            waiter.callback(self._gone)


_HANDLERS: dict[str, Callable[[ClientCore, dict[str, Any]], None]] = {
    "upload-start": ClientCore._upload_start,
    "upload-done": ClientCore._upload_done,
    "file-delivered": ClientCore._file_delivered,
    "file-failed": ClientCore._file_failed,
    "file-start": ClientCore._file_start,
    "file-end": ClientCore._file_end,
    "file-aborted": ClientCore._file_aborted,
}


def _lost_text(reason: Failure, asked: bool, answered: bool) -> str:
    """Why the connection went, in words that suggest a fix."""
    message = reason.getErrorMessage()
    if "certificate verify failed" in message:
        return ("TLS handshake failed: the server's certificate is not trusted "
                "(give its CA with --ca FILE)")
    if "SSL routines" in message or "wrong version number" in message:
        return f"TLS handshake failed ({message}); is the server using TLS?"
    if not asked:
        return ("the server closed the connection before a username was given "
                "(it allows only so long to log in)")
    if not answered:
        return ("the server closed the connection without a word "
                "(if it is a TLS server, use --tls)")
    return f"Connection lost: {message}"


def _fail(error: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d

