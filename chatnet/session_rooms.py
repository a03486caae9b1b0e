"""
The requests about rooms and messages: ``join``, ``leave``, ``broadcast``
(the hot path), ``whisper``, ``rooms``, ``who`` and ``users``.

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

from chatnet import frames, paging
from chatnet.errors import ChatError, ErrorCode
from chatnet.frames import Ok
from chatnet.session_base import SessionBase, room_fields
from chatnet.validation import check_room, check_text, count


class RoomRequests(SessionBase):
    """Rooms and messages (a mixin of :class:`~chatnet.session.Session`)."""

    __slots__ = ()

    def _join(self, req: frames.Join) -> None:
        user = self._user()
        hub = self.hub
        name = check_room(req.room)
        before = user.room
        room, left = hub.directory.join(user, name)
        if room is before:  # already there: an ok no-op
            self._reply(frames.JoinOk(req.id, room.name, room.names()))
            return
        if left is not None:
            self._presence(left, user, "leave")
            switch = f", leaving {left.name} ({left.occupancy()})"
        else:
            switch = ""
        self._reply(frames.JoinOk(req.id, room.name, room.names()))
        self._presence(room, user, "join")
        fields = room_fields(user, room)
        if left is not None:
            fields["left"] = left.name
        hub.audit("JOIN", f"{user.name} joined {room.name} ({room.occupancy()}){switch}", fields)

    def _leave(self, req: frames.Leave) -> None:
        user = self._user()
        room = self.hub.directory.leave(user)
        self._reply(frames.LeaveOk(req.id, room.name))
        self._presence(room, user, "leave")
        self.hub.audit(
            "LEAVE", f"{user.name} left {room.name} ({room.occupancy()})", room_fields(user, room)
        )

    def _broadcast(self, req: frames.Broadcast) -> None:
        user = self._user()
        hub = self.hub
        text = check_text(req.text, hub.settings.max_text)
        room = user.room
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; /join one first")
        # The message event's encoder, without building the object: this is
        # the hottest frame there is.
        data = frames.message_wire(room.name, user.name, text, hub.now())
        delivered = room.send(data, exclude=user)
        self.outbox.send(frames.BroadcastOk.encode(req.id, delivered))
        stats = hub.stats
        stats.broadcasts += 1
        stats.deliveries += delivered
        hub.audit(
            "BROADCAST", f"{user.name} -> {room.name} ({count(delivered, 'member')}): {text}",
            {"user": user.name, "room": room.name, "delivered": delivered, "message": text}
            if hub.audit_fields else None,
        )

    def _whisper(self, req: frames.Whisper) -> None:
        user = self._user()
        hub = self.hub
        target = hub.directory.find_user(req.to)
        text = check_text(req.text, hub.settings.max_text)
        target.outbox.send(frames.WhisperEvent(user.name, text, hub.now()).wire())
        self.outbox.send(Ok.encode(req.id))
        stats = hub.stats
        stats.whispers += 1
        stats.deliveries += 1
        hub.audit(
            "WHISPER", f"{user.name} -> {target.name}",
            {"user": user.name, "to": target.name} if hub.audit_fields else None,
        )

    def _rooms(self, req: frames.Rooms) -> None:
        after, limit = paging.checked(req.after, req.limit, paging.ROOMS_PAGE, paging.ROOMS_PAGE_MAX)
        rooms, more = self.hub.directory.rooms_page(after, limit)
        infos = [frames.RoomInfo(r.name, r.names(), r.capacity) for r in rooms]
        self._reply(paging.fit_rooms(req.id, infos, more, self.hub.settings.room_capacity))

    def _who(self, req: frames.Who) -> None:
        user = self._user()
        name = req.room
        if name is None:
            room = user.room
            if room is None:
                raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; name one: /who <room>")
        else:
            room = self.hub.directory.find_room(name)
        self._reply(frames.WhoOk(req.id, room.name, room.names()))

    def _users(self, req: frames.Users) -> None:
        after, limit = paging.checked(req.after, req.limit, paging.USERS_PAGE, paging.USERS_PAGE_MAX)
        users, more = self.hub.directory.users_page(after, limit)
        # 3,000 names of at most 16 ASCII characters always fit one frame.
        self._reply(frames.UsersOk(req.id, [u.name for u in users], more))
