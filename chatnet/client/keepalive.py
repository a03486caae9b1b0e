"""
Noticing a server that stopped answering.

A server whose machine died or froze (or a network that dropped the path)
leaves the client's socket open: TCP only notices when the client sends,
and then only after minutes of retransmission.  :class:`Keepalive` asks the
server a ``ping`` after ``idle`` seconds in which nothing came from it, and
gives the connection up when nothing at all (the reply or any other frame)
comes within ``timeout`` seconds of that ping.  A connection busy with
frames costs nothing but the time of the last one.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: Seconds of silence from the server before the client pings it.
IDLE = 30.0
#: Seconds the client waits for any frame after its ping.
TIMEOUT = 20.0


class Keepalive:
    """
    :param ping: sends a ``ping`` request (its reply is just another frame).
    :param dead: called once, with a sentence saying why, when the server
        stopped answering.
    """

    __slots__ = ("_clock", "_ping", "_dead", "idle", "timeout", "_heard", "_pinged", "_call")

    def __init__(
        self, clock: IReactorTime, ping: Callable[[], None], dead: Callable[[str], None],
        idle: float = IDLE, timeout: float = TIMEOUT,
    ) -> None:
        self._clock = clock
        self._ping = ping
        self._dead = dead
        self.idle = idle
        self.timeout = timeout
        self._heard = 0.0
        self._pinged: float | None = None
        self._call: IDelayedCall | None = None

    @property
    def running(self) -> bool:
        return self._call is not None

    def start(self) -> None:
        """Start watching (now counts as having heard from the server)."""
        self.stop()
        self._heard = self._clock.seconds()
        self._pinged = None
        self._call = self._clock.callLater(self.idle, self._silent)

    def heard(self) -> None:
        """A frame came from the server."""
        self._heard = self._clock.seconds()

    def stop(self) -> None:
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _silent(self) -> None:
        now = self._clock.seconds()
        quiet = now - self._heard
        if quiet < self.idle:
            self._call = self._clock.callLater(self.idle - quiet, self._silent)
            return
        self._pinged = now
        self._call = self._clock.callLater(self.timeout, self._overdue)
        self._ping()

    def _overdue(self) -> None:
        pinged = self._pinged
        assert pinged is not None
        if self._heard >= pinged:
            self._pinged = None
            self._call = None
            self._call = self._clock.callLater(
                max(0.0, self._heard + self.idle - self._clock.seconds()), self._silent
            )
            return
        self._call = None
        self._dead(
            f"the server stopped answering (nothing for {self.timeout:g}s after a ping); "
            "it or the network between may be down"
        )
