"""
Receiving files: write and hash what arrives, then give it a safe,
never-overwriting name in the downloads folder (PROTOCOL.md section 5).

* :func:`sanitise` turns whatever ``file-start`` carries into a plain base
  name that cannot leave the downloads folder (a client must not trust the
  server's checks).
* :class:`DownloadStore` spools an incoming file to a hidden temporary file
  in the downloads folder and gives it its final name
  (:func:`chatnet.names.free_name`) only after its sha256 matched.
* :class:`Downloads` follows each incoming transfer from ``file-start``
  through its data frames to ``file-end`` or ``file-aborted``, and tells the
  front ends through :class:`~chatnet.client.events.TransferEvent`.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from twisted.logger import Logger

from chatnet import frames, names
from chatnet.client.events import ClientEvent, TransferEvent
from chatnet.client.transfers import Transfer

log = Logger()

#: The name used when nothing usable is left of the server's name.
FALLBACK_NAME = "download"
#: Tries before :meth:`DownloadStore.save` gives up on finding a free name.
MAX_TRIES = 100_000

# C0 controls, DEL, C1 controls, and the path separators of every platform.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:]")
# Unicode categories that show as nothing or reorder what follows: other
# controls, format characters (bidi overrides and isolates, zero-width
# characters), lone surrogates, line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _visible(name: str) -> str:
    """``name`` with every invisible or reordering character made ``_``."""
    return "".join("_" if unicodedata.category(c) in _HIDDEN else c for c in name)


def sanitise(name: object) -> str:
    """
    A base name that is safe to create inside the downloads folder.

    Path components are dropped (only the last one is kept), control,
    bidi and other invisible characters (``photo\u202egnp.exe``, which
    ``ls`` would show as ``photoexe.png``) and separators become ``_``, leading dots and spaces are
    removed (no hidden files, no ``..``), and the result is cut to
    255 bytes of UTF-8 keeping the extension.

    :param name: the name the server sent (any type, it is not trusted).
    :returns: a non-empty base name.
    """
    if not isinstance(name, str):
        return FALLBACK_NAME
    base = re.split(r"[/\\]", name)[-1]
    base = _visible(_UNSAFE.sub("_", base)).strip(" ")
    base = base.lstrip(". ")
    base = base.encode("utf-8", "replace").decode("utf-8")
    if not base:
        return FALLBACK_NAME
    return _fit(base, names.MAX_NAME_BYTES)


def _fit(name: str, limit: int) -> str:
    """Cut ``name`` to ``limit`` bytes of UTF-8, keeping a short extension."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, ext = names.split_extension(name)
    if len(ext.encode("utf-8")) > limit // 2:
        stem, ext = name, ""
    return names.truncate(stem, limit - len(ext.encode("utf-8"))) + ext


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
    #: The sha256 we computed of what arrived, once it all did.
    sha256: str | None = None
    #: ``file-pending`` (notices): ``queued``, ``uploading`` or ``waiting``.
    pending: str | None = None


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
        Move the spool file to the next free name; never overwrites.  A file
        the server renamed (``original`` set) that is taken here too goes on
        numbering from its original name.

        :returns: the final path.
        """
        assert download.tmp_path is not None
        self._close(download)
        name = sanitise(download.name)
        original = sanitise(download.original) if download.original else None
        while True:
            free = names.free_name(
                name, lambda n: os.path.lexists(os.path.join(self.folder, n)),
                original=original, limit=MAX_TRIES,
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


class Downloads:
    """
    Every file this connection receives, by transfer number.

    :param folder: the downloads folder (created on the first file).
    :param now: the time, in seconds (the reactor's ``seconds``).
    :param emit: where :class:`~chatnet.client.events.TransferEvent` go.
    """

    def __init__(
        self, folder: str, now: Callable[[], float], emit: Callable[[ClientEvent], None]
    ) -> None:
        self.store = DownloadStore(folder)
        self.by_transfer: dict[int, Download] = {}
        self._now = now
        self._emit = emit

    @property
    def unfinished(self) -> list[Download]:
        return [d for d in self.by_transfer.values() if not d.finished]

    def pending(self, frame: frames.FilePending) -> None:
        """``file-pending`` (notices): a file on its way, queued or uploading."""
        known = self.by_transfer.get(frame.transfer)
        if known is not None and known.state not in ("pending", "offered"):
            return
        if known is None:
            known = self.by_transfer[frame.transfer] = Download(
                name=frame.name, size=max(frame.size, 0), peer=frame.sender,
                transfer=frame.transfer, state="pending", created_at=self._now(),
            )
            kind = "pending"
        else:
            kind = "progress"  # a new state of one we showed already
        known.pending = frame.state
        known.position = frame.position or 0
        self._emit(TransferEvent(kind, known, frame))

    def offered(self, frame: frames.FileOffer) -> Download:
        """``file-offer``: a file waits for our ``accept`` or ``decline``."""
        known = self.by_transfer.get(frame.transfer)
        download = Download(
            name=frame.name, size=max(frame.size, 0), peer=frame.sender,
            transfer=frame.transfer, state="offered", original=frame.original,
            created_at=known.created_at if known is not None else self._now(),
        )
        self.by_transfer[frame.transfer] = download
        self._emit(TransferEvent("offered", download, frame))
        return download

    def declined(self, transfer: int) -> None:
        """We declined ``transfer``: nothing comes."""
        download = self._unfinished(transfer)
        if download is not None:
            download.state, download.reason = "discarded", "declined"
            download.finished_at = self._now()
            self._emit(TransferEvent("declined", download))

    def start(self, frame: frames.FileStart, max_size: int) -> None:
        """``file-start``: open a spool file, unless the file is refused."""
        transfer, size = frame.transfer, frame.size
        if size < 0:
            log.warn("ignoring malformed file-start {frame!r}", frame=frame)
            return
        now = self._now()
        known = self.by_transfer.get(transfer)
        download = Download(
            name=frame.name, size=size, peer=frame.sender,
            transfer=transfer, state="receiving", started_at=now,
            created_at=known.created_at if known is not None else now,
            original=frame.original,
        )
        self.by_transfer[transfer] = download
        if size > max_size:  # a server breaking its own limit
            download.state, download.finished_at = "discarded", now
            download.reason = f"larger than the server's own limit ({size} bytes)"
            self._emit(TransferEvent("discarded", download, frame))
            return
        try:
            self.store.open(download)
        except OSError as e:
            download.state, download.reason = "discarded", f"cannot write: {e.strerror or e}"
            download.finished_at = now
            self._emit(TransferEvent("discarded", download, frame))
            return
        self._emit(TransferEvent("receiving", download, frame))

    def data(self, transfer: int, data: bytes | memoryview) -> None:
        """A data frame: write and hash it."""
        download = self.by_transfer.get(transfer)
        if download is None or download.finished or download.file is None:
            log.warn("data for unknown transfer {t}", t=transfer)
            return
        if download.done_bytes + len(data) > download.size:
            self._discard(download, "more data than announced")
            return
        download.file.write(data)
        download.hasher.update(data)
        download.moved(download.done_bytes + len(data), self._now())
        self._emit(TransferEvent("progress", download))

    def end(self, frame: frames.FileEnd) -> Download | None:
        """
        ``file-end``: keep the file if its size and sha256 match.

        :returns: the download, with the ``sha256`` we computed set when
            every byte arrived (saved, or discarded for a hash mismatch):
            what a receipt confirms.
        """
        download = self._unfinished(frame.transfer)
        if download is None or download.state != "receiving":
            return None
        if download.done_bytes != download.size:
            self._discard(download, f"got {download.done_bytes} of {download.size} bytes", frame)
        elif frame.sha256.lower() != download.hasher.hexdigest():
            download.sha256 = download.hasher.hexdigest()
            self._discard(download, "sha256 mismatch: the file was damaged", frame)
        else:
            try:
                self.store.save(download)
            except OSError as e:
                self._discard(download, f"cannot save: {e.strerror or e}", frame)
                return download
            download.sha256 = download.hasher.hexdigest()
            download.state = "saved"
            download.finished_at = self._now()
            self._emit(TransferEvent("saved", download, frame))
        return download

    def aborted(self, frame: frames.FileAborted) -> None:
        """``file-aborted``: nothing is kept."""
        download = self._unfinished(frame.transfer)
        if download is not None:
            self._discard(download, frame.reason, frame)

    def lost(self) -> None:
        """The connection is gone: discard every partial file."""
        for download in self.unfinished:
            self._discard(download, "connection lost")

    def _unfinished(self, transfer: int) -> Download | None:
        download = self.by_transfer.get(transfer)
        return None if download is None or download.finished else download

    def _discard(
        self, download: Download, reason: str, frame: frames.Control | None = None
    ) -> None:
        self.store.discard(download)
        kind = "withdrawn" if download.state in ("pending", "offered") else "discarded"
        download.state, download.reason = "discarded", reason
        download.finished_at = self._now()
        self._emit(TransferEvent(kind, download, frame))
