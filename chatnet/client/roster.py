"""
Who and where: our name, our room and its members, and the users and rooms
we know of (for the status bar and Tab completion).

The core feeds it replies and events; it never sends anything.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatnet import frames
from chatnet.client.commands import Limits


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

    def logged_in(self, reply: frames.LoginOk) -> None:
        """The ``ok`` reply to ``login``: name, server and limits."""
        self.username = reply.username or self.username
        self.server = reply.server
        self.limits = Limits.from_reply(reply.limits)
        if self.username:
            self.users.add(self.username)

    def replied(self, request: frames.Request, reply: frames.Reply) -> None:
        """The ``ok`` reply to ``request``: rooms joined, left, listed."""
        if isinstance(reply, frames.JoinOk) or (
            isinstance(reply, frames.WhoOk) and isinstance(request, frames.Who)
            and request.room is None
        ):
            self.room = reply.room
            self.members = list(reply.members)
            self.users.update(self.members)
        elif isinstance(reply, frames.WhoOk):
            self.users.update(reply.members)
            self.rooms.add(reply.room)
        elif isinstance(reply, frames.LeaveOk):
            self.room, self.members = None, []
        elif isinstance(reply, frames.UsersOk):
            self.users = set(reply.users)
        elif isinstance(reply, frames.RoomsOk):
            self.rooms = {r.name for r in reply.rooms}
        if self.room:
            self.rooms.add(self.room)

    def heard_from(self, user: str) -> None:
        """A ``message`` or ``whisper`` came from ``user``: they are online."""
        self.users.add(user)

    def presence(self, event: frames.Presence) -> None:
        """A ``presence`` event: members come and go."""
        user = event.user
        if event.event == "join":
            self.users.add(user)
        if self.room is not None and event.room.lower() == self.room.lower():
            if event.event == "join" and user not in self.members:
                self.members.append(user)
            elif event.event in ("leave", "disconnect") and user in self.members:
                self.members.remove(user)
        if event.event == "disconnect":
            self.users.discard(user)
