"""
Room messages between nodes, sequenced the way Centrifuge does it: one
script gives each message its room's next offset, keeps it in a capped
stream and publishes it (:data:`.scripts.PUBLISH`); each receiving node
follows the rooms its users are in, in order, exactly once, filling gaps
from the stream (the decisions are :class:`.sequence.RoomSequence`'s).

Thin: Redis I/O and scheduling only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatnet.cluster import keys, scripts, sequence, timing
from chatnet.cluster.keys import Address, ClusterError
from chatnet.cluster.redis import Redis, Subscriber
from chatnet.cluster.sequence import Action, Deliver, Fill, Lost, Reset, RoomSequence
from chatnet.cluster.state import Node
from chatnet.validation import fold

log = Logger()

#: Messages kept per room for filling gaps (``XADD MAXLEN ~``).
STREAM_LENGTH = 1000

#: ``deliver(room, offset, data)``: a message for the room's local members.
Deliverer = Callable[[str, int, str], None]
#: ``report(room, event)``: a gap that could not be filled, or a new epoch.
Reporter = Callable[[str, Lost | Reset], None]


class RoomMessages:
    """
    Publishing to rooms and following them, for one node.

    :param reactor: provides ``IReactorTCP`` and ``IReactorTime``.
    :param sync_interval: how often the head of each followed room is read
        again, which finds messages lost at the end (no later message
        reveals them).
    """

    def __init__(
        self,
        node: Node,
        address: Address,
        reactor: Any,
        deliver: Deliverer,
        report: Reporter,
        stream_length: int = STREAM_LENGTH,
        sync_interval: float = 5.0,
        ca: str | None = None,
    ) -> None:
        self.node = node
        self.redis: Redis = node.redis
        self.keys = node.keys
        self.stream_length = stream_length
        self.rooms: dict[str, RoomSequence] = {}
        self._deliver = deliver
        self._report = report
        self._reactor = reactor
        self.subscriber = Subscriber(address, reactor, self._message, self._ready,
                                     timeout=self.redis.timeout, ca=ca)
        self._sync = LoopingCall(self.sync)
        self._sync.clock = reactor
        self._sync_interval = sync_interval

    def start(self) -> None:
        self.subscriber.start()
        self._sync.start(self._sync_interval, now=False)

    def stop(self) -> Deferred[None]:
        if self._sync.running:
            self._sync.stop()
        return self.subscriber.stop()

    async def publish(self, room: str, data: str) -> int:
        """
        Give ``data`` the room's next offset, keep it in the stream and send
        it to every node following the room: its offset.

        :raises Fenced: this node's incarnation is no longer live.
        :raises Unavailable: Redis did not answer (it was published or not).
        """
        return (await self.node.publish(room, data))[1]

    def follow(self, room: str, start: tuple[str, int] | None = None) -> None:
        """
        Receive the room's messages from now on: after ``start`` (an epoch
        and offset, e.g. where a join left the room's sequence), or from its
        head once subscribed.
        """
        folded = fold(room)
        if folded not in self.rooms:
            seq = self.rooms[folded] = RoomSequence()
            if start is not None:  # ("", 0): the room's first epoch, from its start
                self._apply(folded, seq, seq.head(*start))
            self.subscriber.subscribe([self.keys.channel(folded)])

    def unfollow(self, room: str) -> None:
        folded = fold(room)
        if self.rooms.pop(folded, None) is not None:
            self.subscriber.unsubscribe([self.keys.channel(folded)])

    def sync(self) -> Deferred[None]:
        """Read the head of every followed room that is subscribed (finds lost tails)."""
        live = [r for r in self.rooms if self.keys.channel(r) in self.subscriber.live]
        return Deferred.fromCoroutine(self._heads(live))

    async def _heads(self, rooms: list[str]) -> None:
        for room in rooms:
            await self._head(room)

    async def _head(self, room: str) -> None:
        try:
            reply = await self.redis.run(scripts.POSITION, self.keys.prefix, room)
        except ClusterError as e:  # (Unavailable among them) read again at the next sync
            log.info("cluster: head of room {room} not read: {why}", room=room, why=e)
            return
        seq = self.rooms.get(room)
        if seq is not None:
            items = reply if isinstance(reply, list) else []
            epoch = str(items[0]) if items else ""
            self._apply(room, seq, seq.head(epoch, keys.integer(items[1]) if items else 0))

    def _ready(self, channel: str) -> None:
        room = self.keys.room_of_channel(channel)
        if room is not None and room in self.rooms:
            Deferred.fromCoroutine(self._head(room))

    def _message(self, channel: str, message: str) -> None:
        room = self.keys.room_of_channel(channel)
        seq = self.rooms.get(room) if room is not None else None
        parsed = sequence.parse(message)
        if room is None or seq is None or parsed is None:
            return
        self._apply(room, seq, seq.message(*parsed))

    def _apply(self, room: str, seq: RoomSequence, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Deliver):
                self._deliver(room, action.offset, action.data)
            elif isinstance(action, Fill):
                Deferred.fromCoroutine(self._fill(room, seq, action, 1))
            else:
                self._report(room, action)

    async def _fill(self, room: str, seq: RoomSequence, fill: Fill, attempt: int) -> None:
        try:
            reply = await self.redis.command("XRANGE", self.keys.stream(room),
                                             f"{fill.first}-0", f"{fill.last}-0")
        except ClusterError:  # (Unavailable among them) try again later
            if self.rooms.get(room) is seq and seq.filling == fill:
                self._reactor.callLater(timing.backoff(attempt), self._refill, room, seq, fill,
                                        attempt + 1)
            return
        if self.rooms.get(room) is seq:
            self._apply(room, seq, seq.filled(fill, sequence.stream_entries(reply)))

    def _refill(self, room: str, seq: RoomSequence, fill: Fill, attempt: int) -> None:
        Deferred.fromCoroutine(self._fill(room, seq, fill, attempt))
