"""
Sending files (PROTOCOL.md section 5).

* :func:`inspect_file` checks a file before it is offered: it exists, is a
  regular readable file, has a valid name and fits the server's size limit.
* The bytes go through the connection's :class:`~chatnet.outbound.Outbound`,
  the same multiplexer the server delivers files with: every running upload
  is a file stream it pulls from round-robin, one 64 KiB data frame at a
  time, and only while no control frame waits, so several uploads share the
  connection and requests and chat go first.
* :class:`Uploads` follows each of our uploads from ``sendfile`` through
  ``upload-start`` and the data to ``file-delivered`` or ``file-failed``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IReactorTime,
)
from twisted.python.failure import Failure

from chatnet import frames, validation
from chatnet.client.events import ClientEvent, LocalError, TransferEvent
from chatnet.client.transfers import Transfer
from chatnet.errors import ChatError
from chatnet.outbound import Outbound

#: Bytes of file data per frame.  Smaller than the 64 KiB a frame may carry:
#: a chat line or ``cancel`` typed during an upload waits behind at most
#: about one frame on our side (with :func:`chatnet.fastpath.limit_backlog`),
#: 0.08 s rather than 0.33 s over a 200 KB/s link.
UPLOAD_CHUNK = 16 * 1024

#: Sends a request, fires with its reply (``ClientCore.request``).
Request = Callable[[frames.Request], Deferred[frames.Reply]]


def inspect_file(path: str, max_size: int) -> tuple[IO[bytes], str, int]:
    """
    Open a file to be offered and check it the way the server will.

    :returns: the open file, its base name and its size.
    :raises LocalError: with a message that says what to do.
    """
    shown = repr(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - handed to the upload
    except FileNotFoundError:
        raise LocalError(f"No such file: {shown}. Check the path (~ is expanded)") from None
    except IsADirectoryError:
        raise LocalError(f"{shown} is a directory; /sendfile sends one file") from None
    except PermissionError:
        raise LocalError(f"Cannot read {shown}: permission denied") from None
    except OSError as e:
        raise LocalError(f"Cannot open {shown}: {e.strerror or e}") from None
    try:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise LocalError(f"{shown} is a directory; /sendfile sends one file")
        if not stat.S_ISREG(info.st_mode):
            raise LocalError(f"{shown} is not a regular file")
        name = os.path.basename(os.path.normpath(path))
        try:
            validation.check_filename(name)
        except ChatError as e:
            raise LocalError(f"{e.message}; rename the file first") from None
        if info.st_size > max_size:
            raise LocalError(
                f"{name} is {validation.format_size(info.st_size)}; this server "
                f"takes files up to {validation.format_size(max_size)} "
                f"({max_size} bytes)"
            )
    except BaseException:
        handle.close()
        raise
    return handle, name, info.st_size


@dataclass(eq=False)
class Upload(Transfer):
    """A file this client sends; ``done`` fires when delivered or failed."""

    path: str = ""
    file: IO[bytes] | None = field(default=None, repr=False)
    done: Deferred[Upload] = field(default_factory=Deferred, repr=False)
    #: The addressee's receipt (``file-received``): whether its hash matched.
    verified: bool | None = None
    #: When ``file-delivered`` came.
    delivered_at: float | None = None


class _Bounded:
    """
    A file that yields at most ``size`` bytes, exactly what was announced,
    and counts what it hands out (each chunk goes straight to the wire).
    """

    def __init__(self, file: IO[bytes], size: int, progress: Callable[[int], None]) -> None:
        self._file = file
        self._left = size
        self._progress = progress

    def read(self, n: int) -> bytes:
        if self._left <= 0:
            return b""
        data = self._file.read(min(n, self._left))
        self._left -= len(data)
        if data:
            self._progress(len(data))
        return data


class Uploads:
    """
    Every file this connection sends, by transfer number.

    :param clock: the reactor, or a ``task.Clock`` in tests.
    :param emit: where :class:`~chatnet.client.events.TransferEvent` go.
    :param request: sends a request and fires with its reply.
    """

    def __init__(
        self, clock: IReactorTime, emit: Callable[[ClientEvent], None], request: Request,
        unsent: Callable[[], int] = lambda: 0,
    ) -> None:
        #: Bytes written to the connection that have not left this machine
        #: (:func:`chatnet.fastpath.unsent`): progress counts bytes sent.
        self._unsent = unsent
        self.by_transfer: dict[int, Upload] = {}
        #: Offered, not yet accepted (``sendfile`` awaits its reply).
        self.offering: list[Upload] = []
        self.outbound: Outbound | None = None
        self._clock = clock
        self._emit = emit
        self._request = request

    def connected(self, outbound: Outbound) -> None:
        """Send files through ``outbound``, the connection's one producer."""
        self.outbound = outbound

    @property
    def unfinished(self) -> list[Upload]:
        return [u for u in self.by_transfer.values() if not u.finished]

    def offer(self, path: str, to: str, max_size: int) -> Deferred[Upload]:
        """
        Check and offer a file; fires with the :class:`Upload` once queued
        (its ``done`` fires when delivered or failed).
        """
        try:
            file, name, size = inspect_file(path, max_size)
        except LocalError as e:
            return fail(e)
        upload = Upload(
            name=name, size=size, peer=to, path=path, file=file,
            created_at=self._clock.seconds(),
        )
        self.offering.append(upload)

        def queued(reply: frames.Reply) -> Upload:
            assert isinstance(reply, frames.SendfileOk)
            self.offering.remove(upload)
            upload.transfer = reply.transfer
            upload.position = reply.position
            upload.state = "queued"
            self.by_transfer[upload.transfer] = upload
            self._emit(TransferEvent("queued", upload, reply))
            return upload

        def refused(failure: Failure) -> Failure:
            self.offering.remove(upload)
            file.close()
            return failure

        d = self._request(frames.Sendfile(to=to, name=name, size=size))
        return d.addCallbacks(queued, refused)

    def _find(self, transfer: int) -> Upload | None:
        upload = self.by_transfer.get(transfer)
        return None if upload is None or upload.finished else upload

    def started(self, frame: frames.UploadStart) -> None:
        """``upload-start``: our turn came; send the bytes."""
        upload = self._find(frame.transfer)
        if upload is None or self.outbound is None:
            return
        transfer = upload.transfer
        assert transfer is not None and upload.file is not None
        if upload.state == "queued":
            # It left the queue: our own uploads queued after it move up.
            # (Others' uploads are invisible to us, so positions stay an
            # upper bound.)
            for other in self.by_transfer.values():
                if other.state == "queued" and other.transfer is not None and \
                        other.transfer > transfer and other.position > 0:
                    other.position -= 1
        upload.state = "sending"
        upload.position = 0
        upload.started_at = self._clock.seconds()
        self._emit(TransferEvent("started", upload, frame))

        handed = 0

        def progress(n: int) -> None:
            # Bytes handed over, less those still waiting on this machine
            # (shared out among the uploads that are sending).
            nonlocal handed
            handed += n
            sending = sum(1 for u in self.by_transfer.values() if u.state == "sending")
            waiting = self._unsent() // max(sending, 1)
            upload.moved(max(upload.done_bytes, handed - waiting), self._clock.seconds())
            self._emit(TransferEvent("progress", upload))

        def written(_: object) -> None:
            if handed < upload.size and not upload.finished:
                # The file shrank since it was offered: the server would wait.
                self._request(frames.Cancel(transfer=transfer)).addErrback(lambda f: None)
                upload.reason = "the file changed while it was being sent"

        d = self.outbound.send_file(
            transfer, _Bounded(upload.file, upload.size, progress), UPLOAD_CHUNK
        )
        d.addCallbacks(written, lambda f: None)

    def uploaded(self, frame: frames.UploadDone) -> None:
        """``upload-done``: the server has every byte."""
        upload = self._find(frame.transfer)
        if upload is None:
            return
        upload.state = "uploaded"
        upload.finished_at = self._clock.seconds()
        upload.done_bytes = upload.size  # the server has every byte
        self._close(upload)
        self._emit(TransferEvent("uploaded", upload, frame))

    def delivered(self, frame: frames.FileDelivered) -> None:
        """``file-delivered``: the addressee's connection has every byte."""
        upload = self._find(frame.transfer)
        if upload is None:
            return
        upload.state = "delivered"
        upload.delivered_at = self._clock.seconds()
        self._close(upload)
        self._emit(TransferEvent("delivered", upload, frame))
        upload.done.callback(upload)

    def receipt(self, frame: frames.FileReceived) -> None:
        """``file-received``: the addressee has the file (``verified``: intact)."""
        upload = self.by_transfer.get(frame.transfer)
        if upload is None or upload.state not in ("delivered", "uploaded"):
            return
        was = upload.state
        upload.state = "received"
        upload.verified = frame.verified
        self._close(upload)
        self._emit(TransferEvent("received", upload, frame))
        if was != "delivered":
            upload.done.callback(upload)

    def failed(self, frame: frames.FileFailed) -> None:
        """``file-failed``: stop sending, say why."""
        upload = self._find(frame.transfer)
        if upload is not None:
            self._fail(upload, upload.reason or frame.reason, frame)

    def lost(self) -> None:
        """The connection is gone: every unfinished upload fails."""
        for upload in self.unfinished:
            self._fail(upload, "connection lost", None)

    def _fail(self, upload: Upload, reason: str, frame: frames.FileFailed | None) -> None:
        upload.state = "failed"
        upload.reason = reason
        upload.finished_at = self._clock.seconds()
        if self.outbound is not None and upload.transfer is not None:
            self.outbound.cancel_file(upload.transfer)
        self._close(upload)
        self._emit(TransferEvent("failed", upload, frame))
        upload.done.callback(upload)

    @staticmethod
    def _close(upload: Upload) -> None:
        if upload.file is not None:
            upload.file.close()
            upload.file = None


def fail(error: Exception) -> Deferred[Any]:
    """A Deferred that has already failed with ``error``."""
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d
