"""
Pages of ``rooms`` and ``users`` (PROTOCOL.md section 4, revision 2): how
many entries a page holds, the request's ``after`` and ``limit`` checked,
and a ``rooms`` reply cut to fit one frame.  The sorted lists themselves
are :class:`~chatnet.model.Directory`'s.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from chatnet import frames, validation
from chatnet.errors import ChatError, ErrorCode
from chatnet.frames import Id

#: ``rooms`` and ``users`` pages (PROTOCOL.md section 4): how many entries by
#: default and at most.  A full page always fits one frame: 150 rooms of 15
#: members are about 53 KB, 3,000 usernames about 57 KB.  Past 30 members a
#: room, a page of rooms may hold fewer than ``limit`` (see fit_rooms).
ROOMS_PAGE, ROOMS_PAGE_MAX = 100, 150
USERS_PAGE, USERS_PAGE_MAX = 1000, 3000

# A room's entry in a rooms reply, at most: '{"name":"<32>","members":[...],
# "capacity":<n>},' with '"<16>",' per member.
_EMPTY_ENTRY = len('{"name":"","members":[],"capacity":},')
_ROOM_ENTRY = _EMPTY_ENTRY + validation.MAX_ROOM
_MEMBER_ENTRY = validation.MAX_USERNAME + 3


def checked(after: object, limit: object, default: int, most: int) -> tuple[str | None, int]:
    """
    A ``rooms`` or ``users`` request's ``after`` and ``limit``, checked;
    ``limit`` defaults to ``default`` and is cut to ``most``.

    :raises ChatError: ``bad-frame`` for a wrong type (no other code fits).
    """
    if after is not None and type(after) is not str:
        raise ChatError(ErrorCode.BAD_FRAME, "'after' must be a name (a string)")
    if limit is None:
        return after, default
    if type(limit) is not int or limit < 1:
        raise ChatError(ErrorCode.BAD_FRAME, "'limit' must be a whole number of at least 1")
    return after, min(limit, most)


def fit_rooms(
    ident: Id, rooms: list[frames.RoomInfo], more: bool, capacity: int
) -> frames.RoomsOk:
    """
    The ``rooms`` reply, with as many of ``rooms`` as fit one frame (all of
    them unless rooms are larger than 30 members); ``more`` when some are
    left out.
    """
    reply = frames.RoomsOk(ident, rooms, more)
    base = len(frames.RoomsOk(ident, [], True).payload())
    largest = _ROOM_ENTRY + len(str(capacity)) + capacity * _MEMBER_ENTRY
    if base + len(rooms) * largest <= frames.MAX_PAYLOAD:
        return reply
    size = base
    for kept, room in enumerate(rooms):
        # Names are ASCII letters and digits: JSON writes them as they are.
        members = room.members
        size += (_EMPTY_ENTRY + len(room.name) + len(str(room.capacity))
                 + sum(len(m) for m in members) + 3 * len(members))
        if size > frames.MAX_PAYLOAD:
            return frames.RoomsOk(ident, rooms[:kept], True)
    return reply
