"""
The contract's error codes (PROTOCOL.md section 6) and the exception that
carries one through the domain code.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Every ``code`` an ``error`` frame may carry."""

    BAD_FRAME = "bad-frame"
    FRAME_TOO_LARGE = "frame-too-large"
    UNKNOWN_TYPE = "unknown-type"
    NOT_LOGGED_IN = "not-logged-in"
    ALREADY_LOGGED_IN = "already-logged-in"
    INVALID_USERNAME = "invalid-username"
    USERNAME_TAKEN = "username-taken"
    AUTH_FAILED = "auth-failed"
    SERVER_FULL = "server-full"
    INVALID_ROOM = "invalid-room"
    ROOM_FULL = "room-full"
    NOT_IN_ROOM = "not-in-room"
    NO_SUCH_ROOM = "no-such-room"
    INVALID_TEXT = "invalid-text"
    NO_SUCH_USER = "no-such-user"
    INVALID_FILENAME = "invalid-filename"
    FILE_TOO_LARGE = "file-too-large"
    FILE_TYPE_NOT_ALLOWED = "file-type-not-allowed"
    QUEUE_FULL = "queue-full"
    BAD_TRANSFER = "bad-transfer"
    RATE_LIMITED = "rate-limited"
    #: Cluster only: the shared state cannot be reached; carries ``retry_after``.
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class ChatError(Exception):
    """
    A request (or frame) the server refuses.

    The session turns it into an ``error`` frame, with the request's ``id``
    when there is one, and ``retry_after`` when it is set; the client
    raises it (through the request's Deferred) for an ``error`` reply, see
    :meth:`from_wire`.
    """

    def __init__(self, code: ErrorCode, message: str, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        #: Seconds until trying again makes sense (``rate-limited``, ``unavailable``).
        self.retry_after = retry_after

    @classmethod
    def from_wire(cls, code: object, message: object) -> ChatError:
        """
        The error an ``error`` frame from a server describes.  A code this
        version does not know (a newer server's) becomes ``internal``; the
        message, which is what people read, is kept as sent.
        """
        try:
            known = ErrorCode(code) if isinstance(code, str) else ErrorCode.INTERNAL
        except ValueError:
            known = ErrorCode.INTERNAL
        return cls(known, message if isinstance(message, str) else str(known))

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class FailReason(enum.StrEnum):
    """Why a file transfer failed (``file-failed`` / ``file-aborted``)."""

    RECIPIENT_OFFLINE = "recipient-offline"
    SENDER_DISCONNECTED = "sender-disconnected"
    SIZE_MISMATCH = "size-mismatch"
    CANCELLED = "cancelled"
    SHUTDOWN = "shutdown"
    #: The addressee declined the offer, or did not answer it in time.
    DECLINED = "declined"
