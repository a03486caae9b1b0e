"""
:class:`~chatnet.session.Session` alone, with recording fakes (no protocol,
no reactor): every (state, input) pair of a table gets exactly the reply the
table names, with the request's id, and the effects it names.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from support.fakes import FakeTransfers, RecordingOutbox, World

from chatnet import frames
from chatnet.config import Settings
from chatnet.errors import FailReason
from chatnet.frames import (
    BadFrame,
    DataFrame,
    ErrorReply,
    FromClient,
    Ok,
    Request,
    read_ok,
)
from chatnet.session import Session
from chatnet.session_base import State

ID = 42
T = FakeTransfers.KNOWN

#: Every input, by name.  Requests carry id 42; the ``to`` of whisper and
#: sendfile is the session's own user (allowed by the contract).
INPUTS: dict[str, FromClient] = {
    "login": frames.Login(ID, "carol"),
    "ping": frames.Ping(ID),
    "exit": frames.Exit(ID),
    "join": frames.Join(ID, "lobby"),
    "leave": frames.Leave(ID),
    "broadcast": frames.Broadcast(ID, "hello"),
    "whisper": frames.Whisper(ID, "alice", "psst"),
    "rooms": frames.Rooms(ID),
    "who": frames.Who(ID),
    "users": frames.Users(ID),
    "sendfile": frames.Sendfile(ID, "alice", "a.txt", 5),
    "cancel": frames.Cancel(ID, T),
    "received": frames.Received(ID, T, "ab" * 32),
    "accept": frames.Accept(ID, T),
    "decline": frames.Decline(ID, T),
    "unknown": frames.UnknownRequest(ID, "dance"),
    "bad": BadFrame("junk"),
    "data": DataFrame(T, b"abc"),
}

#: new: connected; idle: logged in as alice, in no room; in-room: alice in
#: lobby with bob; closed: after exit.
STATES = ["new", "idle", "in-room", "closed"]

# "ok", an error code, "-" (no reply).
_NEW = {name: "not-logged-in" for name in INPUTS} | {
    "login": "ok", "ping": "ok", "exit": "ok", "unknown": "unknown-type",
    "bad": "bad-frame", "data": "bad-transfer",
}
_IDLE = {name: "ok" for name in INPUTS} | {
    "login": "already-logged-in", "leave": "not-in-room", "broadcast": "not-in-room",
    "who": "not-in-room", "unknown": "unknown-type", "bad": "bad-frame", "data": "-",
}
_IN_ROOM = _IDLE | {"leave": "ok", "broadcast": "ok", "who": "ok"}
EXPECTED: dict[str, dict[str, str]] = {
    "new": _NEW, "idle": _IDLE, "in-room": _IN_ROOM, "closed": {name: "-" for name in INPUTS},
}


def in_state(state: str) -> tuple[World, Session, RecordingOutbox, RecordingOutbox]:
    """A world with alice's session in ``state``; also bob's outbox (in lobby)."""
    world = World()
    bob, bob_box = world.session("127.0.0.1:6000")
    bob.received(frames.Login(1, "bob"))
    bob.received(frames.Join(2, "lobby"))
    alice, box = world.session()
    if state != "new":
        alice.received(frames.Login(1, "alice"))
    if state == "in-room":
        alice.received(frames.Join(2, "lobby"))
    if state == "closed":
        alice.received(frames.Exit(3))
    box.take()
    bob_box.take()
    world.audit.lines.clear()
    world.transfers.calls.clear()
    return world, alice, box, bob_box


def test_table_is_complete() -> None:
    """The table names every request type of the contract, and every state."""
    requests = {f.TYPE for f in INPUTS.values() if isinstance(f, Request)}
    assert requests == set(frames.REQUESTS)
    assert all(set(row) == set(INPUTS) for row in EXPECTED.values())
    assert set(EXPECTED) == set(STATES)


@pytest.mark.parametrize("state, name", list(itertools.product(STATES, INPUTS)))
def test_every_state_and_input(state: str, name: str) -> None:
    """Each (state, input) gets the table's reply, with the request's id; never an exception."""
    world, alice, box, _ = in_state(state)
    frame = INPUTS[name]
    alice.received(frame)
    replies = [f for f in box.take() if isinstance(f, Ok | ErrorReply)]
    expected = EXPECTED[state][name]
    if expected == "-":
        assert replies == []
        return
    (reply,) = replies
    answers_request = isinstance(frame, Request | frames.UnknownRequest)
    assert reply.id == (ID if answers_request else None)
    if expected == "ok":
        assert isinstance(reply, Ok) and isinstance(frame, Request)
        assert not isinstance(read_ok(reply, frame), BadFrame)  # the reply has its fields
    else:
        assert isinstance(reply, ErrorReply) and reply.code == expected, reply
        assert ("ERROR" in world.audit.categories()) or name == "login"


@pytest.mark.parametrize("name", list(INPUTS))
def test_closed_session_ignores_everything(name: str) -> None:
    """After exit nothing is sent, logged or asked of the transfers."""
    world, alice, box, bob_box = in_state("closed")
    alice.received(INPUTS[name])
    assert box.frames == bob_box.frames == []
    assert world.audit.lines == [] and world.transfers.calls == []
    assert alice.state is State.CLOSED


@pytest.mark.parametrize("name", ["login", "join", "broadcast", "whisper", "sendfile", "users"])
def test_refused_requests_change_nothing(name: str) -> None:
    """A request refused before login leaves the state, the directory and bob alone."""
    world, alice, box, bob_box = in_state("new")
    if name == "login":
        alice.received(frames.Login(ID, "b@d"))
    else:
        alice.received(INPUTS[name])
    assert alice.state is State.NEW and alice.user is None
    assert set(world.hub.directory.users) == {"bob"}
    assert bob_box.frames == [] and world.transfers.calls == []


def test_login_effects() -> None:
    """login: the reply carries the name, the server and the limits; a LOGIN line."""
    world, alice, box, _ = in_state("new")
    alice.received(frames.Login(ID, "Carol"))
    (reply,) = box.take()
    assert isinstance(reply, Ok)
    login = read_ok(reply, frames.Login)
    assert isinstance(login, frames.LoginOk) and login.username == "Carol"
    assert login.limits["room_capacity"] == world.settings.room_capacity
    assert alice.state is State.ACTIVE
    assert world.audit.lines == [("LOGIN", "Carol logged in from 127.0.0.1:5000")]


def test_broadcast_effects() -> None:
    """broadcast: bob gets the message at the hub's time; the reply counts him."""
    world, alice, box, bob_box = in_state("in-room")
    world.time = 1234.5
    alice.received(frames.Broadcast(ID, "hi\n"))
    assert bob_box.take() == [frames.Message("lobby", "alice", "hi\n", 1234.5)]
    (reply,) = box.take()
    assert isinstance(reply, Ok)
    assert read_ok(reply, frames.Broadcast) == frames.BroadcastOk(ID, 1)
    assert world.audit.categories() == ["BROADCAST"]


def test_join_and_leave_effects() -> None:
    """join and leave: bob sees presence events; the replies name the room."""
    world, alice, box, bob_box = in_state("idle")
    alice.received(frames.Join(ID, "LOBBY"))
    (reply,) = box.take()
    assert isinstance(reply, Ok)
    assert read_ok(reply, frames.Join) == frames.JoinOk(ID, "lobby", ("bob", "alice"))
    assert bob_box.take() == [frames.Presence("lobby", "alice", "join")]
    alice.received(frames.Leave(ID + 1))
    assert bob_box.take() == [frames.Presence("lobby", "alice", "leave")]
    assert world.audit.categories() == ["JOIN", "LEAVE"]


def test_whisper_effects() -> None:
    """whisper: the addressee gets it; the log names both but not the text."""
    world, alice, box, bob_box = in_state("idle")
    alice.received(frames.Whisper(ID, "BOB", "secret"))
    assert bob_box.take() == [frames.WhisperEvent("alice", "secret", world.time)]
    assert world.audit.lines == [("WHISPER", "alice -> bob")]


def test_file_requests_reach_the_transfers() -> None:
    """sendfile, cancel and data frames go to the transfer manager, as it recorded."""
    world, alice, box, bob_box = in_state("idle")
    alice.received(frames.Sendfile(ID, "bob", "a.txt", 5))
    (reply,) = box.take()
    assert isinstance(reply, Ok)
    assert read_ok(reply, frames.Sendfile) == frames.SendfileOk(ID, T, 0)
    alice.received(DataFrame(T, b"abc"))
    alice.received(frames.Cancel(ID, T))
    alice.received(frames.Cancel(ID, T + 1))
    assert world.transfers.calls == [
        ("offer", "alice", "bob", "a.txt", 5),
        ("receive", "alice", T, b"abc"),
        ("fail", T, FailReason.CANCELLED),
    ]
    assert [type(f) for f in box.take()] == [Ok, ErrorReply]


def test_exit_and_loss_effects() -> None:
    """exit closes, tells the room 'leave' and frees transfers; loss says 'disconnect'."""
    world, alice, box, bob_box = in_state("in-room")
    alice.received(frames.Exit(ID))
    assert box.closed is not None and alice.state is State.CLOSED
    assert bob_box.take() == [frames.Presence("lobby", "alice", "leave")]
    assert world.transfers.calls == [("user_gone", "alice")]
    alice.lost()
    assert world.audit.lines[-1] == ("DISCONNECT", "alice (127.0.0.1:5000) left cleanly")

    world, alice, box, bob_box = in_state("in-room")
    alice.lost()
    assert bob_box.take() == [frames.Presence("lobby", "alice", "disconnect")]
    assert world.audit.lines[-1] == ("DISCONNECT", "alice (127.0.0.1:5000) connection lost")
    assert alice not in world.hub.sessions


def test_oversized_frame_is_internal(observe_errors: list[dict[str, Any]]) -> None:
    """A frame that would pass the limit is not sent: internal, logged; the session goes on."""
    world = World(Settings(max_text=100_000))
    alice, box = world.session()
    alice.received(frames.Login(1, "alice"))
    box.take()
    alice.received(frames.Whisper(ID, "alice", "x" * 70_000))
    (reply,) = box.take()
    assert isinstance(reply, ErrorReply) and reply.code == "internal" and reply.id == ID
    assert len(observe_errors) == 1
    observe_errors.clear()
    alice.received(frames.Ping(ID + 1))
    assert box.take() == [Ok(ID + 1)]
