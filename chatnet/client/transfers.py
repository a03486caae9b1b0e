"""
The client's side of file transfers (PROTOCOL.md section 5).

* :func:`inspect_file` checks a file before it is offered: it exists, is a
  regular readable file, has a valid name and fits the server's size limit.
* :class:`UploadMux` is the one producer registered on the transport: every
  running upload is a :class:`~twisted.protocols.basic.FileSender` whose
  chunks it frames as data frames and interleaves round-robin, so several
  uploads share the connection and control frames keep flowing.
* :class:`DownloadStore` spools an incoming file to a hidden temporary file
  in the downloads folder and gives it its final, never-overwriting name only
  after its sha256 matched.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer, IReactorTime
from twisted.protocols.basic import FileSender
from zope.interface import implementer

from chatnet import codec, validation
from chatnet.client import downloads
from chatnet.errors import ChatError


class LocalError(Exception):
    """Something the client refuses before anything is sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
class Transfer:
    """What both directions share, for progress bars and messages."""

    name: str
    size: int
    peer: str
    transfer: int | None = None
    state: str = "offered"
    done_bytes: int = 0
    position: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    direction: str = "up"

    @property
    def finished(self) -> bool:
        return self.state in ("delivered", "failed", "saved", "discarded")

    def percent(self) -> float:
        """How much is done, 0 to 100 (100 for an empty file once started)."""
        if self.size == 0:
            return 100.0 if self.started_at is not None else 0.0
        return 100.0 * self.done_bytes / self.size

    def speed(self, now: float) -> float:
        """Bytes per second since the data started flowing."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else now
        elapsed = end - self.started_at
        return self.done_bytes / elapsed if elapsed > 0 else 0.0


@dataclass(eq=False)
class Upload(Transfer):
    """A file this client sends; ``done`` fires when delivered or failed."""

    path: str = ""
    file: IO[bytes] | None = field(default=None, repr=False)
    done: Deferred[Upload] = field(default_factory=Deferred, repr=False)


@dataclass(eq=False)
class Download(Transfer):
    """A file this client receives."""

    direction: str = "down"
    state: str = "receiving"
    original: str | None = None
    path: str | None = None
    tmp_path: str | None = None
    file: IO[bytes] | None = field(default=None, repr=False)
    hasher: Any = field(default_factory=hashlib.sha256, repr=False)


class _Bounded:
    """A file that yields at most ``size`` bytes: exactly what was announced."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self._file = file
        self._left = size

    def read(self, n: int) -> bytes:
        if self._left <= 0:
            return b""
        data = self._file.read(min(n, self._left))
        self._left -= len(data)
        return data


@implementer(IConsumer)
class _Channel:
    """The consumer one ``FileSender`` writes into; owned by the mux."""

    def __init__(self, mux: UploadMux, transfer: int, progress: Callable[[int], None]):
        self.mux = mux
        self.transfer = transfer
        self.progress = progress
        self.producer: FileSender | None = None

    def frame(self, chunk: bytes) -> bytes:
        self.progress(len(chunk))
        return codec.data_frame(self.transfer, chunk)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        self.mux._attach(self)

    def unregisterProducer(self) -> None:
        self.mux._detach(self)

    def write(self, data: bytes) -> None:
        self.mux.write(data)


@implementer(IPushProducer)
class UploadMux:
    """
    The single streaming producer on a connection, feeding it from every
    running upload in turn.

    The transport pauses and resumes it; while it runs it pulls one chunk
    from each sender round-robin, at most ``burst`` chunks per reactor turn,
    so replies and chat are never stuck behind a file.
    """

    def __init__(self, transport: Any, clock: IReactorTime, burst: int = 8) -> None:
        self._transport = transport
        self._clock = clock
        self._burst = burst
        self._channels: deque[_Channel] = deque()
        self._paused = False
        self._registered = False
        self._call: Any = None

    def start(
        self, transfer: int, file: IO[bytes], size: int, progress: Callable[[int], None]
    ) -> Deferred[Any]:
        """
        Send ``size`` bytes of ``file`` as data frames for ``transfer``.

        :returns: fires when the last chunk is written, fails when stopped.
        """
        channel = _Channel(self, transfer, progress)
        return FileSender().beginFileTransfer(_Bounded(file, size), channel, channel.frame)

    def stop(self, transfer: int) -> None:
        """Stop sending ``transfer`` (its Deferred fails)."""
        for channel in list(self._channels):
            if channel.transfer == transfer:
                self._detach(channel)
                if channel.producer is not None:
                    channel.producer.stopProducing()

    @property
    def active(self) -> list[int]:
        """The transfers being sent, in turn order."""
        return [c.transfer for c in self._channels]

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def _attach(self, channel: _Channel) -> None:
        self._channels.append(channel)
        if not self._registered:
            self._registered = True
            self._paused = False
            self._transport.registerProducer(self, True)
        self._schedule()

    def _detach(self, channel: _Channel) -> None:
        if channel in self._channels:
            self._channels.remove(channel)
        if not self._channels and self._registered:
            self._registered = False
            self._transport.unregisterProducer()
            if self._call is not None and self._call.active():
                self._call.cancel()
            self._call = None

    def _schedule(self) -> None:
        if self._call is None and self._channels and not self._paused:
            self._call = self._clock.callLater(0, self._pump)

    def _pump(self) -> None:
        self._call = None
        for _ in range(self._burst):
            if self._paused or not self._channels:
                return
            channel = self._channels[0]
            self._channels.rotate(-1)
            assert channel.producer is not None
            channel.producer.resumeProducing()
        self._schedule()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        for channel in list(self._channels):
            self.stop(channel.transfer)


class DownloadStore:
    """Files in the downloads folder: spool, then name, or discard."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        umask = os.umask(0)
        os.umask(umask)
        #: Saved files get the usual permissions, not the spool file's 0600.
        self.mode = 0o666 & ~umask

    def open(self, download: Download) -> None:
        """Create the hidden spool file for ``download``."""
        os.makedirs(self.folder, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=self.folder, prefix=".chatnet-", suffix=".part")
        download.tmp_path = path
        download.file = os.fdopen(fd, "wb")

    def save(self, download: Download) -> str:
        """
        Move the spool file to the next free name; never overwrites.

        :returns: the final path.
        """
        assert download.tmp_path is not None
        self._close(download)
        name = downloads.sanitise(download.name)
        while True:
            free = downloads.free_name(
                name, lambda n: os.path.lexists(os.path.join(self.folder, n))
            )
            final = os.path.join(self.folder, free)
            try:
                os.link(download.tmp_path, final)  # fails if final appeared meanwhile
            except FileExistsError:
                continue
            except OSError:  # no hard links here: check, then rename
                if os.path.lexists(final):
                    continue
                os.rename(download.tmp_path, final)
            else:
                os.unlink(download.tmp_path)
            download.tmp_path = None
            download.path = final
            os.chmod(final, self.mode)
            return final

    def discard(self, download: Download) -> None:
        """Remove the spool file; nothing is left under any name."""
        self._close(download)
        if download.tmp_path is not None:
            try:
                os.unlink(download.tmp_path)
            except FileNotFoundError:
                pass
            download.tmp_path = None

    @staticmethod
    def _close(download: Download) -> None:
        if download.file is not None:
            download.file.close()
            download.file = None
