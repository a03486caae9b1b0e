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
* :class:`Shared`: the users and rooms every node shares
  (:class:`~chatnet.shared_state.LocalShared` on one server,
  :class:`~chatnet.cluster.shared.ClusterShared` in a cluster).

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from chatnet.errors import FailReason
from chatnet.frames import DataFrame
from chatnet.model import FileOutbox, Joined, Left, Room, RoomsPage, User, UsersPage


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


class Shared(Protocol):
    """
    The state every node shares, as a session asks it (see
    :mod:`chatnet.shared_state`): each answer is the value itself or a
    :class:`Later` of it; errors are :class:`~chatnet.errors.ChatError`.
    """

    #: Whether every answer comes at once (a single server).
    local: bool

    def enter(self, user: User) -> Later[None] | None:
        """Put ``user`` online.  ``username-taken``."""

    def exit(self, user: User, clean: bool, quiet: bool = False) -> Left | None | Later[Left | None]:
        """Take ``user`` offline, out of its room, telling the room unless ``quiet``."""

    def join(self, user: User, name: str) -> Joined | Later[Joined]:
        """``user`` joins room ``name`` (leaving its room).  ``room-full``."""

    def leave(self, user: User) -> Left | Later[Left]:
        """``user`` leaves its room.  ``not-in-room``."""

    def broadcast(self, user: User, room: Room, text: str, ts: float) -> int | Later[int]:
        """``text`` to the other members of ``room`` on every node: how many."""

    def whisper(self, user: User, to: object, text: object, ts: float) -> str | Later[str]:
        """
        ``text`` (unchecked) to the user named ``to``, wherever it is: its
        spelling.  ``no-such-user``, ``invalid-text``.
        """

    def locate(self, name: object) -> User | Later[User]:
        """The online user named ``name`` (local, or standing for one on another node)."""

    def who(self, name: object) -> tuple[str, list[str]] | Later[tuple[str, list[str]]]:
        """A room's spelling and members on every node.  ``no-such-room``."""

    def rooms_page(self, after: str | None, limit: int) -> RoomsPage | Later[RoomsPage]:
        """A page of the rooms (see PROTOCOL.md section 4)."""

    def users_page(self, after: str | None, limit: int) -> UsersPage | Later[UsersPage]:
        """A page of the online users."""

    @property
    def users_online(self) -> int:
        """Users online (on this node), for the metrics."""
        ...

    @property
    def rooms_count(self) -> int:
        """Rooms with a member (on this node), for the metrics."""
        ...
