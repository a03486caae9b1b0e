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
