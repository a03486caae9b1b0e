"""
What the client core tells its front ends, and how requests fail.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ServerError(Exception):
    """An ``error`` reply: ``code`` from PROTOCOL.md section 6, ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ConnectionClosed(Exception):
    """The connection ended before the reply came."""

    def __init__(self, message: str = "Connection closed") -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ServerEvent:
    """An event frame from the server (``message``, ``presence``, ...)."""

    frame: dict[str, Any]


@dataclass(frozen=True)
class TransferEvent:
    """
    A transfer changed.  ``kind``: ``queued``, ``started``, ``uploaded``,
    ``delivered``, ``failed`` (uploads); ``receiving``, ``saved``,
    ``discarded`` (downloads); ``progress`` (both).
    """

    kind: str
    transfer: Any  # a chatnet.client.transfers.Transfer
    frame: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Disconnected:
    """The connection is gone; ``clean`` after our ``exit``."""

    clean: bool
    reason: str


ClientEvent = ServerEvent | TransferEvent | Disconnected
