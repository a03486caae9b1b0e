"""
Who may connect: connections counted per peer address, and those not yet
logged in, per address and in total (PROTOCOL.md section 3: "one peer cannot
crowd out the others").  The total of all connections is ``--max-clients``,
checked by the session.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from chatnet.config import Settings


class Admission:
    """
    Counts connections by address and by whether they have logged in, and
    refuses a new one past a limit (a limit of 0 is no limit).

    A connection is counted from :meth:`admit` (when it is admitted) to
    :meth:`gone`; :meth:`logged_in` moves it from pending to logged in.
    Connections without an address (a UNIX socket) count only in total.
    """

    __slots__ = ("per_address", "pending_per_address", "max_pending", "_by_address",
                 "_pending_by_address", "pending")

    def __init__(self, settings: Settings) -> None:
        self.per_address = settings.max_per_address
        self.pending_per_address = settings.max_pending_per_address
        self.max_pending = settings.max_pending
        self._by_address: dict[str, int] = {}
        self._pending_by_address: dict[str, int] = {}
        #: Connections admitted and not logged in yet.
        self.pending = 0

    def connections(self, address: str | None) -> int:
        """Connections from ``address`` now counted."""
        return self._by_address.get(address, 0) if address is not None else 0

    def pending_from(self, address: str | None) -> int:
        """Connections from ``address`` not logged in yet."""
        return self._pending_by_address.get(address, 0) if address is not None else 0

    def admit(self, address: str | None) -> str | None:
        """
        Count a new, not yet logged-in connection from ``address``.

        :returns: ``None`` when admitted, else why not (the limit it would
            pass, for the ``server-full`` message); it is then not counted.
        """
        if self.max_pending and self.pending >= self.max_pending:
            return (
                f"The server has {self.pending} connections not logged in yet, the most "
                "it takes; try again later"
            )
        if address is not None:
            count = self._by_address.get(address, 0)
            if self.per_address and count >= self.per_address:
                return (
                    f"Too many connections from {address} ({count}, the most one address "
                    "may have); try again later"
                )
            pending = self._pending_by_address.get(address, 0)
            if self.pending_per_address and pending >= self.pending_per_address:
                return (
                    f"Too many connections from {address} not logged in yet ({pending}, the "
                    "most one address may have); log in or try again later"
                )
            self._by_address[address] = count + 1
            self._pending_by_address[address] = pending + 1
        self.pending += 1
        return None

    def logged_in(self, address: str | None) -> None:
        """An admitted connection from ``address`` logged in."""
        self.pending -= 1
        if address is not None:
            _decrement(self._pending_by_address, address)

    def gone(self, address: str | None, pending: bool) -> None:
        """An admitted connection from ``address`` closed (``pending``: before logging in)."""
        if pending:
            self.logged_in(address)
        if address is not None:
            _decrement(self._by_address, address)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]  # an address that left costs nothing


class RefusalLog:
    """
    Which refused connections the audit log shows one by one: from each
    address, the first, then one every :data:`INTERVAL` seconds, which also
    says how many were refused meanwhile.  A peer re-opening connections as
    fast as they are refused (thousands a second) then costs the log a line
    a minute, not three lines a connection.
    """

    __slots__ = ("_last",)

    #: Seconds between two refusals logged for one address.
    INTERVAL = 60.0
    #: Addresses remembered before the stale ones are swept out.
    SWEEP = 10_000

    def __init__(self) -> None:
        #: Address -> (when a refusal was last logged, refusals not logged since).
        self._last: dict[str, tuple[float, int]] = {}

    def note(self, address: str, now: float) -> int | None:
        """
        A connection from ``address`` is refused.

        :returns: ``None`` when it should not be logged; else how many from
            that address were refused, unlogged, since the last one logged.
        """
        last = self._last.get(address)
        if last is not None and now - last[0] < self.INTERVAL:
            self._last[address] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self.SWEEP:
            self._last = {a: v for a, v in self._last.items() if now - v[0] < self.INTERVAL}
        self._last[address] = (now, 0)
        return last[1] if last is not None else 0
