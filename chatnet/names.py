"""
Never-overwriting file names: ``report.pdf``, then ``report_1.pdf``,
``report_2.pdf`` (PROTOCOL.md section 5, revision 2).

One rule for both ends: the server renames a second file of a name sent to
the same addressee, and the client picks a name that is free in its
downloads folder.  The number goes before the last extension
(``a.tar.gz`` -> ``a.tar_1.gz``, ``README`` -> ``README_1``; a leading dot
does not start an extension: ``.bashrc`` -> ``.bashrc_1``), and a new name
is never longer than 255 bytes of UTF-8: the stem is shortened first, at a
character boundary.

Pure: imports nothing from Twisted and touches no files (the caller says
which names are taken).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

__all__ = ["MAX_NAME_BYTES", "free_name", "numbered", "split_extension", "truncate"]

#: The longest file name, in bytes of UTF-8 (PROTOCOL.md section 5).
MAX_NAME_BYTES = 255


def split_extension(name: str) -> tuple[str, str]:
    """
    Split before the last extension, as :func:`os.path.splitext` does:
    ``a.tar.gz`` -> ``("a.tar", ".gz")``, ``README`` -> ``("README", "")``,
    ``.bashrc`` -> ``(".bashrc", "")`` (leading dots start no extension).
    """
    dots = len(name) - len(name.lstrip("."))
    stem, dot, ext = name[dots:].rpartition(".")
    if not dot or not stem:
        return name, ""
    return name[:dots] + stem, "." + ext


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, at a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[: max(limit, 0)].decode("utf-8", "ignore")


def numbered(name: str, number: int) -> str:
    """
    ``name`` with ``_number`` before its last extension, within
    :data:`MAX_NAME_BYTES`: the stem gives way first; only a name whose
    extension alone leaves no room loses the end of its extension too.
    ``numbered(name, 0)`` is ``name``.
    """
    if number == 0:
        return name
    suffix = f"_{number}"
    stem, ext = split_extension(name)
    room = MAX_NAME_BYTES - len(suffix) - len(ext.encode("utf-8"))
    if room < 0:
        stem, ext = "", truncate(ext, MAX_NAME_BYTES - len(suffix))
    return truncate(stem, room) + suffix + ext


def free_name(
    name: str,
    taken: Callable[[str], bool],
    original: str | None = None,
    limit: int | None = None,
) -> str:
    """
    ``name`` if it is not ``taken``, else the first free numbered name.

    :param taken: tells whether a name is in use (``names.__contains__``
        for a set, a look in the folder for files).
    :param original: the name the file was first given, when ``name`` is
        already a renaming of it (``photo_1.bin`` sent as ``photo.bin``):
        the numbers then go on from the original (``photo_2.bin``), not
        from the renamed name (``photo_1_1.bin``).
    :param limit: give up after this many taken names.
    :raises FileExistsError: when ``limit`` names were all taken.
    """
    if not taken(name):
        return name
    base = name if original is None else original
    for number in count(1):
        if limit is not None and number > limit:
            raise FileExistsError(f"no free name for {name!r} after {limit} tries")
        candidate = numbered(base, number)
        if candidate != name and not taken(candidate):
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover
