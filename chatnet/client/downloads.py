"""
Where a received file goes: a safe base name and the next free ``name_N.ext``.

The server already checks file names (PROTOCOL.md section 5), but a client
must not trust it: :func:`sanitise` turns whatever ``file-start`` carries into
a plain base name that cannot leave the downloads folder, and
:func:`free_name` never picks a name that already exists.

Pure: imports nothing from Twisted and touches no files itself (the caller
passes an ``exists`` test).
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: The name used when nothing usable is left of the server's name.
FALLBACK_NAME = "download"
MAX_NAME_BYTES = 255

# C0 controls, DEL, C1 controls, and the path separators of every platform.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:]")


def sanitise(name: object) -> str:
    """
    A base name that is safe to create inside the downloads folder.

    Path components are dropped (only the last one is kept), control
    characters and separators become ``_``, leading dots and spaces are
    removed (no hidden files, no ``..``), and the result is cut to
    255 bytes of UTF-8 keeping the extension.

    :param name: the name the server sent (any type, it is not trusted).
    :returns: a non-empty base name.
    """
    if not isinstance(name, str):
        return FALLBACK_NAME
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE.sub("_", base).strip(" ")
    base = base.lstrip(". ")
    base = base.encode("utf-8", "replace").decode("utf-8")
    if not base:
        return FALLBACK_NAME
    return _truncate(base, MAX_NAME_BYTES)


def _truncate(name: str, limit: int) -> str:
    """Cut ``name`` to ``limit`` bytes of UTF-8, keeping its extension."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, ext = split_extension(name)
    if len(ext.encode("utf-8")) > limit // 2:
        stem, ext = name, ""
    room = limit - len(ext.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
    return cut + ext


def split_extension(name: str) -> tuple[str, str]:
    """
    Split at the last dot: ``a.tar.gz`` -> ``("a.tar", ".gz")``,
    ``README`` -> ``("README", "")``, ``.profile`` -> ``(".profile", "")``.
    """
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + ext


def numbered(name: str, number: int) -> str:
    """
    ``name`` with ``_number`` before its last extension:
    ``report.pdf`` -> ``report_1.pdf``, ``a.tar.gz`` -> ``a.tar_1.gz``,
    ``README`` -> ``README_1``.  The result stays within 255 bytes.
    """
    if number == 0:
        return name
    suffix = f"_{number}"
    stem, ext = split_extension(name)
    stem = _truncate(stem, MAX_NAME_BYTES - len(ext.encode()) - len(suffix))
    return f"{stem}{suffix}{ext}"


def free_name(name: str, exists: Callable[[str], bool], limit: int = 100_000) -> str:
    """
    The first of ``name``, ``name_1``, ``name_2`` ... for which ``exists``
    is false.

    :param name: an already sanitised base name.
    :param exists: tells whether a base name is taken in the folder.
    :raises FileExistsError: after ``limit`` taken names.
    """
    for number in range(limit):
        candidate = numbered(name, number)
        if not exists(candidate):
            return candidate
    raise FileExistsError(f"no free name for {name!r} after {limit} tries")
