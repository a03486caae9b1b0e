"""
One timer for many deadlines of the same length.

:class:`Deadlines` times keys that each started at some moment and must end
within ``timeout`` seconds: a partial frame (:class:`~chatnet.inbound.FrameWatch`),
output blocked by a client that reads nothing
(:class:`~chatnet.outbound.StallWatch`).  Since every key has the same
timeout, the oldest one always expires first: a dict kept in start order and
a single delayed call, for the oldest, serve them all, however many
connections there are.  Starting and stopping a key costs a dict operation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """
    Keys with a start time; past ``timeout`` seconds, a key's callback runs
    with how long it had been running, and the key is forgotten.
    """

    __slots__ = ("_clock", "timeout", "_since", "_call")

    def __init__(self, clock: IReactorTime, timeout: float) -> None:
        self._clock = clock
        self.timeout = timeout
        #: key -> (since when, what to call when it expires), oldest first.
        self._since: dict[K, tuple[float, Callable[[float], None]]] = {}
        self._call: IDelayedCall | None = None

    def __len__(self) -> int:
        return len(self._since)

    def __contains__(self, key: K) -> bool:
        return key in self._since

    def start(self, key: K, expired: Callable[[float], None], restart: bool = False) -> None:
        """
        Time ``key`` from now; ``restart``: even if it is already timed
        (its clock starts again), else a running one is left as it is.
        """
        since = self._since
        if key in since:
            if not restart:
                return
            del since[key]  # to the end of the line
        since[key] = (self._clock.seconds(), expired)
        if self._call is None:
            self._call = self._clock.callLater(self.timeout, self._check)

    def stop(self, key: K) -> None:
        """``key`` ended in time (or was never timed)."""
        since = self._since
        if since.pop(key, None) is not None and not since and self._call is not None:
            self._call.cancel()
            self._call = None

    def _check(self) -> None:
        self._call = None
        now = self._clock.seconds()
        since = self._since
        while since:
            key, (began, expired) = next(iter(since.items()))
            if now - began < self.timeout:
                if self._call is not None:  # set by a key started while one expired
                    self._call.cancel()
                self._call = self._clock.callLater(began + self.timeout - now, self._check)
                return
            del since[key]
            expired(now - began)
