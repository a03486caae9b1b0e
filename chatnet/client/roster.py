"""
Who and where: our name, our room and its members, and the users and rooms
we know of (for the status bar and Tab completion).

The core feeds it replies and events; it never sends anything.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatnet.client.commands import Limits, Send


@dataclass
class Roster:
    """What the front ends show about users and rooms."""

    username: str | None = None
    server: str | None = None
    limits: Limits = field(default_factory=Limits)
    room: str | None = None
    members: list[str] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    rooms: set[str] = field(default_factory=set)

    def logged_in(self, reply: dict[str, Any]) -> None:
        """The ``ok`` reply to ``login``: name, server and limits."""
        self.username = reply.get("username") or self.username
        self.server = reply.get("server") if isinstance(reply.get("server"), str) else None
        self.limits = Limits.from_reply(reply.get("limits"))
        if self.username:
            self.users.add(self.username)

    def replied(self, command: Send, reply: dict[str, Any]) -> None:
        """The ``ok`` reply to ``command``: rooms joined, left, listed."""
        if command.type == "join" or (
            command.type == "who" and "room" not in command.fields
        ):
            self.room = reply.get("room", self.room)
            self.members = list(reply.get("members", []))
            self.users.update(self.members)
        elif command.type == "who" and isinstance(reply.get("members"), list):
            self.users.update(reply["members"])
            self.rooms.add(reply.get("room", command.fields["room"]))
        elif command.type == "leave":
            self.room, self.members = None, []
        elif command.type == "users" and isinstance(reply.get("users"), list):
            self.users = set(reply["users"])
        elif command.type == "rooms" and isinstance(reply.get("rooms"), list):
            self.rooms = {r["name"] for r in reply["rooms"] if isinstance(r, dict)}
        if self.room:
            self.rooms.add(self.room)

    def heard_from(self, user: object) -> None:
        """A ``message`` or ``whisper`` came from ``user``: they are online."""
        if isinstance(user, str):
            self.users.add(user)

    def presence(self, frame: dict[str, Any]) -> None:
        """A ``presence`` event: members come and go."""
        user, room, event = frame.get("user"), frame.get("room"), frame.get("event")
        if not isinstance(user, str):
            return
        if event == "join":
            self.users.add(user)
        if self.room is not None and isinstance(room, str) and room.lower() == self.room.lower():
            if event == "join" and user not in self.members:
                self.members.append(user)
            elif event in ("leave", "disconnect") and user in self.members:
                self.members.remove(user)
        if event == "disconnect":
            self.users.discard(user)
