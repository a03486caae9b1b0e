"""
One connection's incoming side: reading paused for reasons, and the deadline
on a frame that has begun.

:class:`ReadGate` lets several parts of the server pause reading from one
connection without fighting: each pauses and resumes under a reason of its
own, and reading resumes only when no reason is left (the flood limit, a
request waiting for an answer, ...).

:class:`FrameWatch` closes connections that began a frame and did not finish
it within ``timeout`` seconds (PROTOCOL.md section 3), so a peer cannot hold
64 KiB of buffer for ever.  It costs the hot path one check per read, and
one timer serves every connection, as :class:`~chatnet.outbound.StallWatch`
does for output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IReactorTime

from chatnet.deadlines import Deadlines


class Pausable(Protocol):
    """What a :class:`ReadGate` pauses: the protocol (``_PauseableMixin``)."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


#: The reasons of a gate that reads: one shared empty frozenset.
_RUNNING: frozenset[str] = frozenset()


class ReadGate:
    """
    Reading from one connection, paused while any reason holds.

    :param target: paused on the first reason, resumed when the last one is
        withdrawn (its ``resumeProducing`` replays what was read meanwhile).
    """

    __slots__ = ("_target", "reasons", "_closed")

    def __init__(self, target: Pausable) -> None:
        self._target = target
        #: Why reading is paused; empty while it runs.  A frozenset, replaced
        #: on change: pauses are rare, and the empty one is shared (a set
        #: would be 216 bytes more per connection).
        self.reasons: frozenset[str] = _RUNNING
        self._closed = False

    @property
    def paused(self) -> bool:
        return bool(self.reasons)

    def pause(self, reason: str) -> None:
        """Stop reading until ``reason`` is withdrawn (again: no change)."""
        first = not self.reasons
        self.reasons = self.reasons | {reason}
        if first and not self._closed:
            self._target.pauseProducing()

    def resume(self, reason: str) -> None:
        """Withdraw ``reason``; reading resumes when no other holds."""
        reasons = self.reasons
        if reason in reasons:
            reasons = self.reasons = reasons - {reason} or _RUNNING
            if not reasons and not self._closed:
                self._target.resumeProducing()

    def handle(self, reason: str) -> Pausable:
        """An object whose ``pauseProducing``/``resumeProducing`` pause for ``reason``."""
        return _Reason(self, reason)

    def close(self) -> None:
        """The connection is gone: never touch it again."""
        self._closed = True
        self.reasons = _RUNNING


class _Reason:
    """One reason of a :class:`ReadGate`, as a producer's pause and resume."""

    __slots__ = ("_gate", "_reason")

    def __init__(self, gate: ReadGate, reason: str) -> None:
        self._gate = gate
        self._reason = reason

    def pauseProducing(self) -> None:
        self._gate.pause(self._reason)

    def resumeProducing(self) -> None:
        self._gate.resume(self._reason)


class FrameWatch:
    """
    Times every connection that holds part of a frame.

    A connection reports :meth:`started` when a read leaves part of a new
    frame buffered and :meth:`done` when nothing partial is left (or reading
    is paused by the server, when the peer cannot be blamed).  One timer, for
    the oldest partial frame, serves them all (:class:`~chatnet.deadlines.Deadlines`);
    past ``timeout`` seconds the connection's ``expired`` callback runs.
    """

    __slots__ = ("_deadlines",)

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self._deadlines: Deadlines[object] = Deadlines(clock, timeout)

    @property
    def timeout(self) -> float:
        return self._deadlines.timeout

    def __len__(self) -> int:
        return len(self._deadlines)

    def started(self, conn: object, expired: Callable[[float], None]) -> None:
        """``conn`` began a frame now (moving it to the end of the line)."""
        self._deadlines.start(conn, expired, restart=True)

    def done(self, conn: object) -> None:
        """``conn`` holds no partial frame (any more)."""
        self._deadlines.stop(conn)
