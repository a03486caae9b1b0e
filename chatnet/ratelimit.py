"""
Request rate limits (``--rate-limit``): a token bucket per connection.

Pure: imports nothing from Twisted.  Time is whatever the caller passes as
``now`` (the reactor's clock, or a test's :class:`~twisted.internet.task.Clock`).
"""

from __future__ import annotations


class _Bucket:
    """``rate`` tokens a second, up to ``burst`` saved, starting full."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be above 0 and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> float:
        """Earn the tokens due by ``now``; :returns: the tokens saved."""
        elapsed = now - self._at
        if elapsed > 0:  # a clock set back earns nothing, and costs nothing
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._at = now
        return self._tokens


class TokenBucket(_Bucket):
    """
    One token per request (``--rate-limit``): a request without a token is
    refused.

    A client that stays under ``rate`` requests a second on average is never
    refused; one that pastes ``burst`` lines at once is not either.
    """

    __slots__ = ()

    def take(self, now: float) -> bool:
        """Spend a token if there is one; :returns: whether there was."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token, as of the last :meth:`take`."""
        return max(0.0, (1 - self._tokens) / self.rate)


#: One token, less what a clock's float arithmetic loses (0.1 s at 10 a
#: second earns 0.9999999999999998).
_WHOLE = 1 - 1e-9


class FloodGate(_Bucket):
    """
    The default flood limit ("fakelag", as IRC servers call it): nothing is
    refused, a flooder is only served more slowly.

    ``burst`` requests pass at once; past them, at most ``rate`` a second.
    :meth:`spend` counts one request and says how long the connection's
    reading should pause before the next one may be served, so what a
    flooder sends waits in its own socket, in order, and no one else waits.
    A pause lasts until a slice of :data:`SLICE` seconds' worth of requests
    has been earned, so a flooder costs one timer per slice, not one per
    request.
    """

    __slots__ = ("_resume",)

    #: Seconds of requests earned before reading resumes after a pause.
    SLICE = 0.05

    def __init__(self, rate: float, burst: int, now: float) -> None:
        super().__init__(rate, burst, now)
        self._resume = min(float(burst), max(1.0, rate * self.SLICE))

    def spend(self, now: float) -> float:
        """
        Count one request, served now.

        :returns: ``0.0`` when the next request may be served at once, else
            the seconds reading should pause first.
        """
        tokens = self._refill(now) - 1
        self._tokens = tokens
        if tokens > _WHOLE:
            return 0.0
        return (self._resume - tokens) / self.rate
