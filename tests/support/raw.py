"""
Frames as raw JSON objects, for tests that speak the wire below
:mod:`chatnet.frames`: hostile or unusual requests the frame classes cannot
express (unknown fields, values of the wrong type), and fake servers and
clients that look at whole objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatnet import codec
from chatnet.frames import BadFrame, DataFrame

__all__ = ["BadFrame", "DataFrame", "Frame", "Request", "data_frame", "decode", "encode_frame"]


@dataclass(slots=True)
class Request:
    """A control frame: ``type``, the optional ``id`` and the whole object."""

    type: str
    id: int | str | None
    fields: dict[str, Any] = field(repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


Frame = Request | DataFrame | BadFrame


def decode(payload: bytes) -> Frame:
    """A payload as a raw control frame, a data frame or a bad frame."""
    try:
        if payload[:1] == b"{":
            obj, kind, ident = codec.parse_control(payload)
            return Request(kind, ident, obj)
        if payload[:1] == b"\x00":
            return DataFrame(*codec.parse_data(payload))
    except codec.Malformed as e:
        return BadFrame(str(e))
    return BadFrame(codec.not_a_frame(payload))


def encode_frame(obj: dict[str, Any]) -> bytes:
    """``obj`` as a control frame ready for the wire: prefix + compact JSON."""
    payload = codec.encoder.encode(obj).encode("utf-8")
    return codec.LENGTH.pack(len(payload)) + payload


def data_frame(transfer: int, data: bytes) -> bytes:
    """A data frame ready for the wire."""
    return DataFrame(transfer, data).wire()
