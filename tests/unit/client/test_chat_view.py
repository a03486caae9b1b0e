"""Tests for :mod:`chatnet.client.chat_view`: the full-screen view without a terminal."""

from typing import Any

import pytest
from support.client_harness import Harness, connected
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from chatnet.client.chat_view import ChatView
from chatnet.client.lines import EXIT_OK, EXIT_SHUTDOWN
from chatnet.client.render import progress_texts
from chatnet.client.screen import TransferBar
from chatnet.client.uploads import Upload


class View:
    """A view on an in-memory connection, and what it finished with."""

    def __init__(self, tmp_path: Any, username: str | None = None) -> None:
        self.h: Harness = connected(str(tmp_path / "dl"), login=False)
        self.status: list[int] = []
        self.view = ChatView(self.h.core, "127.0.0.1:8080", self.status.append, username)

    def screen(self, cols: int = 100, rows: int = 20) -> str:
        canvas = self.view.frame.render((cols, rows), focus=True)
        return "\n".join(line.decode("utf-8").rstrip() for line in canvas.text)

    def keys(self, *keys: str) -> None:
        for key in keys:
            if self.view.frame.keypress((100, 20), key) is not None:
                self.view.keypress(key)

    def type(self, text: str) -> None:
        self.keys(*text, "enter")

    def login(self) -> None:
        self.type("alice")
        (req,) = self.h.requests()
        self.h.reply(req, username="alice", server="chatnet/1.0", limits={})
        users = self.h.requests()  # the view asks for /users after login
        self.h.reply(users[0], users=["alice", "bob"])


def test_asks_for_username_and_logs_in(tmp_path: Any) -> None:
    """Without a name the input asks for one; after login it is the chat prompt."""
    v = View(tmp_path)
    assert "Choose a username" in v.screen() and "Username:" in v.screen()
    v.login()
    screen = v.screen()
    assert "[ok] logged in as alice on chatnet/1.0" in screen
    assert " alice | no room (/join <room>) | transfers: 0 up, 0 down | chatnet/1.0 127.0.0.1:8080" in screen
    assert "\n> " in screen + " "


def test_taken_name_asks_again(tmp_path: Any) -> None:
    """A refused name is explained and the prompt stays."""
    v = View(tmp_path, username="bob")
    (req,) = v.h.requests()
    v.h.feed({"type": "error", "id": req["id"], "code": "username-taken",
              "message": "Username 'bob' is already taken; choose another"})
    screen = v.screen()
    assert "[error] Username 'bob' is already taken; choose another\n" in screen
    assert screen.lower().count("choose another") == 1  # said once
    assert "\nUsername:" in screen
    assert not v.view.logged_in
    v.login()
    assert v.view.logged_in


def test_join_message_and_status(tmp_path: Any) -> None:
    """Replies and events land in the pane; the status bar shows the room."""
    v = View(tmp_path)
    v.login()
    v.type("/join groupA")
    (req,) = v.h.requests()
    v.h.reply(req, room="groupA", members=["alice", "bob"])
    v.h.feed({"type": "message", "room": "groupA", "from": "bob", "text": "hello", "ts": 0})
    screen = v.screen()
    assert "[ok] joined groupA (2 here: alice, bob)" in screen
    assert "[groupA] bob: hello" in screen
    assert "| room groupA (2) |" in screen  # the names are in the list beside
    narrow = v.screen(80)
    assert "| room groupA (2: alice, bob) |" in narrow


def test_refusals_shown(tmp_path: Any) -> None:
    """Parse errors and server errors are shown as errors."""
    v = View(tmp_path)
    v.login()
    v.type("/jion x")
    v.type("hello")
    v.type("/who nowhere")
    (req,) = v.h.requests()
    v.h.feed({"type": "error", "id": req["id"], "code": "no-such-room",
              "message": "No room 'nowhere'"})
    screen = v.screen()
    assert "[error] Unknown command /jion. Did you mean /join <room>?" in screen
    assert "[error] You are not in a room: /join <room> first" in screen
    assert "[error] No room 'nowhere'" in screen


def test_tab_completion_and_history(tmp_path: Any) -> None:
    """Tab completes commands and names; Up and Down walk the history."""
    v = View(tmp_path)
    v.login()
    v.keys(*"/wh", "tab")
    assert v.view.input.edit_text == "/wh"
    assert "/whisper  /who" in v.screen()
    v.keys(*"i", "tab", *"b", "tab")
    assert v.view.input.edit_text == "/whisper bob "
    v.keys(*"yo", "enter")
    v.h.requests()
    v.keys(*"draft", "up")
    assert v.view.input.edit_text == "/whisper bob yo"
    v.keys("down")
    assert v.view.input.edit_text == "draft"


def test_ctrl_c_confirms_while_transfers_run(tmp_path: Any) -> None:
    """Ctrl+C asks first when transfers run; a second Ctrl+C leaves."""
    v = View(tmp_path)
    v.login()
    v.h.feed({"type": "file-start", "transfer": 1, "from": "bob", "name": "a.bin", "size": 10})
    v.keys("ctrl c")
    assert "1 transfer still running. Quit anyway?" in v.screen()
    assert v.h.requests() == []
    v.type("n")
    assert "Staying." in v.screen()
    v.keys("ctrl c", "ctrl c")
    (req,) = v.h.requests()
    assert req["type"] == "exit"
    v.h.reply(req)
    v.h.protocol.connectionLost(Failure(ConnectionDone()))
    assert v.status == [EXIT_OK]


def test_shutdown_finishes_with_status(tmp_path: Any) -> None:
    """A server shutdown is shown and ends the interface with status 5."""
    v = View(tmp_path)
    v.login()
    v.h.feed({"type": "shutdown", "message": "maintenance"})
    assert "[server] shutting down: maintenance" in v.screen()
    v.h.protocol.connectionLost(Failure(ConnectionDone()))
    assert v.status == [EXIT_SHUTDOWN]


def test_progress_bars(tmp_path: Any) -> None:
    """Each transfer has a bar with bytes, percent and speed."""
    v = View(tmp_path)
    v.login()
    v.h.feed({"type": "file-start", "transfer": 4, "from": "bob", "name": "photo.png", "size": 2048})
    v.h.clock.advance(1)
    v.h.feed_data(4, b"x" * 1024)
    v.view.update_transfers()
    screen = v.screen(120)
    assert "down #4 photo.png <- bob" in screen
    assert "50% 1.0 KiB/2.0 KiB 1.0 KiB/s" in screen
    assert "transfers: 0 up, 1 down" in screen


def test_bar_text_fits_width() -> None:
    """Narrow bars drop detail rather than cut the percentage."""
    t = Upload(name="a", size=100, peer="bob", transfer=1, state="sending", started_at=0.0)
    t.done_bytes = 40
    bar = TransferBar()
    bar.texts = progress_texts(t, 1.0)
    assert bar.texts[0] == "40% 40 B/100 B 40 B/s ETA 2s"
    bar.render((10,))
    assert bar.get_text() == "40%"
    queued = Upload(name="a", size=1, peer="b", transfer=2, state="queued", position=3)
    assert progress_texts(queued, 7.0)[0] == "queued (3 ahead), waiting 7s"


def test_line_after_quit_question_is_not_lost(tmp_path: Any) -> None:
    """Typing a message instead of answering the quit question sends it."""
    v = View(tmp_path)
    v.login()
    v.h.feed({"type": "file-start", "transfer": 1, "from": "bob", "name": "a.bin", "size": 10})
    v.keys("ctrl c")
    v.type("/users")
    (req,) = v.h.requests()
    assert req["type"] == "users"


def test_lines_typed_ahead_run_in_order(tmp_path: Any) -> None:
    """Lines typed before a reply wait for it: a join then a message works."""
    v = View(tmp_path)
    v.type("alice")
    v.type("/join lobby")
    v.type("hello")
    (login,) = v.h.requests()
    v.h.reply(login, username="alice", server="chatnet/1.0", limits={})
    users, join = v.h.requests()
    assert (users["type"], join["type"]) == ("users", "join")
    v.h.reply(users, users=["alice"])
    v.h.reply(join, room="lobby", members=["alice"])
    (broadcast,) = v.h.requests()
    assert broadcast["text"] == "hello"
    v.h.reply(broadcast, delivered=0)
    assert "[lobby] alice: hello" in v.screen()


def test_message_pane_is_bounded(tmp_path: Any, monkeypatch: Any) -> None:
    """The oldest lines go once the pane holds its maximum."""
    from chatnet.client import screen

    monkeypatch.setattr(screen, "MAX_LINES", 5)
    v = View(tmp_path)
    for i in range(10):
        v.h.feed({"type": "whisper", "from": "bob", "text": f"n{i}", "ts": 0})
    assert len(v.view.messages) == 5
    assert "n9" in v.screen() and "n4" not in v.screen()


def test_auth_failed_asks_for_the_password_unechoed(tmp_path: Any) -> None:
    """A server with accounts: the view asks for the password, masked, kept out of history."""
    v = View(tmp_path)
    v.type("alice")
    (req,) = v.h.requests()
    assert "password" not in req
    v.h.feed({"type": "error", "id": req["id"], "code": "auth-failed", "message": "Wrong username or password"})
    assert "Password for alice:" in v.screen()
    v.keys(*"s3cret")
    assert "s3cret" not in v.screen() and "******" in v.screen()
    v.keys("enter")
    (again,) = v.h.requests()
    assert again == {"type": "login", "id": again["id"], "username": "alice", "password": "s3cret", "notices": True}
    v.h.reply(again, username="alice", server="chatnet/1.0", limits={})
    v.h.reply(v.h.requests()[0], users=["alice"])
    assert "[ok] logged in as alice" in v.screen()
    assert v.view.input.history == ["alice"]  # the password is not in it
    v.keys("up")
    assert v.view.input.edit_text == "alice"


def test_empty_password_goes_back_to_the_username(tmp_path: Any) -> None:
    """Enter on an empty password prompt asks for a username again."""
    v = View(tmp_path)
    v.type("alice")
    (req,) = v.h.requests()
    v.h.feed({"type": "error", "id": req["id"], "code": "auth-failed", "message": "Wrong username or password"})
    v.keys("enter")
    assert v.h.requests() == []
    assert "Username:" in v.screen() and "Choose a username:" in v.screen()
    v.type("bob")
    (bob,) = v.h.requests()
    assert bob["username"] == "bob"


def test_hostile_names_and_text_shown_escaped(tmp_path: Any) -> None:
    """Status bar, messages, bars and hints show what the server sent escaped."""
    v = View(tmp_path)
    v.type("alice")
    (req,) = v.h.requests()
    v.h.reply(req, username="alice", server="evil\u202e\x1b[2J", limits={})
    v.h.reply(v.h.requests()[0], users=["alice", "bo\u202eb", "bob"])
    v.type("/join groupA")
    (join,) = v.h.requests()
    v.h.reply(join, room="groupA", members=["alice", "m\x9b\u2066"])
    v.h.feed({"type": "message", "room": "groupA", "from": "mallory", "ts": 0,
              "text": "hello\x1b[2J\x1b]0;pwned\x07\nFAKE [server] shutting down"})
    v.h.feed({"type": "file-start", "transfer": 4, "from": "bob", "name": "a\u202egnp.exe", "size": 9})
    v.keys(*"b", "tab")
    screen = v.screen(200, 30)
    assert not any(c in screen for c in "\x1b\x07\x9b\u202e\u2066")
    assert "evil\\u202e\\x1b[2J" in screen
    assert "m\\x9b\\u2066" in screen
    assert "hello\\x1b[2J\\x1b]0;pwned\\x07" in screen
    assert "a\\u202egnp.exe" in screen
    assert v.view.input.edit_text.startswith("bob")  # the hostile name is not offered
    (fake,) = [row for row in screen.split("\n") if "FAKE" in row]
    assert fake == " " * 27 + "FAKE [server] shutting down"  # under the text, after the time


def joined(tmp_path: Any, members: tuple[str, ...] = ("alice", "bob", "carol")) -> View:
    """A view logged in as alice, in groupA with ``members``."""
    v = View(tmp_path)
    v.login()
    v.type("/join groupA")
    (req,) = v.h.requests()
    v.h.reply(req, room="groupA", members=list(members))
    return v


def say(v: View, text: str, sender: str = "bob", kind: str = "message") -> None:
    frame = {"type": kind, "from": sender, "text": text, "ts": 0}
    v.h.feed({**frame, "room": "groupA"} if kind == "message" else frame)


LONG = " ".join(f"w{i:03d}" for i in range(120)) + " END"


def test_long_message_after_scrolling_back_shows_whole(tmp_path: Any) -> None:
    """Back at the end after Page Up/Down, a long new message shows all its rows."""
    v = joined(tmp_path)
    for i in range(40):
        say(v, f"line {i}")
    v.screen(60, 20)
    v.keys("page up", "page up")
    v.screen(60, 20)
    v.keys("page down", "page down", "page down")
    v.screen(60, 20)
    say(v, LONG)
    rows = v.screen(60, 20).split("\n")
    assert any("bob: w000 w001" in row for row in rows)  # all ~13 rows, first to last
    assert any(row.rstrip().endswith("END") for row in rows)


def test_more_while_scrolled_up_and_end_returns(tmp_path: Any) -> None:
    """Scrolled up, new lines are counted as '-- more --'; End goes back to them."""
    v = joined(tmp_path)
    for i in range(40):
        say(v, f"line {i}")
    v.screen(80, 20)
    v.keys("page up")
    before = v.screen(80, 20)
    say(v, "new one")
    say(v, "new two")
    screen = v.screen(80, 20)
    assert "-- more (2) --" in screen
    assert "new two" not in screen and before.split("\n")[0] == screen.split("\n")[0]
    v.keys("end")
    screen = v.screen(80, 20)
    assert "new two" in screen and "-- more" not in screen


def test_more_clears_when_paging_down_to_the_end(tmp_path: Any) -> None:
    """Page Down back to the newest line clears '-- more --'."""
    v = joined(tmp_path)
    for i in range(30):
        say(v, f"line {i}")
    v.screen(80, 20)
    v.keys("page up")
    say(v, "news")
    assert "-- more (1) --" in v.screen(80, 20)
    v.keys("page down", "page down", "page down")
    screen = v.screen(80, 20)
    assert "news" in screen and "-- more" not in screen


def test_end_key_moves_the_cursor_too(tmp_path: Any) -> None:
    """End in the input line still moves the cursor to the end of the line."""
    v = joined(tmp_path)
    v.keys(*"hello", "home")
    assert v.view.input.edit_pos == 0
    v.keys("end")
    assert v.view.input.edit_pos == 5


def test_wrapped_rows_indent_under_the_text(tmp_path: Any) -> None:
    """A wrapped message continues under its text, not under the time."""
    v = joined(tmp_path)
    say(v, LONG)
    rows = [r for r in v.screen(60, 30).split("\n") if "w0" in r or "END" in r]
    assert rows[0][8:].startswith(" [groupA] bob: w000")
    assert all(r.startswith(" " * 9) and r[9] != " " for r in rows[1:])


def test_mentions_and_whispers_highlighted_and_ring(tmp_path: Any) -> None:
    """A line naming you, and a whisper, stand out and ring the bell; others do not."""
    rings: list[int] = []
    v = joined(tmp_path)
    v.view.ring = lambda: rings.append(1)
    say(v, "hello all")
    say(v, "alice: look")
    say(v, "thanks ALICE!")
    say(v, "malice is not a name")
    say(v, "psst", kind="whisper")
    say(v, "me, alice", sender="alice")  # our own line
    styles = {}
    for row in v.view.messages:
        text_widget = row.contents[1][0]
        text, attrs = text_widget.get_text()
        styles[text.split(": ", 1)[-1]] = attrs[0][0]
    assert styles["hello all"] == "other"
    assert styles["alice: look"] == styles["thanks ALICE!"] == "mention"
    assert styles["malice is not a name"] == "other"
    assert styles["psst"] == "whisper_to_me"
    assert len(rings) == 3


@pytest.mark.parametrize("bell, expected", [("none", 0), ("whispers", 1), ("mentions", 2), ("all", 3)])
def test_bell_choices(tmp_path: Any, bell: str, expected: int) -> None:
    """--bell: none, whispers only, mentions and whispers, every line from others."""
    rings: list[int] = []
    v = joined(tmp_path)
    v.view.bell = bell
    v.view.ring = lambda: rings.append(1)
    say(v, "hi")
    say(v, "hi alice")
    say(v, "psst", kind="whisper")
    assert len(rings) == expected


def test_nick_list_beside_messages_when_wide(tmp_path: Any) -> None:
    """From 100 columns on, the room's members are listed beside the messages."""
    v = joined(tmp_path, ("carol", "alice", "Bob"))
    wide = v.screen(120, 20).split("\n")
    assert wide[0].rstrip().endswith("groupA (3)")
    assert [r[-18:].strip() for r in wide[1:4]] == ["alice", "Bob", "carol"]
    v.h.feed({"type": "presence", "room": "groupA", "user": "dave", "event": "join"})
    assert "dave" in [r[-18:].strip() for r in v.screen(120, 20).split("\n")[1:6]]
    narrow = v.screen(60, 20).split("\n")
    assert "groupA (4)" not in "\n".join(narrow[:-3])
    assert narrow[-3].startswith(" alice | room groupA (4")


def test_status_keeps_the_room_at_60_columns(tmp_path: Any) -> None:
    """At 60 columns the status bar still shows your name, the room and its count."""
    v = joined(tmp_path, ("alice", "bob", "carol", "dave"))
    status = v.screen(60, 20).split("\n")[-3]
    assert status.startswith(" alice | room groupA (4")


def test_tab_on_a_nick_at_line_start_addresses_them(tmp_path: Any) -> None:
    """Tab on a name at the start of the line makes 'carol: '; elsewhere 'carol '."""
    v = joined(tmp_path)
    v.h.feed({"type": "presence", "room": "groupA", "user": "carol", "event": "join"})
    v.keys(*"ca", "tab")
    assert v.view.input.edit_text == "carol: "
    v.keys(*"hi ca", "tab")
    assert v.view.input.edit_text == "carol: hi carol "


def test_help_lists_the_keys(tmp_path: Any) -> None:
    """/help in the full screen lists the keys after the commands."""
    v = joined(tmp_path)
    v.type("/help")
    text = "\n".join(r.contents[1][0].get_text()[0] for r in v.view.messages)
    assert "Commands:" in text and "Keys:" in text
    for key in ("Page Up, Page Down", "End", "Tab", "Ctrl+C"):
        assert f"  {key} " in text


def test_login_without_answer_ends_the_screen(tmp_path: Any) -> None:
    """'Logging in...' does not last for ever: no answer in 10 s ends with status 3."""
    from chatnet.client.lines import EXIT_CONNECT

    v = View(tmp_path, username="alice")
    assert "Logging in..." in v.screen()
    v.h.clock.advance(10)
    assert v.h.transport.disconnecting
    v.h.protocol.connectionLost(Failure(ConnectionDone()))
    assert v.status == [EXIT_CONNECT]
    assert v.h.core.gone is not None and v.h.core.gone.reason.startswith("no answer to login")
