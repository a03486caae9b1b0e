"""
File transfers (PROTOCOL.md section 5): transfer numbers, the server-wide
upload slots and their waiting queue, spooling, failure and cancel; the
delivery side is :mod:`chatnet.deliveries`.

Slots and the queue of uploads waiting for one are an
:class:`~chatnet.upload_slots.UploadSlots`: this server's own
(:class:`~chatnet.upload_slots.LocalSlots`, a ``DeferredSemaphore`` and a
:class:`~chatnet.fairqueue.FairQueue`: round-robin by sender, uploads to an
addressee whose spool is full keeping their place but passing their turn)
or a cluster's (:class:`chatnet.cluster.slots.ClusterSlots`, shared by
every node through Redis).  The local slots answer :meth:`offer` at once;
the cluster's answer later, and :meth:`offer` then returns a Deferred, for
which the session waits.  An upload whose answer is still coming is
*pending*: if its sender or addressee goes meanwhile, it is withdrawn when
the answer comes, and the ``sendfile`` is refused.

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

Delivery, offers and receipts are :mod:`chatnet.deliveries`; the
:class:`~chatnet.transfer_state.Transfer` record and its states are
:mod:`chatnet.transfer_state`.

Nothing here touches a socket: senders and addressees are
:class:`~chatnet.model.User` objects, whose outbox is a
:class:`~chatnet.model.FileOutbox`.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import frames
from chatnet.config import Settings
from chatnet.deliveries import Deliveries, Inbox, transfer_named
from chatnet.errors import ChatError, ErrorCode, FailReason
from chatnet.frames import DataFrame
from chatnet.interfaces import AuditFn
from chatnet.model import User
from chatnet.spool import Spool, SpoolBudget
from chatnet.stats import Stats
from chatnet.transfer_state import State, Transfer, audit_fields
from chatnet.upload_slots import Admission, LocalSlots, UploadSlots
from chatnet.validation import count, format_size

log = Logger()


class TransferManager(Deliveries):
    """
    Every unfinished transfer of one server.

    :param audit: ``audit(category, text)``, see :class:`chatnet.audit.Audit`.
    :param stats: where transfers, file bytes and upload waits are counted.
    :param slots: the upload slots and their queue; by default this
        server's own (:class:`~chatnet.upload_slots.LocalSlots`).
    """

    def __init__(
        self, settings: Settings, spool: Spool, clock: IReactorTime,
        audit: AuditFn, stats: Stats | None = None, slots: UploadSlots | None = None,
    ) -> None:
        super().__init__(settings, clock, audit, stats)
        self._spool = spool
        self._slots: UploadSlots = slots if slots is not None else LocalSlots(settings)
        self._slots.attach(self)
        total = settings.spool_size
        #: What the spool holds, against its bounds.
        self.budget = SpoolBudget(
            spool.default_limit() if total is None else total,
            settings.addressee_spool_files, settings.addressee_spool_bytes,
        )
        #: Uploads whose admission is still coming (cluster slots), with
        #: the reason to withdraw each when it comes (``None``: none).
        self._pending: dict[Transfer, FailReason | None] = {}

    # figures

    @property
    def waiting(self) -> int:
        """Accepted uploads waiting for a slot."""
        return self._slots.waiting

    @property
    def running(self) -> int:
        """Upload slots in use."""
        return self._slots.running

    @property
    def spool_used(self) -> int:
        """Bytes the spool holds (uploads with a slot by declared size, files not delivered)."""
        return self.budget.used

    @property
    def spool_capacity(self) -> int:
        """Bytes the spool may hold in all."""
        return self.budget.total

    # requests

    def offer(
        self, sender: User, recipient: User, name: str, size: int,
    ) -> Transfer | Deferred[Transfer]:
        """
        Accept an upload of ``name`` (validated by the caller): give it a
        free slot, or queue it for one.  ``upload-start`` follows on a later
        reactor turn, so the caller's ``ok`` reply always goes first.

        :returns: the transfer, or with a cluster's slots a Deferred of it
            (failing with the :class:`ChatError` below, or ``unavailable``).
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
        t = Transfer(0, sender, recipient, name, size, self._clock.seconds())
        answer = self._slots.admit(t, budget.fits(recipient, size))
        if isinstance(answer, Admission):
            return self._admitted(t, answer)
        self._pending[t] = None
        return answer.addCallbacks(
            self._answered, self._not_admitted, callbackArgs=(t,), errbackArgs=(t,),
        )

    def _answered(self, admission: Admission, t: Transfer) -> Transfer:
        reason = self._pending.pop(t, None)
        if reason is None and not self._closing:
            return self._admitted(t, admission)
        # Its sender or addressee went while the answer was coming.
        if admission.started:
            self._slots.release(t)
        else:
            self._slots.remove(t)
        self._dispatch()
        if reason is FailReason.RECIPIENT_OFFLINE:
            raise ChatError(ErrorCode.NO_SUCH_USER, f"{t.recipient.name} went offline")
        raise ChatError(ErrorCode.UNAVAILABLE, "The server is stopping", 1.0)

    def _not_admitted(self, failure: Failure, t: Transfer) -> Failure:
        self._pending.pop(t, None)
        return failure

    def _admitted(self, t: Transfer, admission: Admission) -> Transfer:
        """``t`` has its number and a slot or a place: it is unfinished now."""
        sender, name = t.sender, t.name
        self.active[t.id] = t
        self._audit(
            "SENDFILE",
            f"{sender.name} -> {t.recipient.name}: {name} ({count(t.size, 'byte')}), "
            f"transfer #{t.id}",
            {**audit_fields(t), "size": t.size},
        )
        if admission.started:
            self._grant(t)
            return t
        t.position = admission.position
        queued = admission.queued
        fields = {**audit_fields(t), "position": t.position, "queued": queued}
        held = ""
        if admission.free:  # a slot is free, yet it may not start
            fields["held_back"] = why = self._why_held(t)
            held = f"; held back: {why}"
        self._notify(t, "queued", t.position)
        self._audit(
            "FILE-QUEUE",
            f"transfer #{t.id} {name} from {sender.name} queued at position "
            f"{t.position} (queue size {queued}){held}",
            fields,
        )
        return t

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
                f"{transfer_named(number)} is not an unfinished transfer of yours",
            )
        return t

    def user_gone(self, user: User) -> None:
        """``user`` went offline: fail what it sends or receives."""
        self._inboxes.pop(user, None)  # start no waiting delivery to it
        self.receipts.user_gone(user)
        pending = self._pending
        for t in pending:
            if t.recipient is user:
                pending[t] = FailReason.RECIPIENT_OFFLINE
            elif t.sender is user:
                pending[t] = FailReason.SENDER_DISCONNECTED
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
            self._slots.remove(t)
        elif state in (State.STARTING, State.UPLOADING):
            self._slots.release(t)
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
            {**audit_fields(t), "result": "failed", "state": state.value, "reason": reason.value},
        )
        if state in _DELIVERY:
            self._delivery_ended(t, state)
        self._dispatch()

    # the slot and the upload

    def _dispatch(self) -> None:
        """Give free slots to waiting uploads, in turn."""
        if not self._closing:
            self._slots.dispatch()

    def may_start(self, t: Transfer) -> bool:
        """Whether the waiting upload ``t`` may take a free slot now."""
        return self.budget.fits(t.recipient, t.size)

    def slot_granted(self, t: Transfer) -> None:
        """The waiting ``t`` holds a slot now (the slots say so)."""
        self._grant(t)

    def _why_held(self, t: Transfer) -> str:
        """Why ``t`` may not start now (:meth:`may_start` is false)."""
        budget = self.budget
        if not budget.has_room(t.size):
            return f"the spool is full ({format_size(budget.used)} of {format_size(budget.total)})"
        files, size = budget.held(t.recipient)
        return f"{files} files ({format_size(size)}) already held for {t.recipient.name}"

    def _grant(self, t: Transfer) -> None:
        """``t`` holds a slot now: count it against the spool bounds, start it."""
        t.position = 0
        t.held = True
        self.budget.hold(t.recipient, t.size)
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
            {**audit_fields(t), "waited": t.waited, "queued": self.waiting},
        )
        self._send(t.sender, frames.UploadStart(t.id, t.waited))
        self._notify(t, "uploading")
        if t.size == 0:
            self._uploaded(t)

    def _spool_failed(self, t: Transfer, what: str, error: OSError) -> None:
        """The spool refused ``t``'s file: fail it (``cancelled``), saying why in the log."""
        self._audit(
            "FILE", f"transfer #{t.id} {t.name} from {t.sender.name}: {what}: {error}",
            {**audit_fields(t), "spool_error": str(error)},
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
            {**audit_fields(t), "idle": timeout, "received": received, "size": t.size},
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
        self._slots.release(t)
        self._dispatch()
        self._audit(
            "FILE",
            f"transfer #{t.id} {t.name} from {t.sender.name} uploaded "
            f"({format_size(t.size)} in {seconds:.2f}s)",
            {**audit_fields(t), "result": "uploaded", "size": t.size, "seconds": seconds},
        )
        inbox = self._inboxes.get(t.recipient)
        if inbox is None:
            inbox = self._inboxes[t.recipient] = Inbox()
        inbox.waiting.append(t)
        self._next_deliveries(t.recipient, inbox)
        if t.state is State.SPOOLED and self.active.get(t.id) is t:
            self._notify(t, "waiting")

    def _discard(self, t: Transfer) -> None:
        self._cancel_idle(t)
        self._close_reader(t)
        if t.spool is not None:
            t.spool.remove()
        if t.held:
            t.held = False
            self.budget.release(t.recipient, t.size)


_DELIVERY = frozenset({State.SPOOLED, State.OFFERED, State.DELIVERING})


def _not_queued(t: Transfer) -> bool:
    return t.state is not State.QUEUED
