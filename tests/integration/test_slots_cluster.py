"""
Upload slots and their fair queue shared by several nodes on a real
redis-server (:mod:`chatnet.cluster.slots`): never more uploads running
than slots in the whole cluster, round-robin by sender across nodes,
positions as one server would give them, held uploads passing their turn,
a dead node's slots freed by reaping, fencing, Redis away, and the sync
that repairs a lost grant or a stray upload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_twisted
from support.fakes import RecordingOutbox
from support.redis import RedisServer
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from chatnet.cluster.keys import parse_url
from chatnet.cluster.slots import ClusterSlots
from chatnet.cluster.state import Node
from chatnet.config import Settings
from chatnet.errors import ChatError, ErrorCode
from chatnet.model import User
from chatnet.transfer_state import Transfer
from chatnet.upload_slots import Admission
from integration.cluster_helpers import Cluster, eventually


class Owner:
    """A transfer manager's part: which uploads may start, and those given a slot."""

    def __init__(self, started: list[str]) -> None:
        self.started = started
        #: Addressees whose spool is full.
        self.full: set[str] = set()

    def may_start(self, t: Transfer) -> bool:
        return t.recipient.name not in self.full

    def slot_granted(self, t: Transfer) -> None:
        self.started.append(t.name)


class Side:
    """One node with its cluster slots."""

    def __init__(self, node: Node, slots: ClusterSlots, owner: Owner) -> None:
        self.node = node
        self.slots = slots
        self.owner = owner
        self.transfers: dict[str, Transfer] = {}

    async def offer(self, sender: str, name: str, to: str = "rx") -> Admission:
        t = Transfer(0, User(sender, RecordingOutbox()), User(to, RecordingOutbox()), name, 1, reactor.seconds())
        admission = await self.slots.admit(t, self.owner.may_start(t))
        self.transfers[name] = t
        if admission.started:
            self.owner.started.append(name)
        return admission

    def done(self, name: str) -> None:
        """The upload ``name`` ended (its slot or place is free)."""
        t = self.transfers.pop(name)
        if name in self.owner.started:
            self.slots.release(t)
        else:
            self.slots.remove(t)


class Slots:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        #: A connection of the test's own, to look at what Redis holds.
        self.redis = cluster.connection()
        self.sides: list[Side] = []
        #: Uploads given a slot, in order, on every node.
        self.started: list[str] = []

    async def side(self, node_id: str, lease: float = 5.0, subscribe: bool = True,
                   **limits: int) -> Side:
        node = self.cluster.node(node_id, lease=lease)
        await node.register()
        settings = Settings(**limits)  # type: ignore[arg-type]
        address = parse_url(self.cluster.server.url) if subscribe else None
        slots = ClusterSlots(node, settings, reactor, address, sync_interval=60.0)
        owner = Owner(self.started)
        slots.attach(owner)
        slots.start()
        side = Side(node, slots, owner)
        self.sides.append(side)
        if subscribe:
            assert slots._subscriber is not None
            subscriber = slots._subscriber

            async def subscribed() -> bool:
                return slots.channel in subscriber.live

            await eventually(subscribed, "the grants channel to be subscribed")
        return side

    async def running(self) -> int:
        return int(await self.redis.command("SCARD", self.cluster.keys.key("up", "running")))

    async def close(self) -> None:
        for side in self.sides:
            await side.slots.stop()
        await self.cluster.close()


@pytest_twisted.async_yield_fixture
async def slots(redis_server: RedisServer) -> AsyncIterator[Slots]:
    s = Slots(Cluster(redis_server))
    yield s
    await s.close()


async def started(s: Slots, count: int) -> list[str]:
    async def enough() -> bool:
        return len(s.started) >= count

    await eventually(enough, f"{count} uploads to have started")
    return s.started


@pytest_twisted.ensureDeferred
async def test_ten_uploads_from_three_nodes_share_five_slots(slots: Slots) -> None:
    """Never more than 5 running in the cluster; the rest start in acceptance order."""
    sides = [await slots.side(n) for n in "abc"]
    admissions = [await sides[i % 3].offer(f"user{i}", f"f{i}") for i in range(10)]
    assert [a.started for a in admissions] == [True] * 5 + [False] * 5
    assert [a.position for a in admissions] == [0] * 5 + [0, 1, 2, 3, 4]
    assert admissions[-1].queued == 5 and admissions[-1].free == 0
    assert await slots.running() == 5
    for i in range(5):
        sides[i % 3].done(f"f{i}")
        order = await started(slots, 6 + i)
        assert await slots.running() <= 5
    assert order == [f"f{i}" for i in range(10)]
    assert await slots.running() == 5
    for side in sides:
        assert side.slots.running <= 5


@pytest_twisted.ensureDeferred
async def test_free_slots_go_round_robin_by_sender_across_nodes(slots: Slots) -> None:
    """As on one server (test_transfers_fair): mallory on a, alice on b, bob on c."""
    a, b, c = [await slots.side(n, upload_slots=1) for n in "abc"]
    assert [(await a.offer("mallory", f"m{i}")).position for i in range(1, 6)] == [0, 0, 1, 2, 3]
    assert (await b.offer("alice", "a1")).position == 1  # m2 a1 m3 m4 m5
    assert (await c.offer("bob", "b1")).position == 2  # m2 a1 b1 m3 m4 m5
    assert (await b.offer("alice", "a2")).position == 4  # m2 a1 b1 m3 a2 m4 m5
    assert await c.slots.position(a.transfers["m5"]) == 6  # asked on any node
    assert await a.slots.position(a.transfers["m1"]) == 0  # running
    side_of = {"m": a, "a": b, "b": c}
    for n in range(1, 8):
        name = slots.started[-1]
        side_of[name[0]].done(name)
        await started(slots, n + 1)
        assert await slots.running() == 1
    assert slots.started == ["m1", "m2", "a1", "b1", "m3", "a2", "m4", "m5"]


@pytest_twisted.ensureDeferred
async def test_queue_limits_count_every_node(slots: Slots) -> None:
    a, b = [await slots.side(n, upload_slots=1, upload_queue=3, upload_queue_per_user=2)
            for n in "ab"]
    await a.offer("mallory", "m0")  # runs
    await a.offer("mallory", "m1")
    await b.offer("mallory", "m2")  # the same sender on another node
    with pytest.raises(ChatError) as e:
        await b.offer("MALLORY", "m3")
    assert e.value.code is ErrorCode.QUEUE_FULL
    assert e.value.message.startswith("You have 2 uploads waiting for a slot")
    await a.offer("alice", "a1")
    with pytest.raises(ChatError) as e:
        await b.offer("bob", "b1")
    assert e.value.message == "The upload queue is full (3 waiting); try again later"


@pytest_twisted.ensureDeferred
async def test_held_uploads_keep_their_place_but_pass_their_turn(slots: Slots) -> None:
    a, b = [await slots.side(n, upload_slots=1) for n in "ab"]
    await a.offer("alice", "first")
    b.owner.full.add("carol")  # carol's spool on b is full
    held = await b.offer("bob", "to-carol", to="carol")
    assert (held.started, held.position) == (False, 0)
    assert (await a.offer("dave", "to-erin", to="erin")).position == 1
    a.done("first")
    assert await started(slots, 2) == ["first", "to-erin"]
    b.owner.full.clear()
    b.slots.dispatch()  # carol's spool has room again
    a.done("to-erin")
    assert await started(slots, 3) == ["first", "to-erin", "to-carol"]


@pytest_twisted.ensureDeferred
async def test_a_slot_freed_with_spool_room_goes_where_one_server_would_give_it(
    slots: Slots,
) -> None:
    """
    carol's running upload to bob fills bob's spool, so alice's big file to
    bob waits held, her small one to erin behind it.  carol's upload ends:
    her slot and bob's spool room are freed in one step, and the big file
    starts first (acceptance order within a sender).
    """
    a, b = [await slots.side(n, upload_slots=1) for n in "ab"]
    await a.offer("carol", "hold", to="bob")
    a.owner.full.add("bob")
    await a.offer("alice", "big", to="bob")
    await a.offer("alice", "small", to="erin")
    await b.offer("dave", "other", to="erin")
    a.owner.full.clear()
    a.done("hold")  # as the manager does: the slot given back, the spool room freed,
    a.slots.dispatch()  # then the slots told
    assert await started(slots, 2) == ["hold", "big"]
    a.done("big")
    assert await started(slots, 3) == ["hold", "big", "other"]


@pytest_twisted.ensureDeferred
async def test_held_upload_with_a_free_slot_says_so(slots: Slots) -> None:
    (a,) = [await slots.side("a", upload_slots=2)]
    a.owner.full.add("carol")
    admission = await a.offer("bob", "f", to="carol")
    assert (admission.started, admission.free) == (False, 2)
    a.owner.full.clear()
    a.slots.dispatch()
    assert await started(slots, 1) == ["f"]


@pytest_twisted.ensureDeferred
async def test_a_dead_nodes_slots_and_places_are_freed_by_reaping(slots: Slots) -> None:
    dead = await slots.side("dead", lease=0.3, upload_slots=2)
    a = await slots.side("a", upload_slots=2)
    await dead.offer("x", "x1")
    await dead.offer("y", "y1")
    await dead.offer("x", "x2")  # waiting
    await a.offer("alice", "a1")
    await a.offer("bob", "b1")
    assert await slots.running() == 2
    dead.node._beat.stop()
    await dead.slots.stop()
    await eventually(a.node.dead_nodes, "the node to be dead")
    await a.node.reap("dead")
    assert await started(slots, 4) == ["x1", "y1", "a1", "b1"]
    assert await slots.running() == 2
    redis = slots.redis
    assert await redis.command("SMEMBERS", slots.cluster.keys.key("node", "dead", "uploads")) == []
    assert int(await redis.command("SCARD", slots.cluster.keys.key("up", "queued"))) == 0


@pytest_twisted.ensureDeferred
async def test_a_clean_stop_frees_the_nodes_slots_at_once(slots: Slots) -> None:
    leaving = await slots.side("leaving", upload_slots=1)
    a = await slots.side("a", upload_slots=1)
    await leaving.offer("x", "x1")
    await a.offer("alice", "a1")
    await leaving.node.deregister()
    assert await started(slots, 2) == ["x1", "a1"]


@pytest_twisted.ensureDeferred
async def test_a_fenced_node_can_do_nothing(slots: Slots) -> None:
    """A node presumed dead cannot queue, release or hold with its old incarnation."""
    old = await slots.side("old", lease=0.3, upload_slots=1)
    a = await slots.side("a", upload_slots=1)
    await old.offer("x", "x1")
    old.node._beat.stop()
    await eventually(a.node.dead_nodes, "the node to be dead")
    with pytest.raises(ChatError) as e:
        await old.offer("y", "y1")
    assert e.value.code is ErrorCode.UNAVAILABLE and e.value.retry_after == 1.0
    redis = slots.redis
    assert int(await redis.command("SCARD", slots.cluster.keys.key("up", "queued"))) == 0
    assert await slots.running() == 1  # x1's slot, until the node is reaped


@pytest_twisted.ensureDeferred
async def test_redis_away_is_unavailable(slots: Slots, redis_server: RedisServer) -> None:
    a = await slots.side("a", upload_slots=1)
    redis_server.kill9()
    with pytest.raises(ChatError) as e:
        await a.offer("alice", "f")
    assert e.value.code is ErrorCode.UNAVAILABLE and e.value.retry_after == 1.0


@pytest_twisted.ensureDeferred
async def test_sync_starts_a_grant_not_heard_and_releases_a_stray_upload(slots: Slots) -> None:
    deaf = await slots.side("deaf", subscribe=False, upload_slots=1)
    a = await slots.side("a", upload_slots=1)
    await a.offer("alice", "a1")
    await deaf.offer("bob", "b1")
    a.done("a1")  # b1 gets the slot; deaf does not hear of it
    redis = slots.redis

    async def granted_in_redis() -> bool:
        t = deaf.transfers["b1"]
        state = await redis.command("HGET", slots.cluster.keys.key("up", "t", str(t.id)), "state")
        return bool(state == "running")

    await eventually(granted_in_redis, "b1 to hold the slot")
    assert slots.started == ["a1"]
    await deaf.slots.sync()
    assert slots.started == ["a1", "b1"]
    # an upload Redis holds that the node does not know: released by the sync
    t = deaf.transfers.pop("b1")
    deaf.slots._running.pop(t.id)
    await deaf.slots.sync()
    await eventually(lambda: _nothing_running(slots), "the stray to go")


async def _nothing_running(slots: Slots) -> bool:
    return await slots.running() == 0


@pytest_twisted.ensureDeferred
async def test_uploads_held_again_after_redis_lost_them(
    slots: Slots, redis_server: RedisServer,
) -> None:
    """
    Redis restarted empty, the node registered again (keeping its users):
    the next sync holds its uploads again, running and waiting, and no
    transfer number is given twice.
    """
    a = await slots.side("a", upload_slots=1)
    await a.offer("alice", "a1")
    await a.offer("bob", "b1")
    high = a.slots.ids.high
    redis_server.restart()

    async def registered() -> bool:
        try:
            await a.node.register()
        except Exception:
            return False
        return True

    await eventually(registered, "the node to register again")
    await a.slots.sync()  # holds them again (its answer comes after the sync's)

    async def one_running() -> bool:
        return await slots.running() == 1

    await eventually(one_running, "a1 to hold its slot again")
    assert int(await slots.redis.command("GET", slots.cluster.keys.key("up", "ids"))) >= high
    await eventually(lambda: _queued(slots, 1), "b1 to wait again")
    a.done("a1")
    assert await started(slots, 2) == ["a1", "b1"]


@pytest_twisted.ensureDeferred
async def test_a_sync_asked_as_the_old_incarnation_is_followed_by_one_as_the_new(
    slots: Slots, redis_server: RedisServer,
) -> None:
    """
    Redis restarted empty: a sync asked just after the node registered again
    but before its answer came goes as the old incarnation and is fenced;
    the sync asked meanwhile is not dropped, and the node's uploads are held
    again by a sync as the new incarnation.
    """
    a = await slots.side("a", subscribe=False, upload_slots=1)
    await a.offer("alice", "a1")
    await a.offer("bob", "b1")
    a.node._beat.stop()  # no renewal fences the old incarnation meanwhile
    old = a.node.incarnation
    redis_server.restart()

    async def connected() -> bool:
        try:
            return bool(await a.node.redis.command("PING"))
        except Exception:
            return False

    await eventually(connected, "the node's link to Redis to be back")
    registering = Deferred.fromCoroutine(a.node.register())
    first = a.slots.sync()  # reaches Redis after the registration, as the old incarnation
    assert await registering != old
    await a.slots.sync()  # asked while that one is on its way
    assert first.called

    async def one_running() -> bool:
        return await slots.running() == 1

    await eventually(one_running, "a1 to hold its slot again")
    await eventually(lambda: _queued(slots, 1), "b1 to wait again")
    a.done("a1")
    assert await started(slots, 2) == ["a1", "b1"]


async def _queued(slots: Slots, count: int) -> bool:
    key = slots.cluster.keys.key("up", "queued")
    return int(await slots.redis.command("SCARD", key)) == count
