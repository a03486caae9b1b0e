"""
Request rate limits (``--rate-limit``): a token bucket per connection.

Pure: imports nothing from Twisted.  Time is whatever the caller passes as
``now`` (the reactor's clock, or a test's :class:`~twisted.internet.task.Clock`).
"""

from __future__ import annotations


class TokenBucket:
    """
    ``rate`` tokens a second, up to ``burst`` saved; one token per request.

    A client that stays under ``rate`` requests a second on average is never
    refused; one that pastes ``burst`` lines at once is not either.
    """

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be above 0 and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        """Spend a token if there is one; :returns: whether there was."""
        elapsed = now - self._at
        if elapsed > 0:  # a clock set back earns nothing, and costs nothing
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token, as of the last :meth:`take`."""
        return max(0.0, (1 - self._tokens) / self.rate)
