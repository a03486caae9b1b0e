"""
The contract's rules for names, rooms, texts and file names, each a function.

Every ``check_*`` function returns the validated value or raises
:class:`~chatnet.errors.ChatError` with the code the contract gives and a
message that says what is wrong and what is allowed.  The client uses the same
functions to refuse bad input before it reaches the wire.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from chatnet.errors import ChatError, ErrorCode

MAX_USERNAME = 16
MAX_ROOM = 32
MAX_FILENAME_BYTES = 255

# fullmatch with explicit ASCII classes: str.isalnum() accepts any Unicode
# letter, and "$" in re.match accepts a trailing newline.
_USERNAME = re.compile(rf"[A-Za-z0-9]{{1,{MAX_USERNAME}}}")
_ROOM = re.compile(rf"[A-Za-z0-9]{{1,{MAX_ROOM}}}")
# C0 controls, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Zero-width and direction marks (U+200B-U+200F), bidirectional embeddings
#: and overrides (U+202A-U+202E), isolates (U+2066-U+2069) and the zero-width
#: no-break space (U+FEFF), as a character class body: invisible characters
#: that make a name show as another (``invoice\u202efdp.exe`` reads
#: ``invoiceexe.pdf``).  PROTOCOL.md section 5 refuses them in file names.
INVISIBLE = "\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff"
_INVISIBLE = re.compile(f"[{INVISIBLE}]")


# What message text may not hold (PROTOCOL.md section 4, revision 2): C0
# controls but tab and newline, DEL, C1 controls.  Terminal escape sequences
# start with one of them.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {
    "\x00": "NUL", "\x07": "BEL", "\x08": "backspace", "\x0b": "vertical tab",
    "\x0c": "form feed", "\r": "carriage return", "\x1b": "ESC", "\x7f": "DEL",
    "\x9b": "CSI",
}


def fold(name: str) -> str:
    """The key under which user and room names compare (case-insensitive)."""
    key = name.lower()
    # the name itself when it is already folded: one string per user, not two
    return name if key == name else key


def check_username(value: Any) -> str:
    """
    :returns: ``value`` when it is a valid username.
    :raises ChatError: ``invalid-username``.
    """
    if not isinstance(value, str) or _USERNAME.fullmatch(value) is None:
        raise ChatError(
            ErrorCode.INVALID_USERNAME,
            f"Invalid username {show(value)}: use 1-{MAX_USERNAME} ASCII "
            "letters or digits",
        )
    return value


def check_room(value: Any) -> str:
    """
    :returns: ``value`` when it is a valid room name.
    :raises ChatError: ``invalid-room``.
    """
    if not isinstance(value, str) or _ROOM.fullmatch(value) is None:
        raise ChatError(
            ErrorCode.INVALID_ROOM,
            f"Invalid room name {show(value)}: use 1-{MAX_ROOM} ASCII "
            "letters or digits",
        )
    return value


def check_text(value: Any, max_bytes: int) -> str:
    """
    :returns: ``value`` when it is a non-empty string of at most
        ``max_bytes`` bytes in UTF-8.
    :raises ChatError: ``invalid-text``.
    """
    if not isinstance(value, str) or not value:
        raise ChatError(ErrorCode.INVALID_TEXT, "Text must be a non-empty string")
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes
            raise ChatError(
                ErrorCode.INVALID_TEXT, "Text is not valid Unicode (lone surrogate)"
            ) from None
    if size > max_bytes:
        raise ChatError(
            ErrorCode.INVALID_TEXT,
            f"Text is {size} bytes; the limit is {max_bytes} bytes",
        )
    # isprintable() is one fast C pass; only text that fails it (a tab, a
    # newline, anything unusual) is searched for what the contract refuses.
    if not value.isprintable():
        found = _TEXT_CONTROL.search(value)
        if found is not None:
            char = found.group()
            name = _CONTROL_NAMES.get(char)
            raise ChatError(
                ErrorCode.INVALID_TEXT,
                f"Text contains the control character U+{ord(char):04X}"
                f"{f' ({name})' if name else ''} at character {found.start() + 1}; "
                "only tab and newline are allowed",
            )
    return value


def check_filename(value: Any) -> str:
    """
    :returns: ``value`` when it is an acceptable base name for a file.
    :raises ChatError: ``invalid-filename``.
    """
    if not isinstance(value, str) or not value:
        raise ChatError(ErrorCode.INVALID_FILENAME, "File name must be non-empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        raise ChatError(
            ErrorCode.INVALID_FILENAME, "File name is not valid UTF-8"
        ) from None
    if size > MAX_FILENAME_BYTES:
        raise ChatError(
            ErrorCode.INVALID_FILENAME,
            f"File name is {size} bytes; the limit is {MAX_FILENAME_BYTES}",
        )
    if value in (".", ".."):
        raise ChatError(ErrorCode.INVALID_FILENAME, f"File name {value!r} is reserved")
    if "/" in value or "\\" in value:
        raise ChatError(
            ErrorCode.INVALID_FILENAME,
            f"File name {show(value)} must be a base name, without / or \\",
        )
    if _CONTROL.search(value):
        raise ChatError(
            ErrorCode.INVALID_FILENAME,
            f"File name {show(value)} contains control characters",
        )
    invisible = _INVISIBLE.search(value)
    if invisible is not None:
        raise ChatError(
            ErrorCode.INVALID_FILENAME,
            f"File name {show(value)} contains an invisible or text-direction "
            f"character (U+{ord(invisible.group()):04X})",
        )
    return value


def check_extension(name: str, allowed: Collection[str] | None) -> str:
    """
    :param allowed: lower-case extensions without the dot (``{"txt", "pdf"}``),
        or ``None`` to allow every type.
    :returns: ``name`` when its type is allowed.
    :raises ChatError: ``file-type-not-allowed``.
    """
    if allowed is None:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or ext.lower() not in allowed:
        shown = ", ".join("." + e for e in sorted(allowed))
        raise ChatError(
            ErrorCode.FILE_TYPE_NOT_ALLOWED,
            f"File type of {show(name)} is not allowed; allowed: {shown}",
        )
    return name


def check_size(value: Any, max_bytes: int) -> int:
    """
    :returns: ``value`` when it is an integer from 0 to ``max_bytes``.
    :raises ChatError: ``file-too-large``, or ``bad-frame`` when ``value`` is
        not a non-negative integer at all.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChatError(
            ErrorCode.BAD_FRAME, "File size must be a non-negative integer"
        )
    if value > max_bytes:
        raise ChatError(
            ErrorCode.FILE_TOO_LARGE,
            f"File is {value} bytes; the limit is {max_bytes} bytes "
            f"({format_size(max_bytes)})",
        )
    return value


def parse_extensions(spec: str) -> frozenset[str] | None:
    """
    Parse ``"txt,pdf, .JPG"`` into ``{"txt", "pdf", "jpg"}``; an empty spec
    or ``"*"`` means every type (``None``).

    :raises ValueError: an extension that is not 1-16 letters or digits.
    """
    parts = [p.strip().lstrip(".").lower() for p in spec.replace(" ", ",").split(",")]
    parts = [p for p in parts if p]
    if not parts or parts == ["*"]:
        return None
    for p in parts:
        if not re.fullmatch(r"[a-z0-9]{1,16}", p):
            raise ValueError(f"invalid extension {p!r}")
    return frozenset(parts)


def format_size(n: float) -> str:
    """``3145728`` -> ``"3.0 MiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def count(n: int, noun: str) -> str:
    """``1 member``, ``2 members``, ``0 bytes``: a number with its noun agreeing."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def show(value: Any) -> str:
    """A short, safe rendering of a client-supplied value for a message."""
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if value is None:  # the field is missing (or null)
        return "(none given)"
    return f"of type {type(value).__name__}"
