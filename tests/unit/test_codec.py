"""Tests for :mod:`chatnet.codec`: payloads to frames and back."""

from __future__ import annotations

import json
import struct

import pytest
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import Int32StringReceiver

from chatnet import codec
from chatnet.codec import BadFrame, DataFrame, Request


class Collector(Int32StringReceiver):
    """Collects every payload, so framing can be checked byte by byte."""

    MAX_LENGTH = codec.MAX_PAYLOAD

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def stringReceived(self, payload: bytes) -> None:
        self.payloads.append(payload)


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b'{"type":"ping"}', Request("ping", None, {"type": "ping"})),
        (b'{"type":"ping","id":7}', Request("ping", 7, {"type": "ping", "id": 7})),
        (b'{"type":"ping","id":"a"}', Request("ping", "a", {"type": "ping", "id": "a"})),
        (b'{"type":"x","extra":[1]}', Request("x", None, {"type": "x", "extra": [1]})),
        (b'{"type":"ping"} \t\r\n', Request("ping", None, {"type": "ping"})),
        (b'{ "type" : "ping" }', Request("ping", None, {"type": "ping"})),
        (b"\x00\x00\x00\x00\x05abc", DataFrame(5, b"abc")),
        (b"\x00\xff\xff\xff\xff" + b"x" * 65536, DataFrame(2**32 - 1, b"x" * 65536)),
    ],
)
def test_decode_valid(payload: bytes, expected: object) -> None:
    """Control and data frames decode to their values."""
    frame = codec.decode(payload)
    assert frame == expected
    if isinstance(expected, Request):
        assert isinstance(frame, Request) and frame.fields == expected.fields


BAD_PAYLOADS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"[", id="bad-first-byte"),
    pytest.param(b"hello", id="text"),
    pytest.param(b"\x01\x00\x00\x00\x01x", id="byte-01"),
    pytest.param(b"\x00\x00\x00\x00\x01", id="data-without-data"),
    pytest.param(b"\x00\x00\x00", id="data-short-header"),
    pytest.param(b"\x00\x00\x00\x00\x01" + b"x" * 65537, id="data-too-long"),
    pytest.param(b'{"type":"ping"\xff}', id="invalid-utf8"),
    pytest.param(b'{"type":"\xed\xa0\x80"}', id="encoded-surrogate"),
    pytest.param(b'{"type":"ping"', id="invalid-json"),
    pytest.param(b'{"type":"ping"} {}', id="trailing-json"),
    pytest.param(b'{"type":"ping"} x', id="trailing-junk-after-space"),
    pytest.param(b'{"type":"ping"}\xc2\xa0', id="trailing-no-break-space"),
    pytest.param(b'{"type":"ping"}\x0b', id="trailing-vertical-tab"),
    pytest.param(b'{"type":"ping","x":NaN}', id="nan"),
    pytest.param(b'{"type":"ping","x":Infinity}', id="infinity"),
    pytest.param(b"{" + b'"a":' * 1 + b"[" * 100_000 + b"]" * 100_000 + b"}", id="deeply-nested"),
    pytest.param(b'{"no":"type"}', id="missing-type"),
    pytest.param(b'{"type":7}', id="numeric-type"),
    pytest.param(b'{"type":null}', id="null-type"),
    pytest.param(b'{"type":["ping"]}', id="list-type"),
    pytest.param(b'{"type":"ping","id":1.5}', id="float-id"),
    pytest.param(b'{"type":"ping","id":true}', id="bool-id"),
    pytest.param(b'{"type":"ping","id":[1]}', id="list-id"),
    pytest.param(b'{"type":"ping","id":{}}', id="object-id"),
    pytest.param(b'{"type":"ping","id":1e400}', id="huge-float-id"),
    pytest.param(b'{"type":"ping","id":' + b"9" * 5000 + b"}", id="huge-int-id"),
    pytest.param(b'{"type":"ping","id":"\\ud800"}', id="lone-surrogate-id"),
    pytest.param(b'{"type":"broadcast","text":"a\\udfffb"}', id="lone-surrogate-text"),
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
def test_decode_bad(payload: bytes) -> None:
    """Junk decodes to a BadFrame with a message; decode never raises."""
    frame = codec.decode(payload)
    assert isinstance(frame, BadFrame)
    assert frame.message


def test_decode_non_object_json() -> None:
    """Arrays, strings and numbers are not control frames, whatever their first byte."""
    for payload in (b"[]", b'"type"', b"7", b"null"):
        assert isinstance(codec.decode(payload), BadFrame)


def test_surrogate_pair_is_accepted() -> None:
    """A properly paired UTF-16 escape is one astral character, not an error."""
    frame = codec.decode(b'{"type":"broadcast","text":"\\ud83d\\ude00"}')
    assert isinstance(frame, Request)
    assert frame.get("text") == "\U0001f600"


def test_null_id_is_no_id() -> None:
    """``"id": null`` counts as no id at all."""
    frame = codec.decode(b'{"type":"ping","id":null}')
    assert isinstance(frame, Request) and frame.id is None


def test_encode_is_compact_utf8() -> None:
    """Control frames are compact JSON in UTF-8, non-ASCII text unescaped."""
    payload = codec.encode({"type": "message", "text": "h\u00e9"})
    assert payload == '{"type":"message","text":"h\u00e9"}'.encode()
    assert codec.encode_frame({"type": "ok"}) == struct.pack(">I", 13) + b'{"type":"ok"}'


def test_round_trip() -> None:
    """encode then decode gives back the same object."""
    obj = {"type": "whisper", "id": "x1", "to": "bob", "text": "\u2603 snow"}
    frame = codec.decode(codec.encode(obj))
    assert isinstance(frame, Request)
    assert frame.fields == obj and frame.id == "x1" and frame.type == "whisper"


def test_data_frame_helpers() -> None:
    """data_frame is the prefix plus data_payload; frame() adds a prefix."""
    payload = codec.data_payload(258, b"abc")
    assert payload == b"\x00\x00\x00\x01\x02abc"
    assert codec.data_frame(258, b"abc") == codec.frame(payload)
    assert codec.frame(b"xy") == b"\x00\x00\x00\x02xy"
    assert codec.decode(payload) == DataFrame(258, b"abc")


def test_limits() -> None:
    """The largest payload is 64 KiB of data plus the 5-byte header."""
    assert codec.MAX_DATA == 65_536
    assert codec.MAX_PAYLOAD == 65_541


def _stream() -> tuple[bytes, list[bytes]]:
    payloads = [
        codec.encode({"type": "login", "id": 1, "username": "alice"}),
        codec.data_payload(3, bytes(range(256)) * 10),
        codec.encode({"type": "broadcast", "text": "\u00e9\U0001f600"}),
        b"junk",
    ]
    return b"".join(codec.frame(p) for p in payloads), payloads


def test_framing_byte_by_byte_equals_whole() -> None:
    """Frames fed one byte at a time come out exactly as when fed whole."""
    wire, payloads = _stream()
    whole, split = Collector(), Collector()
    for proto in (whole, split):
        proto.makeConnection(StringTransport())
    whole.dataReceived(wire)
    for i in range(len(wire)):
        split.dataReceived(wire[i : i + 1])
    assert whole.payloads == split.payloads == payloads
    assert [codec.decode(p) for p in whole.payloads] == [codec.decode(p) for p in split.payloads]


def test_json_fields_survive() -> None:
    """Nested values and unicode in requests are kept as parsed."""
    obj = {"type": "x", "a": {"b": [1, 2.5, None, True]}, "s": "\u00fc"}
    frame = codec.decode(json.dumps(obj).encode())
    assert isinstance(frame, Request) and frame.fields == obj
