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

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatnet.cluster import keys, scripts, timing
from chatnet.cluster.keys import (
    Fenced,
    Join,
    Keys,
    NodeIdInUse,
    Page,
    RoomsPage,
    Vanished,
)
from chatnet.cluster.redis import Arg, Redis, Unavailable
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
    ) -> None:
        self.redis = redis
        self.node_id = node_id
        self.lease = lease
        self.keys = keyspace or Keys()
        self.incarnation: int | None = None
        self.on_fenced = on_fenced
        self._beat = LoopingCall(self.renew)
        self._beat.clock = reactor

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
        reply = await self.redis.run(script, *self._me(), *args)
        try:
            keys.status(reply)
        except Fenced:
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
                                     timing.lease_ms(self.lease))
        head, rest = keys.status(reply)
        if head == "in-use":
            raise NodeIdInUse(f"a live node already has the id {self.node_id!r}")
        self.incarnation = keys.integer(rest[0])
        if not self._beat.running:
            self._beat.start(timing.renew_interval(self.lease), now=False)
        return self.incarnation

    async def renew(self) -> bool:
        """
        Extend the lease (the beat calls this, whatever the traffic).  False
        when Redis did not answer; when fenced, the beat stops and
        ``on_fenced`` is called.
        """
        try:
            await self.act(scripts.RENEW, timing.lease_ms(self.lease))
        except Unavailable as e:
            log.info("cluster: lease of {node} not renewed: {why}", node=self.node_id, why=e)
            return False
        except Fenced:
            return False
        return True

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
        reply = await self.act(scripts.DEREGISTER)
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
        return keys.vanished(await self.redis.run(scripts.REAP, self._prefix, node_id))

    async def reap_dead(self) -> dict[str, tuple[Vanished, ...]]:
        """Reap every dead node (what a node's timer will do): who vanished, by node."""
        return {node: await self.reap(node) for node in await self.dead_nodes()}

    async def claim(self, name: str) -> bool:
        """Hold the username ``name`` (case-insensitive) for this node; False if taken."""
        head, _ = keys.status(await self.act(scripts.CLAIM, fold(name), name))
        return head == "ok"

    async def release(self, name: str) -> tuple[bool, str | None]:
        """Give ``name`` back: (whether this node held it, the room it was in)."""
        head, rest = keys.status(await self.act(scripts.RELEASE, fold(name)))
        return head == "ok", keys.optional(rest[0]) if rest else None

    async def join(self, name: str, room: str, capacity: int) -> Join:
        """``name`` joins ``room`` (leaving its previous room in the same step) unless full."""
        reply = await self.act(scripts.JOIN, fold(name), fold(room), room, capacity)
        if keys.status(reply)[0] == "not-owner":
            raise keys.ClusterError(f"{name!r} is not held by node {self.node_id}")
        return keys.join(reply)

    async def leave(self, name: str) -> str | None:
        """``name`` leaves its room: the room's spelling, or None if it was in none."""
        head, rest = keys.status(await self.act(scripts.LEAVE, fold(name)))
        if head == "not-owner":
            raise keys.ClusterError(f"{name!r} is not held by node {self.node_id}")
        return keys.optional(rest[0]) if head == "ok" else None

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
