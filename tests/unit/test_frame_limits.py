"""No frame the server builds can pass the 65,541-byte limit (PROTOCOL.md section 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.chat import error_code, logged_in, new_server
from twisted.python import usage

from chatnet import frames
from chatnet.config import MAX_ROOM_CAPACITY, MAX_TEXT_LIMIT
from chatnet.paging import ROOMS_PAGE_MAX, USERS_PAGE_MAX
from chatnet.paging import fit_rooms as _fit_rooms
from chatnet.tap import Options
from chatnet.validation import MAX_ROOM, MAX_USERNAME

#: The worst ``id``: 64 characters that JSON writes as six bytes each.
WORST_ID = "\x01" * frames.MAX_ID
NAME = "U" * MAX_USERNAME
ROOM = "R" * MAX_ROOM
TS = 1.7976931348623157e308  # the longest float repr there is


def _fits(frame: frames.Control) -> int:
    size = len(frame.payload())
    assert size <= frames.MAX_PAYLOAD
    return size


def test_the_largest_message_and_whisper_fit() -> None:
    """A text of --max-text's cap made of characters JSON doubles still fits a frame."""
    text = '"' * MAX_TEXT_LIMIT
    assert len(frames.message_wire(ROOM, NAME, text, TS)) - 4 <= frames.MAX_PAYLOAD
    _fits(frames.WhisperEvent(NAME, text, TS))
    with pytest.raises(frames.FrameTooLarge):  # what the cap prevents
        frames.message_wire(ROOM, NAME, '"' * 33_000, TS)


def test_the_largest_member_lists_fit() -> None:
    """A full room at the --room-capacity cap fits a join and a who reply."""
    members = [NAME] * MAX_ROOM_CAPACITY
    assert _fits(frames.JoinOk(WORST_ID, ROOM, members)) > 55_000
    _fits(frames.WhoOk(WORST_ID, ROOM, members))


def test_the_largest_pages_fit() -> None:
    """A full users page, and a full rooms page at the default capacity, fit."""
    _fits(frames.UsersOk(WORST_ID, [NAME] * USERS_PAGE_MAX, True))
    rooms = [frames.RoomInfo(ROOM, [NAME] * 15, 15)] * ROOMS_PAGE_MAX
    reply = _fit_rooms(WORST_ID, rooms, False, 15)
    assert len(reply.rooms) == ROOMS_PAGE_MAX and reply.more is False
    _fits(reply)


def test_large_rooms_make_shorter_pages() -> None:
    """Rooms of hundreds of members: the page holds what fits and says more."""
    rooms = [frames.RoomInfo(ROOM + str(i), [NAME] * 500, 500) for i in range(100)]
    reply = _fit_rooms(WORST_ID, rooms, False, 500)
    assert 0 < len(reply.rooms) < 100 and reply.more is True
    size = _fits(reply)
    assert size > frames.MAX_PAYLOAD - 9_600  # not much room left for one more


def test_an_error_echoes_at_most_a_64_character_id(tmp_path: Path) -> None:
    """A longer id is bad-frame without an id; errors echo user input shortened."""
    server = new_server(tmp_path)
    (alice,) = logged_in(server, "alice")
    alice.send({"type": "ping", "id": "x" * 65_450})
    [reply] = alice.frames()
    assert reply["code"] == "bad-frame" and "id" not in reply
    alice.send({"type": "y" * 65_000, "id": "i" * 64})
    [reply] = alice.frames()
    assert reply["code"] == "unknown-type" and len(reply["message"]) < 100


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--room-capacity", "3001"], "--room-capacity: at most 3000"),
     (["--max-text", "32001"], "--max-text: at most 32000 bytes")],
)
def test_options_are_capped(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        Options().parseOptions([*argv, "--port", "tcp:0"])


def test_capped_values_are_accepted() -> None:
    options = Options()
    options.parseOptions(["--room-capacity", "3000", "--max-text", "32000", "--port", "tcp:0"])
    assert (options.settings.room_capacity, options.settings.max_text) == (3000, 32000)


def test_a_text_at_the_cap_is_broadcast(tmp_path: Path) -> None:
    """Over the wire: a 32,000-byte text of quotes reaches the room in one frame."""
    server = new_server(tmp_path, max_text=MAX_TEXT_LIMIT)
    a, b = logged_in(server, "alice", "bob", room="r")
    assert error_code(a.request("broadcast", text='"' * MAX_TEXT_LIMIT)) is None
    assert b.events("message")[0]["text"] == '"' * MAX_TEXT_LIMIT


def test_fit_rooms_counts_exactly() -> None:
    """The page is cut exactly where the next room would pass the limit."""
    rooms = [frames.RoomInfo(f"r{i:05d}", [f"u{j:015d}" for j in range(1000)], 1000) for i in range(5)]
    reply = _fit_rooms(1, rooms, False, 1000)
    kept = len(reply.rooms)
    assert _fits(reply) + len(frames.RoomsOk(1, rooms[kept : kept + 1], True).payload()) > frames.MAX_PAYLOAD
