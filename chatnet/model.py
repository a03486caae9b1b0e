"""
Users and rooms: who is online, who is in which room, and fan-out of frames to
room members.

Pure: imports nothing from Twisted.  Every user reaches the network through an
:class:`Outbox` that the I/O layer implements (:mod:`chatnet.outbound`), the
way ``twisted.words`` reaches clients through ``IChatClient``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

from chatnet.errors import ChatError, ErrorCode
from chatnet.validation import fold, show

if TYPE_CHECKING:  # only for annotations: loads nothing
    from twisted.internet.defer import Deferred

    from chatnet.frames import RoomInfo


class Outbox(Protocol):
    """Where frames for one connection go."""

    def send(self, data: bytes) -> None:
        """Queue ``data`` (one or more complete, length-prefixed frames)."""


class FileOutbox(Outbox, Protocol):
    """
    A user's connection: frames, and files streamed to it
    (:class:`~chatnet.outbound.Outbound` implements it; the
    :class:`~chatnet.transfers.TransferManager` uses it).
    """

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        """Queue ``data``; call ``on_written`` once it is handed to the transport."""

    def send_file(self, transfer: int, file: BinaryIO) -> Deferred[bytes]:
        """Stream ``file`` as data frames of ``transfer``; fires when written."""
        ...

    def cancel_file(self, transfer: int) -> None:
        """Stop streaming ``transfer``; its Deferred fails."""


class User:
    """One logged-in user."""

    __slots__ = ("name", "key", "outbox", "room", "_received", "peer", "offers", "notices")

    def __init__(self, name: str, outbox: FileOutbox, peer: str = "") -> None:
        self.name = name
        self.key = fold(name)
        self.outbox = outbox
        self.peer = peer
        self.room: Room | None = None
        # Made on first use (an empty set is 216 bytes, and most users never
        # receive a file).
        self._received: set[str] | None = None
        #: Logged in with ``"offers": true``: asked before each file.
        self.offers = False
        #: Logged in with ``"notices": true`` (a chatnet extension): told of
        #: files on their way to it (``file-pending``).
        self.notices = False

    @property
    def received_names(self) -> set[str]:
        """File names this connection has been sent (``file-start``), for
        collision renaming (PROTOCOL.md section 5)."""
        names = self._received
        if names is None:
            names = self._received = set()
        return names

    def __repr__(self) -> str:
        return f"<User {self.name}>"


class Room:
    """A room: its spelling, its capacity and its members in joining order."""

    __slots__ = ("name", "key", "capacity", "members", "_targets")

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.key = fold(name)
        self.capacity = capacity
        #: Members by folded name; change it through :meth:`add` and
        #: :meth:`remove` only.
        self.members: dict[str, User] = {}
        # Every member's outbox, made on first send after a change: a
        # broadcast then costs no list copy and no dict walk (outboxes, not
        # their bound ``send``: 120 bytes less per member, same speed).
        self._targets: tuple[FileOutbox, ...] | None = None

    def add(self, user: User) -> None:
        self.members[user.key] = user
        self._targets = None

    def remove(self, user: User) -> None:
        self.members.pop(user.key, None)
        self._targets = None

    def names(self) -> list[str]:
        return [u.name for u in self.members.values()]

    def occupancy(self) -> str:
        """``"3/15"``, for messages and the audit log."""
        return f"{len(self.members)}/{self.capacity}"

    def send(self, data: bytes, exclude: User | None = None) -> int:
        """
        Write the same ``data`` to every member but ``exclude``.

        :returns: how many members it was written to.
        """
        targets = self._targets
        if targets is None:
            targets = self._targets = tuple(u.outbox for u in self.members.values())
        skip = exclude.outbox if exclude is not None else None
        count = 0
        for outbox in targets:
            if outbox is not skip:
                outbox.send(data)
                count += 1
        return count

    def __repr__(self) -> str:
        return f"<Room {self.name} {self.occupancy()}>"


class Directory:
    """
    Every online user and every non-empty room of one server.

    Methods raise :class:`ChatError` with the contract's code; they never send
    anything, so the caller decides what the others are told.
    """

    def __init__(self, room_capacity: int = 15) -> None:
        self.room_capacity = room_capacity
        self.users: dict[str, User] = {}
        self.rooms: dict[str, Room] = {}
        # The keys of both, sorted, for paging (``rooms``, ``users``): kept
        # sorted as they change (a bisect and a memmove) rather than sorted
        # per request.
        self._user_keys: list[str] = []
        self._room_keys: list[str] = []

    # users

    def add_user(self, user: User) -> None:
        """:raises ChatError: ``username-taken``."""
        if user.key in self.users:
            raise ChatError(
                ErrorCode.USERNAME_TAKEN,
                f"Username '{user.name}' is already taken; choose another",
            )
        self.users[user.key] = user
        insort(self._user_keys, user.key)

    def remove_user(self, user: User) -> Room | None:
        """
        Take ``user`` offline, out of its room.

        :returns: the room it was in, if any (still holding the others).
        """
        room = self._take_out(user)
        if self.users.get(user.key) is user:
            del self.users[user.key]
            _discard(self._user_keys, user.key)
        return room

    def find_user(self, name: object) -> User:
        """:raises ChatError: ``no-such-user``."""
        user = self.users.get(fold(name)) if isinstance(name, str) else None
        if user is None:
            raise ChatError(
                ErrorCode.NO_SUCH_USER,
                f"No user {show(name)} is online; /users lists who is",
            )
        return user

    def usernames(self) -> list[str]:
        return [u.name for u in self.users.values()]

    def users_page(self, after: str | None, limit: int) -> tuple[list[User], bool]:
        """
        Up to ``limit`` users sorted case-insensitively, after the name
        ``after`` (any string; ``None``: from the first).

        :returns: the page, and whether more users follow it.
        """
        keys, more = _page(self._user_keys, after, limit)
        users = self.users
        return [users[k] for k in keys], more

    # rooms

    def join(self, user: User, name: str) -> tuple[Room, Room | None]:
        """
        Put ``user`` into room ``name`` (a valid room name), creating it when
        needed, and out of the room it was in.

        :returns: the room joined, and the room left (``None`` when the user
            was in no room or already in this one).
        :raises ChatError: ``room-full``; the user then stays where it was.
        """
        key = fold(name)
        current = user.room
        if current is not None and current.key == key:
            return current, None
        room = self.rooms.get(key)
        new = room is None
        if room is None:
            room = Room(name, self.room_capacity)
        elif len(room.members) >= room.capacity:
            raise ChatError(
                ErrorCode.ROOM_FULL,
                f"Room '{room.name}' is full ({room.occupancy()})",
            )
        left = self._take_out(user)
        if new:
            self.rooms[key] = room
            insort(self._room_keys, key)
        room.add(user)
        user.room = room
        return room, left

    def leave(self, user: User) -> Room:
        """:raises ChatError: ``not-in-room``."""
        room = self._take_out(user)
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; /join one")
        return room

    def find_room(self, name: object) -> Room:
        """:raises ChatError: ``no-such-room``."""
        room = self.rooms.get(fold(name)) if isinstance(name, str) else None
        if room is None:
            raise ChatError(
                ErrorCode.NO_SUCH_ROOM,
                f"No room {show(name)} exists; /rooms lists them",
            )
        return room

    def rooms_page(self, after: str | None, limit: int) -> tuple[list[Room], bool]:
        """
        Up to ``limit`` rooms sorted case-insensitively, after the name
        ``after`` (any string; ``None``: from the first).

        :returns: the page, and whether more rooms follow it.
        """
        keys, more = _page(self._room_keys, after, limit)
        rooms = self.rooms
        return [rooms[k] for k in keys], more

    def room_list(self) -> list[dict[str, object]]:
        return [
            {"name": r.name, "members": r.names(), "capacity": r.capacity}
            for r in self.rooms.values()
        ]

    def _take_out(self, user: User) -> Room | None:
        room = user.room
        if room is None:
            return None
        room.remove(user)
        user.room = None
        if not room.members and self.rooms.get(room.key) is room:
            del self.rooms[room.key]
            _discard(self._room_keys, room.key)
        return room


def _page(keys: list[str], after: str | None, limit: int) -> tuple[list[str], bool]:
    """Up to ``limit`` of the sorted ``keys`` after ``after`` (folded), and whether more follow."""
    start = bisect_right(keys, fold(after)) if after is not None else 0
    end = start + limit
    return keys[start:end], end < len(keys)


def _discard(keys: list[str], key: str) -> None:
    """Remove ``key`` from the sorted ``keys``."""
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]


# What the shared state answers (see chatnet.shared_state).

@dataclass(frozen=True, slots=True)
class Joined:
    """A join's outcome: the room (its spelling), its members, and the room left."""

    room: str
    members: list[str]
    #: members against capacity after the join, for the audit log: ``3/15``
    occupancy: str
    #: Already in this room: an ok no-op (nothing changed, nobody told).
    same: bool = False
    #: The room left in the same step, and its members after.
    left: str | None = None
    left_occupancy: str = ""


@dataclass(frozen=True, slots=True)
class Left:
    """A leave's (or logout's) outcome: the room left and its occupancy after."""

    room: str
    occupancy: str
    members: int


#: A page of rooms: ``(rooms, more)``.
RoomsPage = tuple[list["RoomInfo"], bool]
#: A page of usernames: ``(names, more)``.
UsersPage = tuple[list[str], bool]
