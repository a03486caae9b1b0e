"""
The delivery side of the file transfers: each addressee's inbox, offers,
streaming spooled files to their addressees, and receipts.
:class:`~chatnet.transfers.TransferManager` (the upload side: slots, their
queue, spooling) builds on :class:`Deliveries`.

An addressee that logged in with ``offers`` is asked first: at its turn a
SPOOLED transfer becomes OFFERED (``file-offer``; it counts as one of the
addressee's deliveries and keeps its spool file), and ``accept`` makes it
DELIVERING; ``decline`` or ``Settings.offer_timeout`` fails it with
``declined``.

Receipts: an ended delivery is remembered by a
:class:`~chatnet.receipts.Receipts` (boundedly) so that the addressee's
``received`` can still be matched and passed on as ``file-received``.

An addressee has at most ``Settings.deliveries_per_user`` files streaming to
it at once (each holds its spool file open); the rest wait, uploaded, in
arrival order.  A client that stops reading therefore holds a few open files,
however many are sent to it.

In a cluster, an addressee may be connected to another node
(:class:`~chatnet.cluster.routing.RemoteUser`): the file streams there
through :mod:`chatnet.cluster.remote_files`, which :attr:`Deliveries.watch`
lets see what each addressee is told, and whose failures come back as
:class:`StreamFailed`.

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import frames
from chatnet.config import Settings
from chatnet.errors import ChatError, ErrorCode, FailReason
from chatnet.frames import Event
from chatnet.interfaces import AuditFn
from chatnet.model import User
from chatnet.names import free_name
from chatnet.receipts import Receipts
from chatnet.stats import Stats
from chatnet.transfer_state import State, Transfer, audit_fields
from chatnet.validation import show

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

log = Logger()


class StreamFailed(Exception):
    """
    A file stream failed while its addressee may still be connected (the
    link between two nodes): the transfer fails with ``reason``, and the
    addressee is told (``file-aborted``), its other deliveries going on.
    """

    def __init__(self, reason: FailReason, why: str) -> None:
        super().__init__(why)
        self.reason = reason


class DeliveryWatch(Protocol):
    """What sees the deliveries go by (files to users on other nodes)."""

    def telling(self, user: User, event: Event) -> bool:
        """
        ``event`` is about to be sent to ``user``: True when the watch
        delivered it itself (it is then not sent).
        """
        ...

    def names_elsewhere(self, user: User) -> bool:
        """
        Whether ``user``'s file names are kept elsewhere (its own node, for
        a user of another node): ``file-offer`` and ``file-start`` then go
        with the sender's name, and the collision renaming is done there.
        """
        ...

    def ended(self, t: Transfer, delivered: bool) -> None:
        """``t``'s delivery is over: delivered (its receipt may follow), or failed."""


class Inbox:
    """One addressee's deliveries: how many stream, which wait their turn."""

    __slots__ = ("streaming", "waiting", "busy", "offered")

    def __init__(self) -> None:
        self.streaming = 0
        self.waiting: deque[Transfer] = deque()
        self.busy = False
        #: Names of files offered and not yet started, kept from other offers.
        self.offered: set[str] = set()


class Deliveries:
    """
    The deliveries of one server's transfers, and the state both sides share.

    :param audit: ``audit(category, text)``, see :class:`chatnet.audit.Audit`.
    :param stats: where transfers, file bytes and upload waits are counted.
    """

    def __init__(
        self, settings: Settings, clock: IReactorTime, audit: AuditFn, stats: Stats | None = None,
    ) -> None:
        self._settings = settings
        self._stats = stats if stats is not None else Stats()
        self._clock = clock
        self._audit = audit
        self._closing = False
        #: Unfinished transfers by number.
        self.active: dict[int, Transfer] = {}
        #: Addressees with deliveries streaming or waiting.
        self._inboxes: dict[User, Inbox] = {}
        #: Ended deliveries awaiting their receipt.
        self.receipts: Receipts[Transfer] = Receipts(clock.seconds)
        #: Sees what addressees are told and when deliveries end (cluster mode).
        self.watch: DeliveryWatch | None = None

    # figures

    @property
    def deliveries_waiting(self) -> int:
        """Uploaded files waiting for their addressee's earlier deliveries to end."""
        return sum(len(inbox.waiting) for inbox in self._inboxes.values())

    @property
    def delivering(self) -> int:
        """Files streaming to their addressees."""
        return sum(inbox.streaming for inbox in self._inboxes.values())

    # requests

    def find_offer(self, recipient: User, number: object) -> Transfer:
        """:raises ChatError: ``bad-transfer`` unless ``number`` is offered to ``recipient``."""
        n = _number(number)
        t = self.active.get(n) if n is not None else None
        if t is None or t.recipient is not recipient or t.state is not State.OFFERED:
            raise ChatError(
                ErrorCode.BAD_TRANSFER,
                f"{transfer_named(number)} is not a file offered to you (or its offer expired)",
            )
        return t

    def accept(self, t: Transfer) -> None:
        """The addressee accepted the offered ``t``: deliver it now."""
        if self.active.get(t.id) is not t or t.state is not State.OFFERED:
            return
        self._cancel_idle(t)
        inbox = self._inboxes.get(t.recipient)
        if inbox is not None and t.shown_name is not None:
            inbox.offered.discard(t.shown_name)
        self._deliver(t)

    def receipt(self, recipient: User, number: object, sha256: object) -> bool:
        """
        The addressee's ``received``: tell the sender (``file-received``).

        :returns: whether ``sha256`` matches the file's hash.
        :raises ChatError: ``bad-transfer``: ``number`` is no delivery to
            ``recipient`` that ended lately (:mod:`chatnet.receipts`).
        """
        n = _number(number)
        t = self.receipts.get(n) if n is not None else None
        if t is None or t.recipient is not recipient:
            running = self.active.get(n) if n is not None else None
            if running is not None and running.recipient is recipient:
                raise ChatError(
                    ErrorCode.BAD_TRANSFER,
                    f"Transfer {number} has not ended; confirm it after file-end",
                )
            raise ChatError(
                ErrorCode.BAD_TRANSFER,
                f"{transfer_named(number)} is no file delivered to you lately",
            )
        self.receipts.forget(t)
        verified = isinstance(sha256, str) and sha256.lower() == t.sha256
        if not t.sender_gone:
            self._send(t.sender, frames.FileReceived(t.id, recipient.name, verified))
        how = "sha256 verified" if verified else "sha256 MISMATCH"
        self._audit(
            "FILE",
            f"transfer #{t.id} {t.name} from {t.sender.name} received by "
            f"{recipient.name} ({how})",
            {**audit_fields(t), "result": "received", "verified": verified},
        )
        return verified

    # the delivery

    def _next_deliveries(self, recipient: User, inbox: Inbox) -> None:
        """Start waiting deliveries to ``recipient`` while it has room for them."""
        if inbox.busy:
            return  # a loop below this call is already at it
        inbox.busy = True
        try:
            limit = self._settings.deliveries_per_user
            while inbox.waiting and inbox.streaming < limit and not self._closing:
                t = inbox.waiting.popleft()
                inbox.streaming += 1
                if t.recipient.offers:
                    self._offer(t, inbox)
                else:
                    self._deliver(t)
        finally:
            inbox.busy = False
        if not inbox.streaming and not inbox.waiting and self._inboxes.get(recipient) is inbox:
            del self._inboxes[recipient]

    def _delivery_ended(self, t: Transfer, state: State) -> None:
        if self.watch is not None:
            self.watch.ended(t, self.receipts.get(t.id) is t)
        inbox = self._inboxes.get(t.recipient)
        if inbox is None:
            return
        if state is State.DELIVERING or state is State.OFFERED:
            inbox.streaming -= 1
        self._next_deliveries(t.recipient, inbox)

    def _offer(self, t: Transfer, inbox: Inbox) -> None:
        """Ask the addressee first (``file-offer``); the file waits in the spool."""
        t.state = State.OFFERED
        recipient = t.recipient
        if self._names_elsewhere(recipient):
            name = t.name
        else:
            taken = recipient.received_names
            offered = inbox.offered
            name = free_name(t.name, lambda n: n in taken or n in offered)
            offered.add(name)
        t.shown_name = name
        t.told = True
        original = t.name if name != t.name else None
        self._send(recipient, frames.FileOffer(t.id, t.sender.name, name, t.size, original))
        timeout = self._settings.offer_timeout
        t.idle_call = self._clock.callLater(timeout, self._offer_expired, t)
        self._audit(
            "FILE",
            f"transfer #{t.id} {t.name} from {t.sender.name} offered to {recipient.name}",
            {**audit_fields(t), "result": "offered"},
        )

    def _offer_expired(self, t: Transfer) -> None:
        t.idle_call = None
        if self.active.get(t.id) is not t or t.state is not State.OFFERED:
            return
        timeout = self._settings.offer_timeout
        self._audit(
            "FILE",
            f"transfer #{t.id} {t.name}: {t.recipient.name} did not answer the offer "
            f"within {timeout:g}s",
            {**audit_fields(t), "offer_timeout": timeout},
        )
        self.fail(t, FailReason.DECLINED)

    def _notify(self, t: Transfer, state: str, position: int | None = None) -> None:
        """Tell an addressee that asked for notices of a file on its way (``file-pending``)."""
        recipient = t.recipient
        if recipient.notices:
            t.told = True
            self._send(recipient, frames.FilePending(
                t.id, t.sender.name, t.name, t.size, state, position,
            ))

    def _deliver(self, t: Transfer) -> None:
        t.state = State.DELIVERING
        spool = t.spool
        assert spool is not None
        sha256 = t.sha256 = spool.sha256
        recipient = t.recipient
        name = t.shown_name
        if self._names_elsewhere(recipient):
            name = t.name
        elif name is None or name in recipient.received_names:
            name = free_name(t.name, recipient.received_names.__contains__)
        recipient.received_names.add(name)
        renamed = name != t.name
        if renamed:
            self._audit(
                "FILE",
                f"name conflict: {recipient.name} already received {t.name}; "
                f"transfer #{t.id} renamed to {name}",
                {**audit_fields(t), "renamed": name},
            )
        original = t.name if renamed else None
        self._send(recipient, frames.FileStart(t.id, t.sender.name, name, t.size, original))
        t.file_started = True
        t.reader = spool.open()
        d = recipient.outbox.send_file(t.id, t.reader)
        d.addCallbacks(
            self._streamed, self._stream_stopped, callbackArgs=(t, sha256), errbackArgs=(t,)
        )
        d.addErrback(lambda f: log.failure("delivering transfer {t}", f, t=t))

    def _streamed(self, _: object, t: Transfer, sha256: str) -> None:
        if self.active.get(t.id) is not t:
            return
        self._close_reader(t)
        end = frames.FileEnd(t.id, sha256)
        if self.watch is not None:  # an addressee on another node: its node hears of it first
            self.watch.telling(t.recipient, end)
        t.recipient.outbox.send(end.wire(), lambda: self._delivered(t))

    def _stream_stopped(self, failure: Failure, t: Transfer) -> None:
        # The addressee's connection went away under the FileSender (unless
        # we stopped the stream ourselves, failing the transfer already), or
        # the stream to another node failed (StreamFailed).
        if self.active.get(t.id) is not t:
            return
        stopped = failure.value
        if isinstance(stopped, StreamFailed):
            log.info("transfer {t}: {why}", t=t.id, why=stopped)
            self.fail(t, stopped.reason)
        else:
            self._inboxes.pop(t.recipient, None)  # start no waiting delivery to it
            self.fail(t, FailReason.RECIPIENT_OFFLINE, tell_recipient=False)

    def _delivered(self, t: Transfer) -> None:
        if self.active.pop(t.id, None) is None:
            return
        self._discard(t)
        if not self._closing:
            self.receipts.remember(t)
        stats = self._stats
        stats.transfer("delivered")
        stats.file_bytes_out += t.size
        if not t.sender_gone:
            self._send(t.sender, frames.FileDelivered(t.id, t.recipient.name))
        self._audit(
            "FILE",
            f"transfer #{t.id} {t.name} from {t.sender.name} delivered to "
            f"{t.recipient.name}",
            {**audit_fields(t), "result": "delivered", "size": t.size},
        )
        self._delivery_ended(t, State.DELIVERING)
        self._dispatch()  # its spool room may let a held-back upload start

    # what the upload side does (chatnet.transfers.TransferManager)

    def fail(self, t: Transfer, reason: FailReason, tell_recipient: bool = True) -> None:
        """End ``t`` with ``reason``: free its slot or place, remove its spool."""
        raise NotImplementedError

    def _dispatch(self) -> None:
        """Give free slots to waiting uploads, in turn."""
        raise NotImplementedError

    def _discard(self, t: Transfer) -> None:
        """Remove ``t``'s spool file and give back its room in the spool."""
        raise NotImplementedError

    # helpers

    @staticmethod
    def _cancel_idle(t: Transfer) -> None:
        if t.idle_call is not None:
            if t.idle_call.active():
                t.idle_call.cancel()
            t.idle_call = None

    @staticmethod
    def _close_reader(t: Transfer) -> None:
        if t.reader is not None:
            t.reader.close()
            t.reader = None

    def _send(self, user: User, event: Event) -> None:
        if self.watch is not None and self.watch.telling(user, event):
            return
        user.outbox.send(event.wire())

    def _names_elsewhere(self, user: User) -> bool:
        return self.watch is not None and self.watch.names_elsewhere(user)

    @property
    def audit(self) -> AuditFn:
        """The audit log this server writes."""
        return self._audit


def _number(value: object) -> int | None:
    """``value`` if it is a transfer number's type (an int, not a bool)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def transfer_named(value: object) -> str:
    """``Transfer 7`` (or ``'7'``, ...), for an error message; says when none was given."""
    if value is None:
        return "Transfer (no number given in 'transfer')"
    if _number(value) is not None:
        return f"Transfer {value}"
    return f"Transfer {show(value)}"
