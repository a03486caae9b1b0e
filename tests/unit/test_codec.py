"""
Tests for :mod:`chatnet.codec`: the byte level (limits, a control payload's
JSON object, a data payload's header) and the framing of a stream of them
by the server's own receiver.  The frame classes are tested in
``test_frames.py``.
"""

from __future__ import annotations

import json
import struct

import pytest

from chatnet import codec, frames
from chatnet.codec import Malformed
from chatnet.config import Settings
from chatnet.testing import make_server


@pytest.mark.parametrize(
    "payload, obj, kind, ident",
    [
        (b'{"type":"ping"}', {"type": "ping"}, "ping", None),
        (b'{"type":"ping","id":7}', {"type": "ping", "id": 7}, "ping", 7),
        (b'{"type":"ping","id":"a"}', {"type": "ping", "id": "a"}, "ping", "a"),
        (b'{"type":"ping","id":null}', {"type": "ping", "id": None}, "ping", None),
        (b'{"type":"x","extra":[1]}', {"type": "x", "extra": [1]}, "x", None),
        (b'{"type":"ping"} \t\r\n', {"type": "ping"}, "ping", None),
        (b'{ "type" : "ping" }', {"type": "ping"}, "ping", None),
        (b'{"type":"b","t":"\\ud83d\\ude00"}', {"type": "b", "t": "\U0001f600"}, "b", None),
    ],
)
def test_parse_control(payload: bytes, obj: object, kind: str, ident: object) -> None:
    """A control payload gives its object, type and id."""
    assert codec.parse_control(payload) == (obj, kind, ident)


BAD_CONTROL = [
    pytest.param(b'{"type":"ping"\xff}', id="invalid-utf8"),
    pytest.param(b'{"type":"\xed\xa0\x80"}', id="encoded-surrogate"),
    pytest.param(b'{"type":"ping"', id="invalid-json"),
    pytest.param(b'{"type":"ping"} {}', id="trailing-json"),
    pytest.param(b'{"type":"ping"} x', id="trailing-junk-after-space"),
    pytest.param(b'{"type":"ping"}\xc2\xa0', id="trailing-no-break-space"),
    pytest.param(b'{"type":"ping"}\x0b', id="trailing-vertical-tab"),
    pytest.param(b'{"type":"ping","x":NaN}', id="nan"),
    pytest.param(b'{"type":"ping","x":Infinity}', id="infinity"),
    pytest.param(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="deeply-nested"),
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
    pytest.param(b'{"type":"ping","id":"' + b"x" * 65 + b'"}', id="long-id"),
    pytest.param(b'{"type":"ping","id":' + b"9" * 65 + b"}", id="long-int-id"),
    pytest.param(b'{"type":"ping","id":-' + b"9" * 64 + b"}", id="long-negative-int-id"),
    pytest.param(b'{"type":"ping","id":"\\ud800"}', id="lone-surrogate-id"),
    pytest.param(b'{"type":"broadcast","text":"a\\udfffb"}', id="lone-surrogate-text"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'"type"', id="string"),
    pytest.param(b"7", id="number"),
    pytest.param(b"null", id="null"),
]


@pytest.mark.parametrize("payload", BAD_CONTROL)
def test_parse_control_refuses_junk(payload: bytes) -> None:
    """Junk raises Malformed with a message saying why; nothing else escapes."""
    with pytest.raises(Malformed) as caught:
        codec.parse_control(payload)
    assert str(caught.value)


def test_parse_data() -> None:
    """A data payload gives its transfer and a view of its data, 1 to 65,536 bytes."""
    transfer, data = codec.parse_data(b"\x00\x00\x00\x01\x02abc")
    assert transfer == 258 and isinstance(data, memoryview) and bytes(data) == b"abc"
    assert codec.parse_data(b"\x00\xff\xff\xff\xff" + b"x" * 65536)[0] == 2**32 - 1
    for bad in (b"\x00\x00\x00\x00\x01", b"\x00\x00\x00", b"\x00\x00\x00\x00\x01" + b"x" * 65537):
        with pytest.raises(Malformed):
            codec.parse_data(bad)


def test_not_a_frame() -> None:
    """The reason names the first byte, or the emptiness."""
    assert codec.not_a_frame(b"") == "empty frame"
    assert "0x5b" in codec.not_a_frame(b"[1]")


def test_limits() -> None:
    """The largest payload is 64 KiB of data plus the 5-byte header; ids are 64 characters."""
    assert codec.MAX_DATA == 65_536
    assert codec.MAX_PAYLOAD == 65_541
    assert codec.MAX_ID == 64
    assert codec.data_header(258, 3) == b"\x00\x00\x00\x08\x00\x00\x00\x01\x02"


def _stream() -> bytes:
    payloads = [
        frames.Login(1, "alice").payload(),
        json.dumps({"type": "join", "id": 2, "room": "lobby"}).encode(),
        frames.Sendfile(3, "alice", "a.bin", 2560).payload(),
        frames.Broadcast(4, "\u00e9\U0001f600").payload(),
        b"junk",
        frames.UnknownRequest(5, "dance").payload(),
        frames.Ping(6).payload(),
    ]
    return b"".join(struct.pack(">I", len(p)) + p for p in payloads)


@pytest.mark.parametrize("fast_path", [True, False])
def test_framing_byte_by_byte_equals_whole(fast_path: bool) -> None:
    """
    The server's own receiver, fed a stream one byte at a time, answers
    exactly as when fed it whole (on the fast framing path and Twisted's).
    """
    outputs = []
    for step in (None, 1):
        server = make_server(Settings(fast_path=fast_path))
        client = server.connect()
        wire = _stream()
        if step is None:
            client.protocol.dataReceived(wire)
        else:
            for i in range(len(wire)):
                client.protocol.dataReceived(wire[i : i + 1])
        outputs.append(client.frames())
        server.close()
    whole, split = outputs
    assert whole == split
    assert [f.get("id") for f in whole if isinstance(f, dict)] == [1, 2, 3, 4, None, 5, 6]


@pytest.mark.parametrize("ident", [0, -1, 2**64, 10**64 - 1, -(10**63) + 1, "x" * 64, ""])
def test_ids_of_64_characters_pass(ident: int | str) -> None:
    """An id of up to 64 characters, an integer's counted in decimal, is kept as it came."""
    assert codec.parse_control(json.dumps({"type": "ping", "id": ident}).encode())[2] == ident
