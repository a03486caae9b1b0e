"""Tests for :mod:`chatnet.model`: users, rooms and fan-out, without a network."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

import pytest
from twisted.internet.defer import Deferred

from chatnet.errors import ChatError, ErrorCode
from chatnet.model import Directory, Room, User


class RecordingOutbox:
    """An outbox that keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        self.sent.append(data)
        if on_written is not None:
            on_written()

    def send_file(self, transfer: int, file: BinaryIO) -> Deferred[bytes]:
        raise AssertionError("the model never streams files")

    def cancel_file(self, transfer: int) -> None:
        raise AssertionError("the model never streams files")


def user(name: str) -> User:
    return User(name, RecordingOutbox())


def test_add_and_find_users_case_insensitively() -> None:
    """Users are found by any spelling of their name and keep their own."""
    d = Directory()
    alice = user("Alice")
    d.add_user(alice)
    assert d.find_user("aLiCe") is alice
    assert d.usernames() == ["Alice"]


def test_duplicate_name_is_taken() -> None:
    """A second user whose name differs only in case is username-taken."""
    d = Directory()
    d.add_user(user("alice"))
    with pytest.raises(ChatError) as info:
        d.add_user(user("ALICE"))
    assert info.value.code is ErrorCode.USERNAME_TAKEN


@pytest.mark.parametrize("name", ["nobody", None, 3, ["alice"]])
def test_find_missing_user(name: object) -> None:
    """Unknown names and non-strings are no-such-user."""
    d = Directory()
    d.add_user(user("alice"))
    with pytest.raises(ChatError) as info:
        d.find_user(name)
    assert info.value.code is ErrorCode.NO_SUCH_USER


def test_join_creates_room_with_first_spelling() -> None:
    """A room is created by its first joiner and keeps that spelling."""
    d = Directory()
    a, b = user("a"), user("b")
    room, left = d.join(a, "GroupA")
    assert (room.name, left) == ("GroupA", None)
    room2, _ = d.join(b, "groupa")
    assert room2 is room and room.name == "GroupA"
    assert room.names() == ["a", "b"]
    assert room.occupancy() == "2/15"


def test_join_switch_returns_room_left() -> None:
    """Joining another room takes the user out of the first one."""
    d = Directory()
    a, b = user("a"), user("b")
    d.join(a, "one")
    d.join(b, "one")
    room, left = d.join(a, "two")
    assert room.name == "two" and left is not None and left.name == "one"
    assert left.names() == ["b"] and a.room is room


def test_join_same_room_is_noop() -> None:
    """Joining the current room, in any spelling, returns it and nothing left."""
    d = Directory()
    a = user("a")
    room, _ = d.join(a, "one")
    assert d.join(a, "ONE") == (room, None)
    assert room.names() == ["a"]


def test_room_full_leaves_user_where_it_was() -> None:
    """A full room refuses the joiner, which stays in its old room."""
    d = Directory(room_capacity=2)
    for name in ("a", "b"):
        d.join(user(name), "full")
    c = user("c")
    old, _ = d.join(c, "old")
    with pytest.raises(ChatError) as info:
        d.join(c, "full")
    assert info.value.code is ErrorCode.ROOM_FULL
    assert "(2/2)" in info.value.message
    assert c.room is old and old.names() == ["c"]


def test_empty_room_disappears_and_new_spelling_wins() -> None:
    """The last one out removes the room; a new joiner creates it afresh."""
    d = Directory()
    a = user("a")
    d.join(a, "Lobby")
    d.leave(a)
    assert d.rooms == {}
    room, _ = d.join(a, "LOBBY")
    assert room.name == "LOBBY"


def test_leave_without_room() -> None:
    """leave() outside a room is not-in-room."""
    with pytest.raises(ChatError) as info:
        Directory().leave(user("a"))
    assert info.value.code is ErrorCode.NOT_IN_ROOM


def test_remove_user_takes_it_out_of_its_room() -> None:
    """remove_user returns the room still holding the others."""
    d = Directory()
    a, b = user("a"), user("b")
    for u in (a, b):
        d.add_user(u)
        d.join(u, "r")
    room = d.remove_user(a)
    assert room is not None and room.names() == ["b"]
    assert d.usernames() == ["b"]
    assert d.remove_user(b) is room and d.rooms == {}


def test_find_room() -> None:
    """Rooms are found case-insensitively; others are no-such-room."""
    d = Directory()
    d.join(user("a"), "Lobby")
    assert d.find_room("lobby").name == "Lobby"
    for name in ("nope", None, 1):
        with pytest.raises(ChatError) as info:
            d.find_room(name)
        assert info.value.code is ErrorCode.NO_SUCH_ROOM


def test_room_list() -> None:
    """room_list describes each room's name, members and capacity."""
    d = Directory(room_capacity=4)
    d.join(user("a"), "one")
    d.join(user("b"), "two")
    assert d.room_list() == [
        {"name": "one", "members": ["a"], "capacity": 4},
        {"name": "two", "members": ["b"], "capacity": 4},
    ]


def test_room_send_excludes_sender() -> None:
    """Room.send writes to every member but the excluded one and counts them."""
    room = Room("r", 15)
    members = [user(n) for n in "abc"]
    for m in members:
        room.add(m)
    assert room.send(b"frame", exclude=members[0]) == 2
    sent = [m.outbox.sent for m in members]  # type: ignore[attr-defined]
    assert sent == [[], [b"frame"], [b"frame"]]
    assert room.send(b"all") == 3


def test_room_targets_follow_membership_and_hold_no_per_member_objects() -> None:
    """
    A room's broadcast targets are its members' outboxes themselves (no
    pair or bound method per member: memory at 15,000 connections), and a
    change of membership is seen by the next send.
    """
    room = Room("r", 15)
    a, b = user("a"), user("b")
    room.add(a)
    room.add(b)
    room.send(b"1", exclude=a)
    assert room._targets == (a.outbox, b.outbox)
    room.remove(b)
    c = user("c")
    room.add(c)
    assert room.send(b"2", exclude=a) == 1
    assert c.outbox.sent == [b"2"] and b.outbox.sent == [b"1"]  # type: ignore[attr-defined]


def test_received_names_made_on_first_use() -> None:
    """A user who never receives a file costs no set; the names then stick."""
    u = user("a")
    assert u._received is None
    u.received_names.add("x.txt")
    assert "x.txt" in u.received_names and u._received == {"x.txt"}


def test_pages_follow_changes() -> None:
    """The sorted indexes behind rooms_page and users_page follow logins, joins and leaves."""
    d = Directory()
    users = {n: user(n) for n in ["bo", "Al", "cy", "Di"]}
    for u in users.values():
        d.add_user(u)
    d.join(users["bo"], "Zed")
    d.join(users["cy"], "amber")
    d.join(users["Di"], "amber")
    assert [u.name for u in d.users_page(None, 10)[0]] == ["Al", "bo", "cy", "Di"]
    assert [r.name for r in d.rooms_page(None, 10)[0]] == ["amber", "Zed"]
    d.leave(users["bo"])  # Zed is gone
    d.remove_user(users["cy"])
    assert [r.name for r in d.rooms_page(None, 10)[0]] == ["amber"]
    assert d.users_page("al", 1) == ([users["bo"]], True)
    assert d.users_page("bo", 5) == ([users["Di"]], False)
    d.remove_user(users["Di"])
    assert d.rooms_page(None, 10) == ([], False)
