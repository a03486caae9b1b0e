"""
Recording fakes for testing :class:`~chatnet.session.Session` without a
connection, a reactor or files: an outbox that keeps the frames it is
given, a transfer manager that keeps the calls it gets, and an audit log
that keeps its lines (magic-wormhole's ``Dummy`` objects, in spirit).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, BinaryIO

from twisted.internet.defer import Deferred

from chatnet import testing
from chatnet.config import Settings
from chatnet.errors import ChatError, ErrorCode, FailReason
from chatnet.frames import DataFrame, FromServer, decode_from_server
from chatnet.hub import Hub
from chatnet.model import Directory, User
from chatnet.session import Session

_LENGTH = struct.Struct(">I")


def split_frames(data: bytes) -> list[bytes]:
    """The payloads of one or more complete, length-prefixed frames."""
    payloads = []
    offset = 0
    while offset < len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        payloads.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    assert offset == len(data), "a partial frame was sent"
    return payloads


class RecordingOutbox:
    """A connection's outgoing side that records every frame, decoded."""

    def __init__(self) -> None:
        self.frames: list[FromServer] = []
        #: ``grace`` of the :meth:`close` call, ``None`` while open.
        self.closed: float | None = None
        self.paused = False
        self.files: list[int] = []
        self.cancelled: list[int] = []

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        self.frames.extend(decode_from_server(p) for p in split_frames(data))
        if on_written is not None:
            on_written()

    def send_file(self, transfer: int, file: BinaryIO) -> Deferred[bytes]:
        self.files.append(transfer)
        return Deferred()

    def cancel_file(self, transfer: int) -> None:
        self.cancelled.append(transfer)

    def close(self, grace: float) -> None:
        self.closed = grace

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def take(self) -> list[FromServer]:
        """The frames recorded since the last call."""
        frames, self.frames = self.frames, []
        return frames


class Ticket:
    """A transfer as the session sees it."""

    def __init__(self, number: int, position: int) -> None:
        self.id = number
        self.position = position

    def __repr__(self) -> str:
        return f"<Ticket #{self.id}>"


class FakeTransfers:
    """
    A transfer manager that records each call as ``(method, args...)``.
    Transfer :attr:`KNOWN` is every sender's own; others are ``bad-transfer``.
    """

    KNOWN = 7

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.ticket = Ticket(self.KNOWN, 0)
        self.running = self.waiting = self.delivering = self.deliveries_waiting = 0
        self.spool_used = self.spool_capacity = 0

    def offer(self, sender: User, recipient: User, name: str, size: int) -> Ticket:
        self.calls.append(("offer", sender.name, recipient.name, name, size))
        return self.ticket

    def receive(self, sender: User, frame: DataFrame) -> None:
        self.calls.append(("receive", sender.name, frame.transfer, bytes(frame.data)))

    def find_own(self, sender: User, number: object) -> Ticket:
        if number != self.KNOWN:
            raise ChatError(ErrorCode.BAD_TRANSFER, f"Transfer {number!r} is not yours")
        return self.ticket

    def find_offer(self, recipient: User, number: object) -> Ticket:
        if number != self.KNOWN:
            raise ChatError(ErrorCode.BAD_TRANSFER, f"Transfer {number!r} is not offered to you")
        return self.ticket

    def accept(self, t: Ticket) -> None:
        self.calls.append(("accept", t.id))

    def receipt(self, recipient: User, number: object, sha256: object) -> bool:
        if number != self.KNOWN:
            raise ChatError(ErrorCode.BAD_TRANSFER, f"Transfer {number!r} is not yours")
        self.calls.append(("receipt", recipient.name, number, sha256))
        return True

    def fail(self, t: Ticket, reason: FailReason, tell_recipient: bool = True) -> None:
        self.calls.append(("fail", t.id, reason))

    def user_gone(self, user: User) -> None:
        self.calls.append(("user_gone", user.name))

    def shutdown(self) -> int:
        self.calls.append(("shutdown",))
        return 0


class RecordingAudit(testing.RecordingAudit):
    """An audit log that keeps its lines (and their fields)."""

    def categories(self) -> list[str]:
        return [category for category, _ in self.lines]


class World:
    """One :class:`Hub` with recording fakes, and sessions on it."""

    def __init__(self, settings: Settings | None = None, now: float = 1_000_000.0) -> None:
        self.settings = settings or Settings()
        self.transfers = FakeTransfers()
        self.audit = RecordingAudit()
        self.time = now
        self.hub = Hub(
            self.settings, Directory(self.settings.room_capacity), self.transfers,
            self.audit, now=lambda: self.time,
        )

    def session(self, peer: str = "127.0.0.1:5000") -> tuple[Session, RecordingOutbox]:
        """A new connected session and its outbox."""
        outbox = RecordingOutbox()
        session = Session(self.hub, outbox, peer)
        session.connected()
        return session, outbox
