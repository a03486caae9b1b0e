"""Tests for :mod:`chatnet.frames`: every frame, both directions, junk, the size limit."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from chatnet import codec, frames
from chatnet.frames import (
    BadFrame,
    Control,
    DataFrame,
    FrameTooLarge,
    Ok,
    Request,
    decode_from_client,
    decode_from_server,
    read_ok,
)

REQUESTS: list[Request] = [
    frames.Login(1, "alice"),
    frames.Login("a", "alice", "secret", True),
    frames.Ping(2),
    frames.Ping(),
    frames.Exit(3),
    frames.Join(4, "lobby"),
    frames.Leave(5),
    frames.Broadcast(6, "h\u00e9llo \U0001f600\n\t\"q\""),
    frames.Whisper(7, "bob", "psst"),
    frames.Rooms(8),
    frames.Rooms(8, "lobby", 50),
    frames.Who(9),
    frames.Who(9, "lobby"),
    frames.Users(10, "alice", 100),
    frames.Sendfile(11, "bob", "a.txt", 5),
    frames.Cancel(12, 3),
    frames.Received(13, 3, "ab" * 32),
    frames.Accept(14, 3),
    frames.Decline(15, 3),
]

EVENTS: list[Control] = [
    frames.Message("lobby", "alice", "hi \u2603", 1733400000.25),
    frames.WhisperEvent("alice", "psst", 1733400000.0),
    frames.Presence("lobby", "bob", "join"),
    frames.Shutdown("The server is stopping"),
    frames.UploadStart(3, 0.5),
    frames.UploadDone(3, 0.5, 1.25),
    frames.FileStart(3, "alice", "a.txt", 5),
    frames.FileStart(3, "alice", "a_1.txt", 5, "a.txt"),
    frames.FileEnd(3, "ab" * 32),
    frames.FileDelivered(3, "bob"),
    frames.FileFailed(3, "declined"),
    frames.FileAborted(3, "shutdown"),
    frames.FileOffer(3, "alice", "a.txt", 5),
    frames.FileOffer(3, "alice", "a_1.txt", 5, "a.txt"),
    frames.FileReceived(3, "bob", True),
    frames.FilePending(3, "alice", "a.txt", 5, "queued", 2),
    frames.FilePending(3, "alice", "a.txt", 5, "uploading"),
    frames.ErrorReply(1, "room-full", "Room 'x' is full (15/15)"),
    frames.ErrorReply(None, "bad-frame", "junk"),
    frames.ErrorReply("q", "unavailable", "try again", 2.5),
]

#: (request, its ok reply) for every request type.
REPLIES: list[tuple[Request, Control]] = [
    (frames.Login(1, "alice"), frames.LoginOk(1, "alice", "chatnet/1.0", {"username": 16, "room": 32})),
    (frames.Ping(2), Ok(2)),
    (frames.Exit(3), Ok(3)),
    (frames.Join(4, "lobby"), frames.JoinOk(4, "lobby", ("alice", "bob"))),
    (frames.Leave(5), frames.LeaveOk(5, "lobby")),
    (frames.Broadcast(6, "x"), frames.BroadcastOk(6, 3)),
    (frames.Whisper(7, "b", "x"), Ok(7)),
    (frames.Rooms(8), frames.RoomsOk(8, (frames.RoomInfo("lobby", ("alice", "bob"), 15),), True)),
    (frames.Who(9), frames.WhoOk(9, "lobby", ("alice",))),
    (frames.Users(10), frames.UsersOk(10, ("alice", "bob"), False)),
    (frames.Sendfile(11, "b", "a", 1), frames.SendfileOk(11, 3, 0)),
    (frames.Cancel(12, 3), frames.CancelOk(12, 3)),
    (frames.Received(13, 3, "x"), Ok(13)),
    (frames.Accept(14, 3), Ok(14)),
    (frames.Decline(15, 3), Ok(15)),
]


def _wire_payload(wire: bytes) -> bytes:
    (length,) = struct.unpack_from(">I", wire)
    assert length == len(wire) - 4
    return wire[4:]


@pytest.mark.parametrize("request_", REQUESTS, ids=repr)
def test_request_round_trip(request_: Request) -> None:
    """A request the client encodes decodes on the server to the same frame."""
    payload = request_.payload()
    assert _wire_payload(request_.wire()) == payload
    assert decode_from_client(payload) == request_


@pytest.mark.parametrize("event", EVENTS, ids=repr)
def test_event_round_trip(event: Control) -> None:
    """An event or error the server encodes decodes on the client to the same frame."""
    payload = event.payload()
    assert _wire_payload(event.wire()) == payload
    assert decode_from_server(payload) == event


@pytest.mark.parametrize("request_, reply", REPLIES, ids=lambda x: repr(x)[:40])
def test_reply_round_trip(request_: Request, reply: Control) -> None:
    """An ok reply decodes to Ok, and read_ok reads it as its request's reply."""
    decoded = decode_from_server(reply.wire()[4:])
    assert isinstance(decoded, Ok) and decoded.id == request_.id
    assert read_ok(decoded, request_) == reply
    assert read_ok(decoded, type(request_)) == reply


def test_every_type_of_the_contract_has_a_class() -> None:
    """Every request and event type of PROTOCOL.md revision 2 is listed."""
    assert all(cls.TYPE == name for name, cls in frames.REQUESTS.items())
    assert set(frames.REQUESTS) == set(
        "login ping exit join leave broadcast whisper rooms who users sendfile cancel "
        "received accept decline".split()
    )
    assert all(cls.TYPE == name for name, cls in frames.EVENTS.items())
    assert set(frames.EVENTS) == set(
        "message whisper presence shutdown upload-start upload-done file-start file-end "
        "file-delivered file-failed file-aborted file-offer file-received "
        "file-pending".split()
    )
    assert {request.TYPE for request, _ in REPLIES} == set(frames.REQUESTS)


def test_wire_keys() -> None:
    """Fields are written under the contract's keys (``from``), ``None`` ones left out."""
    obj = json.loads(frames.FileStart(3, "alice", "a.txt", 5).payload())
    assert obj == {"type": "file-start", "transfer": 3, "from": "alice", "name": "a.txt", "size": 5}
    assert json.loads(frames.Ping().payload()) == {"type": "ping"}
    assert json.loads(frames.ErrorReply(7, "x", "y").payload()) == {
        "type": "error", "id": 7, "code": "x", "message": "y",
    }
    assert frames.Ok(7).payload() == b'{"type":"ok","id":7}'


@pytest.mark.parametrize("ident", [1, "x", None, 0, -5, "", "\u00e9" * 64, 10**30])
def test_fast_paths_equal_the_generic_encoding(ident: Any) -> None:
    """The byte templates write exactly what encoding the object would."""
    for frame in (Ok(ident), frames.BroadcastOk(ident, 12)):
        assert frame.wire() == Control.wire(frame)
    message = frames.Message("lobby", "alice", "\u00e9\"\\\n\x00 \U0001f600", 1.5)
    assert message.wire() == Control.wire(message)
    assert frames.message_wire("r", "a", "t", 2.0) == frames.Message("r", "a", "t", 2.0).wire()


def test_requests_ignore_unknown_fields() -> None:
    """Unknown fields in a request are dropped."""
    frame = decode_from_client(b'{"type":"join","id":1,"room":"a","colour":"red"}')
    assert frame == frames.Join(1, "a")


def test_request_fields_are_kept_as_sent() -> None:
    """Request values are not checked here: each has its own error code in the session."""
    frame = decode_from_client(b'{"type":"sendfile","to":5,"name":[1],"size":"big"}')
    assert frame == frames.Sendfile(None, 5, [1], "big")
    assert decode_from_client(b'{"type":"join"}') == frames.Join(None, None)


def test_unknown_request_type_keeps_type_and_id() -> None:
    """An unknown type is an UnknownRequest, so the reply can carry the id."""
    frame = decode_from_client(b'{"type":"dance","id":"x","fast":true}')
    assert frame == frames.UnknownRequest("x", "dance")
    assert frame.payload() == b'{"type":"dance","id":"x"}'


@pytest.mark.parametrize(
    "ident, ok",
    [
        (1, True), (-1, True), (10**40, True), ("", True), ("x" * 64, True),
        ("\U0001f600" * 64, True), ("x" * 65, False), (1.5, False), (True, False),
        ([1], False), ({}, False),
    ],
    ids=lambda x: repr(x)[:12],
)
def test_ids(ident: Any, ok: bool) -> None:
    """An id is an integer or a string of at most 64 characters; else bad-frame, no id."""
    for decode, kind in ((decode_from_client, "ping"), (decode_from_server, "ok")):
        frame = decode(json.dumps({"type": kind, "id": ident}).encode())
        assert isinstance(frame, BadFrame) is not ok, (decode, frame)
        if ok:
            assert frame.id == ident  # type: ignore[union-attr]


JUNK = [
    b"", b"[", b"hello", b"\x01\x00\x00\x00\x01x", b"\x00\x00\x00\x00\x01", b"\x00\x00\x00",
    b"\x00\x00\x00\x00\x01" + b"x" * 65537, b'{"type":"ping"\xff}', b'{"type":"\xed\xa0\x80"}',
    b'{"type":"ping"', b'{"type":"ping"} {}', b'{"type":"ping","x":NaN}',
    b"{" + b'"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"no":"type"}', b'{"type":7}',
    b'{"type":null}', b"[]", b'"type"', b"7", b"null", b'{"type":"ping","id":"\\ud800"}',
    b'{"type":"broadcast","text":"a\\udfffb"}',
]


@pytest.mark.parametrize("payload", JUNK, ids=lambda p: repr(p[:20]))
def test_junk_is_a_bad_frame(payload: bytes) -> None:
    """Junk decodes to a BadFrame with a message, in both directions; never an exception."""
    for decode in (decode_from_client, decode_from_server):
        frame = decode(payload)
        assert isinstance(frame, BadFrame) and frame.message


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "message", "room": "a", "from": "b", "text": 5, "ts": 1.0},
        {"type": "message", "room": "a", "from": "b", "text": "x"},
        {"type": "message", "room": "a", "from": "b", "text": "x", "ts": True},
        {"type": "presence", "room": "a", "user": None, "event": "join"},
        {"type": "file-start", "transfer": "3", "from": "a", "name": "n", "size": 1},
        {"type": "file-start", "transfer": 3, "from": "a", "name": "n", "size": 1, "original": 7},
        {"type": "file-received", "transfer": 3, "to": "a", "verified": 1},
        {"type": "error", "code": "x"},
        {"type": "error", "code": "x", "message": "y", "retry_after": "soon"},
    ],
)
def test_server_frames_are_checked(obj: dict[str, Any]) -> None:
    """A server frame with a field missing or of the wrong type is a BadFrame on the client."""
    frame = decode_from_server(json.dumps(obj).encode())
    assert isinstance(frame, BadFrame), frame


def test_unknown_server_events_are_no_error() -> None:
    """A newer server's event type reads as an UnknownEvent, its fields kept."""
    frame = decode_from_server(b'{"type":"node-joined","node":"b","ts":1.5}')
    assert frame == frames.UnknownEvent("node-joined", {"node": "b", "ts": 1.5})
    assert frame.to_json() == {"type": "node-joined", "node": "b", "ts": 1.5}


def test_unknown_fields_of_known_events_are_ignored() -> None:
    """Extra fields on a known event do not make it unreadable."""
    frame = decode_from_server(b'{"type":"shutdown","message":"bye","node":"a"}')
    assert frame == frames.Shutdown("bye")


def test_cancel_reply_without_transfer() -> None:
    """The contract's cancel reply has no fields; a bare ok reads as CancelOk."""
    assert read_ok(Ok(4, {}), frames.Cancel) == frames.CancelOk(4)


@pytest.mark.parametrize(
    "request_, result",
    [
        (frames.Join(1), {"room": "a"}),
        (frames.Join(1), {"room": "a", "members": "alice"}),
        (frames.Rooms(1), {"rooms": [{"name": "a", "members": ["b"]}]}),
        (frames.Rooms(1), {"rooms": [{"name": "a", "members": 2, "capacity": 15}]}),
        (frames.Rooms(1), {"rooms": ["a"]}),
        (frames.Login(1), {"username": "a", "server": "s", "limits": {"room": "32"}}),
        (frames.Broadcast(1), {}),
    ],
)
def test_bad_results_are_bad_frames(request_: Request, result: dict[str, Any]) -> None:
    """An ok whose fields do not fit the request's reply reads as a BadFrame."""
    assert isinstance(read_ok(Ok(1, result), request_), BadFrame)


def test_login_limits_a_server_adds_are_kept() -> None:
    """A limit a server adds that is not an integer does not make its login reply unreadable."""
    limits = {"username": 16, "upload_slots": 5, "upload_mode": "cluster"}
    reply = read_ok(Ok(1, {"username": "a", "server": "s", "limits": limits}), frames.Login(1))
    assert reply == frames.LoginOk(1, "a", "s", limits)


def test_new_optional_reply_fields_default() -> None:
    """A paged reply without ``more`` (a revision 1 server) reads as the last page."""
    reply = read_ok(Ok(1, {"users": ["a"]}), frames.Users)
    assert reply == frames.UsersOk(1, ("a",), False)


def test_json_numbers() -> None:
    """An integer ``ts`` or ``waited`` reads as a float."""
    frame = decode_from_server(b'{"type":"upload-start","transfer":1,"waited":2}')
    assert frame == frames.UploadStart(1, 2.0) and isinstance(frame.waited, float)


def test_data_frames() -> None:
    """Data frames round-trip in both directions, as a view of the payload."""
    frame = DataFrame(258, b"abc")
    assert frame.payload() == b"\x00\x00\x00\x01\x02abc"
    assert frame.wire() == b"\x00\x00\x00\x08" + frame.payload()
    assert frame.wire()[:9] == frames.data_header(258, 3)
    for decode in (decode_from_client, decode_from_server):
        decoded = decode(frame.payload())
        assert decoded == frame and isinstance(decoded.data, memoryview)
    largest = DataFrame(1, b"x" * codec.MAX_DATA)
    assert len(largest.wire()) == 4 + codec.MAX_PAYLOAD
    assert decode_from_client(largest.payload()) == largest


# -- the size guarantee -----------------------------------------------------


def _fill(limit_left: int) -> str:
    return "x" * limit_left


def test_no_encoder_passes_the_limit() -> None:
    """Frames up to 65,541 bytes are written; one byte more raises FrameTooLarge."""
    empty = len(frames.Message("r", "a", "", 1.0).payload())
    exact = frames.Message("r", "a", _fill(codec.MAX_PAYLOAD - empty), 1.0)
    assert len(exact.wire()) == 4 + codec.MAX_PAYLOAD
    over = frames.Message("r", "a", _fill(codec.MAX_PAYLOAD - empty + 1), 1.0)
    with pytest.raises(FrameTooLarge, match="message frame of 65542 bytes"):
        over.wire()
    with pytest.raises(FrameTooLarge):
        frames.message_wire("r", "a", _fill(70_000), 1.0)
    big_text = _fill(70_000)
    for frame in [
        frames.WhisperEvent("a", big_text, 1.0),
        frames.ErrorReply(1, "x", big_text),
        frames.Broadcast(1, big_text),
        frames.UsersOk(1, tuple(f"user{i:012d}" for i in range(5000)), True),
        frames.RoomsOk(1, tuple(frames.RoomInfo(f"room{i:06d}", ("alice",), 15) for i in range(2000)), True),
        Ok("x" * 64, {"x": big_text}),
    ]:
        with pytest.raises(FrameTooLarge):
            frame.wire()
        with pytest.raises(FrameTooLarge):
            frame.payload()
    with pytest.raises(FrameTooLarge):
        DataFrame(1, b"x" * (codec.MAX_DATA + 1)).wire()


@pytest.mark.parametrize("request_", REQUESTS, ids=repr)
def test_frames_are_frozen(request_: Request) -> None:
    """Frames are values, decoded ones too: they cannot be changed, and hash alike."""
    decoded = decode_from_client(request_.payload())
    for frame in (request_, decoded):
        with pytest.raises(AttributeError):
            frame.id = 99  # type: ignore[misc, union-attr]
    assert hash(decoded) == hash(request_)


def test_template_encoders_need_no_object() -> None:
    """Ok.encode and BroadcastOk.encode write what their objects would."""
    for ident in (7, "x", None):
        assert Ok.encode(ident) == Control.wire(Ok(ident))
        assert frames.BroadcastOk.encode(ident, 3) == Control.wire(frames.BroadcastOk(ident, 3))
