"""
Upload spooling: each upload is written to a file of its own as its data
frames arrive, hashed on the way, and read back for delivery.  A whole file
is never held in memory.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Hashable
from pathlib import Path
from typing import BinaryIO

GIB = 1024**3
#: The total spool bound when the operator sets none: half the free space
#: of the spool's file system at start, but at most this.
DEFAULT_SPOOL_CAP = GIB


class Spool:
    """
    The folder that holds upload files.

    :param directory: an existing or new folder; ``None`` makes a private
        temporary one, removed by :meth:`close`.
    """

    PREFIX = "chatnet-upload-"

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        if directory is None:
            self.path = Path(tempfile.mkdtemp(prefix="chatnet-spool-"))
            self._owned = True
        else:
            self.path = Path(directory)
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._owned = False

    def default_limit(self) -> int:
        """
        The total spool bound when none is configured: half the space free
        on the spool's file system now, at most :data:`DEFAULT_SPOOL_CAP`
        (1 GiB).  Half, so that the log, other programs and the rest of the
        system keep room even when every spooled byte is in use.
        """
        return min(DEFAULT_SPOOL_CAP, shutil.disk_usage(self.path).free // 2)

    def create(self, transfer: int) -> SpoolFile:
        """A new, empty spool file for transfer number ``transfer``."""
        return SpoolFile(self.path / f"{self.PREFIX}{transfer}.part")

    def leftovers(self) -> list[Path]:
        """Spool files present in the folder (none once every transfer ended)."""
        return sorted(self.path.glob(self.PREFIX + "*.part"))

    def close(self) -> None:
        """Remove every spool file, and the folder too when it is our own."""
        for path in self.leftovers():
            path.unlink(missing_ok=True)
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)


class SpoolFile:
    """One upload on disk: written once, hashed, read back, removed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received = 0
        self._hash = hashlib.sha256()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self._writer: BinaryIO | None = os.fdopen(fd, "wb")
        self.sha256 = ""

    def write(self, data: bytes | memoryview) -> None:
        assert self._writer is not None, "spool file already finished"
        self._writer.write(data)
        self._hash.update(data)
        self.received += len(data)

    def finish(self) -> str:
        """Close for writing; :returns: the sha256 of the content, in hex."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.sha256 = self._hash.hexdigest()
        return self.sha256

    def open(self) -> BinaryIO:
        """The content, for reading (the caller closes it)."""
        return open(self.path, "rb")

    def remove(self) -> None:
        """Close and delete; safe to call more than once."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.path.unlink(missing_ok=True)


class SpoolBudget:
    """
    The bytes the spool holds, in all and for each addressee, and its files
    for each addressee: what the upload bounds are checked against.

    A transfer is held from the moment it gets an upload slot, by its
    declared size (so an upload in progress counts in full), until its spool
    file is removed.

    :param total: bytes the spool may hold in all.
    :param files_per_key: files it may hold for one addressee.
    :param bytes_per_key: bytes it may hold for one addressee; one file
        alone may pass it, so that no file is held back for ever.
    """

    __slots__ = ("total", "files_per_key", "bytes_per_key", "used", "_held")

    def __init__(self, total: int, files_per_key: int, bytes_per_key: int) -> None:
        self.total = total
        self.files_per_key = files_per_key
        self.bytes_per_key = bytes_per_key
        self.used = 0
        #: key -> [files, bytes], only for keys holding at least one file.
        self._held: dict[Hashable, list[int]] = {}

    def held(self, key: Hashable) -> tuple[int, int]:
        """``(files, bytes)`` held for ``key``."""
        held = self._held.get(key)
        return (held[0], held[1]) if held is not None else (0, 0)

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit in the total bound."""
        return self.used + size <= self.total

    def fits(self, key: Hashable, size: int) -> bool:
        """Whether a file of ``size`` bytes for ``key`` may be held now."""
        if self.used + size > self.total:
            return False
        held = self._held.get(key)
        if held is None:
            return True
        return held[0] < self.files_per_key and held[1] + size <= self.bytes_per_key

    def hold(self, key: Hashable, size: int) -> None:
        """Count a file of ``size`` bytes for ``key``."""
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = [0, 0]
        held[0] += 1
        held[1] += size
        self.used += size

    def release(self, key: Hashable, size: int) -> None:
        """Stop counting a file that :meth:`hold` counted."""
        held = self._held[key]
        held[0] -= 1
        held[1] -= size
        self.used -= size
        if not held[0]:
            del self._held[key]
