"""
Tests for :mod:`chatnet.session`: logging in, framing errors, timeouts and the
"never an exception" property, driven through StringTransport connections.
"""

from __future__ import annotations

import itertools
import struct
from pathlib import Path
from typing import Any

import pytest
from support import raw
from support.chat import error_code, logged_in, new_server
from twisted.internet.error import ConnectionDone

from chatnet import codec, frames
from chatnet import session as session_module
from chatnet.config import SERVER_NAME
from chatnet.errors import ErrorCode
from chatnet.frames import DataFrame
from chatnet.session import Session
from chatnet.session_base import State
from chatnet.testing import TestServer as Server
from chatnet.testing import make_accounts


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return new_server(tmp_path / "spool")


def test_login_ok(server: Server) -> None:
    """A valid login is answered with the name, the server and every limit."""
    c = server.connect()
    reply = c.request("login", username="Alice")
    assert reply == {
        "type": "ok", "id": 1, "username": "Alice", "server": SERVER_NAME,
        "limits": {
            "username": 16, "room": 32, "room_capacity": 15, "text": 4096,
            "file_size": 3 * 1024 * 1024, "upload_slots": 5, "upload_queue": 100,
        },
    }
    assert server.audit.category("LOGIN") == [f"Alice logged in from {c.protocol.session.peer}"]


@pytest.mark.parametrize("name", ["", "a" * 17, "bad name", "\u00e9", None, 5])
def test_login_invalid_username_keeps_connection(server: Server, name: Any) -> None:
    """An invalid name is invalid-username; the client may then try another."""
    c = server.connect()
    assert error_code(c.request("login", username=name)) == "invalid-username"
    assert not c.transport.disconnecting
    assert len(server.audit.category("LOGIN-FAILED")) == 1
    assert c.request("login", username="a" * 16)["type"] == "ok"


def test_login_taken_case_insensitively(server: Server) -> None:
    """A name in use, in any case, is username-taken and a LOGIN-FAILED line."""
    logged_in(server, "alice")
    c = server.connect()
    assert error_code(c.request("login", username="ALICE")) == "username-taken"
    (line,) = server.audit.category("LOGIN-FAILED")
    assert "'ALICE'" in line and "username-taken" in line
    assert server.audit.category("ERROR") == []  # logged once, not twice
    assert c.request("login", username="alice2")["type"] == "ok"


def test_name_free_again_after_disconnect(server: Server) -> None:
    """A name is free once its holder's connection is gone."""
    (a,) = logged_in(server, "alice")
    a.lose()
    assert server.connect().request("login", username="Alice")["type"] == "ok"


def test_already_logged_in(server: Server) -> None:
    """A second login on a logged-in connection is already-logged-in."""
    (a,) = logged_in(server, "alice")
    assert error_code(a.request("login", username="bob")) == "already-logged-in"
    assert a.request("users")["users"] == ["alice"]


@pytest.mark.parametrize(
    "kind", ["join", "leave", "broadcast", "whisper", "rooms", "who", "users", "sendfile", "cancel"]
)
def test_not_logged_in(server: Server, kind: str) -> None:
    """Before login every request but login, ping and exit is not-logged-in."""
    c = server.connect()
    assert error_code(c.request(kind, room="r", text="t", to="x")) == "not-logged-in"
    assert not c.transport.disconnecting


def test_ping_before_and_after_login(server: Server) -> None:
    """ping is answered with a bare ok, with or without an id."""
    c = server.connect()
    assert c.request("ping") == {"type": "ok", "id": 1}
    c.send({"type": "ping"})
    assert c.frames() == [{"type": "ok"}]
    c.login("alice")
    c.send({"type": "ping", "id": "abc", "ignored": [1, 2]})
    assert c.frames() == [{"type": "ok", "id": "abc"}]


def test_unknown_type(server: Server) -> None:
    """An unknown type is unknown-type with the request's id, before or after login."""
    c = server.connect()
    for login in (True, False):
        reply = c.request("dance")
        assert error_code(reply) == "unknown-type" and "dance" in reply["message"]
        if login:
            c.login("alice")
    assert not c.transport.disconnecting


def test_exit_before_login(server: Server) -> None:
    """exit before login is answered, then the connection is closed."""
    c = server.connect()
    assert c.request("exit") == {"type": "ok", "id": 1}
    assert c.transport.disconnecting
    server.settle()
    assert server.hub.sessions == set()


def test_exit_logs_clean_disconnect(server: Server) -> None:
    """exit after login frees the name and logs a clean DISCONNECT."""
    (a,) = logged_in(server, "alice")
    assert a.request("exit")["type"] == "ok"
    assert a.transport.disconnecting
    a.send({"type": "ping", "id": 9})
    assert a.frames() == []  # nothing is answered after exit
    server.settle()
    assert server.hub.directory.users == {}
    assert server.audit.category("DISCONNECT")[-1].endswith("left cleanly")


def test_lost_connection_logged(server: Server) -> None:
    """A dropped connection is a DISCONNECT saying the connection was lost, and how."""
    a, b = logged_in(server, "alice", "bob")
    a.lose()
    line = server.audit.category("DISCONNECT")[-1]
    assert line.startswith("alice (127.0.0.1:")
    assert line.endswith(" connection lost (Connection to the other side was lost in a non-clean fashion)")
    b.lose(ConnectionDone())
    assert server.audit.category("DISCONNECT")[-1].endswith(" connection lost (closed by the client)")


def test_accounts(tmp_path: Path) -> None:
    """With accounts, a wrong, missing or unknown password is auth-failed."""
    server = new_server(tmp_path, accounts=make_accounts({"alice": "s3cret"}))
    c = server.connect()
    assert error_code(c.request("login", username="alice")) == "auth-failed"
    assert error_code(c.request("login", username="alice", password="nope")) == "auth-failed"
    assert error_code(c.request("login", username="alice", password=5)) == "auth-failed"
    assert error_code(c.request("login", username="bob", password="s3cret")) == "auth-failed"
    assert c.request("login", username="ALICE", password="s3cret")["username"] == "ALICE"
    # the first failure per name and address in full, the others summed a minute later
    assert len(server.audit.category("LOGIN-FAILED")) == 2
    server.advance(60)
    assert server.audit.category("LOGIN-FAILED")[2:] == [
        "2 more failed logins for alice from 127.0.0.1 in the last minute"]


def test_wrong_password_for_online_name_is_auth_failed(tmp_path: Path) -> None:
    """Login checks go name, then password, then taken: a wrong password never reveals who is online."""
    server = new_server(tmp_path, accounts=make_accounts({"alice": "pw"}))
    server.connect().request("login", username="alice", password="pw")
    c = server.connect()
    assert error_code(c.request("login", username="alice", password="bad")) == "auth-failed"
    assert error_code(c.request("login", username="alice", password="pw")) == "username-taken"
    assert error_code(c.request("login", username="al ice", password="pw")) == "invalid-username"


def test_every_error_reply_is_an_error_line(server: Server) -> None:
    """
    Each error frame the server sends has one audit line: ERROR, or for a
    refused login its LOGIN-FAILED line alone.
    """
    c = server.connect()
    replies = [c.request("join", room="r")]
    c.send_payload(b"junk")
    replies += c.frames()
    replies.append(c.request("login", username=""))
    c.login("alice")
    replies.append(c.request("leave"))
    c.send_data(5, b"x")
    replies += c.frames()
    errors = [f for f in replies if f["type"] == "error"]
    lines = server.audit.category("ERROR")
    assert len(errors) == len(lines) + 1 == 5
    assert all(line.startswith(("127.0.0.1:", "alice (127.0.0.1:")) for line in lines)
    assert [line.split(": ")[1] for line in lines] == [
        "not-logged-in", "bad-frame", "not-in-room", "bad-transfer"]
    (failed,) = server.audit.category("LOGIN-FAILED")
    assert "invalid-username" in failed


def test_password_ignored_without_accounts(server: Server) -> None:
    """Without accounts any password, or none, is fine."""
    c = server.connect()
    assert c.request("login", username="alice", password="whatever")["type"] == "ok"


def test_server_full(tmp_path: Path) -> None:
    """Past max_clients a connection gets server-full (no id) and is closed."""
    server = new_server(tmp_path, max_clients=2)
    a, b = server.connect(), server.connect()
    c = server.connect()
    (frame,) = c.frames()
    assert frame["type"] == "error" and frame["code"] == "server-full" and "id" not in frame
    assert c.transport.disconnecting
    assert not a.transport.disconnecting and not b.transport.disconnecting
    server.settle()
    a.lose()
    d = server.connect()
    assert d.request("login", username="dave")["type"] == "ok"


def test_bad_frames_keep_connection_open(server: Server) -> None:
    """Each bad payload is a bad-frame without id; the connection stays usable."""
    c = server.connect()
    bad = [b"", b"x", b"[1]", b"\xff\xfe", b'{"type":"ping"', b'{"id":1}', b'{"type":2,"id":1}',
           b'{"type":"ping","id":1.5}', b"{\xc3\x28}", b"{" + b"[" * 50_000 + b"}"]
    for payload in bad:
        c.send_payload(payload)
        (frame,) = c.frames()
        assert frame["type"] == "error" and frame["code"] == "bad-frame", payload
        assert "id" not in frame and frame["message"]
    assert not c.transport.disconnecting
    assert c.request("ping")["type"] == "ok"


def test_oversized_frame_closes_after_earlier_frames(server: Server) -> None:
    """A declared length over 65,541 is frame-too-large, then the connection closes."""
    (a,) = logged_in(server, "alice")
    a.protocol.dataReceived(
        raw.encode_frame({"type": "ping", "id": 1})
        + struct.pack(">I", codec.MAX_PAYLOAD + 1) + b"x" * 10
    )
    ok, error = a.frames()
    assert ok == {"type": "ok", "id": 1}
    assert error["type"] == "error" and error["code"] == "frame-too-large" and "id" not in error
    assert a.transport.disconnecting
    a.protocol.dataReceived(raw.encode_frame({"type": "ping", "id": 2}))
    assert a.frames() == []
    server.settle()
    assert "frame too large" in server.audit.category("DISCONNECT")[-1]


def test_largest_frame_is_not_oversized(server: Server) -> None:
    """A 65,541-byte payload (64 KiB of data) is within the limit."""
    (a,) = logged_in(server, "alice")
    a.send_data(1, b"x" * codec.MAX_DATA)
    (frame,) = a.frames()
    assert frame["code"] == "bad-transfer"
    assert not a.transport.disconnecting


def _conversation() -> bytes:
    frames = [
        {"type": "ping", "id": 1},
        {"type": "login", "id": 2, "username": "alice"},
        {"type": "join", "id": 3, "room": "r\u00e9"},
        {"type": "join", "id": 4, "room": "lobby"},
        {"type": "broadcast", "id": 5, "text": "h\u00e9llo \U0001f600"},
        {"type": "whisper", "id": 6, "to": "ALICE", "text": "me"},
        {"type": "who", "id": 7},
        {"type": "sendfile", "id": 8, "to": "alice", "name": "a.txt", "size": 3},
    ]
    wire = b"".join(raw.encode_frame(f) for f in frames)
    junk = struct.pack(">I", 4) + b"junk"
    return wire + junk + DataFrame(99, b"abc").wire() + raw.encode_frame({"type": "exit", "id": 9})


def test_byte_by_byte_equals_whole(tmp_path: Path) -> None:
    """A conversation fed one byte at a time gets exactly the output of it fed whole."""
    outputs = []
    for split in (False, True):
        server = new_server(tmp_path / str(split))
        c = server.connect()
        wire = _conversation()
        if split:
            for i in range(len(wire)):
                c.protocol.dataReceived(wire[i : i + 1])
        else:
            c.protocol.dataReceived(wire)
        server.advance()
        outputs.append(c.frames())
    whole, split_up = outputs
    assert whole == split_up
    assert [f.get("id") for f in whole if f["type"] in ("ok", "error")] == [
        1, 2, 3, 4, 5, 6, 7, 8, None, None, 9]


def test_login_timeout(server: Server) -> None:
    """A connection not logged in is closed at 30 s and leaves no timer behind."""
    c = server.connect()
    server.advance(29.9)
    assert not c.transport.disconnecting
    server.advance(0.2)
    assert c.transport.disconnecting
    server.settle()
    assert server.clock.getDelayedCalls() == []
    assert "no login within 30s" in server.audit.category("DISCONNECT")[-1]


def test_login_cancels_timeout(server: Server) -> None:
    """A logged-in connection is never closed by the login timeout."""
    c = server.connect()
    server.advance(29)
    c.login("alice")
    assert server.clock.getDelayedCalls() == []
    server.advance(60)
    assert not c.transport.disconnecting


def test_failed_login_does_not_stop_timeout(server: Server) -> None:
    """Failed logins do not reset the deadline."""
    c = server.connect()
    server.advance(20)
    c.request("login", username="")
    server.advance(10.1)
    assert c.transport.disconnecting


def test_unexpected_exception_is_internal(
    server: Server, monkeypatch: pytest.MonkeyPatch, observe_errors: list[Any]
) -> None:
    """A handler that raises is an internal error reply, logged; the session goes on."""
    def boom(self: Session, req: Any) -> None:
        raise ZeroDivisionError

    monkeypatch.setitem(session_module._HANDLERS, frames.Users, boom)
    (a,) = logged_in(server, "alice")
    reply = a.request("users")
    assert error_code(reply) == "internal" and reply["id"] == 2
    assert len(observe_errors) == 1
    observe_errors.clear()
    assert a.request("ping")["type"] == "ok"


def test_every_code_is_a_contract_code() -> None:
    """The server's error codes are exactly the 23 of PROTOCOL.md section 6."""
    assert {c.value for c in ErrorCode} == set(
        "bad-frame frame-too-large unknown-type not-logged-in already-logged-in "
        "invalid-username username-taken auth-failed server-full invalid-room room-full "
        "not-in-room no-such-room invalid-text no-such-user invalid-filename "
        "file-too-large file-type-not-allowed queue-full bad-transfer rate-limited "
        "unavailable internal".split()
    )


# The property: in every state, every hostile input gets a reply, never an exception.

HOSTILE: list[bytes] = [
    b"", b"\x00", b"\x00\x00\x00\x00\x07abc", b"\x00\xff\xff\xff\xffx", b"\x01", b"[]",
    b'"type"', b"{", b"{\xff}", b"{}", b'{"type":null}', b'{"type":{}}', b'{"type":""}',
    b'{"type":"__init__"}', b'{"type":"_login"}', b'{"type":"received"}',
    b'{"type":"ping","id":[]}', b'{"type":"ping","id":false}', b'{"type":"ping","id":"\\ud800"}',
    b'{"type":"ping","id":' + b"1" * 1000 + b"}", b"{" + b'"a":[' * 5000 + b"}",
    b'{"type":"login"}', b'{"type":"login","username":["a"]}', b'{"type":"login","username":"x\\u0000"}',
    b'{"type":"login","username":"alice"}', b'{"type":"login","username":"new1","password":{}}',
    b'{"type":"join"}', b'{"type":"join","room":7}', b'{"type":"join","room":"' + b"r" * 33 + b'"}',
    b'{"type":"leave"}', b'{"type":"broadcast"}', b'{"type":"broadcast","text":""}',
    b'{"type":"broadcast","text":"' + b"x" * 5000 + b'"}', b'{"type":"broadcast","text":"\\udc00"}',
    b'{"type":"whisper"}', b'{"type":"whisper","to":{},"text":"x"}', b'{"type":"whisper","to":"alice","text":7}',
    b'{"type":"who","room":[]}', b'{"type":"who","room":"nowhere"}', b'{"type":"who"}',
    b'{"type":"rooms","x":1}', b'{"type":"users","id":null}',
    b'{"type":"sendfile"}', b'{"type":"sendfile","to":"alice","name":"..","size":1}',
    b'{"type":"sendfile","to":"alice","name":"a","size":-1}', b'{"type":"sendfile","to":"alice","name":"a","size":"1"}',
    b'{"type":"sendfile","to":"alice","name":"a","size":1e999}', b'{"type":"sendfile","to":"alice","name":null,"size":1}',
    b'{"type":"sendfile","to":"alice","name":"a","size":99999999999999999999999}',
    b'{"type":"cancel"}', b'{"type":"cancel","transfer":"1"}', b'{"type":"cancel","transfer":1.0}',
    b'{"type":"cancel","transfer":-1}', b'{"type":"exit","id":{"a":1}}',
    b'{"type":"join","id":"j1","room":7}', b'{"type":"nope","id":5}', b'{"type":"ping","id":-3}',
    b'{"type":"ping","id":"' + b"x" * 65 + b'"}', b'{"type":"ping","id":"' + b"x" * 64 + b'"}',
]


def _in_state(server: Server, state: str) -> Any:
    logged_in(server, "alice", room="lobby")
    c = server.connect()
    if state != "new":
        c.login("mallory")
    if state == "in-room":
        assert c.request("join", room="lobby")["type"] == "ok"
    c.frames()
    return c


@pytest.mark.parametrize(
    "state, payload", list(itertools.product(["new", "logged-in", "in-room"], HOSTILE))
)
def test_hostile_input_gets_a_reply(server: Server, state: str, payload: bytes) -> None:
    """Any input in any state is answered by one ok or error frame and logs no error."""
    c = _in_state(server, state)
    c.send_payload(payload)
    replies = [f for f in c.frames() if isinstance(f, dict) and f["type"] in ("ok", "error")]
    assert len(replies) == 1, replies
    # The reply carries the request's id exactly, and no id when it had none
    # (or was no request).
    sent = frames.decode_from_client(payload)
    ident = sent.id if isinstance(sent, frames.Request | frames.UnknownRequest) else None
    assert replies[0].get("id", None) == ident
    assert ("id" in replies[0]) is (ident is not None)
    assert c.protocol.session.state is not State.CLOSED
    assert c.request("ping")["type"] == "ok"


def test_session_shutdown_and_close(server: Server) -> None:
    """session.shutdown tells the connection; close flushes and closes it, logged once."""
    (a,) = logged_in(server, "alice", room="r")
    anonymous = server.connect()
    for c in (a, anonymous):
        c.protocol.session.shutdown("going down")
        c.protocol.session.close("disconnected by server shutdown")
        c.protocol.session.shutdown("again")  # closed: nothing more is sent
        assert c.frames() == [{"type": "shutdown", "message": "going down"}]
        assert c.transport.disconnecting
    server.settle()
    assert server.hub.sessions == set()
    lines = server.audit.category("DISCONNECT")
    assert len(lines) == 2 and all(line.endswith("disconnected by server shutdown") for line in lines)
