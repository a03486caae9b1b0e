"""
Grants and tokens of chatnet.cluster.filepull, on a Clock and a
StringTransport (the loopback tests are tests/integration/test_filepull.py).
"""

from __future__ import annotations

import io
import json

from support import grants
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatnet.cluster.filepull import FileServer, Grant, PullFailed, sign

SECRET = b"k" * 32
PEER = IPv4Address("TCP", "127.0.0.1", 40000)


grants_settled = grants.grants_settled  # autouse: no grant left failed unconsumed


def frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        n = int.from_bytes(data[:4], "big")
        out.append(data[4:4 + n])
        data = data[4 + n:]
    return out


def failure_of(g: Grant) -> Failure:
    failures: list[Failure] = []
    g.deferred.addErrback(failures.append)
    assert len(failures) == 1
    return failures[0]


def test_token_binds_every_field() -> None:
    """Changing the transfer, addressee, node, expiry or secret changes the token."""
    base = sign(SECRET, 7, "bob", "b", 100)
    assert base == sign(SECRET, 7, "bob", "b", 100)
    assert len(base) == 64
    others = {
        sign(SECRET, 8, "bob", "b", 100), sign(SECRET, 7, "bo", "b", 100),
        sign(SECRET, 7, "bob", "c", 100), sign(SECRET, 7, "bob", "b", 101),
        sign(b"x" * 32, 7, "bob", "b", 100),
        sign(SECRET, 7, "bob|b", "", 100),
    }
    assert base not in others and len(others) == 6


def test_check_takes_only_the_grant_as_made() -> None:
    """check() refuses any field changed and a forged token; accepts the grant itself."""
    server = FileServer(Clock(), SECRET)
    g = server.grant(7, "bob", "b", io.BytesIO(b"abc"), 3, "00")
    for bent in ({"transfer": 8}, {"addressee": "eve"}, {"node": "c"},
                 {"expires": g.expires + 1}, {"token": "f" * 64}, {"token": 5}):
        try:
            server.check({**g.message(), **bent})
        except PullFailed:
            pass
        else:
            raise AssertionError(f"accepted {bent}")
    assert server.check(g.message()) is g


def test_expired_grant_fails_and_is_forgotten() -> None:
    """An unpulled grant fails at its expiry and no timer is left."""
    clock = Clock()
    server = FileServer(clock, SECRET, ttl=10)
    g = server.grant(7, "bob", "b", io.BytesIO(b"abc"), 3, "00")
    clock.advance(g.expires - clock.seconds() - 0.5)
    assert not g.deferred.called
    clock.advance(1)
    assert failure_of(g).check(PullFailed)
    assert server.grants == {} and clock.getDelayedCalls() == []


def test_cancel_fails_the_grant() -> None:
    """cancel() fails the Deferred with CancelledError; a new grant replaces an old one."""
    clock = Clock()
    server = FileServer(clock, SECRET)
    old = server.grant(7, "bob", "b", io.BytesIO(b"abc"), 3, "00")
    new = server.grant(7, "bob", "b", io.BytesIO(b"abc"), 3, "00")
    assert failure_of(old).check(CancelledError)
    server.cancel(7)
    assert failure_of(new).check(CancelledError)
    assert clock.getDelayedCalls() == []


def test_refused_request_is_answered_and_closed() -> None:
    """A wrong token gets an error frame and the connection is closed; the grant stays."""
    clock = Clock()
    server = FileServer(clock, SECRET)
    g = server.grant(7, "bob", "b", io.BytesIO(b"abc"), 3, "00")
    proto = server.factory().buildProtocol(PEER)
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    request = json.dumps({**g.message(), "token": "0" * 64}).encode()
    proto.dataReceived(len(request).to_bytes(4, "big") + request)
    [answer] = frames(transport.value())
    assert json.loads(answer) == {"error": "wrong token"}
    assert transport.disconnecting
    assert server.refused == 1 and server.grants == {7: g}
    server.cancel(7)
    assert failure_of(g).check(CancelledError)
    assert clock.getDelayedCalls() == []


def test_silent_connection_closed_after_handshake_timeout() -> None:
    """A connection that presents nothing is closed after the handshake timeout."""
    clock = Clock()
    server = FileServer(clock, SECRET, handshake_timeout=5)
    proto = server.factory().buildProtocol(PEER)
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting
    assert b"no request in time" in transport.value()
    assert clock.getDelayedCalls() == []


def test_served_file_is_data_frames_then_end() -> None:
    """The right request: a header, the file as data frames of the transfer, then end."""
    clock = Clock()
    server = FileServer(clock, SECRET)
    body = b"x" * 70_000
    g = server.grant(9, "bob", "b", io.BytesIO(body), len(body), "ab")
    proto = server.factory().buildProtocol(PEER)
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    request = json.dumps(g.message()).encode()
    proto.dataReceived(len(request).to_bytes(4, "big") + request)
    producer = transport.producer
    assert producer is not None and not transport.streaming
    while transport.producer is not None:
        producer.resumeProducing()
    header, *data, end = frames(transport.value())
    assert json.loads(header) == {"size": len(body), "sha256": "ab"}
    assert [d[:5] for d in data] == [b"\x00\x00\x00\x00\x09"] * 2
    assert b"".join(d[5:] for d in data) == body
    assert json.loads(end) == {"end": True}
    written = json.dumps({"written": True}).encode()
    proto.dataReceived(len(written).to_bytes(4, "big") + written)
    assert g.deferred.called and server.grants == {}
    assert transport.disconnecting
    assert clock.getDelayedCalls() == []
