"""
The server's settings, with the contract's defaults.

Pure: imports nothing from Twisted.  :mod:`chatnet.tap` fills one
:class:`Settings` from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatnet import validation
from chatnet._version import __version__

if TYPE_CHECKING:
    from chatnet.accounts import Accounts

SERVER_NAME = f"chatnet/{__version__}"

MIB = 1024 * 1024

#: The most ``--room-capacity`` may be: a ``join`` or ``who`` reply lists
#: every member (up to 19 bytes each), and must fit one 65,541-byte frame.
MAX_ROOM_CAPACITY = 3000
#: The most ``--max-text`` may be: JSON may double a text's bytes (every
#: ``"``, ``\\``, tab or newline takes two), and a ``message`` event must
#: still fit one frame.
MAX_TEXT_LIMIT = 32_000


@dataclass(frozen=True)
class Settings:
    """Every limit the server enforces; the defaults are the contract's."""

    max_clients: int = 10_000
    room_capacity: int = 15
    max_text: int = 4096
    max_file_size: int = 3 * MIB
    #: Lower-case extensions without the dot, or ``None`` for every type.
    allowed_extensions: frozenset[str] | None = None
    upload_slots: int = 5
    upload_queue: int = 100
    #: Waiting queue places one sender may hold (PROTOCOL.md section 5,
    #: "Fairness").  20: five senders are needed to fill the default queue,
    #: and a client that sends a batch of up to 20 files while every slot is
    #: busy (or 25 to an idle server) is never refused.
    upload_queue_per_user: int = 20
    #: Files and bytes the spool may hold for one addressee (uploads to it in
    #: progress, by declared size, and files not yet delivered to it); more
    #: uploads to it wait in the queue without starting.  16 files and
    #: 48 MiB (16 files of the default largest size) hold back nobody who
    #: reads what is sent, and bound what a receiver that never reads costs.
    addressee_spool_files: int = 16
    addressee_spool_bytes: int = 48 * MIB
    #: Bytes the spool may hold in all; ``None``: half the free space of the
    #: spool's file system at start, at most 1 GiB.
    spool_size: int | None = None
    login_timeout: float = 30.0
    #: Seconds an upload may go without a data frame before it fails
    #: (``size-mismatch``), so a stalled sender cannot hold a slot forever.
    upload_idle_timeout: float = 60.0
    #: Files streamed to one addressee at once; later ones wait, uploaded,
    #: for their turn.  Each one streaming holds its spool file open.
    deliveries_per_user: int = 4
    #: Seconds an addressee that logged in with ``offers`` has to accept or
    #: decline a file before the offer fails with ``declined``.
    offer_timeout: float = 300.0
    shutdown_grace: float = 5.0
    max_output: int = 8 * MIB
    #: Seconds a connection's output may stay blocked, its client reading
    #: nothing, before it is closed as a slow consumer (0: never).
    stall_timeout: float = 60.0
    #: Requests a connection may make per second on average (0: no limit),
    #: and how many it may make at once (0: twice the rate, at least 1).
    rate_limit: float = 0.0
    rate_burst: int = 0
    #: Seconds a frame that has begun may take to complete (0: no limit).
    frame_timeout: float = 30.0
    #: The flood limit ("fakelag"): past ``flood_burst`` requests at once, a
    #: connection's requests are served at most ``flood_rate`` a second by
    #: pausing its reading; nothing is refused (0: off).
    flood_rate: float = 200.0
    flood_burst: int = 1000
    #: Connections one peer address may hold at once, and of those, how
    #: many may be not logged in yet; and connections not logged in yet in
    #: total (0: no limit).  See docs/operations.rst, "Security".
    max_per_address: int = 256
    max_pending_per_address: int = 64
    max_pending: int = 2000
    #: The accounts (``--accounts``), when the operator configured them:
    #: then every login needs its password.
    accounts: Accounts | None = field(default=None, repr=False)
    #: Zero-copy framing and write-through TCP where the installed Twisted
    #: allows them (:mod:`chatnet.fastpath`); ``--no-fast-path`` turns them off.
    fast_path: bool = True

    def burst(self) -> int:
        """Requests a connection may make at once under the rate limit."""
        return self.rate_burst or max(1, round(2 * self.rate_limit))

    def limits(self) -> dict[str, Any]:
        """The ``limits`` object of the ``login`` reply."""
        return {
            "username": validation.MAX_USERNAME,
            "room": validation.MAX_ROOM,
            "room_capacity": self.room_capacity,
            "text": self.max_text,
            "file_size": self.max_file_size,
            "upload_slots": self.upload_slots,
            "upload_queue": self.upload_queue,
        }
