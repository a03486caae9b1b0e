"""
File transfers (PROTOCOL.md section 5): transfer numbers, the server-wide
upload slots and their waiting queue, spooling, delivery, failure and cancel.

Slots are a :class:`~twisted.internet.defer.DeferredSemaphore`, the one
count of running uploads: a slot is taken with ``acquire()`` and given back
with ``release()``.  The order of the uploads waiting for one is not the
semaphore's, though.  Its waiter list is first in, first out, and the
contract wants round-robin by sender, with uploads to an addressee whose
spool is full keeping their place but passing their turn (PROTOCOL.md
section 5, "Fairness").  Re-sorting the semaphore's ``waiting`` list in
place would reach into its internals on every change and still hand a freed
slot to the head of the list, startable or not.  So the waiting uploads sit
in a :class:`~chatnet.fairqueue.FairQueue`, and ``acquire()`` is called only
for the upload it names, when a slot is free: it fires at once, and the
semaphore's own waiter list stays empty.  A queued upload that is cancelled
just leaves the :class:`FairQueue`.

The spool is bounded through a :class:`~chatnet.spool.SpoolBudget`: a
transfer counts by its declared size from the moment it gets a slot until
its spool file is removed.  A waiting upload may start only while its
addressee holds fewer than ``Settings.addressee_spool_files`` files and
``addressee_spool_bytes`` bytes (one file alone may pass the latter) and the
whole spool has room; a ``sendfile`` that does not fit the spool's total
at all is refused with ``queue-full``.  Every path that gives back a slot or
spool room calls :meth:`TransferManager._dispatch`, so a free slot is never
left idle while some waiting upload could take it.

Transfer life::

    QUEUED --slot--> STARTING --next tick--> UPLOADING --all bytes--> SPOOLED --turn--> DELIVERING --> (ended)
       \\________________\\______________________\\________________\\________________\\--> (failed)

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

Nothing here touches a socket: senders and addressees are
:class:`~chatnet.model.User` objects, whose outbox is a
:class:`~chatnet.model.FileOutbox`.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import BinaryIO

from twisted.internet.defer import DeferredSemaphore
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import frames
from chatnet.config import Settings
from chatnet.errors import ChatError, ErrorCode, FailReason
from chatnet.fairqueue import FairQueue
from chatnet.frames import DataFrame, Event
from chatnet.interfaces import AuditFn
from chatnet.model import User
from chatnet.names import free_name
from chatnet.receipts import Receipts
from chatnet.spool import Spool, SpoolBudget, SpoolFile
from chatnet.stats import Stats
from chatnet.validation import count, format_size

log = Logger()


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


class _Inbox:
    """One addressee's deliveries: how many stream, which wait their turn."""

    __slots__ = ("streaming", "waiting", "busy", "offered")

    def __init__(self) -> None:
        self.streaming = 0
        self.waiting: deque[Transfer] = deque()
        self.busy = False
        #: Names of files offered and not yet started, kept from other offers.
        self.offered: set[str] = set()


class TransferManager:
    """
    Every unfinished transfer of one server.

    :param audit: ``audit(category, text)``, see :class:`chatnet.audit.Audit`.
    :param stats: where transfers, file bytes and upload waits are counted.
    """

    def __init__(
        self, settings: Settings, spool: Spool, clock: IReactorTime,
        audit: AuditFn, stats: Stats | None = None,
    ) -> None:
        self._settings = settings
        self._stats = stats if stats is not None else Stats()
        self._spool = spool
        self._clock = clock
        self._audit = audit
        self._slots = DeferredSemaphore(settings.upload_slots)
        total = settings.spool_size
        #: What the spool holds, against its bounds.
        self.budget = SpoolBudget(
            spool.default_limit() if total is None else total,
            settings.addressee_spool_files, settings.addressee_spool_bytes,
        )
        #: Accepted uploads waiting for a slot, in turn order.
        self._queue: FairQueue[User, Transfer] = FairQueue()
        self._next_id = 1
        self._closing = False
        #: Unfinished transfers by number.
        self.active: dict[int, Transfer] = {}
        #: Addressees with deliveries streaming or waiting.
        self._inboxes: dict[User, _Inbox] = {}
        #: Ended deliveries awaiting their receipt.
        self.receipts: Receipts[Transfer] = Receipts(clock.seconds)

    # figures

    @property
    def waiting(self) -> int:
        """Accepted uploads waiting for a slot."""
        return len(self._queue)

    @property
    def running(self) -> int:
        """Upload slots in use."""
        return self._slots.limit - self._slots.tokens

    @property
    def deliveries_waiting(self) -> int:
        """Uploaded files waiting for their addressee's earlier deliveries to end."""
        return sum(len(inbox.waiting) for inbox in self._inboxes.values())

    @property
    def delivering(self) -> int:
        """Files streaming to their addressees."""
        return sum(inbox.streaming for inbox in self._inboxes.values())

    @property
    def spool_used(self) -> int:
        """Bytes the spool holds (uploads with a slot by declared size, files not delivered)."""
        return self.budget.used

    @property
    def spool_capacity(self) -> int:
        """Bytes the spool may hold in all."""
        return self.budget.total

    # requests

    def offer(self, sender: User, recipient: User, name: str, size: int) -> Transfer:
        """
        Accept an upload of ``name`` (validated by the caller): give it a
        free slot, or queue it for one.  ``upload-start`` follows on a later
        reactor turn, so the caller's ``ok`` reply always goes first.

        :raises ChatError: ``queue-full``: the spool is full, ``sender``
            has as many uploads waiting as one user may, or the queue is
            full.
        """
        budget = self.budget
        if not budget.has_room(size):
            raise ChatError(
                ErrorCode.QUEUE_FULL,
                f"The server's spool is full ({format_size(budget.used)} of "
                f"{format_size(budget.total)} in use); try again later",
            )
        starts_now = self._slots.tokens > 0 and budget.fits(recipient, size)
        if not starts_now:
            self._check_room_to_wait(sender)
        t = Transfer(self._next_id, sender, recipient, name, size, self._clock.seconds())
        self._next_id += 1
        self.active[t.id] = t
        self._audit(
            "SENDFILE",
            f"{sender.name} -> {recipient.name}: {name} ({count(size, 'byte')}), "
            f"transfer #{t.id}",
            {**_fields(t), "size": size},
        )
        if starts_now:
            self._grant(t)
        else:
            t.position = self._queue.add(sender, t)
            fields = {**_fields(t), "position": t.position, "queued": len(self._queue)}
            held = ""
            if self._slots.tokens:  # a slot is free, yet it may not start
                fields["held_back"] = why = self._why_held(t)
                held = f"; held back: {why}"
            self._notify(t, "queued", t.position)
            self._audit(
                "FILE-QUEUE",
                f"transfer #{t.id} {name} from {sender.name} queued at position "
                f"{t.position} (queue size {len(self._queue)}){held}",
                fields,
            )
        return t

    def _check_room_to_wait(self, sender: User) -> None:
        """:raises ChatError: ``queue-full``, saying which bound was reached."""
        settings = self._settings
        mine = self._queue.count(sender)
        if mine >= settings.upload_queue_per_user:
            raise ChatError(
                ErrorCode.QUEUE_FULL,
                f"You have {count(mine, 'upload')} waiting for a slot, the most one user "
                "may have; send more once one has started",
            )
        waiting = len(self._queue)
        if waiting >= settings.upload_queue:
            raise ChatError(
                ErrorCode.QUEUE_FULL,
                f"The upload queue is full ({waiting} waiting); try again later",
            )

    def receive(self, sender: User, frame: DataFrame) -> None:
        """
        Spool one data frame.

        :raises ChatError: ``bad-transfer`` (after failing the sender's own
            transfer with ``size-mismatch`` when it is one).
        """
        t = self.active.get(frame.transfer)
        if t is None or t.sender is not sender:
            raise ChatError(
                ErrorCode.BAD_TRANSFER,
                f"Transfer {frame.transfer} is not an upload of yours",
            )
        if t.state is not State.UPLOADING:
            why = (
                "has not started; wait for upload-start"
                if t.state in (State.QUEUED, State.STARTING)
                else "is complete"
            )
            self.fail(t, FailReason.SIZE_MISMATCH)
            raise ChatError(ErrorCode.BAD_TRANSFER, f"Transfer {t.id} {why}")
        spool = t.spool
        assert spool is not None
        if spool.received + len(frame.data) > t.size:
            self.fail(t, FailReason.SIZE_MISMATCH)
            raise ChatError(
                ErrorCode.BAD_TRANSFER,
                f"Transfer {t.id}: more than the {t.size} bytes declared",
            )
        try:
            spool.write(frame.data)
        except OSError as e:
            self._spool_failed(t, "cannot write its spool file", e)
            return
        self._stats.file_bytes_in += len(frame.data)
        t.last_data = self._clock.seconds()
        if spool.received == t.size:
            self._uploaded(t)

    def find_own(self, sender: User, number: object) -> Transfer:
        """:raises ChatError: ``bad-transfer`` unless ``number`` is ``sender``'s."""
        known = isinstance(number, int) and not isinstance(number, bool)
        t = self.active.get(number) if isinstance(number, int) and known else None
        if t is None or t.sender is not sender or t.sender_gone:
            raise ChatError(
                ErrorCode.BAD_TRANSFER,
                f"Transfer {number!r} is not an unfinished transfer of yours",
            )
        return t

    def find_offer(self, recipient: User, number: object) -> Transfer:
        """:raises ChatError: ``bad-transfer`` unless ``number`` is offered to ``recipient``."""
        n = _number(number)
        t = self.active.get(n) if n is not None else None
        if t is None or t.recipient is not recipient or t.state is not State.OFFERED:
            raise ChatError(
                ErrorCode.BAD_TRANSFER,
                f"Transfer {number!r} is not a file offered to you (or its offer expired)",
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
                f"Transfer {number!r} is no file delivered to you lately",
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
            {**_fields(t), "result": "received", "verified": verified},
        )
        return verified

    def user_gone(self, user: User) -> None:
        """``user`` went offline: fail what it sends or receives."""
        self._inboxes.pop(user, None)  # start no waiting delivery to it
        self.receipts.user_gone(user)
        # Waiters first, so no freed slot starts one of them.
        for t in sorted(self.active.values(), key=_not_queued):
            if t.recipient is user:
                self.fail(t, FailReason.RECIPIENT_OFFLINE, tell_recipient=False)
            elif t.sender is user:
                t.sender_gone = True
                if t.state not in _DELIVERY:  # a delivery goes on
                    self.fail(t, FailReason.SENDER_DISCONNECTED)

    def shutdown(self) -> int:
        """Fail every unfinished transfer with ``shutdown``; :returns: how many."""
        self._closing = True
        # Waiters first, so no freed slot starts one of them.
        pending = sorted(self.active.values(), key=_not_queued)
        for t in pending:
            self.fail(t, FailReason.SHUTDOWN)
        self.receipts.clear()
        return len(pending)

    def fail(self, t: Transfer, reason: FailReason, tell_recipient: bool = True) -> None:
        """End ``t`` with ``reason``: free its slot or place, remove its spool."""
        if self.active.pop(t.id, None) is None:
            return
        state = t.state
        if state is State.QUEUED:
            self._queue.remove(t.sender, t)
        elif state in (State.STARTING, State.UPLOADING):
            self._slots.release()
        elif state is State.SPOOLED:
            inbox = self._inboxes.get(t.recipient)
            if inbox is not None:
                inbox.waiting.remove(t)
        elif state is State.OFFERED:
            inbox = self._inboxes.get(t.recipient)
            if inbox is not None and t.shown_name is not None:
                inbox.offered.discard(t.shown_name)
        elif t.reader is not None:
            self._stats.file_bytes_out += t.reader.tell()
            t.recipient.outbox.cancel_file(t.id)
        self._stats.transfer(reason.value)
        self._discard(t)
        if not t.sender_gone:
            self._send(t.sender, frames.FileFailed(t.id, reason.value))
        if tell_recipient and (t.file_started or (t.told and t.recipient.notices)):
            self._send(t.recipient, frames.FileAborted(t.id, reason.value))
        self._audit(
            "FILE",
            f"transfer #{t.id} {t.name} from {t.sender.name} to {t.recipient.name} "
            f"failed ({state.value}): {reason.value}",
            {**_fields(t), "result": "failed", "state": state.value, "reason": reason.value},
        )
        if state in _DELIVERY:
            self._delivery_ended(t, state)
        self._dispatch()

    # the slot, the upload, the delivery

    def _dispatch(self) -> None:
        """Give free slots to waiting uploads, in turn."""
        queue = self._queue
        while self._slots.tokens and queue and not self._closing:
            t = queue.take(self._may_start)
            if t is None:
                return
            self._grant(t)

    def _may_start(self, t: Transfer) -> bool:
        """Whether the waiting upload ``t`` may take a free slot now."""
        return self.budget.fits(t.recipient, t.size)

    def _why_held(self, t: Transfer) -> str:
        """Why ``t`` may not start now (:meth:`_may_start` is false)."""
        budget = self.budget
        if not budget.has_room(t.size):
            return f"the spool is full ({format_size(budget.used)} of {format_size(budget.total)})"
        files, size = budget.held(t.recipient)
        return f"{files} files ({format_size(size)}) already held for {t.recipient.name}"

    def _grant(self, t: Transfer) -> None:
        """Give ``t`` a free slot, and count it against the spool bounds."""
        t.position = 0
        t.held = True
        self.budget.hold(t.recipient, t.size)
        self._slots.acquire().addCallback(self._acquired, t)  # fires now: a slot is free
        assert t.state is State.STARTING

    def _acquired(self, _: object, t: Transfer) -> None:
        t.state = State.STARTING
        # Start on the next turn: a slot is given from inside release paths,
        # and uploads that end synchronously (empty files) would otherwise
        # recurse (twisted#9304).
        self._clock.callLater(0, self._start, t)

    def _start(self, t: Transfer) -> None:
        if self.active.get(t.id) is not t:
            return  # failed while starting; its slot was released then
        try:
            t.spool = self._spool.create(t.id)
        except OSError as e:  # e.g. a file planted under its name
            self._spool_failed(t, "cannot create its spool file", e)
            return
        now = self._clock.seconds()
        t.state = State.UPLOADING
        t.started_at = now
        t.waited = round(now - t.accepted_at, 3)
        self._stats.upload_wait.observe(now - t.accepted_at)
        t.last_data = now
        if t.size:
            t.idle_call = self._clock.callLater(
                self._settings.upload_idle_timeout, self._check_idle, t
            )
        self._audit(
            "FILE-QUEUE",
            f"transfer #{t.id} {t.name} from {t.sender.name} started, waited "
            f"{t.waited:.2f}s (queue size {self.waiting})",
            {**_fields(t), "waited": t.waited, "queued": self.waiting},
        )
        self._send(t.sender, frames.UploadStart(t.id, t.waited))
        self._notify(t, "uploading")
        if t.size == 0:
            self._uploaded(t)

    def _spool_failed(self, t: Transfer, what: str, error: OSError) -> None:
        """The spool refused ``t``'s file: fail it (``cancelled``), saying why in the log."""
        self._audit(
            "FILE", f"transfer #{t.id} {t.name} from {t.sender.name}: {what}: {error}",
            {**_fields(t), "spool_error": str(error)},
        )
        log.error("spool: transfer {number}: {what}: {error}", number=t.id, what=what, error=error)
        self.fail(t, FailReason.CANCELLED)

    def _check_idle(self, t: Transfer) -> None:
        t.idle_call = None
        if self.active.get(t.id) is not t or t.state is not State.UPLOADING:
            return
        timeout = self._settings.upload_idle_timeout
        idle = self._clock.seconds() - t.last_data
        if idle < timeout:
            t.idle_call = self._clock.callLater(timeout - idle, self._check_idle, t)
            return
        received = t.spool.received if t.spool else 0
        self._audit(
            "FILE",
            f"transfer #{t.id} {t.name} from {t.sender.name}: no data for "
            f"{timeout:g}s ({received} of {count(t.size, 'byte')})",
            {**_fields(t), "idle": timeout, "received": received, "size": t.size},
        )
        self.fail(t, FailReason.SIZE_MISMATCH)

    def _uploaded(self, t: Transfer) -> None:
        self._cancel_idle(t)
        spool = t.spool
        assert spool is not None
        try:
            spool.finish()
        except OSError as e:  # the last buffered bytes did not fit
            self._spool_failed(t, "cannot write its spool file", e)
            return
        t.state = State.SPOOLED
        seconds = round(self._clock.seconds() - t.started_at, 3)
        self._send(t.sender, frames.UploadDone(t.id, t.waited, seconds))
        self._slots.release()
        self._dispatch()
        self._audit(
            "FILE",
            f"transfer #{t.id} {t.name} from {t.sender.name} uploaded "
            f"({format_size(t.size)} in {seconds:.2f}s)",
            {**_fields(t), "result": "uploaded", "size": t.size, "seconds": seconds},
        )
        inbox = self._inboxes.get(t.recipient)
        if inbox is None:
            inbox = self._inboxes[t.recipient] = _Inbox()
        inbox.waiting.append(t)
        self._next_deliveries(t.recipient, inbox)
        if t.state is State.SPOOLED and self.active.get(t.id) is t:
            self._notify(t, "waiting")

    def _next_deliveries(self, recipient: User, inbox: _Inbox) -> None:
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
        inbox = self._inboxes.get(t.recipient)
        if inbox is None:
            return
        if state is State.DELIVERING or state is State.OFFERED:
            inbox.streaming -= 1
        self._next_deliveries(t.recipient, inbox)

    def _offer(self, t: Transfer, inbox: _Inbox) -> None:
        """Ask the addressee first (``file-offer``); the file waits in the spool."""
        t.state = State.OFFERED
        recipient = t.recipient
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
            {**_fields(t), "result": "offered"},
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
            {**_fields(t), "offer_timeout": timeout},
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
        if name is None or name in recipient.received_names:
            name = free_name(t.name, recipient.received_names.__contains__)
        recipient.received_names.add(name)
        renamed = name != t.name
        if renamed:
            self._audit(
                "FILE",
                f"name conflict: {recipient.name} already received {t.name}; "
                f"transfer #{t.id} renamed to {name}",
                {**_fields(t), "renamed": name},
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
        end = frames.FileEnd(t.id, sha256).wire()
        t.recipient.outbox.send(end, lambda: self._delivered(t))

    def _stream_stopped(self, failure: Failure, t: Transfer) -> None:
        # The addressee's connection went away under the FileSender (unless
        # we stopped the stream ourselves, failing the transfer already).
        if self.active.get(t.id) is t:
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
            {**_fields(t), "result": "delivered", "size": t.size},
        )
        self._delivery_ended(t, State.DELIVERING)
        self._dispatch()  # its spool room may let a held-back upload start

    def _discard(self, t: Transfer) -> None:
        self._cancel_idle(t)
        self._close_reader(t)
        if t.spool is not None:
            t.spool.remove()
        if t.held:
            t.held = False
            self.budget.release(t.recipient, t.size)

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

    @staticmethod
    def _send(user: User, event: Event) -> None:
        user.outbox.send(event.wire())


_DELIVERY = frozenset({State.SPOOLED, State.OFFERED, State.DELIVERING})


def _number(value: object) -> int | None:
    """``value`` if it is a transfer number's type (an int, not a bool)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _not_queued(t: Transfer) -> bool:
    return t.state is not State.QUEUED


def _fields(t: Transfer) -> dict[str, object]:
    """The fields every FILE, FILE-QUEUE and SENDFILE event of ``t`` carries."""
    return {"transfer": t.id, "name": t.name, "from": t.sender.name, "to": t.recipient.name}
