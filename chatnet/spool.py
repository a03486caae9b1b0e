"""
Upload spooling: each upload is written to a file of its own as its data
frames arrive, hashed on the way, and read back for delivery.  A whole file
is never held in memory.

The spool folder is the server's own, and nobody else may touch it:

* a folder given by the operator is refused when it is a symbolic link, is
  not owned by the server's user, or can be written by group or others
  (:class:`SpoolError`).  Refused, not fixed: a new mode cannot undo what
  others may already have put there, and a shared folder given by mistake
  (``/tmp``) must not be made private under the programs that use it;
* the folder is opened once, without following links, and every file is
  created, opened and removed relative to that open folder, so swapping the
  folder's path for a link later changes nothing;
* spool files are created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``,
  mode 0600): a planted file or link of the same name is an error, never
  written through;
* the folder is locked (``flock``) while the server runs, so a second server
  cannot share it, and files left by a server that was killed are removed
  at start (:attr:`Spool.cleaned`), never reused.  Only names of the
  server's own pattern, ``chatnet-upload-<number>.part``, are touched.
  Without ``--spool-dir`` each run has a new private temporary folder, so at
  start the server also removes the temporary spools that killed servers
  left behind (:func:`sweep_abandoned`: unlocked, a minute old, holding only
  spool files).

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Hashable
from pathlib import Path
from typing import BinaryIO

GIB = 1024**3
#: The total spool bound when the operator sets none: half the free space
#: of the spool's file system at start, but at most this.
DEFAULT_SPOOL_CAP = GIB

#: The names of the server's own spool files, and only those.
SPOOL_NAME = re.compile(r"chatnet-upload-[0-9]+\.part")

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class SpoolError(Exception):
    """The spool folder cannot be used safely; the message says why and what to do."""


def check_folder(path: str | os.PathLike[str]) -> None:
    """
    Refuse a spool folder that is a link, someone else's, or writable by
    others.  A folder that does not exist yet passes (it will be made 0700).

    :raises SpoolError: saying what is wrong and how to put it right.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    _check_stat(st, str(path))


def _check_stat(st: os.stat_result, shown: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise SpoolError(
            f"{shown} is a symbolic link; give the folder it points to, if it is "
            "the one you mean"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise SpoolError(f"{shown} is not a folder")
    if st.st_uid != os.geteuid():
        raise SpoolError(
            f"{shown} belongs to user id {st.st_uid}, not to the server's "
            f"({os.geteuid()}); use a folder of the server's own"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(st.st_mode)
        raise SpoolError(
            f"{shown} can be written by others (mode {mode:04o}), who could plant "
            f"files in it; use a private folder (chmod 700 {shown}) or leave "
            "--spool-dir out for a private temporary one"
        )


class Spool:
    """
    The folder that holds upload files.

    :param directory: an existing or new folder; ``None`` makes a private
        temporary one, removed by :meth:`close`.
    :raises SpoolError: the folder is not safe (see the module's notes), or
        another server holds it.
    """

    PREFIX = "chatnet-upload-"

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        swept = (0, 0)
        if directory is None:
            swept = sweep_abandoned(Path(tempfile.gettempdir()))
            self.path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
            self._owned = True
        else:
            self.path = Path(directory)
            check_folder(self.path)
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._owned = False
        self._fd: int | None = self._open_folder()
        #: ``(files, bytes)`` left by an earlier server and removed at start
        #: (with a private temporary spool: from the abandoned ones of killed
        #: servers, see :func:`sweep_abandoned`).
        files, size = self._clean()
        self.cleaned = (files + swept[0], size + swept[1])

    def _open_folder(self) -> int:
        shown = str(self.path)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError as e:
            if os.path.islink(self.path):
                _check_stat(os.lstat(self.path), shown)
            raise SpoolError(f"cannot open {shown}: {e.strerror}") from None
        try:
            _check_stat(os.fstat(fd), shown)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SpoolError(
                    f"{shown} is in use by another chatnet server; give each "
                    "server a spool folder of its own"
                ) from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _clean(self) -> tuple[int, int]:
        """Remove the server's own files left in the folder; :returns: how many, how many bytes."""
        fd = self._fd
        assert fd is not None
        files = size = 0
        for name in os.listdir(fd):
            if SPOOL_NAME.fullmatch(name) is None:
                continue
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                continue  # not one of ours; creating that transfer's file will fail
            os.unlink(name, dir_fd=fd)  # a link itself, never what it points to
            files += 1
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
        return files, size

    def default_limit(self) -> int:
        """
        The total spool bound when none is configured: half the space free
        on the spool's file system now, at most :data:`DEFAULT_SPOOL_CAP`
        (1 GiB).  Half, so that the log, other programs and the rest of the
        system keep room even when every spooled byte is in use.
        """
        return min(DEFAULT_SPOOL_CAP, shutil.disk_usage(self.path).free // 2)

    def create(self, transfer: int) -> SpoolFile:
        """
        A new, empty spool file for transfer number ``transfer``.

        :raises OSError: it cannot be made; ``FileExistsError`` when
            something of its name is already there (never written through).
        """
        assert self._fd is not None, "spool closed"
        return SpoolFile(self, f"{self.PREFIX}{transfer}.part")

    def leftovers(self) -> list[Path]:
        """Spool files present in the folder (none once every transfer ended)."""
        return sorted(self.path / n for n in os.listdir(self.path) if SPOOL_NAME.fullmatch(n))

    def close(self) -> None:
        """Remove every spool file, and the folder too when it is our own."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            for name in os.listdir(fd):
                if SPOOL_NAME.fullmatch(name):
                    _unlink(name, fd)
        finally:
            os.close(fd)  # and with it the lock
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)

    def _open(self, name: str, flags: int, mode: int = 0o600) -> int:
        if self._fd is None:
            raise FileNotFoundError(f"spool closed: {name}")
        return os.open(name, flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=self._fd)

    def _unlink(self, name: str) -> None:
        if self._fd is not None:
            _unlink(name, self._fd)


#: The private temporary spool folders: ``chatnet-spool-XXXXXXXX`` in the temp folder.
TEMP_PREFIX = "chatnet-spool-"
#: A temporary spool untouched this long, and unlocked, was a killed server's.
ABANDONED_AFTER = 60.0


def sweep_abandoned(folder: Path, now: float | None = None) -> tuple[int, int]:
    """
    Remove the private temporary spools that killed servers left in
    ``folder`` (a server that stops removes its own): folders named
    ``chatnet-spool-*``, of this user, mode 0700, that no server has locked,
    untouched for :data:`ABANDONED_AFTER` seconds and holding only spool
    files.  Anything else is left alone.

    :returns: ``(files, bytes)`` removed.
    """
    files = size = 0
    now = time.time() if now is None else now
    try:
        names = os.listdir(folder)
    except OSError:
        return 0, 0
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError:
            continue  # not a folder, a link, not ours to open
        try:
            st = os.fstat(fd)
            if (st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) != 0o700
                    or now - st.st_mtime < ABANDONED_AFTER):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running server's
            entries = os.listdir(fd)
            if any(SPOOL_NAME.fullmatch(entry) is None for entry in entries):
                continue
            for entry in entries:
                est = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(est.st_mode):
                    size += est.st_size
                _unlink(entry, fd)
                files += 1
            try:
                os.rmdir(folder / name)
            except OSError:
                pass
        finally:
            os.close(fd)
    return files, size


def _unlink(name: str, fd: int) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except (FileNotFoundError, IsADirectoryError):  # gone, or not one of ours
        pass


class SpoolFile:
    """One upload on disk: written once, hashed, read back, removed."""

    def __init__(self, spool: Spool, name: str) -> None:
        self._spool = spool
        self.name = name
        self.path = spool.path / name
        self.received = 0
        self._hash = hashlib.sha256()
        fd = spool._open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
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
        """
        The content, for reading (the caller closes it): unbuffered, so that
        a delivery may send it with ``sendfile`` from the file's offset.
        """
        return os.fdopen(self._spool._open(self.name, os.O_RDONLY), "rb", buffering=0)

    def remove(self) -> None:
        """Close and delete; safe to call more than once."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._spool._unlink(self.name)

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
