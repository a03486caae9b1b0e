"""Tests for rooms, messages and presence (PROTOCOL.md section 4) via sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.chat import error_code, logged_in, new_server, without_ts

from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return new_server(tmp_path / "spool")


def test_join_creates_room_and_tells_members(server: Server) -> None:
    """join answers with the members; the others see a join presence event."""
    a, b = logged_in(server, "alice", "bob")
    assert a.request("join", room="GroupA") == {
        "type": "ok", "id": 2, "room": "GroupA", "members": ["alice"]}
    assert b.request("join", room="groupa") == {
        "type": "ok", "id": 2, "room": "GroupA", "members": ["alice", "bob"]}
    assert a.frames() == [{"type": "presence", "room": "GroupA", "user": "bob", "event": "join"}]
    assert b.frames() == []
    assert server.audit.category("JOIN") == [
        "alice joined GroupA (1/15)", "bob joined GroupA (2/15)"]


@pytest.mark.parametrize("room", ["", "a" * 33, "two words", "caf\u00e9", None, 12, ["r"]])
def test_join_invalid_room(server: Server, room: object) -> None:
    """Invalid room names are invalid-room; the user stays where it was."""
    (a,) = logged_in(server, "alice", room="home")
    assert error_code(a.request("join", room=room)) == "invalid-room"
    assert a.request("who")["room"] == "home"


def test_join_longest_room_name(server: Server) -> None:
    """A 32-character room name is fine."""
    (a,) = logged_in(server, "alice")
    assert a.request("join", room="r" * 32)["room"] == "r" * 32


def test_join_switches_rooms(server: Server) -> None:
    """Joining another room leaves the first; its members see a leave event."""
    a, b = logged_in(server, "alice", "bob", room="one")
    (c,) = logged_in(server, "carol", room="two")
    reply = a.request("join", room="two")
    assert reply["members"] == ["carol", "alice"]
    assert b.frames() == [{"type": "presence", "room": "one", "user": "alice", "event": "leave"}]
    assert c.frames() == [{"type": "presence", "room": "two", "user": "alice", "event": "join"}]
    assert server.audit.category("JOIN")[-1] == "alice joined two (2/15), leaving one (1/15)"
    assert b.request("who")["members"] == ["bob"]


def test_join_same_room_is_noop(server: Server) -> None:
    """Joining the room you are in (any case) is ok and tells nobody."""
    a, b = logged_in(server, "alice", "bob", room="lobby")
    joins = len(server.audit.category("JOIN"))
    assert a.request("join", room="LOBBY") == {
        "type": "ok", "id": 3, "room": "lobby", "members": ["alice", "bob"]}
    assert b.frames() == []
    assert len(server.audit.category("JOIN")) == joins


def test_room_full_keeps_user_where_it_was(tmp_path: Path) -> None:
    """A full room is room-full with the count; the joiner stays in its room."""
    server = new_server(tmp_path, room_capacity=2)
    a, b = logged_in(server, "a", "b", room="full")
    (c,) = logged_in(server, "c", room="home")
    reply = c.request("join", room="FULL")
    assert error_code(reply) == "room-full" and reply["message"] == "Room 'full' is full (2/2)"
    assert c.request("who") == {"type": "ok", "id": 4, "room": "home", "members": ["c"]}
    assert a.frames() == [] and b.frames() == []


def test_room_capacity_default_is_15(server: Server) -> None:
    """Fifteen fit in a room by default; the sixteenth does not."""
    logged_in(server, *[f"u{i}" for i in range(15)], room="big")
    (extra,) = logged_in(server, "extra")
    assert error_code(extra.request("join", room="big")) == "room-full"


def test_room_disappears_when_empty(server: Server) -> None:
    """The last member leaving removes the room; a new one takes the new spelling."""
    (a,) = logged_in(server, "alice", room="Lobby")
    assert a.request("leave") == {"type": "ok", "id": 3, "room": "Lobby"}
    assert a.request("rooms")["rooms"] == []
    assert error_code(a.request("who", room="lobby")) == "no-such-room"
    assert a.request("join", room="LOBBY")["room"] == "LOBBY"


def test_room_keeps_first_spelling(server: Server) -> None:
    """While it exists a room keeps the spelling it was created with."""
    a, b = logged_in(server, "alice", "bob")
    a.request("join", room="Lobby")
    b.request("join", room="LOBBY")
    a.request("leave")
    assert b.request("who")["room"] == "Lobby"


def test_leave(server: Server) -> None:
    """leave answers with the room and tells the others; twice is not-in-room."""
    a, b = logged_in(server, "alice", "bob", room="r")
    assert a.request("leave")["room"] == "r"
    assert b.frames() == [{"type": "presence", "room": "r", "user": "alice", "event": "leave"}]
    assert error_code(a.request("leave")) == "not-in-room"
    assert server.audit.category("LEAVE") == ["alice left r (1/15)"]


def test_broadcast(server: Server) -> None:
    """A message reaches the other members only, with the room, sender and time."""
    server.clock.advance(1234.5)
    a, b, c = logged_in(server, "alice", "bob", "carol", room="r")
    (d,) = logged_in(server, "dave", room="elsewhere")
    assert a.request("broadcast", text="hi \u00e9") == {"type": "ok", "id": 3, "delivered": 2}
    expected = [{"type": "message", "room": "r", "from": "alice", "text": "hi \u00e9", "ts": 1234.5}]
    assert b.frames() == expected and c.frames() == expected
    assert a.frames() == [] and d.frames() == []
    assert server.audit.category("BROADCAST") == ["alice -> r (2 members): hi \u00e9"]


def test_broadcast_alone(server: Server) -> None:
    """Alone in a room, a broadcast is delivered to nobody."""
    (a,) = logged_in(server, "alice", room="r")
    assert a.request("broadcast", text="anyone?")["delivered"] == 0
    (b,) = logged_in(server, "bob", room="r")
    a.request("broadcast", text="one")
    assert server.audit.category("BROADCAST") == [
        "alice -> r (0 members): anyone?", "alice -> r (1 member): one"]


def test_broadcast_outside_room(server: Server) -> None:
    """A broadcast outside any room is not-in-room."""
    (a,) = logged_in(server, "alice")
    assert error_code(a.request("broadcast", text="hi")) == "not-in-room"


@pytest.mark.parametrize(
    "text, ok",
    [
        ("x" * 4096, True),
        ("x" * 4097, False),
        ("\u00e9" * 2048, True),
        ("\u00e9" * 2048 + "x", False),
        ("\U0001f600" * 1024, True),
        ("\U0001f600" * 1023 + "xxxxx", False),
        ("", False),
        (None, False),
        (42, False),
    ],
)
def test_text_limits(server: Server, text: object, ok: bool) -> None:
    """Texts of up to 4096 UTF-8 bytes are sent; longer, empty or non-strings are invalid-text."""
    a, b = logged_in(server, "alice", "bob", room="r")
    for kind, fields in (("broadcast", {}), ("whisper", {"to": "bob"})):
        reply = a.request(kind, text=text, **fields)
        assert error_code(reply) == (None if ok else "invalid-text")
    assert len(b.frames()) == (2 if ok else 0)


def test_messages_keep_order(server: Server) -> None:
    """Messages from one sender arrive in the order sent, each once."""
    a, b = logged_in(server, "alice", "bob", room="r")
    for i in range(50):
        a.send({"type": "broadcast", "text": f"m{i}"})
    assert [f["text"] for f in b.events("message")] == [f"m{i}" for i in range(50)]


def test_whisper(server: Server) -> None:
    """A whisper reaches the addressee only, matched case-insensitively, text unlogged."""
    a, b, c = logged_in(server, "alice", "bob", "carol", room="r")
    assert a.request("whisper", to="BOB", text="secret") == {"type": "ok", "id": 3}
    assert without_ts(b.frames()) == [{"type": "whisper", "from": "alice", "text": "secret"}]
    assert c.frames() == []
    assert server.audit.category("WHISPER") == ["alice -> bob"]
    assert all("secret" not in text for _, text in server.audit.lines)


def test_whisper_to_self(server: Server) -> None:
    """A user may whisper to itself; it gets the event and the reply."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "whisper", "id": 1, "to": "Alice", "text": "note"})
    event, reply = without_ts(a.frames())
    assert event == {"type": "whisper", "from": "alice", "text": "note"}
    assert reply == {"type": "ok", "id": 1}


@pytest.mark.parametrize("to", ["ghost", None, 5, "", ["bob"]])
def test_whisper_no_such_user(server: Server, to: object) -> None:
    """A whisper to nobody online is no-such-user."""
    (a,) = logged_in(server, "alice")
    assert error_code(a.request("whisper", to=to, text="x")) == "no-such-user"


def test_whisper_outside_rooms(server: Server) -> None:
    """Whispers need no room, on either side."""
    a, b = logged_in(server, "alice", "bob")
    assert a.request("whisper", to="bob", text="x")["type"] == "ok"
    assert len(b.events("whisper")) == 1


def test_who(server: Server) -> None:
    """who: the current room by default, a named one, or an error."""
    a, b = logged_in(server, "alice", "bob", room="one")
    (c,) = logged_in(server, "carol", room="Two")
    (d,) = logged_in(server, "dave")
    assert a.request("who") == {"type": "ok", "id": 3, "room": "one", "members": ["alice", "bob"]}
    assert a.request("who", room="TWO") == {"type": "ok", "id": 4, "room": "Two", "members": ["carol"]}
    assert error_code(a.request("who", room="three")) == "no-such-room"
    assert error_code(d.request("who")) == "not-in-room"
    assert d.request("who", room="one")["members"] == ["alice", "bob"]


def test_rooms(server: Server) -> None:
    """rooms lists every room with its members and capacity."""
    (a,) = logged_in(server, "alice")
    assert a.request("rooms") == {"type": "ok", "id": 2, "rooms": [], "more": False}
    logged_in(server, "bob", "carol", room="one")
    logged_in(server, "dave", room="Two")
    assert a.request("rooms")["rooms"] == [
        {"name": "one", "members": ["bob", "carol"], "capacity": 15},
        {"name": "Two", "members": ["dave"], "capacity": 15},
    ]


def test_users(server: Server) -> None:
    """users lists everyone online, in or out of rooms, not the logged-out."""
    a, b = logged_in(server, "alice", "Bob", room="r")
    c = server.connect()  # not logged in
    assert a.request("users") == {"type": "ok", "id": 3, "users": ["alice", "Bob"], "more": False}
    b.lose()
    assert a.request("users")["users"] == ["alice"]
    assert c.request("users")["code"] == "not-logged-in"


def test_exit_sends_leave_presence(server: Server) -> None:
    """exit is a leave for the room, then the connection closes."""
    a, b = logged_in(server, "alice", "bob", room="r")
    a.request("exit")
    assert b.frames() == [{"type": "presence", "room": "r", "user": "alice", "event": "leave"}]
    server.settle()
    assert b.frames() == []
    assert b.request("who")["members"] == ["bob"]


def test_lost_connection_sends_disconnect_presence(server: Server) -> None:
    """A dropped connection is a disconnect event for its room."""
    a, b = logged_in(server, "alice", "bob", room="r")
    a.lose()
    assert b.frames() == [{"type": "presence", "room": "r", "user": "alice", "event": "disconnect"}]
    assert server.audit.category("LEAVE")[-1] == "alice left r (1/15)"


def test_last_member_lost_removes_room(server: Server) -> None:
    """When the last member drops, the room is gone."""
    (a,) = logged_in(server, "alice", room="r")
    (b,) = logged_in(server, "bob")
    a.lose()
    assert b.request("rooms")["rooms"] == []


def test_slow_member_does_not_stop_broadcast(tmp_path: Path) -> None:
    """A member closed as a slow consumer is dropped; the others still receive."""
    server = new_server(tmp_path, max_output=1000)
    a, slow, c = logged_in(server, "alice", "slow", "carol", room="r")
    slow.protocol.outbound.pauseProducing()
    for _ in range(5):
        assert a.request("broadcast", text="x" * 300)["type"] == "ok"
    assert slow.transport.disconnected  # aborted, not closed politely
    server.settle()
    frames = c.frames()
    assert [f["type"] for f in frames] == ["message"] * 5 + ["presence"]
    assert frames[-1] == {"type": "presence", "room": "r", "user": "slow", "event": "disconnect"}
    assert "slow consumer" in server.audit.category("DISCONNECT")[-1]
    assert a.request("who")["members"] == ["alice", "carol"]


def test_no_history(server: Server) -> None:
    """Rooms keep no history: a newcomer or a returning member sees nothing said before."""
    a, b = logged_in(server, "alice", "bob", room="r")
    b.request("leave")
    a.request("broadcast", text="while bob was away")
    (c,) = logged_in(server, "carol", room="r")
    b.request("join", room="r")
    assert b.events("message") == [] and c.events("message") == []


def test_terminal_escapes_refused_in_broadcast_and_whisper(tmp_path: Path) -> None:
    """Text with control characters other than tab and newline is invalid-text and reaches no one."""
    server = new_server(tmp_path)
    a, b = logged_in(server, "alice", "bob", room="r")
    reply = a.request("broadcast", text="hi \x1b[2J")
    assert error_code(reply) == "invalid-text" and "U+001B (ESC) at character 4" in reply["message"]
    reply = a.request("whisper", to="bob", text="\x9b31m")
    assert error_code(reply) == "invalid-text" and "U+009B (CSI) at character 1" in reply["message"]
    assert b.frames() == []
    assert error_code(a.request("broadcast", text="tab\tand\nnewline")) is None
    assert [m["text"] for m in b.events("message")] == ["tab\tand\nnewline"]


def _all_pages(client: FakeClient, kind: str, **fields: object) -> list[dict[str, Any]]:
    """Every page of ``rooms`` or ``users``, asking again after the last name."""
    pages = []
    after = None
    while True:
        reply = client.request(kind, **fields, **({"after": after} if after else {}))
        assert reply["type"] == "ok", reply
        pages.append(reply)
        entries = reply[kind]
        if not reply["more"]:
            return pages
        last = entries[-1]
        after = last["name"] if kind == "rooms" else last


def test_rooms_are_paged_sorted_case_insensitively(tmp_path: Path) -> None:
    """rooms: sorted by folded name, after and limit, more when a later page exists."""
    server = new_server(tmp_path)
    for name in ["delta", "Alpha", "charlie", "Bravo", "echo"]:
        (c,) = logged_in(server, "u" + name, room=name)
    (alice,) = logged_in(server, "alice")
    reply = alice.request("rooms")
    assert [r["name"] for r in reply["rooms"]] == ["Alpha", "Bravo", "charlie", "delta", "echo"]
    assert reply["more"] is False and reply["rooms"][0] == {"name": "Alpha", "members": ["uAlpha"], "capacity": 15}
    page = alice.request("rooms", limit=2)
    assert [r["name"] for r in page["rooms"]] == ["Alpha", "Bravo"] and page["more"] is True
    page = alice.request("rooms", after="BRAVO", limit=2)
    assert [r["name"] for r in page["rooms"]] == ["charlie", "delta"] and page["more"] is True
    page = alice.request("rooms", after="delta", limit=2)
    assert [r["name"] for r in page["rooms"]] == ["echo"] and page["more"] is False
    page = alice.request("rooms", after="b")  # any string, not only a room's name
    assert [r["name"] for r in page["rooms"]][0] == "Bravo"
    assert alice.request("rooms", after="zzz") == {"type": "ok", "id": page["id"] + 1, "rooms": [], "more": False}


def test_users_are_paged(tmp_path: Path) -> None:
    server = new_server(tmp_path)
    logged_in(server, "carol", "Bob", "alice", "Dave")
    (eve,) = logged_in(server, "eve")
    assert eve.request("users")["users"] == ["alice", "Bob", "carol", "Dave", "eve"]
    page = eve.request("users", limit=3)
    assert page["users"] == ["alice", "Bob", "carol"] and page["more"] is True
    page = eve.request("users", after="CAROL", limit=3)
    assert page["users"] == ["Dave", "eve"] and page["more"] is False


def test_paging_limits_default_and_cap(tmp_path: Path) -> None:
    """No limit: 100 rooms or 1000 users; a larger limit is cut to 150 and 3000."""
    server = new_server(tmp_path, max_pending_per_address=0, max_per_address=0, flood_rate=0)
    names = [f"u{i:04d}" for i in range(3100)]
    clients = logged_in(server, *names)
    for c, name in zip(clients[:200], names, strict=False):
        assert c.request("join", room="r" + name)["type"] == "ok"
    c = clients[0]
    assert len(c.request("users")["users"]) == 1000
    big = c.request("users", limit=10_000)
    assert len(big["users"]) == 3000 and big["more"] is True
    assert len(c.request("rooms")["rooms"]) == 100
    assert len(c.request("rooms", limit=10_000)["rooms"]) == 150


@pytest.mark.parametrize(("fields", "word"), [
    ({"limit": 0}, "'limit'"), ({"limit": "5"}, "'limit'"), ({"limit": True}, "'limit'"),
    ({"limit": 2.5}, "'limit'"), ({"after": 5}, "'after'"), ({"after": ["a"]}, "'after'"),
])
def test_paging_fields_of_the_wrong_type(tmp_path: Path, fields: dict[str, object], word: str) -> None:
    server = new_server(tmp_path)
    (alice,) = logged_in(server, "alice")
    for kind in ("rooms", "users"):
        reply = alice.request(kind, **fields)
        assert error_code(reply) == "bad-frame" and word in reply["message"]


def test_800_rooms_of_long_names_page_within_the_frame_limit(tmp_path: Path) -> None:
    """The issue's case: 800 rooms of 32-character names; every page fits, all 800 are listed."""
    server = new_server(tmp_path, max_pending_per_address=0, max_per_address=0, flood_rate=0)
    names = [f"{i:03d}" + "x" * 29 for i in range(800)]
    for i, room in enumerate(names):
        (c,) = logged_in(server, f"u{i}", room=room)
    pages = _all_pages(c, "rooms")  # frames past the limit would raise FrameTooLarge
    assert [r["name"] for p in pages for r in p["rooms"]] == names
    assert len(pages) == 8
