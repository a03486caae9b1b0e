"""
What the client core tells its front ends, and how requests fail.

A request's Deferred fails with :class:`~chatnet.errors.ChatError` for an
``error`` reply (the same type the server raises), :class:`LocalError` for
what the client refuses before sending, or :class:`ConnectionClosed`.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatnet import frames
from chatnet.client.transfers import Transfer
from chatnet.errors import ChatError

__all__ = [
    "ChatError", "ClientEvent", "ConnectionClosed", "Disconnected", "GaveUp", "LocalError",
    "Reconnected", "Reconnecting", "ServerEvent", "TransferEvent",
]


class LocalError(Exception):
    """Something the client refuses before anything is sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectionClosed(Exception):
    """The connection ended before the reply came."""

    def __init__(self, message: str = "Connection closed") -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ServerEvent:
    """
    An event from the server that is not a transfer's (``message``,
    ``presence``, ``shutdown`` ...), or an ``error`` that answers no request.
    """

    frame: frames.Event | frames.ErrorReply


@dataclass(frozen=True)
class TransferEvent:
    """
    A transfer changed.  ``kind``: ``queued``, ``started``, ``uploaded``,
    ``delivered`` (sent: every byte written to the addressee), ``received``
    (the addressee's receipt), ``failed`` (uploads); ``pending`` (on its
    way, with notices), ``offered``, ``declined``, ``withdrawn`` (failed
    before it started), ``receiving``, ``saved``, ``discarded``
    (downloads); ``progress`` (both).
    """

    kind: str
    transfer: Transfer
    frame: frames.Control | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Disconnected:
    """The connection is gone; ``clean`` after our ``exit``."""

    clean: bool
    reason: str


@dataclass(frozen=True)
class Reconnecting:
    """
    The connection went (or an attempt to restore it failed, ``why``); the
    next attempt is to ``server`` in ``delay`` seconds.  ``text`` says so.
    """

    why: str
    server: str
    delay: float
    text: str


@dataclass(frozen=True)
class Reconnected:
    """Connected and logged in again; ``text`` says where, as whom, in which room."""

    server: str
    username: str
    room: str | None
    text: str


@dataclass(frozen=True)
class GaveUp:
    """
    No more attempts: ``why``; ``login_refused`` when the server no longer
    accepts the name or its password.
    """

    why: str
    login_refused: bool = False


ClientEvent = ServerEvent | TransferEvent | Disconnected | Reconnecting | Reconnected | GaveUp
