"""
Upload slots and their fair queue shared by every node of a cluster
(PROTOCOL.md section 9: "upload slots and the upload queue are
cluster-wide unless the operator sets them per node"), and transfer numbers
unique in the cluster.

:class:`ClusterSlots` is the :class:`~chatnet.upload_slots.UploadSlots` of
a node: the count of running uploads and the queue of waiting ones live in
Redis (:mod:`.slot_lua`, :mod:`.slot_scripts`), each change one script, so
that positions and waits are true across nodes.  The uploads themselves,
their spool files and the spool's bounds stay on the sender's node.

Who starts what: every script that frees or fills a slot gives the free
slots to waiting uploads in turn before it ends.  The calling node's own
grants come back in the reply; every other node hears of its own on its
channel ``P:chan:uploads:<node>`` (the transfer number).  Pub/sub may lose
a message (a reconnection), so :meth:`ClusterSlots.sync` compares, every
couple of seconds and on each (re)subscription, what Redis holds for this
node with what the node knows: a slot granted and not heard of starts, and
an upload Redis holds that the node does not know (a ``sendfile`` answered
``unavailable`` after Redis had taken it, a release that did not reach
Redis) is released.

Holding: a node tells Redis which of its waiting uploads may not start
(their addressee's spool is full: :meth:`~ClusterSlots.dispatch`, called
whenever the node's spool room changes); held uploads keep their place and
pass their turn.  A grant that finds the spool full after all (it filled
while the hold was on its way) is given back: the upload waits again,
first of its sender's.

A dead node's uploads are forgotten and their slots given to others in the
same script that reaps its users (``reap()`` of :mod:`.scripts` calls
``reap_uploads``); so are those of a clean stop (``DEREGISTER``).

Redis unreachable: a ``sendfile`` is refused with ``unavailable``
(``retry_after`` 1 s) and nothing is kept: if Redis took the upload before
the link failed, the next sync releases it.  Releases and holds that fail
are repaired by the next sync too.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet.cluster import keys, slot_scripts
from chatnet.cluster.keys import Address, ClusterError, Fenced
from chatnet.cluster.redis import Redis, Subscriber, Unavailable, as_unavailable
from chatnet.cluster.scripts import Script
from chatnet.cluster.slot_scripts import Answer
from chatnet.cluster.state import Node
from chatnet.config import Settings
from chatnet.errors import ChatError
from chatnet.transfer_state import Transfer
from chatnet.upload_slots import Admission, SlotOwner, queue_full, sender_queue_full
from chatnet.validation import fold

log = Logger()

#: Transfer numbers a node takes from the cluster's counter at once.
ID_BLOCK = 64


def unavailable(failure: Failure) -> Failure:
    """Redis unreachable or this node fenced: the client's ``unavailable``."""
    return as_unavailable(failure, "The cluster's upload slots")


class IdBlocks:
    """
    Transfer numbers unique in the cluster: blocks of ``block`` taken from
    the counter ``P:up:ids`` (``INCRBY``), the next block asked for before
    this one runs out (:class:`~chatnet.upload_slots.Numbers`).
    """

    def __init__(self, redis: Redis, keyspace: keys.Keys, block: int = ID_BLOCK) -> None:
        self._redis = redis
        self._key = keyspace.key("up", "ids")
        self._block = block
        self._ids: deque[int] = deque()
        self._waiters: list[Deferred[None]] | None = None
        #: The highest number this node was given.
        self.high = 0

    def take(self) -> int | None:
        ids = self._ids
        if not ids:
            return None
        n = ids.popleft()
        if len(ids) < self._block // 4 and self._waiters is None:
            self.refill().addErrback(
                lambda f: log.info("cluster: transfer numbers not fetched: {why}",
                                   why=f.getErrorMessage()))
        return n

    def refill(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if self._waiters is not None:
            self._waiters.append(waiter)
            return waiter
        self._waiters = [waiter]
        d = self._redis.command("INCRBY", self._key, self._block)
        d.addCallbacks(self._fetched, self._failed)
        return waiter

    def _fetched(self, end: object) -> None:
        last = keys.integer(end)
        self.high = max(self.high, last)
        self._ids.extend(range(last - self._block + 1, last + 1))
        waiters, self._waiters = self._waiters or [], None
        for w in waiters:
            w.callback(None)

    def _failed(self, failure: Failure) -> None:
        try:
            unavailable(failure)
        except ChatError as e:
            failure = Failure(e)
        waiters, self._waiters = self._waiters or [], None
        for w in waiters:
            w.errback(failure)


class ClusterSlots:
    """
    A node's :class:`~chatnet.upload_slots.UploadSlots`, shared with every
    node of the cluster through Redis.

    :param node: this node, registered before :meth:`start`.
    :param settings: ``upload_slots`` (slots in the whole cluster),
        ``upload_queue`` and ``upload_queue_per_user``.
    :param reactor: ``IReactorTime`` (and ``IReactorTCP`` with ``address``).
    :param address: where Redis is, for this node's own subscriber to its
        grants channel; ``None``: no subscriber (the owner passes what
        arrives on :attr:`channel` to :meth:`message` itself).
    :param sync_interval: seconds between two :meth:`sync`.
    """

    def __init__(
        self,
        node: Node,
        settings: Settings,
        reactor: Any,
        address: Address | None = None,
        sync_interval: float = 2.0,
        id_block: int = ID_BLOCK,
        ca: str | None = None,
    ) -> None:
        self._node = node
        self._settings = settings
        self._reactor = reactor
        self._owner: SlotOwner | None = None
        self.ids = IdBlocks(node.redis, node.keys, id_block)
        #: The channel on which this node hears of its uploads given a slot.
        self.channel = node.keys.key("chan", "uploads", node.node_id)
        self._subscriber = (
            Subscriber(address, reactor, self._message, self._ready, ca=ca)
            if address is not None else None
        )
        self._syncer = LoopingCall(self.sync)
        self._syncer.clock = reactor
        self._sync_interval = sync_interval
        #: Uploads whose ENQUEUE is on its way, by number.
        self._pending: dict[int, Transfer] = {}
        #: Pending uploads given a slot before their ENQUEUE's answer came.
        self._early: set[int] = set()
        #: This node's waiting uploads, and whether Redis was told each is held.
        self._queued: dict[int, Transfer] = {}
        self._told: dict[int, bool] = {}
        #: This node's uploads holding a slot.
        self._running: dict[int, Transfer] = {}
        #: When each upload last changed here (a tick), so that a sync
        #: answer older than the change does not undo it.
        self._tick = 0
        self._touched: dict[int, int] = {}
        #: While a sync is on its way: who waits for the one that follows it
        #: (:meth:`sync`), and whether one must follow it.
        self._syncing: list[Deferred[None]] | None = None
        self._again = False
        #: Releases to send with the next holds (:meth:`_flush`).
        self._releasing: list[int] = []
        self._flushing: IDelayedCall | None = None
        #: The cluster's figures, as of the last answer.
        self._running_total = 0
        self._queued_total = 0

    # life

    def attach(self, owner: SlotOwner) -> None:
        self._owner = owner

    def start(self) -> None:
        """Hear of this node's grants, and sync every ``sync_interval`` (the first at once)."""
        if self._subscriber is not None:
            self._subscriber.subscribe([self.channel])
            self._subscriber.start()
        self._syncer.start(self._sync_interval, now=True)

    def stop(self) -> Deferred[None]:
        if self._syncer.running:
            self._syncer.stop()
        if self._flushing is not None and self._flushing.active():
            self._flushing.cancel()  # a clean stop (DEREGISTER) frees them all
        self._flushing = None
        if self._subscriber is not None:
            return self._subscriber.stop()
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d

    # figures

    @property
    def running(self) -> int:
        """Uploads holding a slot in the cluster, as of the last answer from Redis."""
        return self._running_total

    @property
    def waiting(self) -> int:
        """Uploads waiting for a slot in the cluster, as of the last answer from Redis."""
        return self._queued_total

    @property
    def mine(self) -> tuple[int, int]:
        """This node's uploads holding a slot, and waiting."""
        return len(self._running), len(self._queued)

    # the manager's requests

    def admit(self, t: Transfer, startable: bool) -> Deferred[Admission]:
        d = Deferred.fromCoroutine(self._admit(t, startable))
        d.addErrback(unavailable)
        return d

    async def _admit(self, t: Transfer, startable: bool) -> Admission:
        n = self.ids.take()
        while n is None:
            await self.ids.refill()
            n = self.ids.take()
        t.id = n
        settings = self._settings
        self._pending[n] = t
        try:
            reply = await self._node.act(
                slot_scripts.ENQUEUE, settings.upload_slots, settings.upload_queue,
                settings.upload_queue_per_user, n, fold(t.sender.name), fold(t.recipient.name),
                "0" if startable else "1",
            )
        finally:
            del self._pending[n]
        a = self._figures(reply)
        early = n in self._early
        self._early.discard(n)
        if a.status == "started":
            self._running[n] = t
            admission = Admission(True, 0, a.queued, a.number(0))
        elif a.status == "queued":
            self._queued[n] = t
            self._told[n] = not startable
            admission = Admission(False, a.number(1), a.queued, a.number(0))
            if early:  # after the manager has it
                self._reactor.callLater(0, self._granted, n)
        elif a.status == "user-full":
            self._grants(a.grants)
            raise sender_queue_full(a.number(0))
        elif a.status == "queue-full":
            self._grants(a.grants)
            raise queue_full(a.queued)
        else:
            raise ClusterError(f"unexpected upload-enqueue answer {reply!r}")
        self._grants(a.grants)
        if not admission.started:
            self.dispatch()  # its spool room may have changed meanwhile
        return admission

    def dispatch(self) -> None:
        """Tell Redis which of this node's waiting uploads may start now, and which not."""
        owner = self._owner
        assert owner is not None
        changes: list[int | str] = []
        told = self._told
        for n, t in self._queued.items():
            held = not owner.may_start(t)
            if told.get(n) is not held:
                told[n] = held
                changes += [n, "1" if held else "0"]
        self._flush(changes)

    def release(self, t: Transfer) -> None:
        self._forget(t.id)

    def remove(self, t: Transfer) -> None:
        self._forget(t.id)

    def _forget(self, n: int) -> None:
        self._queued.pop(n, None)
        self._told.pop(n, None)
        self._running.pop(n, None)
        self._early.discard(n)
        self._touch(n)
        # Sent with the holds of the dispatch that follows (or at the end
        # of this reactor turn), so that the spool room freed with the slot
        # counts in the same step: one server would give the slot to an
        # upload that room lets start.
        self._releasing.append(n)
        if self._flushing is None:
            self._flushing = self._reactor.callLater(0, self._flush)

    def _flush(self, holds: list[int | str] | None = None) -> None:
        """Send the releases not yet sent, with ``holds`` (id, "1"/"0" pairs)."""
        if self._flushing is not None and self._flushing.active():
            self._flushing.cancel()
        self._flushing = None
        releasing, self._releasing = self._releasing, []
        if releasing or holds:
            self._send(slot_scripts.RELEASE, len(releasing), *releasing, *(holds or ()))

    def position(self, t: Transfer) -> Deferred[int | None]:
        """``t``'s place in the cluster's turn order now (0: it holds a slot; None: unknown)."""
        async def ask() -> int | None:
            reply = await self._node.redis.run(slot_scripts.POSITION, self._node.keys.prefix, t.id)
            head, rest = keys.status(reply)
            if head == "queued":
                return keys.integer(rest[0])
            return 0 if head == "running" else None
        return Deferred.fromCoroutine(ask())

    # what Redis says

    def _message(self, channel: str, data: str) -> None:
        self.message(data)

    def message(self, data: str) -> None:
        """A message on :attr:`channel`: the upload numbered ``data`` holds a slot now."""
        try:
            n = int(data)
        except ValueError:
            log.warn("cluster: a message on the upload slots channel that is no number: {data!r}",
                     data=data)
            return
        self._granted(n)

    def _ready(self, channel: str) -> None:
        self.sync()  # what was missed while unsubscribed

    def _grants(self, grants: tuple[int, ...]) -> None:
        for n in grants:
            self._granted(n)

    def _granted(self, n: int) -> None:
        """Redis gave the upload ``n`` of this node a slot."""
        t = self._queued.pop(n, None)
        if t is None:
            if n in self._pending:
                self._early.add(n)
            elif n not in self._running:  # nobody here waits for it (any more)
                self._touch(n)
                self._send(slot_scripts.RELEASE, 1, n)
            return
        self._told.pop(n, None)
        owner = self._owner
        assert owner is not None
        if not owner.may_start(t):  # its addressee's spool filled meanwhile
            self._queued[n] = t
            self._told[n] = True
            self._touch(n)
            self._send(slot_scripts.GIVE_BACK, n)
            return
        self._running[n] = t
        owner.slot_granted(t)

    def _figures(self, reply: object) -> Answer:
        a = slot_scripts.answer(reply)
        self._running_total = a.running
        self._queued_total = a.queued
        return a

    def _reassert(self, lost: list[int]) -> None:
        """Redis does not hold these uploads of this node (it lost them): hold them again."""
        log.info("cluster: {count} uploads of this node held again in the cluster's slots",
                 count=len(lost))
        owner = self._owner
        assert owner is not None
        args: list[int | str] = [self._settings.upload_slots]
        for n in lost:
            t = self._queued.get(n) or self._running.get(n)
            if t is None:
                continue
            running = n in self._running
            held = not running and not owner.may_start(t)
            if not running:
                self._told[n] = held
            args += [n, fold(t.sender.name), fold(t.recipient.name),
                     "running" if running else "queued", "1" if held else "0"]
        self._send(slot_scripts.REASSERT, *args)

    def _touch(self, n: int) -> None:
        self._tick += 1
        self._touched[n] = self._tick

    def _send(self, script: Script, *args: int | str) -> None:
        d = Deferred.fromCoroutine(self._node.act(script, *args))
        d.addCallback(lambda reply: self._grants(self._figures(reply).grants))
        d.addErrback(self._failed, script.name)

    def _failed(self, failure: Failure, what: str) -> None:
        if failure.check(Unavailable, Fenced):
            log.info("cluster: {what} not done: {why}; the next sync repairs it",
                     what=what, why=failure.getErrorMessage())
            self._told.clear()  # tell every hold again
        else:
            log.failure("cluster: {what}", failure, what=what)

    # repair

    def sync(self) -> Deferred[None]:
        """
        Compare what Redis holds for this node with what it knows, and
        repair.  Asked while a sync is on its way, another follows that one
        (which may have been asked before what the caller knows, e.g. a
        registration again), and the answer fires when it is done.
        """
        if self._syncing is not None:
            self._again = True
            waiter: Deferred[None] = Deferred()
            self._syncing.append(waiter)
            return waiter
        self._syncing = []
        d = Deferred.fromCoroutine(self._syncs())
        d.addErrback(lambda f: log.failure("cluster: while syncing the upload slots", f))
        d.addBoth(self._synced)
        return d

    async def _syncs(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            await self._sync()

    def _synced(self, _: object) -> None:
        waiters, self._syncing = self._syncing or [], None
        for w in waiters:
            w.callback(None)

    async def _sync(self) -> None:
        incarnation = self._node.incarnation
        if incarnation is None:
            return
        mark = self._tick
        try:
            reply = await self._node.act(slot_scripts.SYNC, self._settings.upload_slots,
                                         self.ids.high)
        except (Unavailable, Fenced) as e:
            log.info("cluster: upload slots not synced: {why}", why=e)
            if self._node.incarnation not in (None, incarnation):
                self._again = True  # asked as an older incarnation: again as this one
            return
        a = self._figures(reply)
        self._grants(a.grants)
        held = slot_scripts.states(a.rest)
        stray = []
        for n, state in held.items():
            if self._touched.get(n, 0) > mark:
                continue  # changed here since: Redis's answer is older
            if n in self._queued:
                if state == "running":
                    self._granted(n)  # its grant was not heard
            elif n not in self._running and n not in self._pending:
                stray.append(n)
        lost = sorted(n for n in (*self._running, *self._queued)
                      if n not in held and self._touched.get(n, 0) <= mark)
        self._touched = {n: tick for n, tick in self._touched.items() if tick > mark}
        if stray:
            self._send(slot_scripts.RELEASE, len(stray), *stray)
        if lost:
            self._reassert(lost)
        if not self._told and self._queued:
            self.dispatch()
