"""
:class:`ClusterShared`: the :class:`~chatnet.interfaces.Shared` state of a
cluster node.  The users connected to this node, and their rooms as far as
this node's members go, stay in the local :class:`~chatnet.model.Directory`
(for fan-out); names, rooms, capacity and the order of each room's events
are the cluster's, in Redis (:mod:`.scripts`).

* A request that changes the cluster state runs one script and waits for
  its answer (the session keeps replies in order meanwhile); the local
  directory follows once Redis has said yes.
* Room messages and presence events go through the room's sequence
  (:class:`.messages.RoomMessages`), also to this node's own members, so
  every receiver on every node sees one order.
* Whispers and other frames for a user on another node go through that
  node's inbox (:mod:`.routing`).
* Redis unreachable: ``unavailable`` with ``retry_after``; nothing half
  done (each change is one script).  The node keeps its lease with a beat;
  fenced (its lease ran out), it registers anew and, unless it was paused
  past its lease, holds its users again (:meth:`_recover`).
* Every node reaps dead nodes (:meth:`_reap`); the scripts tell the rooms
  (``disconnect``) and every node (``~all``), which writes ``CLUSTER``
  audit lines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from chatnet import frames
from chatnet.cluster import scripts, timing
from chatnet.cluster.keys import (
    Address,
    ClusterError,
    Fenced,
    Keys,
    NameTaken,
    NodeIdInUse,
)
from chatnet.cluster.messages import RoomMessages
from chatnet.cluster.redis import RETRY_AFTER, Redis, Unavailable, as_unavailable
from chatnet.cluster.routing import EVERYONE, RemoteUser, Router, framed, inbox
from chatnet.cluster.sequence import Lost, Reset
from chatnet.cluster.state import Node
from chatnet.config import ClusterSettings, Settings
from chatnet.errors import ChatError, ErrorCode
from chatnet.interfaces import AuditFn, Transfers
from chatnet.model import Directory, Joined, Left, Room, RoomsPage, User, UsersPage
from chatnet.validation import check_text, fold, show

if TYPE_CHECKING:
    from chatnet.cluster.remote_files import RemoteFiles
    from chatnet.cluster.slots import ClusterSlots
    from chatnet.cluster.startup import Registered
    from chatnet.transfers import TransferManager
    from chatnet.upload_slots import UploadSlots

log = Logger()

T = TypeVar("T")

#: Entries of a room kept while a local user's join is being answered.
RECENT = 1024



class ClusterShared:
    """
    One node's view of the cluster, as sessions ask it.

    :param close_users: ``close_users(keys, reason)`` closes the
        connections of the local users whose folded names are ``keys``
        (``None``: every connection).
    """

    local = False

    def __init__(
        self,
        directory: Directory,
        settings: Settings,
        cluster: ClusterSettings,
        address: Address,
        reactor: Any,
        audit: AuditFn,
        close_users: Callable[[set[str] | None, str], None],
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.cluster = cluster
        self.capacity = settings.room_capacity
        self._reactor = reactor
        self._audit = audit
        self._close_users = close_users
        self.redis = Redis(address, reactor, timeout=timing.reply_timeout(cluster.lease),
                           ca=cluster.ca)
        self.node = Node(self.redis, cluster.node_id, reactor, lease=cluster.lease,
                         keyspace=Keys(cluster.prefix), on_fenced=self._fenced)
        self.node.on_renewal = self._renewal
        self.messages = RoomMessages(self.node, address, reactor, self._deliver, self._report,
                                     ca=cluster.ca)
        self._address = address
        #: The cluster's upload slots (``--upload-slots-scope cluster``), and
        #: the file transport between nodes, once started.
        self.slots: ClusterSlots | None = None
        self.files: RemoteFiles | None = None
        self.router = Router(self.node, self.directory.users.get)
        #: Users of other nodes this node sends files to, by folded name.
        self.remote: dict[str, RemoteUser] = {}
        #: ``user_gone(user)`` for a remote user that went (the transfers').
        self.user_gone: Callable[[User], None] | None = None
        self._reaper = LoopingCall(self._reap_now)
        self._reaper.clock = reactor
        self._stopping = False
        self._recovering = False
        #: Whether Redis answered the last renewal; when it came back.
        self._reachable = True
        self._lost_at: float | None = None
        self._back_at = 0.0
        #: Per room: joins of local users waiting for Redis's answer; the
        #: entries delivered meanwhile (for a member whose join this node
        #: delivered past before the answer came); and the members that
        #: joined ahead of what this node delivered (folded name -> offset of
        #: their join: earlier entries are not theirs).
        self._joining: dict[str, int] = {}
        self._recent: dict[str, deque[tuple[int, str]]] = {}
        self._starts: dict[str, dict[str, int]] = {}
        #: Until when requests get ``unavailable`` after Redis lost its
        #: state: the other nodes are still holding their users again.
        self._settling_until = 0.0
        #: Releases Redis did not answer, retried on each beat: name -> event.
        self._unreleased: dict[str, tuple[str, str]] = {}

    # life

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @property
    def up(self) -> bool:
        """Registered, and Redis answered the last renewal."""
        return (self.node.incarnation is not None and self._reachable and not self._recovering
                and self._reactor.seconds() >= self._settling_until)

    @property
    def why(self) -> str:
        """Why the node is not :attr:`up` (``""`` when it is)."""
        if self._recovering or self.node.incarnation is None:
            return "not registered in the cluster (registering again)"
        if not self._reachable:
            return "Redis does not answer"
        if self._reactor.seconds() < self._settling_until:
            return "the cluster is being rebuilt after Redis lost its state"
        return ""

    def upload_slots(self, settings: Settings) -> UploadSlots:
        """
        The upload slots of this node's transfer manager: the cluster's
        (``--upload-slots-scope cluster``) or its own, numbered uniquely in
        the cluster either way.
        """
        from chatnet.cluster.slots import ClusterSlots, IdBlocks
        from chatnet.upload_slots import LocalSlots

        if self.cluster.slots == "cluster":
            self.slots = ClusterSlots(self.node, settings, self._reactor, self._address,
                                      ca=self.cluster.ca)
            return self.slots
        return LocalSlots(settings, IdBlocks(self.redis, self.node.keys))

    def start(
        self, registered: Registered | None = None, manager: TransferManager | None = None
    ) -> Deferred[Transfers[Any]]:
        """
        Join the cluster: register (unless already registered, see
        :mod:`.startup`), follow this node's inbox and
        the cluster events, start the beat, the reaper and the slots, and
        serve ``manager``'s files to the other nodes: the node's transfers
        (``manager`` wrapped so that files go to and come from other nodes).

        :raises NodeIdInUse: a live node has this id.
        :raises Unavailable: Redis did not answer.
        """
        return Deferred.fromCoroutine(self._start(registered, manager))

    async def _start(
        self, registered: Registered | None, manager: TransferManager | None
    ) -> Transfers[Any]:
        if registered is None:
            await self.node.register()
            starts = [await self._position(room) for room in (inbox(self.node_id), EVERYONE)]
        else:
            self.node.adopt(registered.incarnation)
            starts = [registered.inbox, registered.everyone]
        # This node's inbox and the cluster events are followed from where
        # they stood when it registered, before any user of this node could
        # be named by another node: nothing sent to its users is missed
        # while the subscriptions are being made.
        self.messages.start()
        self.messages.follow(inbox(self.node_id), starts[0])
        self.messages.follow(EVERYONE, starts[1])
        if self.slots is not None:
            self.slots.start()
        transfers: Transfers[Any] | None = manager
        if manager is not None:
            from chatnet.cluster.remote_files import ClusterTransfers, serve

            self.files = await serve(self.router, manager, self.directory.users.get,
                                     self.cluster.files, self.cluster.advertise, self._reactor,
                                     orphan_timeout=self.cluster.lease + 5.0)
            transfers = ClusterTransfers(manager, self.files)
        self._back_at = self._reactor.seconds()
        self._reaper.start(timing.renew_interval(self.cluster.lease), now=False)
        self._audit("CLUSTER", f"node {self.node_id} (this node) joined the cluster as "
                    f"incarnation {self.node.incarnation}, lease {self.cluster.lease:g}s",
                    {"node": self.node_id, "event": "joined",
                     "incarnation": self.node.incarnation})
        assert transfers is not None or manager is None
        return transfers  # type: ignore[return-value]

    async def _position(self, room: str, attempts: int = 10) -> tuple[str, int]:
        """Where ``room``'s sequence stands (asked again while Redis does not answer)."""
        for attempt in range(1, attempts + 1):
            try:
                reply = await self.redis.run(scripts.POSITION, self.node.keys.prefix, fold(room))
                return str(reply[0]), int(reply[1])
            except ClusterError:
                if attempt == attempts:
                    raise
                await deferLater(self._reactor, timing.backoff(attempt), lambda: None)
        raise AssertionError("unreachable")

    def stop(self) -> Deferred[None]:
        """A clean stop: every user of this node leaves the cluster at once."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._stopping = True
        if self._reaper.running:
            self._reaper.stop()
        try:
            vanished = await self.node.deregister()
        except (Unavailable, Fenced) as e:
            why = str(e) or type(e).__name__
            log.warn("cluster: could not leave the cluster cleanly ({why}); the others "
                     "will reap this node when its lease runs out", why=why)
            self._audit("CLUSTER", f"node {self.node_id} could not leave the cluster cleanly "
                        f"({why}): the others take its users out when its lease runs out",
                        {"node": self.node_id, "event": "left-uncleanly"})
        else:
            self._audit("CLUSTER", f"node {self.node_id} left the cluster: "
                        f"{_count(len(vanished), 'user')} taken out",
                        {"node": self.node_id, "event": "left", "users": len(vanished)})
        try:
            if self.slots is not None:
                await self.slots.stop()
            if self.files is not None:
                await self.files.stop()
            await self.messages.stop()
        finally:
            await self.redis.disconnect()

    # the Shared interface

    def _ask(self, work: Coroutine[Any, Any, T], settled: bool = True) -> Deferred[T]:
        """
        Run ``work``; Redis unreachable (or this node fenced) is
        ``unavailable``.  ``settled``: also while the cluster is being
        rebuilt after Redis lost its state (:meth:`_recover`), so that no
        request sees a cluster where some nodes have not held their users
        again yet.
        """
        if settled and not self._reachable:
            # Known lost (the beat found it): answered at once, not after a
            # command timeout each; the next beat that reaches it ends this.
            work.close()
            return fail(ChatError(
                ErrorCode.UNAVAILABLE,
                "The cluster state cannot be reached just now; nothing was done: try again",
                RETRY_AFTER,
            ))
        if settled and (self._recovering or self._reactor.seconds() < self._settling_until):
            work.close()
            return fail(ChatError(
                ErrorCode.UNAVAILABLE,
                "The cluster is being rebuilt after Redis lost its state; try again",
                max(round(self._settling_until - self._reactor.seconds(), 2), RETRY_AFTER),
            ))
        d = Deferred.fromCoroutine(work)
        d.addErrback(as_unavailable)
        return d

    def enter(self, user: User) -> Deferred[None]:
        return self._ask(self._enter(user))

    async def _enter(self, user: User) -> None:
        flags = ("o" if user.offers else "") + ("n" if user.notices else "")
        if not await self.node.claim(user.name, flags):
            raise ChatError(
                ErrorCode.USERNAME_TAKEN,
                f"Username '{user.name}' is already taken; choose another",
            )
        self.directory.add_user(user)

    def exit(self, user: User, clean: bool, quiet: bool = False) -> Deferred[Left | None] | None:
        room = self.directory.remove_user(user)
        if room is not None and not room.members:
            self._unfollow(room.name)
        if self._stopping:
            return None  # the node's clean stop takes everyone out at once
        event = "" if quiet else ("leave" if clean else "disconnect")
        return self._ask(self._release(user.name, event), settled=False)

    async def _release(self, name: str, event: str) -> Left | None:
        try:
            held, room, members = await self.node.release(name, event)
        except Unavailable:
            self._unreleased[fold(name)] = (name, event)
            return None
        except Fenced:
            return None  # the reaper (or a re-registration) takes care of it
        if not held or room is None:
            return None
        return Left(room, f"{members}/{self.capacity}", members)

    def join(self, user: User, name: str) -> Deferred[Joined]:
        return self._ask(self._join(user, name))

    async def _join(self, user: User, name: str) -> Joined:
        key = fold(name)
        self._joining[key] = self._joining.get(key, 0) + 1
        try:
            return await self._joined(user, name)
        finally:
            left = self._joining[key] - 1
            if left:
                self._joining[key] = left
            else:
                del self._joining[key]
                self._recent.pop(key, None)

    async def _joined(self, user: User, name: str) -> Joined:
        capacity = self.capacity
        j = await self.node.join(user.name, name, capacity)
        if j.status == "room-full":
            raise ChatError(ErrorCode.ROOM_FULL, f"Room '{name}' is full ({capacity}/{capacity})")
        members = list(j.members)
        occupancy = f"{len(members)}/{capacity}"
        if j.status == "same":
            return Joined(j.room, members, occupancy, same=True)
        if self.directory.users.get(user.key) is user:  # still here: the local view follows
            self._enter_room(user, j.room, j.epoch, j.offset)
        if j.left is None:
            return Joined(j.room, members, occupancy)
        return Joined(j.room, members, occupancy, left=j.left,
                      left_occupancy=f"{j.left_members}/{capacity}")

    def _enter_room(self, user: User, room: str, epoch: str, offset: int) -> None:
        """
        Put ``user`` in the local ``room``, whose sequence stood at
        ``epoch``, ``offset`` just after its join: it gets exactly what
        follows, whatever this node has delivered of the room so far.
        """
        key = fold(room)
        seq = self.messages.rooms.get(key)
        self.messages.follow(room, (epoch, offset))  # (when new: from the join on)
        _, left = self.directory.join(user, room)
        if left is not None and not left.members:
            self._unfollow(left.name)
        if seq is None or seq.epoch != epoch:
            return
        if seq.last < offset:  # what this node delivers up to the join is not the joiner's
            self._starts.setdefault(key, {})[user.key] = offset
        elif seq.last > offset:  # delivered here before the joiner was: its share again
            missed = [(o, d) for o, d in self._recent.get(key, ()) if o > offset]
            if not missed or missed[0][0] != offset + 1:
                self._audit("CLUSTER", f"room {room}: {user.name} joined while this node was "
                            f"{seq.last - offset} messages ahead; some were not kept for it",
                            {"room": room, "event": "messages-lost", "user": user.name})
            for _, data in missed:
                exclude, _, frame = data.partition("\n")
                if exclude != user.key:
                    user.outbox.send(framed(frame))

    def _unfollow(self, room: str) -> None:
        key = fold(room)
        self.messages.unfollow(key)
        self._starts.pop(key, None)

    def leave(self, user: User) -> Deferred[Left]:
        if user.room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; /join one")
        return self._ask(self._leave(user))

    async def _leave(self, user: User) -> Left:
        left = await self.node.leave(user.name)
        if self.directory.users.get(user.key) is user and user.room is not None:
            room = self.directory.leave(user)
            if not room.members:
                self._unfollow(room.name)
        if left is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; /join one")
        return Left(left[0], f"{left[1]}/{self.capacity}", left[1])

    def broadcast(self, user: User, room: Room, text: str, ts: float) -> Deferred[int]:
        data = frames.message_wire(room.name, user.name, text, ts)
        payload = f"{user.key}\n{data[4:].decode()}"
        return self._ask(self._publish(room.name, payload, user.name))

    async def _publish(self, room: str, payload: str, sender: str) -> int:
        return (await self.node.publish(room, payload, sender))[2]

    def whisper(self, user: User, to: object, text: object, ts: float) -> str | Deferred[str]:
        if not isinstance(to, str):
            raise _no_such_user(to)
        target = self.directory.users.get(fold(to))
        checked = check_text(text, self.settings.max_text)
        event = frames.WhisperEvent(user.name, checked, ts).wire()
        if target is not None:  # on this node
            target.outbox.send(event)
            return target.name
        return self._ask(self._whisper(to, event[4:].decode()))

    async def _whisper(self, to: str, frame: str) -> str:
        found = await self.node.to_user(to, frame)
        if found is None:
            raise _no_such_user(to)
        return found[0]

    def locate(self, name: object) -> User | Deferred[User]:
        if not isinstance(name, str):
            raise _no_such_user(name)
        user = self.directory.users.get(fold(name))
        if user is not None:
            return user
        return self._ask(self._locate(name))

    async def _locate(self, name: str) -> User:
        found = await self.node.locate(name)
        if found is None:
            raise _no_such_user(name)
        spelling, node, flags = found
        if node == self.node_id:  # ours, but gone meanwhile
            raise _no_such_user(name)
        key = fold(spelling)
        user = self.remote.get(key)
        if user is None or user.node != node:
            user = self.remote[key] = RemoteUser(spelling, node, self.router, flags)
        return user

    def who(self, name: object) -> Deferred[tuple[str, list[str]]]:
        if not isinstance(name, str):
            raise _no_such_room(name)
        return self._ask(self._who(name))

    async def _who(self, name: str) -> tuple[str, list[str]]:
        found = await self.node.members(name)
        if found is None:
            raise _no_such_room(name)
        return found[0], list(found[1])

    def rooms_page(self, after: str | None, limit: int) -> Deferred[RoomsPage]:
        return self._ask(self._rooms(after, limit))

    async def _rooms(self, after: str | None, limit: int) -> RoomsPage:
        page = await self.node.rooms(after, limit)
        capacity = self.capacity
        return [frames.RoomInfo(r.name, list(r.members), capacity) for r in page.rooms], page.more

    def users_page(self, after: str | None, limit: int) -> Deferred[UsersPage]:
        return self._ask(self._users(after, limit))

    async def _users(self, after: str | None, limit: int) -> UsersPage:
        page = await self.node.users(after, limit)
        return list(page.names), page.more

    @property
    def users_online(self) -> int:
        return len(self.directory.users)

    @property
    def rooms_count(self) -> int:
        return len(self.directory.rooms)

    # what arrives from the cluster

    def _deliver(self, room: str, offset: int, data: str) -> None:
        """The next entry of a room (or of this node's inbox, or ``~all``)."""
        if room[:1] == "~":
            if room == EVERYONE:
                self._event(data)
            else:
                self.router.received(data)
            return
        local = self.directory.rooms.get(room)
        if local is None:
            return
        if room in self._joining:  # kept for the joiners, until their join is answered
            recent = self._recent.get(room)
            if recent is None:
                recent = self._recent[room] = deque(maxlen=RECENT)
            recent.append((offset, data))
        exclude, _, frame = data.partition("\n")
        starts = self._starts.get(room)
        if starts:  # members that joined after this entry: not theirs
            skip = {k for k, start in starts.items() if offset <= start}
            for k in [k for k in starts if k not in skip]:
                del starts[k]
            if not starts:
                del self._starts[room]
            if skip:
                skip.add(exclude)
                wire = framed(frame)
                for member in list(local.members.values()):
                    if member.key not in skip:
                        member.outbox.send(wire)
                return
        local.send(framed(frame), exclude=local.members.get(exclude))

    def _event(self, data: str) -> None:
        kind, *args = data.split("\n")
        if kind == "gone" and args:
            user = self.remote.pop(args[0], None)
            if user is not None and self.user_gone is not None:
                self.user_gone(user)
            self.router.user_gone(args[0])
        elif kind == "node-joined" and args and args[0] != self.node_id:
            self._audit("CLUSTER", f"node {args[0]} joined the cluster",
                        {"node": args[0], "event": "joined"})
        elif kind in ("node-lost", "node-left") and len(args) >= 2 and args[0] != self.node_id:
            users = int(args[1]) if args[1].isdigit() else 0
            if self.files is not None and args[0] != self.node_id:
                self.files.node_gone(args[0], clean=kind == "node-left")
            how = ("lost (its lease ran out)" if kind == "node-lost"
                   else "left the cluster")
            self._audit("CLUSTER", f"node {args[0]} {how}: {_count(users, 'user')} taken out",
                        {"node": args[0], "event": kind, "users": users})

    def _report(self, room: str, event: Lost | Reset) -> None:
        where = "this node's inbox" if room == inbox(self.node_id) else f"room {room}"
        if isinstance(event, Lost):
            n = event.last - event.first + 1
            self._audit("CLUSTER", f"{where}: {_count(n, 'message')} lost "
                        f"(offsets {event.first}-{event.last} were no longer in the stream)",
                        {"room": room, "event": "messages-lost", "first": event.first,
                         "last": event.last})
        else:
            # Offsets count from 1 again: joins waiting for an offset of the
            # old sequence are past (the members are in the room since).
            self._starts.pop(room, None)
            if room[:1] != "~":
                self._audit("CLUSTER", f"{where}: its sequence started again (Redis lost it)",
                            {"room": room, "event": "reset"})

    # the beat, Redis lost and back, fencing, reaping

    def _renewal(self, ok: bool) -> None:
        now = self._reactor.seconds()
        if not ok and self._reachable:
            self._reachable = False
            self._lost_at = now
            self._audit("CLUSTER", "Redis lost: requests that need the cluster get "
                        "unavailable until it is back", {"event": "redis-lost"})
        elif ok and not self._reachable:
            self._reachable = True
            self._back_at = now
            away = now - (self._lost_at or now)
            self._audit("CLUSTER", f"Redis back after {away:.1f}s",
                        {"event": "redis-back", "seconds": round(away, 3)})
        if ok and self._unreleased:
            pending, self._unreleased = self._unreleased, {}
            for name, event in pending.values():
                Deferred.fromCoroutine(self._release(name, event))

    def _fenced(self) -> None:
        """Our lease ran out (Redis lost it, or we were presumed dead): register anew."""
        if self._stopping or self._recovering:
            return
        self._recovering = True
        Deferred.fromCoroutine(self._recover()).addErrback(
            lambda f: log.failure("cluster: while registering again", f))

    async def _recover(self) -> None:
        paused = self.node.paused()
        attempt = 1
        while not self._stopping:
            try:
                incarnation = await self.node.register()
                break
            except NodeIdInUse:
                self._audit("CLUSTER", f"another live node has the id {self.node_id}: this "
                            "node drops its clients and tries again", {"event": "id-in-use"})
                self._close_users(None, "closed: another node took this node's id")
                await deferLater(self._reactor, self.cluster.lease, lambda: None)
            except ClusterError:  # Unavailable, Redis loading...: again, later
                await deferLater(self._reactor, timing.backoff(attempt), lambda: None)
                attempt += 1
        else:
            return
        if not self._reachable:
            self._renewal(True)  # Redis back (the audit line), then re-assert
        self._reachable = True
        self._back_at = self._reactor.seconds()
        if paused:
            users = len(self.directory.users)
            self._audit("CLUSTER", f"node {self.node_id} was presumed dead (no beat for longer "
                        f"than its lease): registered anew as incarnation {incarnation}, "
                        f"its {_count(users, 'user')} disconnected", {"event": "fenced"})
            self._recovering = False
            self._close_users(None, "closed: this node was cut off from the cluster")
            return
        kept, dropped = 0, set()
        for user in list(self.directory.users.values()):
            room = user.room
            flags = ("o" if user.offers else "") + ("n" if user.notices else "")
            try:
                joined = await self.node.reassert(user.name, flags,
                                                  room.name if room else None, self.capacity)
            except NameTaken:
                dropped.add(user.key)
                continue
            except (Unavailable, Fenced):
                dropped.add(user.key)
                continue
            if room is not None and joined is None:
                dropped.add(user.key)
                continue
            kept += 1
        self._recovering = False
        self._settling_until = self._reactor.seconds() + timing.settling(self.cluster.lease)
        self._audit("CLUSTER", f"node {self.node_id} registered again as incarnation "
                    f"{incarnation} (Redis had lost its state): {_count(kept, 'user')} held "
                    f"again, {len(dropped)} disconnected (name or room taken meanwhile)",
                    {"event": "reasserted", "users": kept, "dropped": len(dropped)})
        if dropped:
            self._close_users(dropped, "closed: the cluster lost this user's name or room")

    def _reap_now(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._reap()).addErrback(
            lambda f: log.failure("cluster: while reaping dead nodes", f))

    async def _reap(self) -> None:
        # Right after Redis comes back, every lease may have run out: give
        # the other nodes one lease to register again before reaping them.
        if (not self.up or self._stopping
                or self._reactor.seconds() - self._back_at < self.cluster.lease):
            return
        try:
            for node in await self.node.dead_nodes():
                if node != self.node_id:
                    await self.node.reap(node)
        except ClusterError as e:  # Unavailable among them: at the next beat
            log.info("cluster: reaping put off: {why}", why=e)


def _no_such_user(name: object) -> ChatError:
    return ChatError(ErrorCode.NO_SUCH_USER, f"No user {show(name)} is online; /users lists who is")


def _no_such_room(name: object) -> ChatError:
    return ChatError(ErrorCode.NO_SUCH_ROOM, f"No room {show(name)} exists; /rooms lists them")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
