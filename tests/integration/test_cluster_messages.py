"""
Sequenced room messages on a real redis-server: exactly once and in order
at every following node, gaps filled from the stream, losses reported.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import pytest_twisted
from support.redis import RedisServer
from twisted.internet import reactor

from chatnet.cluster.keys import Fenced, parse_url
from chatnet.cluster.messages import RoomMessages
from chatnet.cluster.redis import Unavailable
from chatnet.cluster.sequence import Lost, Reset
from chatnet.cluster.state import Node
from integration.cluster_helpers import Cluster, eventually


class Follower:
    """A node's RoomMessages and what it delivered and reported."""

    def __init__(self, cluster: Cluster, node: Node) -> None:
        self.got: list[tuple[str, int, str]] = []
        self.reports: list[tuple[str, Lost | Reset]] = []
        self.messages = RoomMessages(
            node, parse_url(cluster.server.url), reactor,
            lambda room, offset, data: self.got.append((room, offset, data)),
            lambda room, event: self.reports.append((room, event)),
            sync_interval=60.0,
        )
        self.messages.start()

    def texts(self, room: str = "lobby") -> list[str]:
        return [data for r, _, data in self.got if r == room]

    async def follow(self, room: str) -> None:
        self.messages.follow(room)
        channel = self.messages.keys.channel(room)
        seq = self.messages.rooms[room.lower()]

        async def ready() -> bool:
            return channel in self.messages.subscriber.live and seq.started

        await eventually(ready, f"{room} to be followed")

    async def has(self, count: int, room: str = "lobby") -> None:
        async def enough() -> bool:
            return len(self.texts(room)) >= count

        await eventually(enough, f"{count} messages in {room}; got {self.texts(room)}")


@pytest_twisted.async_yield_fixture
async def cluster(redis_server: RedisServer) -> AsyncIterator[Cluster]:
    c = Cluster(redis_server)
    yield c
    await c.close()


@pytest_twisted.async_yield_fixture
async def three(cluster: Cluster) -> AsyncIterator[tuple[Node, Follower, Follower]]:
    """A publishing node and two following nodes, each with its own connections."""
    nodes = [cluster.node(n, lease=5.0) for n in ("a", "b", "c")]
    for node in nodes:
        await node.register()
    b, c = Follower(cluster, nodes[1]), Follower(cluster, nodes[2])
    yield nodes[0], b, c
    await b.messages.stop()
    await c.messages.stop()


@pytest_twisted.ensureDeferred
async def test_exactly_once_in_order_at_two_nodes(three: tuple[Node, Follower, Follower]) -> None:
    a, b, c = three
    sender = RoomMessages(a, parse_url(_url(b)), reactor, lambda *_: None, lambda *_: None)
    await b.follow("Lobby")
    await c.follow("lobby")
    sent = [f"m{i}" for i in range(50)]
    offsets = [await sender.publish("LOBBY", text) for text in sent]
    assert offsets == list(range(1, 51))
    await b.has(50)
    await c.has(50)
    for follower in (b, c):
        assert follower.texts() == sent
        assert [o for _, o, _ in follower.got] == offsets
        assert follower.reports == []


def _url(follower: Follower) -> str:
    address = follower.messages.subscriber._address
    return f"redis://{address.host}:{address.port}/{address.db}"


@pytest_twisted.ensureDeferred
async def test_a_dropped_pubsub_message_is_filled_from_the_stream(
        three: tuple[Node, Follower, Follower]) -> None:
    """
    b stops hearing the room (unsubscribed behind its back) while 5
    messages go by; the next one reveals the gap by its offset, and the 5
    come from the stream: b and c still get everything once, in order.
    """
    a, b, c = three
    sender = RoomMessages(a, parse_url(_url(b)), reactor, lambda *_: None, lambda *_: None)
    await b.follow("lobby")
    await c.follow("lobby")
    await sender.publish("lobby", "before")
    await b.has(1)
    protocol = b.messages.subscriber._protocol
    assert protocol is not None
    channel = b.messages.keys.channel("lobby")
    await protocol.unsubscribe(channel)
    missed = [f"missed{i}" for i in range(5)]
    for text in missed:
        await sender.publish("lobby", text)
    await protocol.subscribe(channel)  # quietly: nothing tells b it missed anything
    await sender.publish("lobby", "after")
    everything = ["before", *missed, "after"]
    await b.has(7)
    await c.has(7)
    assert b.texts() == c.texts() == everything
    assert [o for _, o, _ in b.got] == list(range(1, 8))
    assert b.reports == []


@pytest_twisted.ensureDeferred
async def test_a_gap_the_stream_cannot_fill_is_reported(
        three: tuple[Node, Follower, Follower], cluster: Cluster) -> None:
    a, b, _ = three
    sender = RoomMessages(a, parse_url(_url(b)), reactor, lambda *_: None, lambda *_: None)
    await b.follow("lobby")
    await sender.publish("lobby", "one")
    await b.has(1)
    protocol = b.messages.subscriber._protocol
    assert protocol is not None
    channel = b.messages.keys.channel("lobby")
    await protocol.unsubscribe(channel)
    for i in range(3):
        await sender.publish("lobby", f"gone{i}")
    await cluster.connection().command("XTRIM", cluster.keys.stream("lobby"), "MAXLEN", "0")
    await protocol.subscribe(channel)
    await sender.publish("lobby", "five")
    await b.has(2)
    assert b.texts() == ["one", "five"]
    assert b.reports == [("lobby", Lost(2, 4))]


@pytest_twisted.ensureDeferred
async def test_after_a_reconnection_the_room_is_resubscribed_and_caught_up(
        three: tuple[Node, Follower, Follower]) -> None:
    """
    b's subscriber link breaks; messages published meanwhile are missed by
    pub/sub.  On reconnection it subscribes again, reads the head and fills
    from the stream, with no later message needed to reveal the gap.
    """
    a, b, _ = three
    sender = RoomMessages(a, parse_url(_url(b)), reactor, lambda *_: None, lambda *_: None)
    await b.follow("lobby")
    await sender.publish("lobby", "one")
    await b.has(1)
    protocol = b.messages.subscriber._protocol
    assert protocol is not None
    channel = b.messages.keys.channel("lobby")
    protocol.transport.abortConnection()

    async def dropped() -> bool:
        return b.messages.subscriber._protocol is not protocol

    await eventually(dropped, "the link to drop")
    await sender.publish("lobby", "two")
    await sender.publish("lobby", "three")
    assert channel not in b.messages.subscriber.live  # pub/sub could not carry them
    await b.has(3)
    assert b.texts() == ["one", "two", "three"]
    assert b.messages.subscriber._protocol is not protocol
    assert b.reports == []


@pytest_twisted.ensureDeferred
async def test_reading_the_head_finds_a_lost_tail(three: tuple[Node, Follower, Follower]) -> None:
    """The last messages missed, and none after: the periodic head read fills them."""
    a, b, _ = three
    sender = RoomMessages(a, parse_url(_url(b)), reactor, lambda *_: None, lambda *_: None)
    await b.follow("lobby")
    protocol = b.messages.subscriber._protocol
    assert protocol is not None
    channel = b.messages.keys.channel("lobby")
    await protocol.unsubscribe(channel)
    await sender.publish("lobby", "one")
    await sender.publish("lobby", "two")
    await protocol.subscribe(channel)
    assert b.texts() == []
    await b.messages.sync()
    await b.has(2)
    assert b.texts() == ["one", "two"] and b.reports == []


@pytest_twisted.ensureDeferred
async def test_redis_restarted_empty_starts_a_new_epoch(
        three: tuple[Node, Follower, Follower], cluster: Cluster) -> None:
    """
    Redis is killed and comes back empty: the follower's link comes back by
    itself, the publisher is fenced and registers anew, and the new epoch
    is reported before its first message is delivered.
    """
    a, b, _ = three
    sender = RoomMessages(a, parse_url(_url(b)), reactor, lambda *_: None, lambda *_: None)
    await b.follow("lobby")
    await sender.publish("lobby", "old")
    await b.has(1)
    cluster.server.restart()  # kill -9, then empty on the same port
    channel = b.messages.keys.channel("lobby")

    async def back() -> bool:
        return channel in b.messages.subscriber.live

    await eventually(back, "the follower to subscribe again", timeout=8.0)

    async def fenced() -> bool:
        try:
            await sender.publish("lobby", "lost")
        except Unavailable:  # the command link has not noticed the restart yet
            return False
        except Fenced:
            return True
        raise AssertionError("published with an incarnation Redis no longer knows")

    await eventually(fenced, "the publisher to be told it is fenced", timeout=8.0)
    await a.register()
    assert await sender.publish("lobby", "new") == 1
    await b.has(2)
    assert b.texts() == ["old", "new"]
    assert [type(event) for _, event in b.reports] == [Reset]


@pytest_twisted.ensureDeferred
async def test_a_frozen_redis_is_noticed_by_the_ping(
        three: tuple[Node, Follower, Follower], cluster: Cluster) -> None:
    """
    Redis stops answering without closing anything (SIGSTOP): the
    subscriber's PING times out and drops the dead link; when Redis answers
    again the link is made anew and re-subscribed.
    """
    _, b, _ = three
    await b.follow("lobby")
    protocol = b.messages.subscriber._protocol
    process = cluster.server.process
    assert process is not None
    b.messages.subscriber._ping()  # a beat now, rather than in 2 s
    process.proc.send_signal(signal.SIGSTOP)
    try:
        b.messages.subscriber._ping()

        async def dropped() -> bool:
            return b.messages.subscriber._protocol is not protocol

        await eventually(dropped, "the PING to time out and drop the link", timeout=5.0)
    finally:
        process.proc.send_signal(signal.SIGCONT)
    channel = b.messages.keys.channel("lobby")

    async def back() -> bool:
        return channel in b.messages.subscriber.live

    await eventually(back, "the link to come back", timeout=8.0)
