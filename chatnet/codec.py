"""
The byte level of PROTOCOL.md section 1: limits, length prefixes, the data
frame header, and parsing a control payload into its JSON object.

:mod:`chatnet.frames` builds the frame classes on top of this.  The parsers
raise :class:`Malformed`; :mod:`chatnet.frames` turns that into a
:class:`~chatnet.frames.BadFrame`, because the connection stays open.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any, Final

#: Largest payload either side accepts: 64 KiB of file data + 5-byte header.
MAX_DATA: Final = 65_536
DATA_HEADER: Final = 5
MAX_PAYLOAD: Final = MAX_DATA + DATA_HEADER
#: Longest string ``id``, in characters (PROTOCOL.md section 2).
MAX_ID: Final = 64
#: Integer ids are held to the same 64 characters, written out in decimal.
_ID_BELOW: Final = 10**MAX_ID
_ID_ABOVE: Final = -(10 ** (MAX_ID - 1))

LENGTH: Final = struct.Struct(">I")
HEADER: Final = struct.Struct(">BI")  # 0x00, transfer number
encoder: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: ``text`` as a JSON string literal, quotes included.
encode_string: Final[Callable[[str], str]] = json.encoder.encode_basestring


class Malformed(ValueError):
    """A payload that is no frame; the message says why."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every frame: json.loads() with any keyword builds a new
# JSONDecoder per call.
_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_JSON_SPACE = " \t\n\r"


def _parse_json(text: str) -> Any:
    """
    ``_decoder.decode(text)``, minus its two whitespace regex matches for
    the usual frame that neither starts nor ends with whitespace.

    :raises ValueError: not one JSON value.
    """
    if text and text[0] not in _JSON_SPACE:
        obj, end = _decoder.raw_decode(text)
        if end == len(text) or not text[end:].strip(_JSON_SPACE):
            return obj
    return _decoder.decode(text)  # leading whitespace, or an error to raise


def parse_control(payload: bytes) -> tuple[dict[str, Any], str, int | str | None]:
    """
    A control payload's JSON object, its ``type`` and its ``id``.

    :raises Malformed: not UTF-8 JSON, not an object with a string ``type``,
        or an ``id`` that is neither an integer nor a string of at most
        :data:`MAX_ID` characters (an integer too: in decimal).
    """
    try:
        # Decode strictly first: json.loads(bytes) would guess UTF-16/32 and
        # let encoded surrogates through.
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("control frame is not valid UTF-8") from None
    try:
        obj = _parse_json(text)
    except (ValueError, RecursionError):
        raise Malformed("control frame is not valid JSON") from None
    if "\\u" in text:
        # A \uD800-\uDFFF escape without its pair is no Unicode text: it
        # could not be echoed, logged or forwarded as UTF-8.
        try:
            encoder.encode(obj).encode("utf-8")
        except UnicodeEncodeError:
            raise Malformed("control frame holds an unpaired surrogate escape") from None
    if type(obj) is not dict:
        raise Malformed("control frame is not a JSON object")
    kind = obj.get("type")
    if type(kind) is not str:
        raise Malformed("control frame has no string field 'type'")
    ident = obj.get("id")
    if ident is not None:
        if type(ident) is int:
            if not _ID_ABOVE < ident < _ID_BELOW:
                raise Malformed(f"'id' must be at most {MAX_ID} characters")
        elif type(ident) is not str:
            raise Malformed("'id' must be an integer or a string")
        elif len(ident) > MAX_ID:
            raise Malformed(f"'id' must be at most {MAX_ID} characters")
    return obj, kind, ident


def parse_data(payload: bytes) -> tuple[int, memoryview]:
    """
    A data payload's transfer number and data (a view, not a copy: the
    data goes straight to a file and a hash).

    :raises Malformed: no data, or more than 64 KiB.
    """
    if len(payload) <= DATA_HEADER:
        raise Malformed("data frame without data")
    if len(payload) > MAX_PAYLOAD:
        raise Malformed("data frame larger than 64 KiB of data")
    (transfer,) = LENGTH.unpack_from(payload, 1)
    return transfer, memoryview(payload)[DATA_HEADER:]


def not_a_frame(payload: bytes) -> str:
    """Why ``payload``, starting with neither ``{`` nor 0x00, is no frame."""
    if not payload:
        return "empty frame"
    return f"frame starts with byte 0x{payload[0]:02x}; expected '{{' (control) or 0x00 (data)"


def data_header(transfer: int, size: int) -> bytes:
    """The 9 bytes before ``size`` bytes of data of ``transfer`` on the wire."""
    return LENGTH.pack(size + DATA_HEADER) + HEADER.pack(0, transfer)
