"""Tests for :mod:`chatnet.protocol`: the glue between a connection and its session."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from support import raw
from support.chat import new_server
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.protocols.basic import Int32StringReceiver

from chatnet import codec
from chatnet.frames import DataFrame
from chatnet.protocol import ChatServerProtocol, describe_peer
from chatnet.testing import connect_pump


class Client(Int32StringReceiver):
    """A minimal client for iosim: records every frame it receives."""

    MAX_LENGTH = codec.MAX_PAYLOAD

    def __init__(self) -> None:
        self.frames: list[Any] = []

    def stringReceived(self, payload: bytes) -> None:
        frame = raw.decode(payload)
        self.frames.append(frame.fields if isinstance(frame, raw.Request) else frame)

    def send(self, **obj: Any) -> None:
        self.sendString(json.dumps(obj).encode())

    def control(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if isinstance(f, dict) and f["type"] == kind]


def test_describe_peer() -> None:
    """Peers are shown as host:port, IPv6 hosts in brackets."""
    assert describe_peer(IPv4Address("TCP", "10.0.0.1", 5000)) == "10.0.0.1:5000"
    assert describe_peer(IPv6Address("TCP", "::1", 5000)) == "[::1]:5000"
    assert "x.sock" in describe_peer(UNIXAddress("/tmp/x.sock"))


def test_max_length_is_the_contract_limit() -> None:
    """The receiver's frame limit is 65,541 bytes."""
    assert ChatServerProtocol.MAX_LENGTH == 65_541


def test_connection_lost_before_login_leaves_no_timer(tmp_path: Path) -> None:
    """A connection dropped before login cancels its login deadline."""
    server = new_server(tmp_path)
    c = server.connect()
    assert len(server.clock.getDelayedCalls()) == 1
    c.lose()
    server.flush()
    assert server.clock.getDelayedCalls() == []
    assert server.hub.sessions == set()


def test_frames_in_one_read(tmp_path: Path) -> None:
    """Many frames arriving in one read are each answered, in order."""
    server = new_server(tmp_path)
    c = server.connect()
    wire = raw.encode_frame({"type": "login", "id": 0, "username": "alice"}) + b"".join(
        raw.encode_frame({"type": "ping", "id": i}) for i in range(1, 200))
    c.protocol.dataReceived(wire)
    assert [f["id"] for f in c.frames()] == list(range(200))


def test_chat_over_iosim(tmp_path: Path) -> None:
    """Two clients chat through the real protocol over an in-memory pump."""
    server = new_server(tmp_path)
    alice, bob = Client(), Client()
    pumps = [connect_pump(server, alice), connect_pump(server, bob)]

    def flush() -> None:
        for _ in range(3):
            server.flush()
            for pump in pumps:
                pump.flush()

    alice.send(type="login", id=1, username="alice")
    bob.send(type="login", id=1, username="bob")
    flush()
    alice.send(type="join", id=2, room="r")
    flush()
    bob.send(type="join", id=2, room="r")
    flush()
    alice.send(type="broadcast", id=3, text="hello")
    flush()
    (message,) = bob.control("message")
    assert message["text"] == "hello" and message["from"] == "alice"
    assert alice.control("presence") == [{"type": "presence", "room": "r", "user": "bob", "event": "join"}]


def test_file_over_iosim(tmp_path: Path) -> None:
    """A file moves sender to server to addressee over in-memory transports, intact."""
    server = new_server(tmp_path / "spool")
    alice, bob = Client(), Client()
    pumps = [connect_pump(server, alice), connect_pump(server, bob)]

    def flush() -> None:
        for _ in range(20):
            server.advance()
            for pump in pumps:
                pump.flush()

    for client, name in ((alice, "alice"), (bob, "bob")):
        client.send(type="login", id=1, username=name)
    flush()
    data = bytes(range(256)) * 2000  # 512,000 bytes
    alice.send(type="sendfile", id=2, to="bob", name="blob.bin", size=len(data))
    flush()
    (start,) = alice.control("upload-start")
    for i in range(0, len(data), 65536):
        alice.sendString(DataFrame(start["transfer"], data[i : i + 65536]).payload())
    flush()
    got = b"".join(f.data for f in bob.frames if isinstance(f, raw.DataFrame))
    assert got == data
    (end,) = bob.control("file-end")
    assert end["sha256"] == hashlib.sha256(data).hexdigest()
    assert alice.control("file-delivered")
    assert server.spool.leftovers() == []
