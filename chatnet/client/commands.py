"""
Command lines to requests: ``/join groupA`` -> ``Send("join", {"room": "groupA"})``.

The syntax is the C original's (``/join``, ``/leave``, ``/broadcast``,
``/whisper``, ``/sendfile <file> <user>``, ``/exit``) plus ``/rooms``,
``/who``, ``/users``, ``/cancel`` and ``/help``.  A line without a leading
slash is a broadcast; ``//text`` broadcasts ``/text``.  Everything the server
would refuse for its shape (names, text length) is refused here first with a
:class:`ParseError` whose message says what to do.

Pure: imports nothing from Twisted and touches no files; checking that a file
exists is :func:`chatnet.client.uploads.inspect_file`'s job.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chatnet import frames, validation
from chatnet.errors import ChatError


@dataclass(frozen=True)
class Limits:
    """The server's ``limits`` (login reply); defaults are the contract's."""

    username: int = validation.MAX_USERNAME
    room: int = validation.MAX_ROOM
    room_capacity: int = 15
    text: int = 4096
    file_size: int = 3 * 1024 * 1024
    upload_slots: int = 5
    upload_queue: int = 100

    @classmethod
    def from_reply(cls, limits: Any) -> Limits:
        """Read the ``limits`` object, keeping defaults for missing fields."""
        if not isinstance(limits, Mapping):
            return cls()
        known = {
            k: v
            for k, v in limits.items()
            if k in cls.__dataclass_fields__
            and isinstance(v, int)
            and not isinstance(v, bool)
        }
        return cls(**known)


class ParseError(Exception):
    """A line the client refuses; ``message`` says what to type instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Send:
    """Send request ``type`` with ``fields`` and wait for its reply."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)

    def request(self) -> frames.Request:
        """The request frame (without ``id``: the core gives it one)."""
        return frames.REQUESTS[self.type](**self.fields)


@dataclass(frozen=True)
class SendFile:
    """Offer the file at ``path`` to ``to`` (checked and sent by the core)."""

    path: str
    to: str


@dataclass(frozen=True)
class Help:
    """Show help, for one command when ``topic`` is set."""

    topic: str | None = None


@dataclass(frozen=True)
class Exit:
    """Leave cleanly: ``exit`` request, then close."""


@dataclass(frozen=True)
class Reconnect:
    """Connect again now, while disconnected (the front end asks the link)."""


@dataclass(frozen=True)
class Nothing:
    """An empty line: do nothing."""


Command = Send | SendFile | Help | Exit | Reconnect | Nothing


@dataclass(frozen=True)
class Spec:
    """One command for help and completion."""

    usage: str
    summary: str


COMMANDS: dict[str, Spec] = {
    "join": Spec("/join <room>", "join a room (leaving the one you are in)"),
    "leave": Spec("/leave", "leave the current room"),
    "broadcast": Spec(
        "/broadcast <message>", "send to your room (plain text does the same)"
    ),
    "whisper": Spec("/whisper <user> <message>", "send a private message"),
    "sendfile": Spec("/sendfile <file> <user>", "send a file (file first, then user)"),
    "cancel": Spec("/cancel <transfer>", "cancel one of your uploads"),
    "accept": Spec("/accept <transfer>", "accept a file offered to you"),
    "decline": Spec("/decline <transfer>", "decline a file offered to you"),
    "rooms": Spec("/rooms", "list rooms with their members and capacity"),
    "who": Spec("/who [room]", "list the members of a room (default: yours)"),
    "users": Spec("/users", "list everyone online"),
    "help": Spec("/help [command]", "show this help"),
    "reconnect": Spec("/reconnect", "while disconnected: connect again now"),
    "exit": Spec("/exit", "leave chatnet (also /quit)"),
}
ALIASES = {"quit": "exit", "msg": "whisper", "w": "whisper", "bc": "broadcast"}


def help_lines(topic: str | None = None) -> list[str]:
    """The help text, one entry a line; ``topic`` narrows it to one command."""
    if topic:
        name = ALIASES.get(topic.lstrip("/").lower(), topic.lstrip("/").lower())
        spec = COMMANDS.get(name)
        if spec is None:
            raise ParseError(f"No command /{topic.lstrip('/')}. {_hint(topic)}")
        return [f"{spec.usage}  {spec.summary}"]
    width = max(len(s.usage) for s in COMMANDS.values())
    lines = ["Commands:"]
    lines += [f"  {s.usage:<{width}}  {s.summary}" for s in COMMANDS.values()]
    lines.append("Text without a leading / is sent to your room; //text sends /text.")
    return lines


def _hint(word: str) -> str:
    close = difflib.get_close_matches(
        word.lstrip("/").lower(), list(COMMANDS) + list(ALIASES), n=1, cutoff=0.6
    )
    if close:
        name = ALIASES.get(close[0], close[0])
        return f"Did you mean {COMMANDS[name].usage}? Type /help for all commands."
    return "Type /help for the list of commands."


def _usage(name: str, problem: str) -> ParseError:
    return ParseError(f"{problem}. Usage: {COMMANDS[name].usage}")


T = TypeVar("T")


def _check(check: Callable[..., T], *args: Any) -> T:
    try:
        return check(*args)
    except ChatError as e:
        raise ParseError(e.message) from None


def check_room(room: str, limits: Limits) -> str:
    """:raises ParseError: ``room`` is not a room name for this server."""
    _check(validation.check_room, room)
    if len(room) > limits.room:
        raise ParseError(f"Room name is {len(room)} characters; the limit is {limits.room}")
    return room


def check_user(user: str, limits: Limits) -> str:
    """:raises ParseError: ``user`` is not a user name for this server."""
    if user.startswith("@"):
        user = user[1:]
    _check(validation.check_username, user)
    if len(user) > limits.username:
        raise ParseError(
            f"Username is {len(user)} characters; the limit is {limits.username}"
        )
    return user


def check_text(text: str, limits: Limits) -> str:
    """:raises ParseError: ``text`` is empty or longer than the server takes."""
    if not text.strip():
        raise ParseError("Nothing to send: type a message after the command")
    return _check(validation.check_text, text, limits.text)


def parse(line: str, limits: Limits | None = None) -> Command:
    """
    Turn one input line into a :data:`Command`.

    :param line: what the user typed, with or without the line ending.
    :param limits: the server's limits; the contract's defaults before login.
    :raises ParseError: with a message that says what to do instead.
    """
    limits = limits or Limits()
    line = line.rstrip("\r\n")
    if not line.strip():
        return Nothing()
    if line.startswith("//"):
        return Send("broadcast", {"text": check_text(line[1:], limits)})
    if not line.startswith("/"):
        return Send("broadcast", {"text": check_text(line, limits)})
    word, _, rest = line[1:].partition(" ")
    name = ALIASES.get(word.lower(), word.lower())
    args = rest.strip()
    if name not in COMMANDS:
        raise ParseError(f"Unknown command /{word}. {_hint(word)}")
    if name in ("leave", "rooms", "users", "exit", "reconnect") and args:
        raise _usage(name, f"/{name} takes no arguments")
    if name == "exit":
        return Exit()
    if name == "reconnect":
        return Reconnect()
    if name in ("leave", "rooms", "users"):
        return Send(name)
    if name == "help":
        return Help(args or None)
    if name == "join":
        if not args or len(args.split()) != 1:
            raise _usage(name, "Give one room name")
        return Send("join", {"room": check_room(args, limits)})
    if name == "who":
        if not args:
            return Send("who")
        if len(args.split()) != 1:
            raise _usage(name, "Give at most one room name")
        return Send("who", {"room": check_room(args, limits)})
    if name == "broadcast":
        return Send("broadcast", {"text": check_text(rest, limits)})
    if name == "whisper":
        user, _, text = rest.lstrip(" ").partition(" ")
        if not user:
            raise _usage(name, "Say who to whisper to")
        user = check_user(user, limits)
        if not text.strip():
            raise _usage(name, f"Type a message after {user}")
        return Send("whisper", {"to": user, "text": check_text(text, limits)})
    if name in ("cancel", "accept", "decline"):
        number = args.lstrip("#")
        if not number.isdigit() or not number.isascii():
            shown = "queued" if name == "cancel" else "offered"
            raise _usage(name, f"Give the transfer number shown when the file was {shown}")
        return Send(name, {"transfer": int(number)})
    return _parse_sendfile(args, limits)


def _parse_sendfile(args: str, limits: Limits) -> SendFile:
    parts = args.rsplit(None, 1)
    if len(parts) < 2:
        raise _usage("sendfile", "Give a file and a user (file first, then user)")
    path, user = parts[0].strip(), parts[1]
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "'\"":
        path = path[1:-1]
    try:
        user = check_user(user, limits)
    except ParseError as e:
        first = path.split()[0] if path.split() else ""
        if first and validation._USERNAME.fullmatch(first):
            raise _usage(
                "sendfile", f"{user!r} is not a user name; the file comes first"
            ) from None
        raise ParseError(f"{e.message}. Usage: {COMMANDS['sendfile'].usage}") from None
    return SendFile(os.path.expanduser(path), user)


def check_state(command: Command, room: str | None) -> None:
    """
    Refuse what needs a room when we are in none (the server would answer
    ``not-in-room``).

    :param room: the room we are in, or ``None``.
    :raises ParseError: saying to join a room first.
    """
    if room is not None or not isinstance(command, Send):
        return
    if command.type == "broadcast":
        raise ParseError("You are not in a room: /join <room> first, then type your message")
    if command.type == "leave":
        raise ParseError("You are not in a room, so there is nothing to leave")
    if command.type == "who" and "room" not in command.fields:
        raise ParseError("You are not in a room: name one (/who <room>) or /join <room>")


@dataclass(frozen=True)
class Completion:
    """
    Candidates for the word that starts at ``start`` in the line, and what
    follows the word once it is the only one (``": "`` after a name that
    starts the line, addressing its owner).
    """

    start: int
    word: str
    options: list[str]
    suffix: str = " "

    def apply(self, line: str) -> str:
        """The line with the word completed as far as all options agree."""
        if not self.options:
            return line
        prefix = os.path.commonprefix(self.options)
        if len(self.options) == 1:
            prefix += self.suffix if not prefix.endswith("/") else ""
        if len(prefix) <= len(self.word) and len(self.options) > 1:
            return line
        return line[: self.start] + prefix


def complete(
    line: str,
    users: Iterable[str] = (),
    rooms: Iterable[str] = (),
    paths: Callable[[str], list[str]] | None = None,
) -> Completion:
    """
    Tab completion for the text before the cursor.

    Command names for the first word, rooms after ``/join`` and ``/who``,
    user names after ``/whisper`` and as the last word of ``/sendfile``,
    files (through ``paths``) as its first word, and user names in plain text.

    :param paths: lists file paths starting with a prefix (impure, optional).
    """
    start = len(line) - len(line.split(" ")[-1])
    word = line[start:]
    before = line[:start].split()
    if not before:
        if word.startswith("/"):
            names = sorted(COMMANDS) + sorted(ALIASES)
            options = ["/" + n for n in names if n.startswith(word[1:].lower())]
            return Completion(start, word, options)
        return Completion(start, word, _match(word, users), suffix=": ")
    command = ALIASES.get(before[0].lstrip("/").lower(), before[0].lstrip("/").lower())
    if not before[0].startswith("/"):
        command = "broadcast"
    if command in ("join", "who") and len(before) == 1:
        return Completion(start, word, _match(word, rooms))
    if command == "whisper" and len(before) == 1:
        return Completion(start, word, _match(word, users))
    if command == "sendfile":
        if len(before) == 1 and paths is not None:
            return Completion(start, word, sorted(paths(word)))
        if len(before) >= 2:
            return Completion(start, word, _match(word, users))
    if command == "help" and len(before) == 1:
        return Completion(start, word, [n for n in sorted(COMMANDS) if n.startswith(word)])
    if command in ("broadcast", "whisper"):
        return Completion(start, word, _match(word, users))
    return Completion(start, word, [])


def _match(word: str, names: Iterable[str]) -> list[str]:
    folded = word.lower()
    return sorted({n for n in names if n.lower().startswith(folded)}, key=str.lower)
