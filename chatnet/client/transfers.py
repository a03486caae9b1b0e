"""
What uploads and downloads share: the state and progress a front end shows
for a transfer (:class:`Transfer`).

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

#: Seconds of progress the current speed is measured over.
SPEED_WINDOW = 3.0


@dataclass(eq=False)
class Transfer:
    """What both directions share, for progress bars and messages."""

    name: str
    size: int
    peer: str
    transfer: int | None = None
    state: str = "offered"
    done_bytes: int = 0
    position: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    direction: str = "up"
    #: (time, bytes done) of the last few seconds, for the current speed.
    samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in ("delivered", "received", "failed", "saved", "discarded")

    def percent(self) -> float:
        """How much is done, 0 to 100 (100 for an empty file once started)."""
        if self.size == 0:
            return 100.0 if self.started_at is not None else 0.0
        return 100.0 * self.done_bytes / self.size

    def moved(self, done: int, now: float) -> None:
        """``done`` bytes are done by ``now`` (for :meth:`speed`)."""
        self.done_bytes = done
        samples = self.samples
        samples.append((now, done))
        # Keep one sample from before the window, for its start.
        while len(samples) > 1 and samples[1][0] <= now - SPEED_WINDOW:
            samples.popleft()

    def speed(self, now: float) -> float:
        """
        Bytes per second: over the last :data:`SPEED_WINDOW` seconds while
        it runs (not since the start), the average once finished.
        """
        if self.started_at is None:
            return 0.0
        if self.finished_at is not None:
            elapsed = self.finished_at - self.started_at
            return self.done_bytes / elapsed if elapsed > 0 else 0.0
        # From the last sample at or before the window's start (or the start).
        start, done = self.started_at, 0
        for when, then_done in self.samples:
            if when > now - SPEED_WINDOW:
                break
            start, done = when, then_done
        elapsed = now - start
        return max(0, self.done_bytes - done) / elapsed if elapsed > 0 else 0.0

    def eta(self, now: float) -> float | None:
        """Seconds left at the current speed; ``None`` when it cannot tell."""
        speed = self.speed(now)
        if self.finished or speed <= 0:
            return None
        return (self.size - self.done_bytes) / speed
