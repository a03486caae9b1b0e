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
from pathlib import Path
from typing import BinaryIO


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

    def write(self, data: bytes) -> None:
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
