"""
One node's view of the cluster state: its registration and lease, and the
names and rooms it holds for its users.  Thin: each method runs one script
of :mod:`.scripts` and reads the reply with :mod:`.keys`.

Every method that acts for the node raises :class:`~.keys.Fenced` when the
node's incarnation is no longer live (nothing was done) and
:class:`~.redis.Unavailable` when Redis could not be reached in time (in
which case the script either ran entirely or not at all; the caller may ask
again: each script is safe to repeat, or answers what the repetition means,
e.g. ``same`` for a join).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatnet.cluster import keys, scripts, timing
from chatnet.cluster.keys import (
    ClusterError,
    Fenced,
    Join,
    Keys,
    NodeIdInUse,
    Page,
    RoomsPage,
    Vanished,
)
from chatnet.cluster.redis import Arg, Redis
from chatnet.validation import fold

log = Logger()


class Node:
    """A registered chatnet node: ``node_id``, its ``incarnation`` and its lease."""

    def __init__(
        self,
        redis: Redis,
        node_id: str,
        reactor: IReactorTime,
        lease: float = timing.DEFAULT_LEASE,
        keyspace: Keys | None = None,
        on_fenced: Callable[[], None] | None = None,
        stream_length: int = 1000,
    ) -> None:
        self.redis = redis
        self.node_id = node_id
        self.lease = lease
        self.keys = keyspace or Keys()
        self.incarnation: int | None = None
        self.on_fenced = on_fenced
        #: This process's registrations (see :data:`.scripts.REGISTER`).
        self.token = secrets.token_hex(16)
        #: Entries kept in each capped stream (rooms, inboxes, ``~all``).
        self.stream_length = stream_length
        self._reactor = reactor
        self._beat = LoopingCall(self.renew)
        self._beat.clock = reactor
        #: When the lease was last renewed, and whether a renewal failed
        #: (Redis unreachable) since: a node fenced without a failed
        #: renewal and long after the last one was paused, not cut off.
        self.renewed_at = 0.0
        self.renewal_failed = False
        #: ``on_renewal(ok)`` after each renewal: False when Redis did not answer.
        self.on_renewal: Callable[[bool], None] | None = None

    def stream(self) -> tuple[int, str]:
        """The ``maxlen, fresh`` arguments of a script that may publish."""
        return self.stream_length, secrets.token_hex(8)

    @property
    def _prefix(self) -> str:
        return self.keys.prefix

    def _me(self) -> tuple[str, str, str]:
        if self.incarnation is None:
            raise Fenced(f"node {self.node_id} is not registered")
        return self._prefix, self.node_id, str(self.incarnation)

    async def act(self, script: scripts.Script, *args: Arg) -> list[object]:
        """
        Run ``script`` for this node (prefix, id and incarnation first, then
        ``args``): its reply, once its status was checked.

        :raises Fenced: the incarnation is no longer live; the beat stops and
            ``on_fenced`` is called (once).
        """
        me = self._me()
        reply = await self.redis.run(script, *me, *args)
        try:
            keys.status(reply)
        except Fenced:
            # Only for the incarnation asked with: an answer to an older one
            # arriving after the node registered again changes nothing.
            if self.incarnation is not None and str(self.incarnation) == me[2]:
                self._fenced()
            raise
        assert isinstance(reply, list)
        return reply

    async def register(self) -> int:
        """
        Register with a fresh incarnation and start renewing the lease.

        :raises NodeIdInUse: a live node has this id.
        """
        reply = await self.redis.run(scripts.REGISTER, self._prefix, self.node_id,
                                     timing.lease_ms(self.lease), *self.stream(), self.token)
        head, rest = keys.status(reply)
        if head == "in-use":
            raise NodeIdInUse(f"a live node already has the id {self.node_id!r}")
        self.incarnation = keys.integer(rest[0])
        self.renewed_at = self._reactor.seconds()
        self.renewal_failed = False
        if not self._beat.running:
            self._beat.start(timing.renew_interval(self.lease), now=False)
        return self.incarnation

    def adopt(self, incarnation: int) -> None:
        """Take on ``incarnation``, registered already (:mod:`.startup`), and start the beat."""
        self.incarnation = incarnation
        self.renewed_at = self._reactor.seconds()
        self.renewal_failed = False
        if not self._beat.running:
            self._beat.start(timing.renew_interval(self.lease), now=False)

    async def renew(self) -> bool:
        """
        Extend the lease (the beat calls this, whatever the traffic).  False
        when Redis did not answer; when fenced, the beat stops and
        ``on_fenced`` is called.
        """
        try:
            await self.act(scripts.RENEW, timing.lease_ms(self.lease))
        except Fenced:
            return False
        except ClusterError as e:  # Unavailable, or an answer we cannot read: not renewed
            log.info("cluster: lease of {node} not renewed: {why}", node=self.node_id, why=e)
            self.renewal_failed = True
            if self.on_renewal is not None:
                self.on_renewal(False)
            return False
        self.renewed_at = self._reactor.seconds()
        self.renewal_failed = False
        if self.on_renewal is not None:
            self.on_renewal(True)
        return True

    def paused(self) -> bool:
        """
        Whether this node, now fenced, was paused past its lease (rather
        than cut off from Redis, or Redis lost its state): no renewal
        failed since the last one, which is older than the lease.
        """
        return (not self.renewal_failed
                and self._reactor.seconds() - self.renewed_at > self.lease)

    def _fenced(self) -> None:
        if self.incarnation is None:
            return
        self.incarnation = None
        if self._beat.running:
            self._beat.stop()
        if self.on_fenced is not None:
            self.on_fenced()

    async def deregister(self) -> tuple[Vanished, ...]:
        """A clean stop: the lease goes and every user and room of the node with it."""
        if self._beat.running:
            self._beat.stop()
        reply = await self.act(scripts.DEREGISTER, *self.stream())
        self.incarnation = None
        return keys.vanished(keys.status(reply)[1])

    async def dead_nodes(self) -> list[str]:
        """Registered nodes whose lease ran out (not yet reaped)."""
        reply = await self.redis.run(scripts.DEAD_NODES, self._prefix)
        return list(keys.names(reply))

    async def reap(self, node_id: str) -> tuple[Vanished, ...]:
        """
        Take out the users of ``node_id`` that are not of its live
        incarnation, and their rooms when emptied: who vanished from which
        room (for presence ``disconnect``).  Safe for several nodes at once:
        each user is reaped by exactly one.
        """
        return keys.vanished(await self.redis.run(scripts.REAP, self._prefix, node_id,
                                                  *self.stream()))

    async def reap_dead(self) -> dict[str, tuple[Vanished, ...]]:
        """Reap every dead node (what a node's timer will do): who vanished, by node."""
        return {node: await self.reap(node) for node in await self.dead_nodes()}

    async def claim(self, name: str, flags: str = "") -> bool:
        """
        Hold the username ``name`` (case-insensitive) for this node; False
        if taken.  ``flags`` (``o`` offers, ``n`` notices) say how other
        nodes send it files.
        """
        head, _ = keys.status(await self.act(scripts.CLAIM, fold(name), name, flags,
                                             *self.stream()))
        return head == "ok"

    async def release(self, name: str, event: str = "") -> tuple[bool, str | None, int]:
        """
        Give ``name`` back, its room told ``event`` (``leave``,
        ``disconnect``, or ``""``: nothing): whether this node held it, the
        room it was in, and the members that room has left.
        """
        head, rest = keys.status(await self.act(scripts.RELEASE, fold(name), event,
                                                *self.stream()))
        if head != "ok":
            return False, None, 0
        return True, keys.optional(rest[0]), keys.integer(rest[1])

    async def join(self, name: str, room: str, capacity: int) -> Join:
        """``name`` joins ``room`` (leaving its previous room in the same step) unless full."""
        reply = await self.act(scripts.JOIN, fold(name), fold(room), room, capacity,
                               *self.stream())
        if keys.status(reply)[0] == "not-owner":
            raise keys.ClusterError(f"{name!r} is not held by node {self.node_id}")
        return keys.join(reply)

    async def leave(self, name: str) -> tuple[str, int] | None:
        """``name`` leaves its room: the room's spelling and members left, or None if in none."""
        head, rest = keys.status(await self.act(scripts.LEAVE, fold(name), *self.stream()))
        if head == "not-owner":
            raise keys.ClusterError(f"{name!r} is not held by node {self.node_id}")
        return (keys.names(rest[:1])[0], keys.integer(rest[1])) if head == "ok" else None

    async def to_user(self, name: str, frame: str) -> tuple[str, str] | None:
        """
        Send ``frame`` (a server frame's JSON) to the user ``name`` through
        its node's inbox: its spelling and node, or None when it is offline.
        """
        head, rest = keys.status(await self.act(scripts.TO_USER, fold(name), frame,
                                                *self.stream()))
        if head != "ok":
            return None
        spelling, node = keys.names(rest[:2])
        return spelling, node

    async def locate(self, name: str) -> tuple[str, str, str] | None:
        """The user ``name``'s spelling, node and flags, or None when it is offline."""
        head, rest = keys.status(await self.redis.run(scripts.LOCATE, self._prefix, fold(name)))
        if head != "ok":
            return None
        spelling, node, flags = keys.names(rest[:3])
        return spelling, node, flags

    async def reassert(self, name: str, flags: str, room: str | None, capacity: int) -> str | None:
        """
        Hold ``name`` again, in ``room`` when it has space (after Redis lost
        its state): the room it is in, or None.

        :raises keys.NameTaken: another node holds the name now.
        """
        head, rest = keys.status(await self.act(
            scripts.REASSERT, fold(name), name, flags, fold(room or ""), room or "", capacity,
            *self.stream()))
        if head == "taken":
            raise keys.NameTaken(name)
        return keys.optional(rest[0])

    async def publish(self, room: str, data: str, sender: str = "") -> tuple[str, int, int]:
        """
        Append ``data`` to the room's (or pseudo-room's) sequence: its
        epoch, its offset, and the members it reaches but ``sender``.
        """
        reply = await self.act(scripts.PUBLISH, fold(room), data, *self.stream(), fold(sender))
        rest = keys.status(reply)[1]
        return keys.names(rest[:1])[0], keys.integer(rest[1]), keys.integer(rest[2])

    async def members(self, room: str) -> tuple[str, tuple[str, ...]] | None:
        """A room's spelling and members, or None if there is no such room."""
        head, rest = keys.status(await self.redis.run(scripts.MEMBERS, self._prefix, fold(room)))
        if head != "ok":
            return None
        return keys.names(rest[:1])[0], keys.names(rest[1:])

    async def users(self, after: str | None, limit: int) -> Page:
        """A page of the cluster's users, after ``after`` (case-insensitively)."""
        return keys.page(await self.redis.run(scripts.USERS, self._prefix,
                                              fold(after or ""), limit))

    async def rooms(self, after: str | None, limit: int) -> RoomsPage:
        """A page of the cluster's rooms with their members."""
        return keys.rooms_page(await self.redis.run(scripts.ROOMS, self._prefix,
                                                    fold(after or ""), limit))
