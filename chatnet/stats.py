"""
What the server counts, for :mod:`chatnet.metrics` to expose.

Pure: plain integers and lists bumped by the session and the transfers, and
read only when someone scrapes.  Nothing here knows Prometheus; a counter is
an attribute increment on the hot path (a broadcast costs two), not a locked
metric object.  Gauges are not kept here at all: :mod:`chatnet.metrics`
computes them from the live state at scrape time.

Labels stay bounded: request types are the contract's twelve, error codes
the contract's, login and transfer results a code or a fail reason.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

#: Upper bounds (seconds) of :attr:`Stats.upload_wait`: a slot at once, or
#: after a queue of slow uploads.
UPLOAD_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

#: Upper bounds (seconds) of the request histograms: a request is handled in
#: microseconds unless the process is starved.
REQUEST_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.05, 0.25, 1.0,
)


class Histogram:
    """
    Observations counted into fixed buckets, as Prometheus histograms are.

    :param bounds: increasing upper bounds; an observation counts in the
        first bucket whose bound is at least its value (``le``), or in the
        last one, ``+Inf``.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        #: One count per bound, and one more for ``+Inf``; not cumulative.
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``[("0.01", n), ..., ("+Inf", total)]``: Prometheus' bucket series."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class Stats:
    """
    The server's counters since it started.

    Bumped directly (``stats.broadcasts += 1``) by
    :class:`~chatnet.session.Session` and
    :class:`~chatnet.transfers.TransferManager`; the ``*_by`` dictionaries
    map a bounded label value to a count.
    """

    __slots__ = (
        "broadcasts", "whispers", "deliveries", "errors_by", "logins_by",
        "file_bytes_in", "file_bytes_out", "transfers_by", "slow_consumers",
        "upload_wait", "requests", "sample_every",
    )

    def __init__(self, time_requests: bool = False, sample_every: int = 64) -> None:
        self.broadcasts = 0
        self.whispers = 0
        #: Messages handed to recipients: broadcast members and whisper addressees.
        self.deliveries = 0
        #: Error code -> error replies sent.
        self.errors_by: dict[str, int] = {}
        #: ``ok`` or the refusal's error code -> login attempts.
        self.logins_by: dict[str, int] = {}
        self.file_bytes_in = 0
        self.file_bytes_out = 0
        #: ``delivered`` or the fail reason -> finished transfers.
        self.transfers_by: dict[str, int] = {}
        self.slow_consumers = 0
        #: Seconds each upload waited for a slot.
        self.upload_wait = Histogram(UPLOAD_WAIT_BUCKETS)
        #: Request type -> handling time of the requests timed, or ``None``:
        #: requests are not timed (only metrics need it).
        self.requests: dict[str, Histogram] | None = {} if time_requests else None
        #: Each session times its first request and then one in
        #: ``sample_every``: two clock reads and a histogram update cost about
        #: a tenth of a broadcast's work, a countdown a hundredth of it.
        self.sample_every = sample_every

    def error(self, code: str) -> None:
        by = self.errors_by
        by[code] = by.get(code, 0) + 1

    def login(self, result: str) -> None:
        by = self.logins_by
        by[result] = by.get(result, 0) + 1

    def transfer(self, result: str) -> None:
        by = self.transfers_by
        by[result] = by.get(result, 0) + 1

    def request(self, kind: str, seconds: float) -> None:
        """A timed request of type ``kind`` (a known type) took ``seconds``."""
        requests = self.requests
        if requests is None:
            return
        histogram = requests.get(kind)
        if histogram is None:
            histogram = requests[kind] = Histogram(REQUEST_BUCKETS)
        histogram.observe(seconds)
