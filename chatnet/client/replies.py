"""
Requests waiting for their replies, matched by ``id`` (PROTOCOL.md
section 2): one :class:`~twisted.internet.defer.Deferred` per request,
fired with the reply as the frame class of that request
(:func:`chatnet.frames.read_ok`).
"""

from __future__ import annotations

import dataclasses

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from chatnet import frames
from chatnet.errors import ChatError, ErrorCode

log = Logger()


class Replies:
    """Hands out request ids and fires each request's Deferred with its reply."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[Deferred[frames.Reply], frames.Request]] = {}
        self._next_id = 1

    @property
    def asked(self) -> bool:
        """Whether any request was ever sent."""
        return self._next_id > 1

    @property
    def waiting(self) -> bool:
        """Whether a reply is still awaited."""
        return bool(self._pending)

    def expect(self, request: frames.Request) -> tuple[frames.Request, Deferred[frames.Reply]]:
        """``request`` with a fresh ``id``, and the Deferred its reply will fire."""
        ident = self._next_id
        self._next_id += 1
        d: Deferred[frames.Reply] = Deferred()
        self._pending[ident] = (d, request)
        return dataclasses.replace(request, id=ident), d  # type: ignore[type-var]

    def answer(self, reply: frames.Ok | frames.ErrorReply) -> None:
        """
        A reply came: fire its Deferred with the request's reply class
        (:class:`~chatnet.frames.JoinOk` for a ``join`` ...) or fail it with
        :class:`~chatnet.errors.ChatError`.  A reply to an id we did not
        send is logged and dropped.
        """
        ident = reply.id
        waiting = self._pending.pop(ident, None) if isinstance(ident, int) else None
        if waiting is None:
            log.warn("reply to unknown id {id!r}", id=ident)
            return
        d, request = waiting
        if isinstance(reply, frames.ErrorReply):
            d.errback(ChatError.from_wire(reply.code, reply.message))
            return
        read = frames.read_ok(reply, request)
        if isinstance(read, frames.BadFrame):
            d.errback(ChatError(ErrorCode.BAD_FRAME, f"Unreadable reply from the server: {read.message}"))
        else:
            d.callback(read)

    def fail_all(self, error: Exception) -> None:
        """The connection is gone: every waiting request fails with ``error``."""
        pending, self._pending = self._pending, {}
        for d, _ in pending.values():
            d.errback(error)
