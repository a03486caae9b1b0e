"""
Requests waiting for their replies, matched by ``id`` (PROTOCOL.md
section 2): one :class:`~twisted.internet.defer.Deferred` per request.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from chatnet.errors import ChatError

log = Logger()


class Replies:
    """Hands out request ids and fires each request's Deferred with its reply."""

    def __init__(self) -> None:
        self._pending: dict[int, Deferred[dict[str, Any]]] = {}
        self._next_id = 1

    @property
    def asked(self) -> bool:
        """Whether any request was ever sent."""
        return self._next_id > 1

    @property
    def waiting(self) -> bool:
        """Whether a reply is still awaited."""
        return bool(self._pending)

    def expect(self) -> tuple[int, Deferred[dict[str, Any]]]:
        """A fresh id and the Deferred its reply will fire."""
        ident = self._next_id
        self._next_id += 1
        d: Deferred[dict[str, Any]] = Deferred()
        self._pending[ident] = d
        return ident, d

    def answer(self, ident: object, ok: bool, frame: dict[str, Any]) -> None:
        """
        A reply came: fire its Deferred with ``frame`` (``ok``) or fail it
        with :class:`~chatnet.errors.ChatError`.  A reply to an id we did
        not send is logged and dropped.
        """
        d = self._pending.pop(ident, None) if isinstance(ident, int) else None
        if d is None:
            log.warn("reply to unknown id {id!r}", id=ident)
        elif ok:
            d.callback(frame)
        else:
            d.errback(ChatError.from_wire(frame.get("code"), frame.get("message", "")))

    def fail_all(self, error: Exception) -> None:
        """The connection is gone: every waiting request fails with ``error``."""
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(error)
