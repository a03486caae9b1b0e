"""Tests for :mod:`chatnet.client.commands`: lines to requests, refusals, completion."""

import os

import pytest

from chatnet.client.commands import (
    Completion,
    Exit,
    Help,
    Limits,
    Nothing,
    ParseError,
    Send,
    SendFile,
    complete,
    help_lines,
    parse,
)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("/join groupA", Send("join", {"room": "groupA"})),
        ("/join   groupA  ", Send("join", {"room": "groupA"})),
        ("/JOIN groupA", Send("join", {"room": "groupA"})),
        ("/leave", Send("leave")),
        ("/broadcast hello there", Send("broadcast", {"text": "hello there"})),
        ("hello there", Send("broadcast", {"text": "hello there"})),
        ("hello\n", Send("broadcast", {"text": "hello"})),
        ("//etc is a path", Send("broadcast", {"text": "/etc is a path"})),
        ("/whisper bob hi there", Send("whisper", {"to": "bob", "text": "hi there"})),
        ("/msg bob hi", Send("whisper", {"to": "bob", "text": "hi"})),
        ("/whisper @bob hi", Send("whisper", {"to": "bob", "text": "hi"})),
        ("/sendfile report.pdf bob", SendFile("report.pdf", "bob")),
        ("/sendfile my report.pdf bob", SendFile("my report.pdf", "bob")),
        ('/sendfile "my report.pdf" bob', SendFile("my report.pdf", "bob")),
        ("/cancel 7", Send("cancel", {"transfer": 7})),
        ("/cancel #7", Send("cancel", {"transfer": 7})),
        ("/rooms", Send("rooms")),
        ("/who", Send("who")),
        ("/who groupA", Send("who", {"room": "groupA"})),
        ("/users", Send("users")),
        ("/help", Help()),
        ("/help join", Help("join")),
        ("/exit", Exit()),
        ("/quit", Exit()),
        ("", Nothing()),
        ("   ", Nothing()),
    ],
)
def test_parse(line: str, expected: object) -> None:
    """Each command in the C original's syntax becomes its request."""
    assert parse(line) == expected


def test_sendfile_expands_home() -> None:
    """``~`` in a file path means the home folder."""
    assert parse("/sendfile ~/a.txt bob") == SendFile(os.path.expanduser("~/a.txt"), "bob")


@pytest.mark.parametrize(
    "line, message",
    [
        ("/join", "Give one room name. Usage: /join <room>"),
        ("/join a b", "Give one room name. Usage: /join <room>"),
        ("/join group-A", "Invalid room name 'group-A': use 1-32 ASCII letters or digits"),
        ("/join " + "r" * 33, "Invalid room name"),
        ("/leave now", "/leave takes no arguments. Usage: /leave"),
        ("/rooms x", "/rooms takes no arguments"),
        ("/users x", "/users takes no arguments"),
        ("/exit now", "/exit takes no arguments"),
        ("/who a b", "Give at most one room name. Usage: /who [room]"),
        ("/who bad!", "Invalid room name 'bad!'"),
        ("/broadcast", "Nothing to send"),
        ("/broadcast    ", "Nothing to send"),
        ("x" * 4097, "Text is 4097 bytes; the limit is 4096 bytes"),
        ("/whisper", "Say who to whisper to. Usage: /whisper <user> <message>"),
        ("/whisper bob", "Type a message after bob. Usage: /whisper <user> <message>"),
        ("/whisper bob   ", "Type a message after bob"),
        ("/whisper bad_name hi", "Invalid username 'bad_name': use 1-16 ASCII letters or digits"),
        ("/sendfile", "Give a file and a user (file first, then user)"),
        ("/sendfile report.pdf", "Give a file and a user (file first, then user)"),
        ("/sendfile bob report.pdf", "'report.pdf' is not a user name; the file comes first"),
        ("/sendfile a.txt b.txt", "Invalid username 'b.txt'"),
        ("/cancel", "Give the transfer number shown when the file was queued"),
        ("/cancel x", "Usage: /cancel <transfer>"),
        ("/cancel -1", "Usage: /cancel <transfer>"),
        ("/jion groupA", "Unknown command /jion. Did you mean /join <room>?"),
        ("/frobnicate", "Unknown command /frobnicate. Type /help for the list of commands."),
    ],
)
def test_parse_refuses(line: str, message: str) -> None:
    """What the server would refuse is refused first, saying what to do."""
    with pytest.raises(ParseError) as info:
        parse(line)
    assert message in info.value.message


def test_text_limit_follows_server() -> None:
    """A server with a smaller text limit is respected."""
    with pytest.raises(ParseError, match="limit is 10 bytes"):
        parse("x" * 11, Limits(text=10))
    assert parse("x" * 10, Limits(text=10)) == Send("broadcast", {"text": "x" * 10})


def test_name_limits_follow_server() -> None:
    """Shorter name limits from ``login`` apply to rooms and users."""
    with pytest.raises(ParseError, match="limit is 4"):
        parse("/join abcde", Limits(room=4))
    with pytest.raises(ParseError, match="limit is 3"):
        parse("/whisper abcd hi", Limits(username=3))


def test_text_limit_counts_bytes() -> None:
    """The limit is in bytes of UTF-8, not characters."""
    with pytest.raises(ParseError, match="Text is 4098 bytes"):
        parse("\u00e9" * 2049)


def test_limits_from_reply() -> None:
    """Unknown or malformed fields in ``limits`` are ignored."""
    limits = Limits.from_reply({"text": 100, "file_size": True, "extra": 1, "room": "x"})
    assert limits == Limits(text=100)
    assert Limits.from_reply(None) == Limits()


def test_help_lists_every_command() -> None:
    """``/help`` names each command with its usage."""
    text = "\n".join(help_lines())
    for usage in ("/join <room>", "/leave", "/broadcast <message>", "/whisper <user> <message>",
                  "/sendfile <file> <user>", "/exit", "/rooms", "/who [room]", "/users",
                  "/cancel <transfer>", "/help"):
        assert usage in text


def test_help_topic() -> None:
    """``/help sendfile`` explains just that command; an unknown one hints."""
    assert help_lines("sendfile") == ["/sendfile <file> <user>  send a file (file first, then user)"]
    assert help_lines("/quit")[0].startswith("/exit")
    with pytest.raises(ParseError, match="Did you mean /join"):
        help_lines("jion")


@pytest.mark.parametrize(
    "line, options",
    [
        ("/j", ["/join"]),
        ("/w", ["/whisper", "/who", "/w"]),
        ("/join gr", ["groupA", "groupB"]),
        ("/who g", ["groupA", "groupB"]),
        ("/whisper b", ["bob", "Bobby"]),
        ("/sendfile a.txt b", ["bob", "Bobby"]),
        ("hello b", ["bob", "Bobby"]),
        ("b", ["bob", "Bobby"]),
        ("/help jo", ["join"]),
        ("/leave ", []),
    ],
)
def test_complete(line: str, options: list[str]) -> None:
    """Tab completes commands, rooms and users where each belongs."""
    result = complete(line, users=["bob", "Bobby", "carol"], rooms=["groupA", "groupB"])
    assert sorted(result.options) == sorted(options)


def test_complete_files() -> None:
    """The first argument of ``/sendfile`` completes from the file system."""
    result = complete("/sendfile rep", paths=lambda p: ["report.pdf", "reply.txt"])
    assert result.options == ["reply.txt", "report.pdf"]
    assert result.apply("/sendfile rep") == "/sendfile rep"
    one = complete("/sendfile repo", paths=lambda p: ["report.pdf"])
    assert one.apply("/sendfile repo") == "/sendfile report.pdf "


def test_completion_apply() -> None:
    """One option completes with a space; several extend the common prefix."""
    assert Completion(0, "/jo", ["/join"]).apply("/jo") == "/join "
    assert Completion(6, "g", ["groupA", "groupB"]).apply("/join g") == "/join group"
    assert Completion(6, "x", []).apply("/join x") == "/join x"


@pytest.mark.parametrize(
    "line, message",
    [
        ("hello", "You are not in a room: /join <room> first"),
        ("/leave", "nothing to leave"),
        ("/who", "name one (/who <room>) or /join <room>"),
    ],
)
def test_check_state_without_room(line: str, message: str) -> None:
    """What needs a room is refused, with advice, when we are in none."""
    from chatnet.client.commands import check_state

    with pytest.raises(ParseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_state(parse(line), None)
    check_state(parse(line), "groupA")
    check_state(parse("/who other"), None)
    check_state(parse("/join r"), None)


def test_complete_a_name_at_line_start_addresses_it() -> None:
    """A name that starts the line completes to ``carol: ``; later in it, ``carol ``."""
    users = ["bob", "carol"]
    assert complete("ca", users=users).apply("ca") == "carol: "
    assert complete("hi ca", users=users).apply("hi ca") == "hi carol "
    assert complete("/whisper ca", users=users).apply("/whisper ca") == "/whisper carol "
