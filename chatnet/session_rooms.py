"""
The requests about rooms and messages: ``join``, ``leave``, ``broadcast``
(the hot path), ``whisper``, ``rooms``, ``who`` and ``users``.

Each asks the hub's :class:`~chatnet.interfaces.Shared` state, which
answers at once on a single server and later in a cluster (then the
request waits, see :meth:`~chatnet.session_base.SessionBase.wait`).

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from chatnet import frames, paging
from chatnet.errors import ChatError, ErrorCode
from chatnet.frames import Ok
from chatnet.interfaces import Later
from chatnet.model import Joined, Left, RoomsPage, User, UsersPage
from chatnet.session_base import SessionBase, left_fields, room_fields
from chatnet.shared_state import answered_now
from chatnet.validation import check_room, check_text, count


class RoomRequests(SessionBase):
    """Rooms and messages (a mixin of :class:`~chatnet.session.Session`)."""

    __slots__ = ()

    def _finish(self, answer: Any, then: Any, ident: Any) -> None:
        """``then(answer)`` now, or once the shared state answers."""
        if answered_now(answer):
            then(answer)
        else:
            self.wait(answer, then, ident)

    def _join(self, req: frames.Join) -> None:
        user = self._user()
        name = check_room(req.room)
        self._finish(self.hub.shared.join(user, name), partial(self._joined, req), req.id)

    def _joined(self, req: frames.Join, joined: Joined) -> None:
        user = self._user()
        self._reply(frames.JoinOk(req.id, joined.room, joined.members))
        if joined.same:  # already there: an ok no-op
            return
        switch = (
            f", leaving {joined.left} ({joined.left_occupancy})" if joined.left is not None else ""
        )
        fields = room_fields(user, joined.room, len(joined.members))
        if joined.left is not None:
            fields["left"] = joined.left
        self.hub.audit(
            "JOIN", f"{user.name} joined {joined.room} ({joined.occupancy}){switch}", fields
        )

    def _leave(self, req: frames.Leave) -> None:
        self._finish(self.hub.shared.leave(self._user()), partial(self._left_room, req), req.id)

    def _left_room(self, req: frames.Leave, left: Left) -> None:
        user = self._user()
        self._reply(frames.LeaveOk(req.id, left.room))
        self.hub.audit(
            "LEAVE", f"{user.name} left {left.room} ({left.occupancy})", left_fields(user, left)
        )

    def _broadcast(self, req: frames.Broadcast) -> None:
        user = self._user()
        hub = self.hub
        text = check_text(req.text, hub.settings.max_text)
        room = user.room
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; /join one first")
        delivered = hub.shared.broadcast(user, room, text, hub.now())
        if type(delivered) is int:
            self._broadcast_done(req.id, room.name, text, delivered)
        else:  # (published even if this connection goes meanwhile: logged then too)
            self.wait(cast("Later[int]", delivered),
                      partial(self._broadcast_done, req.id, room.name, text), req.id,
                      undo=partial(self._broadcast_logged, user, room.name, text))

    def _broadcast_done(self, ident: Any, room: str, text: str, delivered: int) -> None:
        self.outbox.send(frames.BroadcastOk.encode(ident, delivered))
        self._broadcast_logged(self._user(), room, text, delivered)

    def _broadcast_logged(self, user: User, room: str, text: str, delivered: int) -> None:
        """Count and log a broadcast (sent, whether or not its sender heard the reply)."""
        hub = self.hub
        stats = hub.stats
        stats.broadcasts += 1
        stats.deliveries += delivered
        hub.audit(
            "BROADCAST", f"{user.name} -> {room} ({count(delivered, 'member')}): {text}",
            {"user": user.name, "room": room, "delivered": delivered, "message": text}
            if hub.audit_fields else None,
        )

    def _whisper(self, req: frames.Whisper) -> None:
        hub = self.hub
        user = self._user()
        target = hub.shared.whisper(user, req.to, req.text, hub.now())
        if isinstance(target, str):
            self._whispered(req.id, target)
        else:  # (sent even if this connection goes meanwhile: logged then too)
            self.wait(target, partial(self._whispered, req.id), req.id,
                      undo=partial(self._whisper_logged, user))

    def _whispered(self, ident: Any, target: str) -> None:
        self.outbox.send(Ok.encode(ident))
        self._whisper_logged(self._user(), target)

    def _whisper_logged(self, user: User, target: str) -> None:
        hub = self.hub
        stats = hub.stats
        stats.whispers += 1
        stats.deliveries += 1
        hub.audit(
            "WHISPER", f"{user.name} -> {target}",
            {"user": user.name, "to": target} if hub.audit_fields else None,
        )

    def _rooms(self, req: frames.Rooms) -> None:
        after, limit = paging.checked(req.after, req.limit, paging.ROOMS_PAGE, paging.ROOMS_PAGE_MAX)
        self._finish(self.hub.shared.rooms_page(after, limit), partial(self._rooms_page, req.id),
                     req.id)

    def _rooms_page(self, ident: Any, page: RoomsPage) -> None:
        infos, more = page
        self._reply(paging.fit_rooms(ident, infos, more, self.hub.settings.room_capacity))

    def _who(self, req: frames.Who) -> None:
        user = self._user()
        name = req.room
        if name is None:
            room = user.room
            if room is None:
                raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; name one: /who <room>")
            name = room.name
        self._finish(self.hub.shared.who(name), partial(self._who_page, req.id), req.id)

    def _who_page(self, ident: Any, answer: tuple[str, list[str]]) -> None:
        self._reply(frames.WhoOk(ident, answer[0], answer[1]))

    def _users(self, req: frames.Users) -> None:
        after, limit = paging.checked(req.after, req.limit, paging.USERS_PAGE, paging.USERS_PAGE_MAX)
        self._finish(self.hub.shared.users_page(after, limit), partial(self._users_page, req.id),
                     req.id)

    def _users_page(self, ident: Any, page: UsersPage) -> None:
        # 3,000 names of at most 16 ASCII characters always fit one frame.
        names, more = page
        self._reply(frames.UsersOk(ident, names, more))
