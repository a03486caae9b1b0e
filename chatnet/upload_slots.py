"""
Upload slots and the queue of uploads waiting for one (PROTOCOL.md section
5, "Fairness"), behind one interface, :class:`UploadSlots`, so that
:class:`~chatnet.transfers.TransferManager` does not know whether they are
this server's own (:class:`LocalSlots`) or shared by the nodes of a cluster
(:class:`chatnet.cluster.slots.ClusterSlots`, PROTOCOL.md section 9: "upload
slots and the upload queue are cluster-wide unless the operator sets them
per node").

The manager asks (:meth:`UploadSlots.admit`: number an upload and give it a
slot or a place), tells (:meth:`~UploadSlots.release`,
:meth:`~UploadSlots.remove`, :meth:`~UploadSlots.dispatch` when its spool
room changed) and is told (:meth:`SlotOwner.slot_granted`).  Whether a
waiting upload may start is the manager's to say
(:meth:`SlotOwner.may_start`: its addressee's spool room); the slots only
keep the order and the count.

:class:`LocalSlots` answers at once: the single server keeps its hot path
free of Deferreds.  A cluster's slots answer later (a Deferred), and the
session waits for the answer (:meth:`chatnet.session_base.SessionBase.wait`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred, DeferredSemaphore, succeed

from chatnet.config import Settings
from chatnet.errors import ChatError, ErrorCode
from chatnet.fairqueue import FairQueue
from chatnet.model import User
from chatnet.transfer_state import Transfer
from chatnet.validation import count


@dataclass(frozen=True)
class Admission:
    """Where an accepted upload stands."""

    #: Whether it holds a slot now (``upload-start`` follows).
    started: bool
    #: Uploads waiting ahead of it in turn order (0 when started).
    position: int
    #: Uploads waiting in all, itself included when it waits.
    queued: int
    #: Slots free: when it waits all the same, its addressee's spool held it back.
    free: int


class SlotOwner(Protocol):
    """What the slots ask of and tell the transfer manager."""

    def may_start(self, t: Transfer) -> bool:
        """Whether the waiting ``t`` may take a free slot now (its addressee's spool room)."""
        ...

    def slot_granted(self, t: Transfer) -> None:
        """The waiting ``t`` holds a slot now: start it."""


class UploadSlots(Protocol):
    """The slots and the fair queue of waiting uploads, as the transfer manager uses them."""

    def attach(self, owner: SlotOwner) -> None:
        """Ask and tell ``owner`` from now on (called once, by the manager)."""

    @property
    def running(self) -> int:
        """Uploads holding a slot."""
        ...

    @property
    def waiting(self) -> int:
        """Accepted uploads waiting for a slot."""
        ...

    def admit(self, t: Transfer, startable: bool) -> Admission | Deferred[Admission]:
        """
        Number ``t`` (set ``t.id``) and give it a free slot if one is free
        and ``startable``, or a place in the queue.

        :raises ChatError: ``queue-full`` (the sender holds as many places
            as one may, or the queue is full); for the cluster's, the
            Deferred fails with it, or with ``unavailable``.
        """
        ...

    def dispatch(self) -> None:
        """Slots or spool room were freed: give free slots to waiting uploads that may start."""

    def release(self, t: Transfer) -> None:
        """``t`` gives back its slot (uploaded, or failed while it held one)."""

    def remove(self, t: Transfer) -> None:
        """The waiting ``t`` leaves the queue (failed or cancelled)."""


class Numbers(Protocol):
    """Where transfer numbers come from."""

    def take(self) -> int | None:
        """The next number, or ``None`` when none is at hand: :meth:`refill` first."""
        ...

    def refill(self) -> Deferred[None]:
        """
        Have numbers at hand again (a cluster's come from Redis in blocks).

        :raises ChatError: ``unavailable`` (through the Deferred).
        """
        ...


class Counter:
    """One server's own transfer numbers: 1, 2, 3 ..."""

    def __init__(self) -> None:
        self._next = 1

    def take(self) -> int:
        n = self._next
        self._next += 1
        return n

    def refill(self) -> Deferred[None]:
        return succeed(None)


def sender_queue_full(mine: int) -> ChatError:
    return ChatError(
        ErrorCode.QUEUE_FULL,
        f"You have {count(mine, 'upload')} waiting for a slot, the most one user "
        "may have; send more once one has started",
    )


def queue_full(waiting: int) -> ChatError:
    return ChatError(
        ErrorCode.QUEUE_FULL,
        f"The upload queue is full ({waiting} waiting); try again later",
    )


class LocalSlots:
    """
    One server's own slots: a :class:`~twisted.internet.defer.DeferredSemaphore`,
    the one count of running uploads, and a :class:`~chatnet.fairqueue.FairQueue`
    of the waiting ones.

    The semaphore's own waiter list is first in, first out, and the contract
    wants round-robin by sender, with uploads to an addressee whose spool is
    full keeping their place but passing their turn.  So ``acquire()`` is
    called only for the upload the queue names, when a slot is free: it
    fires at once, and the semaphore's waiter list stays empty.  A queued
    upload that is cancelled just leaves the queue.

    :param numbers: where transfer numbers come from: by default a
        :class:`Counter`; a cluster node whose slots are its own
        (``--upload-slots-scope node``) still numbers its transfers
        cluster-wide (:class:`chatnet.cluster.slots.IdBlocks`).
    """

    def __init__(self, settings: Settings, numbers: Numbers | None = None) -> None:
        self._settings = settings
        self._numbers: Numbers = numbers if numbers is not None else Counter()
        self._slots = DeferredSemaphore(settings.upload_slots)
        #: Accepted uploads waiting for a slot, in turn order.
        self._queue: FairQueue[User, Transfer] = FairQueue()
        self._owner: SlotOwner | None = None

    def attach(self, owner: SlotOwner) -> None:
        self._owner = owner

    @property
    def running(self) -> int:
        return self._slots.limit - self._slots.tokens

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def admit(self, t: Transfer, startable: bool) -> Admission | Deferred[Admission]:
        slots = self._slots
        starts = slots.tokens > 0 and startable
        if not starts:
            self._check_room_to_wait(t.sender)
        n = self._numbers.take()
        if n is None:  # numbers from the cluster, none at hand: ask again then
            return self._numbers.refill().addCallback(lambda _: self.admit(t, startable))
        t.id = n
        if starts:
            slots.acquire()  # fires now: a slot is free
            return Admission(True, 0, len(self._queue), slots.tokens)
        position = self._queue.add(t.sender, t)
        return Admission(False, position, len(self._queue), slots.tokens)

    def _check_room_to_wait(self, sender: User) -> None:
        """:raises ChatError: ``queue-full``, saying which bound was reached."""
        settings = self._settings
        mine = self._queue.count(sender)
        if mine >= settings.upload_queue_per_user:
            raise sender_queue_full(mine)
        waiting = len(self._queue)
        if waiting >= settings.upload_queue:
            raise queue_full(waiting)

    def dispatch(self) -> None:
        owner = self._owner
        assert owner is not None
        queue = self._queue
        while self._slots.tokens and queue:
            t = queue.take(owner.may_start)
            if t is None:
                return
            self._slots.acquire()  # fires now: a slot is free
            owner.slot_granted(t)

    def release(self, t: Transfer) -> None:
        self._slots.release()

    def remove(self, t: Transfer) -> None:
        self._queue.remove(t.sender, t)
