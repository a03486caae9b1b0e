"""Tests for :mod:`chatnet.client.core`: replies by id, events, state, the end."""

import struct
from typing import Any

import pytest
from support import raw
from support.client_harness import connected, has_result, result_of
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure

from chatnet import frames
from chatnet.client.commands import Exit, Help, Send, parse
from chatnet.client.events import ConnectionClosed, Disconnected, ServerEvent
from chatnet.errors import ChatError, ErrorCode


def test_login_sets_name_server_and_limits(tmp_path: Any) -> None:
    """The login reply fills username, server name and limits."""
    h = connected(str(tmp_path), login=False)
    d = h.core.login("alice")
    (req,) = h.requests()
    assert req == {"type": "login", "id": 1, "username": "alice", "notices": True}
    h.reply(req, username="alice", server="chatnet/1.0", limits={"text": 100, "file_size": 10})
    assert result_of(d) == frames.LoginOk(1, "alice", "chatnet/1.0", {"text": 100, "file_size": 10})
    assert (h.core.username, h.core.server) == ("alice", "chatnet/1.0")
    assert (h.core.limits.text, h.core.limits.file_size, h.core.limits.room) == (100, 10, 32)


def test_login_with_password(tmp_path: Any) -> None:
    """A password is sent only when given."""
    h = connected(str(tmp_path), login=False)
    h.core.login("alice", "secret")
    assert h.requests()[0]["password"] == "secret"


def test_login_rejected(tmp_path: Any) -> None:
    """An error reply fails the Deferred with the code and the message."""
    h = connected(str(tmp_path), login=False)
    d = h.core.login("alice")
    (req,) = h.requests()
    h.feed({"type": "error", "id": req["id"], "code": "username-taken",
            "message": "Username 'alice' is taken"})
    with pytest.raises(ChatError) as info:
        result_of(d)
    assert (info.value.code, info.value.message) == ("username-taken", "Username 'alice' is taken")
    assert h.core.username is None


def test_replies_matched_by_id_out_of_order(tmp_path: Any) -> None:
    """Each reply goes to the request with its id, whatever the order."""
    h = connected(str(tmp_path))
    first = h.core.request(frames.Users())
    second = h.core.request(frames.Rooms())
    r1, r2 = h.requests()
    assert (r1["id"], r2["id"]) == (2, 3)
    h.reply(r2, rooms=[])
    assert has_result(second) and not has_result(first)
    h.reply(r1, users=["alice"])
    assert result_of(first) == frames.UsersOk(2, ("alice",))
    assert result_of(second) == frames.RoomsOk(3, ())


def test_malformed_reply_fails_the_request(tmp_path: Any) -> None:
    """An ok without the fields its request's reply needs is a bad-frame error, not a crash."""
    h = connected(str(tmp_path))
    d = h.core.request(frames.Users())
    h.reply(h.requests()[0], users="alice")
    with pytest.raises(ChatError, match="Unreadable reply from the server") as info:
        result_of(d)
    assert info.value.code == ErrorCode.BAD_FRAME


def test_reply_to_unknown_id_is_ignored(tmp_path: Any) -> None:
    """A stray reply is logged, not raised, and nothing else changes."""
    h = connected(str(tmp_path))
    h.feed({"type": "ok", "id": 99}, {"type": "ok", "id": "x"})
    assert h.events == []


def test_events_reach_subscribers(tmp_path: Any) -> None:
    """Messages, whispers and errors without id are events."""
    h = connected(str(tmp_path))
    msg = {"type": "message", "room": "r", "from": "bob", "text": "hi", "ts": 1.0}
    err = {"type": "error", "code": "bad-frame", "message": "no"}
    h.feed(msg, err)
    assert h.events == [
        ServerEvent(frames.Message("r", "bob", "hi", 1.0)),
        ServerEvent(frames.ErrorReply(None, "bad-frame", "no")),
    ]
    assert "bob" in h.core.users


def test_raw_frames_for_json(tmp_path: Any) -> None:
    """``on_frame`` sees every control frame, replies included."""
    h = connected(str(tmp_path))
    seen: list[dict[str, Any]] = []
    h.core.on_frame(seen.append)
    h.core.request(frames.Users())
    (req,) = h.requests()
    h.reply(req, users=[])
    h.feed({"type": "whisper", "from": "bob", "text": "x", "ts": 2})
    assert seen == [{"type": "ok", "id": 2, "users": []},
                    {"type": "whisper", "from": "bob", "text": "x", "ts": 2}]


def test_frames_fed_byte_by_byte(tmp_path: Any) -> None:
    """Frames split anywhere arrive the same."""
    h = connected(str(tmp_path))
    msg = {"type": "message", "room": "r", "from": "bob", "text": "h\u00e9", "ts": 1.0}
    for byte in raw.encode_frame(msg) * 2:
        h.protocol.dataReceived(bytes([byte]))
    assert h.events == [ServerEvent(frames.Message("r", "bob", "h\u00e9", 1.0))] * 2


def test_unknown_event_types_are_ignored(tmp_path: Any) -> None:
    """A newer server's event is no error: only ``on_frame`` (--json) sees it."""
    h = connected(str(tmp_path))
    seen: list[dict[str, Any]] = []
    h.core.on_frame(seen.append)
    h.feed({"type": "node-joined", "node": "b"})
    assert h.events == []
    assert seen == [{"type": "node-joined", "node": "b"}]


def test_unreadable_frame_is_an_error_event(tmp_path: Any) -> None:
    """A frame that does not decode becomes an error event, not a crash."""
    h = connected(str(tmp_path))
    h.protocol.dataReceived(struct.pack(">I", 4) + b"junk")
    (event,) = h.events
    assert isinstance(event, ServerEvent) and isinstance(event.frame, frames.ErrorReply)
    assert event.frame.code == "bad-frame"


def test_oversized_frame_closes(tmp_path: Any) -> None:
    """A frame longer than the contract allows closes the connection."""
    h = connected(str(tmp_path))
    h.protocol.dataReceived(b"\xff\xff\xff\xff")
    assert h.transport.disconnecting
    event = h.events[0]
    assert isinstance(event, ServerEvent) and isinstance(event.frame, frames.ErrorReply)
    assert event.frame.code == "frame-too-large"


def test_join_who_leave_track_room_and_members(tmp_path: Any) -> None:
    """The core keeps the room and its members for the status bar."""
    h = connected(str(tmp_path))
    d = h.core.execute(parse("/join groupA"))
    (req,) = h.requests()
    assert req == {"type": "join", "id": 2, "room": "groupA"}
    h.reply(req, room="groupA", members=["bob", "alice"])
    result_of(d)
    assert (h.core.room, h.core.members) == ("groupA", ["bob", "alice"])
    h.feed({"type": "presence", "room": "groupA", "user": "carol", "event": "join"})
    h.feed({"type": "presence", "room": "GROUPA", "user": "bob", "event": "disconnect"})
    assert h.core.members == ["alice", "carol"]
    assert "bob" not in h.core.users and "carol" in h.core.users
    h.core.execute(parse("/leave"))
    h.reply(h.requests()[0], room="groupA")
    assert (h.core.room, h.core.members) == (None, [])
    assert "groupA" in h.core.rooms


def test_users_and_rooms_replies_feed_completion(tmp_path: Any) -> None:
    """``/users`` and ``/rooms`` refresh the names Tab completes."""
    h = connected(str(tmp_path))
    h.core.execute(Send("users"))
    h.reply(h.requests()[0], users=["alice", "bob"])
    h.core.execute(Send("rooms"))
    h.reply(h.requests()[0], rooms=[{"name": "lobby", "members": ["bob"], "capacity": 15}])
    assert h.core.users == {"alice", "bob"} and h.core.rooms == {"lobby"}


def test_local_commands_send_nothing(tmp_path: Any) -> None:
    """``/help`` is answered locally."""
    h = connected(str(tmp_path))
    assert result_of(h.core.execute(Help())) is None
    assert h.requests() == []


def test_exit_waits_for_close(tmp_path: Any) -> None:
    """``/exit`` sends ``exit``; done once the server closed the connection."""
    h = connected(str(tmp_path))
    d = h.core.execute(Exit())
    (req,) = h.requests()
    assert req["type"] == "exit"
    h.reply(req)
    assert not has_result(d)
    h.protocol.connectionLost(Failure(ConnectionDone()))
    gone = result_of(d)
    assert gone == Disconnected(True, "Disconnected")


def test_connection_lost_fails_pending(tmp_path: Any) -> None:
    """Requests waiting when the connection drops fail; subscribers hear it."""
    h = connected(str(tmp_path))
    d = h.core.request(frames.Users())
    h.protocol.connectionLost(Failure(ConnectionLost("reset")))
    with pytest.raises(ConnectionClosed):
        result_of(d)
    assert isinstance(h.events[-1], Disconnected) and not h.events[-1].clean
    assert h.events[-1].reason == "the connection to the server was lost (reset)"
    with pytest.raises(ConnectionClosed):
        result_of(h.core.request(frames.Users()))
    assert result_of(h.core.when_idle()) is None


def test_shutdown_is_remembered(tmp_path: Any) -> None:
    """After a ``shutdown`` event the loss of connection says why."""
    h = connected(str(tmp_path))
    h.feed({"type": "shutdown", "message": "maintenance"})
    h.protocol.connectionLost(Failure(ConnectionDone()))
    assert h.core.shutdown_message == "maintenance"
    assert h.events[-1] == Disconnected(False, "Server shut down: maintenance")


def test_when_idle_waits_for_replies(tmp_path: Any) -> None:
    """Idle means no reply is awaited."""
    h = connected(str(tmp_path))
    h.core.request(frames.Users())
    idle = h.core.when_idle()
    assert not has_result(idle)
    h.reply(h.requests()[0], users=[])
    assert has_result(idle)


def test_closed_without_a_word_suggests_tls(tmp_path: Any) -> None:
    """A server that closes before saying anything may want TLS."""
    h = connected(str(tmp_path), login=False)
    d = h.core.login("alice")
    h.protocol.connectionLost(Failure(ConnectionDone()))
    with pytest.raises(ConnectionClosed):
        result_of(d)
    last = h.events[-1]
    assert isinstance(last, Disconnected) and "if it is a TLS server, use --tls" in last.reason
    assert h.core.never_answered


def test_closed_before_login_blames_the_login_timeout(tmp_path: Any) -> None:
    """A connection closed while we never asked anything: the login deadline."""
    h = connected(str(tmp_path), login=False)
    h.protocol.connectionLost(Failure(ConnectionDone()))
    last = h.events[-1]
    assert isinstance(last, Disconnected) and "before a username was given" in last.reason
    assert not h.core.never_answered


def test_broadcast_without_room_refused_locally(tmp_path: Any) -> None:
    """Before any /join, a message is refused without asking the server."""
    from chatnet.client.events import LocalError

    h = connected(str(tmp_path))
    with pytest.raises(LocalError, match="/join <room> first"):
        result_of(h.core.execute(parse("hello")))
    assert h.requests() == []


def test_server_closing_says_the_server_closed(tmp_path: Any) -> None:
    """A server that closes (stopped, or killed with -9) is not 'closed cleanly' by us."""
    h = connected(str(tmp_path))
    h.protocol.connectionLost(Failure(ConnectionDone()))
    gone = h.events[-1]
    assert isinstance(gone, Disconnected) and not gone.clean
    assert gone.reason == "the server closed the connection (it stopped or went away)"


def test_login_without_answer_times_out(tmp_path: Any) -> None:
    """No answer to ``login`` within the timeout: the connection is closed, saying why."""
    h = connected(str(tmp_path), login=False)
    h.core.login_timeout = 10
    d = h.core.login("alice")
    h.clock.advance(9.9)
    assert not h.transport.disconnecting and not has_result(d)
    h.clock.advance(0.1)
    assert h.transport.disconnecting
    h.protocol.connectionLost(Failure(ConnectionDone()))
    with pytest.raises(ConnectionClosed, match="no answer to login within 10 s"):
        result_of(d)
    assert h.core.never_answered
    assert h.clock.getDelayedCalls() == []


def test_login_answer_stops_the_timer(tmp_path: Any) -> None:
    """An answer in time, ``ok`` or ``error``, leaves no timer behind."""
    h = connected(str(tmp_path), login=False)
    d = h.core.login("alice")
    (req,) = h.requests()
    h.feed({"type": "error", "id": req["id"], "code": "username-taken", "message": "taken"})
    with pytest.raises(ChatError):
        result_of(d)
    assert h.clock.getDelayedCalls() == []
    h.clock.advance(60)
    assert not h.transport.disconnecting


def test_http_answer_is_not_a_chatnet_server(tmp_path: Any) -> None:
    """A first 'frame' of 1,213,486,160 bytes is an HTTP server's answer: say so."""
    h = connected(str(tmp_path), login=False)
    d = h.core.login("alice")
    h.protocol.dataReceived(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    assert h.transport.disconnecting
    h.protocol.connectionLost(Failure(ConnectionDone()))
    with pytest.raises(ConnectionClosed, match=r"^not a chatnet server \(it answered like HTTP\)$"):
        result_of(d)
    assert [e for e in h.events if isinstance(e, ServerEvent)] == []
    assert h.clock.getDelayedCalls() == []


def test_oversized_frame_later_says_so(tmp_path: Any) -> None:
    """A too-long frame after others: an error shown, and the reason given on closing."""
    h = connected(str(tmp_path))
    h.protocol.dataReceived(b"\x7f\xff\xff\xff")
    h.protocol.connectionLost(Failure(ConnectionDone()))
    assert isinstance(h.events[-2], ServerEvent)
    assert h.events[-1].reason == (  # type: ignore[union-attr]
        "the server sent a frame of 2,147,483,647 bytes, more than the protocol allows")


def test_rooms_and_users_fetch_every_page(tmp_path: Any) -> None:
    """``/rooms`` and ``/users`` ask again after the last name while the server says ``more``."""
    h = connected(str(tmp_path))
    d = h.core.execute(Send("users"))
    (req,) = h.requests()
    assert "after" not in req
    h.reply(req, users=["alice", "bob"], more=True)
    (req,) = h.requests()
    assert req["type"] == "users" and req["after"] == "bob"
    assert not has_result(d)
    h.reply(req, users=["carol"], more=False)
    reply = result_of(d)
    assert isinstance(reply, frames.UsersOk)
    assert reply.users == ("alice", "bob", "carol") and reply.more is False
    assert h.core.users == {"alice", "bob", "carol"}
    d = h.core.execute(Send("rooms"))
    room = {"members": ["bob"], "capacity": 15}
    h.reply(h.requests()[0], rooms=[{"name": "a", **room}], more=True)
    (req,) = h.requests()
    assert req["after"] == "a"
    h.reply(req, rooms=[{"name": "b", **room}])  # a revision 1 server: no "more"
    assert [r.name for r in result_of(d).rooms] == ["a", "b"]
    assert h.core.rooms >= {"a", "b"}



def test_junk_then_no_login_answer_is_not_connected(tmp_path: Any) -> None:
    """Unreadable frames and then no answer to login: never really connected (exit status 3)."""
    h = connected(str(tmp_path), login=False)
    h.core.login_timeout = 10
    d = h.core.login("alice")
    h.protocol.dataReceived(struct.pack(">I", 5) + b"hello" + struct.pack(">I", 2) + b"[]")
    h.clock.advance(10)
    h.protocol.connectionLost(Failure(ConnectionDone()))
    with pytest.raises(ConnectionClosed, match="no answer to login within 10 s"):
        result_of(d)
    assert h.core.never_answered
