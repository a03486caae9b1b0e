"""
The seam between the session and the state every node shares: who is
online, who is in which room, and how a room's messages and presence
events reach its members.

A session asks :class:`~chatnet.interfaces.Shared` and never knows whether
it is one server or a node of a cluster:

* :class:`LocalShared` (here) is the single server: the answers come at
  once, from the :class:`~chatnet.model.Directory`;
* :class:`chatnet.cluster.shared.ClusterShared` keeps the same local
  :class:`~chatnet.model.Directory` for the users connected to this node,
  and asks Redis for everything the cluster shares; its answers come later
  (a :class:`~chatnet.interfaces.Later`), and
  :meth:`~chatnet.session_base.SessionBase.wait` keeps the replies of one
  connection in request order meanwhile.

Each method answers either the value itself or a ``Later`` of it; the
session tells them apart with :func:`answered_now`, so the single server's
hot path (``broadcast``) costs one method call and no object.  Errors a
request can get are :class:`~chatnet.errors.ChatError`, raised at once or
failing the ``Later``.

The presence events that go with a change (``join``, ``leave``,
``disconnect``) are part of the change: the shared state sends them, so
that in a cluster they take their place in the room's one order.  The
session writes the replies and the audit lines.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from chatnet import frames
from chatnet.frames import Presence
from chatnet.interfaces import Later
from chatnet.model import Directory, Joined, Left, Room, RoomsPage, User, UsersPage
from chatnet.validation import check_text

T = TypeVar("T")


def answered_now(value: object) -> bool:
    """Whether a :class:`~chatnet.interfaces.Shared` answer is the value itself, not a Later."""
    return not hasattr(value, "addCallbacks")


def when(value: T | Later[T], then: Callable[[T], object],
         failed: Callable[[Any], object]) -> None:
    """Call ``then`` with the answer, now or when it comes; ``failed`` with a failure."""
    if answered_now(value):
        then(value)  # type: ignore[arg-type]
    else:
        value.addCallbacks(then, failed)  # type: ignore[union-attr]


def presence(room: Room, user: User, event: str) -> None:
    """Tell the other local members of ``room`` that ``user`` came or went."""
    room.send(Presence(room.name, user.name, event).wire(), exclude=user)


class LocalShared:
    """
    The shared state of a single server: its :class:`Directory`, answered
    at once.
    """

    #: Whether the state is one server's: nothing waits (see ClusterShared).
    local = True

    def __init__(self, directory: Directory, max_text: int = 4096) -> None:
        self.directory = directory
        self.max_text = max_text

    def enter(self, user: User) -> None:
        """:raises ChatError: ``username-taken``."""
        self.directory.add_user(user)

    def exit(self, user: User, clean: bool, quiet: bool = False) -> Left | None:
        """
        Take ``user`` out (logout or lost connection), telling its room
        (``leave`` when ``clean``, else ``disconnect``) unless ``quiet``.
        """
        room = self.directory.remove_user(user)
        if room is None:
            return None
        if not quiet:
            presence(room, user, "leave" if clean else "disconnect")
        return Left(room.name, room.occupancy(), len(room.members))

    def join(self, user: User, name: str) -> Joined:
        """:raises ChatError: ``room-full`` (the user stays where it was)."""
        before = user.room
        room, left = self.directory.join(user, name)
        if room is before:
            return Joined(room.name, room.names(), room.occupancy(), same=True)
        if left is not None:
            presence(left, user, "leave")
        presence(room, user, "join")
        if left is None:
            return Joined(room.name, room.names(), room.occupancy())
        return Joined(room.name, room.names(), room.occupancy(), left=left.name,
                      left_occupancy=left.occupancy())

    def leave(self, user: User) -> Left:
        """:raises ChatError: ``not-in-room``."""
        room = self.directory.leave(user)
        presence(room, user, "leave")
        return Left(room.name, room.occupancy(), len(room.members))

    def broadcast(self, user: User, room: Room, text: str, ts: float) -> int:
        """Send ``text`` to the other members of ``room``: how many it was sent to."""
        # The message event's encoder, without building the object: this is
        # the hottest frame there is.
        return room.send(frames.message_wire(room.name, user.name, text, ts), exclude=user)

    def whisper(self, user: User, to: object, text: object, ts: float) -> str:
        """
        Send ``text`` (unchecked) to the user named ``to``: its spelling.

        :raises ChatError: ``no-such-user``, then ``invalid-text``.
        """
        target = self.directory.find_user(to)
        checked = check_text(text, self.max_text)
        target.outbox.send(frames.WhisperEvent(user.name, checked, ts).wire())
        return target.name

    def locate(self, name: object) -> User:
        """The online user named ``name`` (for files).  :raises ChatError: ``no-such-user``."""
        return self.directory.find_user(name)

    def who(self, name: object) -> tuple[str, list[str]]:
        """A room's spelling and members.  :raises ChatError: ``no-such-room``."""
        room = self.directory.find_room(name)
        return room.name, room.names()

    def rooms_page(self, after: str | None, limit: int) -> RoomsPage:
        rooms, more = self.directory.rooms_page(after, limit)
        return [frames.RoomInfo(r.name, r.names(), r.capacity) for r in rooms], more

    def users_page(self, after: str | None, limit: int) -> UsersPage:
        users, more = self.directory.users_page(after, limit)
        return [u.name for u in users], more

    @property
    def users_online(self) -> int:
        return len(self.directory.users)

    @property
    def rooms_count(self) -> int:
        return len(self.directory.rooms)
