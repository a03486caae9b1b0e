"""
One file transfer: its states (the life drawn in :mod:`chatnet.transfers`)
and its record, :class:`Transfer`, shared by the upload side
(:mod:`chatnet.transfers`) and the delivery side (:mod:`chatnet.deliveries`).

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, BinaryIO

from chatnet.model import User
from chatnet.spool import SpoolFile

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall


class State(enum.Enum):
    QUEUED = "queued"
    STARTING = "starting"
    UPLOADING = "uploading"
    #: Uploaded; waiting for the addressee's earlier deliveries to end.
    SPOOLED = "spooled"
    DELIVERING = "delivering"
    #: Offered to an addressee that asked to be asked (``file-offer``).
    OFFERED = "offered"


class Transfer:
    """One file on its way from ``sender`` to ``recipient``."""

    __slots__ = (
        "id", "sender", "recipient", "name", "size", "state", "position",
        "accepted_at", "started_at", "waited", "spool", "reader",
        "sender_gone", "file_started", "last_data", "idle_call", "held",
        "sha256", "ended_at", "shown_name", "told",
    )

    def __init__(
        self, number: int, sender: User, recipient: User, name: str, size: int,
        now: float,
    ) -> None:
        self.id = number
        self.sender = sender
        self.recipient = recipient
        self.name = name
        self.size = size
        self.state = State.QUEUED
        self.position = 0
        self.accepted_at = now
        self.started_at = now
        self.waited = 0.0
        self.spool: SpoolFile | None = None
        self.reader: BinaryIO | None = None
        self.sender_gone = False
        self.file_started = False
        self.last_data = now
        self.idle_call: IDelayedCall | None = None
        #: Whether the spool budget counts this transfer.
        self.held = False
        #: The spooled file's hash, once uploaded.
        self.sha256 = ""
        #: When ``file-end`` was written to the addressee.
        self.ended_at = 0.0
        #: The name offered to the addressee (``file-offer``), kept for ``file-start``.
        self.shown_name: str | None = None
        #: Whether the addressee knows of it before ``file-start``
        #: (``file-pending`` or ``file-offer``).
        self.told = False

    def __repr__(self) -> str:
        return f"<Transfer #{self.id} {self.name!r} {self.state.value}>"


def audit_fields(t: Transfer) -> dict[str, object]:
    """The fields every FILE, FILE-QUEUE and SENDFILE event of ``t`` carries."""
    return {"transfer": t.id, "name": t.name, "from": t.sender.name, "to": t.recipient.name}
