"""
Payloads to frames and back (PROTOCOL.md section 1).

A payload is what :class:`~twisted.protocols.basic.Int32StringReceiver` hands
over once the 4-byte length prefix is stripped.  :func:`decode` never raises:
bad bytes become a :class:`BadFrame` value, because the connection stays open
after them.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Final

#: Largest payload either side accepts: 64 KiB of file data + 5-byte header.
MAX_DATA: Final = 65_536
DATA_HEADER: Final = 5
MAX_PAYLOAD: Final = MAX_DATA + DATA_HEADER

_LENGTH = struct.Struct(">I")
_DATA_HEADER = struct.Struct(">BI")
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


@dataclass(slots=True)  # not frozen: a frozen __init__ costs 2 % of a broadcast
class Request:
    """A control frame: ``type``, the optional ``id`` and the whole object."""

    type: str
    id: int | str | None
    fields: dict[str, Any] = field(repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A data frame: ``data`` (1 to 65,536 bytes) for transfer ``transfer``."""

    transfer: int
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A payload that is neither; ``message`` says why."""

    message: str


Frame = Request | DataFrame | BadFrame


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


def decode(payload: bytes) -> Frame:
    """Classify and parse one payload.  Never raises."""
    if not payload:
        return BadFrame("empty frame")
    first = payload[0]
    if first == 0x7B:  # "{"
        return _decode_control(payload)
    if first == 0x00:
        if len(payload) <= DATA_HEADER:
            return BadFrame("data frame without data")
        if len(payload) > MAX_PAYLOAD:
            return BadFrame("data frame larger than 64 KiB of data")
        (transfer,) = _LENGTH.unpack_from(payload, 1)
        # A view, not a copy: the data goes straight to a file and a hash.
        return DataFrame(transfer, memoryview(payload)[DATA_HEADER:])
    return BadFrame(
        f"frame starts with byte 0x{first:02x}; expected '{{' (control) or 0x00 (data)"
    )


def _decode_control(payload: bytes) -> Frame:
    try:
        # Decode strictly first: json.loads(bytes) would guess UTF-16/32 and
        # let encoded surrogates through.
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return BadFrame("control frame is not valid UTF-8")
    try:
        obj = _parse_json(text)
    except (ValueError, RecursionError):
        return BadFrame("control frame is not valid JSON")
    if "\\u" in text:
        # A \uD800-\uDFFF escape without its pair is no Unicode text: it
        # could not be echoed, logged or forwarded as UTF-8.
        try:
            _encoder.encode(obj).encode("utf-8")
        except UnicodeEncodeError:
            return BadFrame("control frame holds an unpaired surrogate escape")
    if not isinstance(obj, dict):
        return BadFrame("control frame is not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        return BadFrame("control frame has no string field 'type'")
    ident = obj.get("id")
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, int | str)):
        return BadFrame("'id' must be an integer or a string")
    return Request(kind, ident, obj)


def encode(obj: dict[str, Any]) -> bytes:
    """A control frame's payload (compact UTF-8 JSON), without the prefix."""
    return _encoder.encode(obj).encode("utf-8")


def message_frame(room: str, sender: str, text: str, ts: float) -> bytes:
    """
    The ``message`` event, ready for the wire: the hottest frame there is.

    Room and user names are ASCII letters and digits (validated), so only
    ``text`` needs JSON string escaping; writing the object directly is
    several times faster than encoding a dict and produces the same JSON.
    """
    payload = (
        f'{{"type":"message","room":"{room}","from":"{sender}",'
        f'"text":{_encode_string(text)},"ts":{ts!r}}}'
    ).encode()
    return _LENGTH.pack(len(payload)) + payload


def ok_frame(ident: int | str | None, **fields: Any) -> bytes:
    """An ``ok`` reply ready for the wire."""
    if type(ident) is int:
        if not fields:
            payload = b'{"type":"ok","id":%d}' % ident
            return _LENGTH.pack(len(payload)) + payload
        if len(fields) == 1 and type(fields.get("delivered")) is int:
            # the broadcast reply, once per message sent
            payload = b'{"type":"ok","id":%d,"delivered":%d}' % (ident, fields["delivered"])
            return _LENGTH.pack(len(payload)) + payload
    reply: dict[str, Any] = {"type": "ok"}
    if ident is not None:
        reply["id"] = ident
    reply.update(fields)
    return encode_frame(reply)


def frame(payload: bytes) -> bytes:
    """``payload`` with its 4-byte big-endian length prefix."""
    return _LENGTH.pack(len(payload)) + payload


def encode_frame(obj: dict[str, Any]) -> bytes:
    """A control frame ready for the wire: prefix + JSON."""
    payload = _encoder.encode(obj).encode("utf-8")
    return _LENGTH.pack(len(payload)) + payload


def data_frame(transfer: int, data: bytes) -> bytes:
    """A data frame ready for the wire: prefix + 0x00 + transfer + data."""
    return _LENGTH.pack(len(data) + DATA_HEADER) + _DATA_HEADER.pack(0, transfer) + data


def data_header(transfer: int, size: int) -> bytes:
    """The 9 bytes before ``size`` bytes of data of ``transfer`` on the wire."""
    return _LENGTH.pack(size + DATA_HEADER) + _DATA_HEADER.pack(0, transfer)


def data_payload(transfer: int, data: bytes) -> bytes:
    """A data frame's payload, without the length prefix."""
    return _DATA_HEADER.pack(0, transfer) + data
