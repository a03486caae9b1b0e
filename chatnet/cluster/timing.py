"""
Timing decisions of cluster mode: how often a lease is renewed, how long
Redis may take to answer, and how reconnection backs off.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import random

#: The default lease of a node, in seconds (``--cluster-lease``).
DEFAULT_LEASE = 10.0
#: A lease is renewed at most this often apart, whatever its length...
MAX_RENEW_INTERVAL = 2.0
#: ...and at least three times within it, so two lost beats do not lose it.
BEATS_PER_LEASE = 3

#: Reconnection to Redis: first delay, growth, ceiling (seconds), jitter.
FIRST_DELAY = 0.1
FACTOR = 2.0
MAX_DELAY = 2.0
JITTER = 0.1


def renew_interval(lease: float) -> float:
    """Seconds between two renewals of a lease of ``lease`` seconds."""
    if lease <= 0:
        raise ValueError(f"a lease must be positive, not {lease!r}")
    return min(MAX_RENEW_INTERVAL, lease / BEATS_PER_LEASE)


def lease_ms(lease: float) -> int:
    """The lease in whole milliseconds, as ``PEXPIRE`` takes it (at least 1)."""
    return max(1, round(lease * 1000))


def reply_timeout(lease: float) -> float:
    """
    How long one Redis command may take before the link is presumed dead:
    shorter than a renewal interval, so that a dead socket is noticed (and
    the connection dropped and made again) before the lease runs out.
    """
    return max(0.5, renew_interval(lease))


def backoff(attempt: int, rand: random.Random | None = None) -> float:
    """
    Seconds to wait before reconnection ``attempt`` (1 for the first retry):
    exponential from :data:`FIRST_DELAY` to :data:`MAX_DELAY`, with
    ``±JITTER`` so that nodes that lost Redis together do not all come back
    in the same instant.  The ceiling is low on purpose: a cluster without
    Redis serves nobody, so it retries often (a connection attempt is cheap).
    """
    if attempt < 1:
        attempt = 1
    delay = min(MAX_DELAY, FIRST_DELAY * FACTOR ** min(attempt - 1, 64))
    spread = (rand or random).uniform(-JITTER, JITTER)
    return max(0.0, delay * (1 + spread))


def settling(lease: float) -> float:
    """
    Seconds a node that held its users again after Redis lost its state
    answers ``unavailable``, so that no request sees the cluster before every
    node had the time to do the same: each notices at its next beat after
    its link to Redis is back, which takes at most the longest reconnection
    delay (with its jitter) and one reply timeout; twice the beat for margin.
    """
    return MAX_DELAY * (1 + JITTER) + reply_timeout(lease) + 2 * renew_interval(lease)
