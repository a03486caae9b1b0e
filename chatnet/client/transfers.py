"""
What uploads and downloads share: the state and progress a front end shows
for a transfer (:class:`Transfer`).

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def finished(self) -> bool:
        return self.state in ("delivered", "failed", "saved", "discarded")

    def percent(self) -> float:
        """How much is done, 0 to 100 (100 for an empty file once started)."""
        if self.size == 0:
            return 100.0 if self.started_at is not None else 0.0
        return 100.0 * self.done_bytes / self.size

    def speed(self, now: float) -> float:
        """Bytes per second since the data started flowing."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else now
        elapsed = end - self.started_at
        return self.done_bytes / elapsed if elapsed > 0 else 0.0
