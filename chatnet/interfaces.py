"""
The interfaces of the pure layer: what a session needs of the services
around it, as :class:`typing.Protocol` classes, so that the boundary is
checked, not only described.

* :class:`AuditFn`: the audit log (:mod:`chatnet.audit`).
* :class:`Later`: an answer that comes later (a Deferred is one).
* :class:`Authenticator`: password checks (:mod:`chatnet.auth`).
* :class:`SessionOutbox`: one connection's outgoing side
  (:class:`~chatnet.outbound.Outbound`).
* :class:`Transfers` and :class:`TransferTicket`: the file transfers
  (:class:`~chatnet.transfers.TransferManager`).
* :class:`SessionHandle`: what the server does with each session it keeps
  (:class:`~chatnet.session.Session`).

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from chatnet.errors import FailReason
from chatnet.frames import DataFrame
from chatnet.model import FileOutbox, User


class AuditFn(Protocol):
    """``audit(category, text)``, or with structured fields for ``--audit-format json``."""

    def __call__(
        self, category: str, text: str, fields: Mapping[str, object] | None = None, /
    ) -> None: ...

T_co = TypeVar("T_co", covariant=True)


class Later(Protocol[T_co]):
    """
    An answer that arrives later: what a service returns when it cannot
    answer at once (a :class:`~twisted.internet.defer.Deferred` is one).
    Exactly one of the two callbacks is called, once, possibly at once.
    """

    def addCallbacks(
        self, callback: Callable[[T_co], object], errback: Callable[[Any], object]
    ) -> object:
        """Call ``callback(result)`` or ``errback(failure)`` when the answer comes."""


class Authenticator(Protocol):
    """Checks passwords when the operator configured accounts (:mod:`chatnet.auth`)."""

    def check(self, username: str, password: str) -> Later[bool]:
        """``True`` when ``password`` is ``username``'s, ``False`` otherwise."""


class SessionOutbox(FileOutbox, Protocol):
    """What a session needs of its own connection, beyond sending."""

    def close(self, grace: float) -> None:
        """Send what is queued, then close."""

    def pause_reading(self) -> None:
        """Read no more frames from the peer until :meth:`resume_reading`."""

    def resume_reading(self) -> None:
        """Read frames again (those already read come first)."""


class TransferTicket(Protocol):
    """What the session reads of a transfer it offered or found."""

    @property
    def id(self) -> int: ...

    @property
    def position(self) -> int: ...


Ticket = TypeVar("Ticket", bound=TransferTicket)


class Transfers(Protocol[Ticket]):
    """
    The file transfers of the server, as the session drives them
    (:class:`~chatnet.transfers.TransferManager` implements it, with
    Deferreds and timers the session does not see).
    """

    def offer(self, sender: User, recipient: User, name: str, size: int) -> Ticket:
        """
        Accept a ``sendfile``: queue it or start it.

        :raises ChatError: the sender or the server has too many waiting.
        """
        ...

    def receive(self, sender: User, frame: DataFrame) -> None:
        """
        Spool a data frame of one of ``sender``'s uploads.

        :raises ChatError: ``bad-transfer``.
        """

    def find_own(self, sender: User, number: object) -> Ticket:
        """:raises ChatError: ``bad-transfer`` unless ``number`` is ``sender``'s."""
        ...

    def find_offer(self, recipient: User, number: object) -> Ticket:
        """:raises ChatError: ``bad-transfer`` unless ``number`` is offered to ``recipient``."""
        ...

    def accept(self, t: Ticket) -> None:
        """Deliver the offered ``t`` (``file-start`` and the data follow)."""

    def receipt(self, recipient: User, number: object, sha256: object) -> bool:
        """
        Pass the addressee's receipt on to the sender; whether the hashes match.

        :raises ChatError: ``bad-transfer``.
        """
        ...

    def fail(self, t: Ticket, reason: FailReason, tell_recipient: bool = True) -> None:
        """End ``t`` unfinished, telling who needs to know."""

    def user_gone(self, user: User) -> None:
        """``user`` went offline: fail what it sends or receives."""

    def shutdown(self) -> int:
        """Fail every unfinished transfer; how many there were."""
        ...

    # counts, for chatnet.metrics

    @property
    def running(self) -> int:
        """Uploads holding a slot."""
        ...

    @property
    def waiting(self) -> int:
        """Accepted uploads waiting for a slot."""
        ...

    @property
    def delivering(self) -> int:
        """Files streaming to their addressees."""
        ...

    @property
    def deliveries_waiting(self) -> int:
        """Uploaded files waiting for their addressee's earlier deliveries."""
        ...

    @property
    def spool_used(self) -> int:
        """Bytes the spool holds (uploads with a slot by declared size, files not delivered)."""
        ...

    @property
    def spool_capacity(self) -> int:
        """Bytes the spool may hold in all."""
        ...


class SessionHandle(Protocol):
    """What the server (the service, the metrics) does with each session the hub keeps."""

    @property
    def outbox(self) -> SessionOutbox:
        """The session's connection."""
        ...

    def shutdown(self, message: str) -> None:
        """The server is stopping: tell the connection."""

    def close(self, reason: str) -> None:
        """Close the connection once what is queued has been sent."""
