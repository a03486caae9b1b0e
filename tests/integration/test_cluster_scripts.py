"""
The cluster state's Lua scripts on a real redis-server: unique names, rooms
with capacity counted across nodes, switching rooms in one step, pages,
and reaping a dead node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest_twisted
from support.redis import RedisServer
from twisted.internet import defer

from chatnet.cluster.keys import Join, Page, RoomEntry, Vanished
from chatnet.cluster.state import Node
from integration.cluster_helpers import Cluster, eventually


@pytest_twisted.async_yield_fixture
async def cluster(redis_server: RedisServer) -> AsyncIterator[Cluster]:
    c = Cluster(redis_server)
    yield c
    await c.close()


async def nodes(cluster: Cluster, *ids: str) -> list[Node]:
    """Registered nodes, each on its own connection."""
    found = [cluster.node(i, lease=5.0) for i in ids]
    for node in found:
        await node.register()
    return found


@pytest_twisted.ensureDeferred
async def test_names_are_unique_case_insensitively_across_nodes(cluster: Cluster) -> None:
    a, b = await nodes(cluster, "a", "b")
    assert await a.claim("Alice")
    assert not await b.claim("alice")
    assert not await a.claim("ALICE")
    assert await b.release("alice") == (False, None, 0)  # not b's to give back
    assert await a.release("aLiCe") == (True, None, 0)
    assert await b.claim("alice")


@pytest_twisted.ensureDeferred
async def test_two_claims_of_one_name_at_once(cluster: Cluster) -> None:
    a, b, c = await nodes(cluster, "a", "b", "c")
    results = await defer.gatherResults([
        defer.Deferred.fromCoroutine(n.claim(name))
        for n, name in ((a, "Zed"), (b, "zed"), (c, "ZED"))
    ])
    assert sorted(results) == [False, False, True]


@pytest_twisted.ensureDeferred
async def test_sixteen_joins_at_once_to_a_room_of_fifteen(cluster: Cluster) -> None:
    """16 users on 3 nodes (3 connections) join one room at the same moment: exactly 15 get in."""
    three = await nodes(cluster, "a", "b", "c")
    users = [(three[i % 3], f"user{i}") for i in range(16)]
    for node, name in users:
        assert await node.claim(name)
    joins: list[Join] = await defer.gatherResults([
        defer.Deferred.fromCoroutine(node.join(name, "Lobby", 15)) for node, name in users
    ])
    assert sorted(j.status for j in joins).count("ok") == 15
    assert [j.status for j in joins].count("room-full") == 1
    room = await three[0].members("lobby")
    assert room is not None and room[0] == "Lobby" and len(room[1]) == 15


def _seen(join: Join) -> Join:
    """A join's outcome without where the room's sequence stood (checked elsewhere)."""
    return dataclasses.replace(join, epoch="", offset=0)


@pytest_twisted.ensureDeferred
async def test_join_switch_leave(cluster: Cluster) -> None:
    a, b = await nodes(cluster, "a", "b")
    for node, name in ((a, "alice"), (b, "Bob"), (b, "carol")):
        assert await node.claim(name)
    assert _seen(await a.join("alice", "Lobby", 2)) == Join("ok", "Lobby", ("alice",))
    assert _seen(await b.join("Bob", "LOBBY", 2)) == Join("ok", "Lobby", ("alice", "Bob"))
    # joining the room you are in: an ok no-op
    assert _seen(await a.join("alice", "lobby", 2)) == Join("same", "Lobby", ("alice", "Bob"))
    # full: carol stays where she was (nowhere)
    assert await b.join("carol", "lobby", 2) == Join("room-full")
    assert _seen(await b.join("carol", "Den", 2)) == Join("ok", "Den", ("carol",))
    assert await b.join("carol", "Lobby", 2) == Join("room-full")
    assert await b.members("den") == ("Den", ("carol",))
    # a switch leaves the old room in the same step
    assert _seen(await b.join("Bob", "den", 2)) == Join("ok", "Den", ("Bob", "carol"), left="Lobby",
                                                     left_members=1)
    assert await a.members("lobby") == ("Lobby", ("alice",))
    assert await a.leave("alice") == ("Lobby", 0)
    assert await a.leave("alice") is None
    assert await a.members("lobby") is None  # an empty room disappears
    # the next one to create it chooses its spelling
    assert (await a.join("alice", "LOBBY", 2)).room == "LOBBY"
    # releasing a name takes its user out of its room
    assert await b.release("carol") == (True, "Den", 1)
    assert await b.members("den") == ("Den", ("Bob",))


@pytest_twisted.ensureDeferred
async def test_pages_of_users_and_rooms(cluster: Cluster) -> None:
    """Sorted case-insensitively, after/limit/more as in PROTOCOL.md section 4."""
    a, b = await nodes(cluster, "a", "b")
    for node, name in ((a, "carol"), (b, "Alice"), (a, "bob"), (b, "Dave")):
        assert await node.claim(name)
    assert await a.users(None, 10) == Page(("Alice", "bob", "carol", "Dave"), False)
    assert await a.users(None, 2) == Page(("Alice", "bob"), True)
    assert await a.users("BOB", 2) == Page(("carol", "Dave"), False)
    assert await a.users("dave", 2) == Page((), False)
    await a.join("carol", "zoo", 15)
    await b.join("Alice", "Attic", 15)
    await a.join("bob", "attic", 15)
    page = await b.rooms(None, 1)
    assert page.more and page.rooms == (RoomEntry("Attic", ("Alice", "bob")),)
    page = await b.rooms("attic", 1)
    assert not page.more and page.rooms == (RoomEntry("zoo", ("carol",)),)


@pytest_twisted.ensureDeferred
async def test_reap_a_dead_node(cluster: Cluster) -> None:
    """
    Its users vanish with the rooms they were in (for presence
    `disconnect`), rooms left empty go, and names are free again.  Reaping
    twice (two nodes noticing at once) reaps nobody twice.
    """
    dead = cluster.node("dead", lease=0.2)
    a, b = await nodes(cluster, "a", "b")
    await dead.register()
    for name in ("x", "Y", "z"):
        assert await dead.claim(name)
    assert await a.claim("alice")
    await dead.join("x", "Lobby", 15)
    await a.join("alice", "Lobby", 15)
    await dead.join("Y", "Den", 15)
    assert await a.reap("dead") == ()  # alive: nothing to reap
    dead._beat.stop()
    await eventually(a.dead_nodes, "the node to be dead")
    first, second = await defer.gatherResults([
        defer.Deferred.fromCoroutine(a.reap("dead")),
        defer.Deferred.fromCoroutine(b.reap("dead")),
    ])
    assert sorted(first + second, key=lambda v: v.user.lower()) == [
        Vanished("x", "Lobby"), Vanished("Y", "Den"), Vanished("z", None)]
    assert await a.members("lobby") == ("Lobby", ("alice",))
    assert await a.members("den") is None
    assert await a.users(None, 10) == Page(("alice",), False)
    assert await b.claim("y")
    assert await a.dead_nodes() == []  # a dead node reaped is forgotten
    assert await a.reap_dead() == {}


@pytest_twisted.ensureDeferred
async def test_a_name_held_for_a_dead_node_is_taken_over_at_once(cluster: Cluster) -> None:
    """
    A client whose node died logs in elsewhere as soon as the node's lease
    ran out, before any reaper ran: the old user leaves its room with
    ``disconnect`` in the same step.  A live holder still keeps its name.
    """
    dead = cluster.node("dead", lease=0.3)
    (a,) = await nodes(cluster, "a")
    await dead.register()
    assert await dead.claim("alice") and await a.claim("bob")
    await dead.join("alice", "Lobby", 15)
    await a.join("bob", "Lobby", 15)
    assert not await a.claim("ALICE")  # alive: taken
    dead._beat.stop()
    await eventually(a.dead_nodes, "the node to be dead")
    assert await a.claim("Alice")
    assert await a.members("lobby") == ("Lobby", ("bob",))
    assert await a.users(None, 10) == Page(("Alice", "bob"), False)
    assert await a.reap("dead") == ()  # nobody left to reap


@pytest_twisted.ensureDeferred
async def test_reap_every_dead_node(cluster: Cluster) -> None:
    (a,) = await nodes(cluster, "a")
    gone = [cluster.node(n, lease=0.2) for n in ("x", "y")]
    for node, name in zip(gone, ("xu", "yu"), strict=True):
        await node.register()
        await node.claim(name)
        node._beat.stop()

    async def both_dead() -> bool:
        return await a.dead_nodes() == ["x", "y"]

    await eventually(both_dead, "x and y to be dead")
    assert await a.reap_dead() == {"x": (Vanished("xu", None),), "y": (Vanished("yu", None),)}
    assert await a.users(None, 10) == Page((), False)


@pytest_twisted.ensureDeferred
async def test_a_clean_stop_releases_everything_at_once(cluster: Cluster) -> None:
    a, b = await nodes(cluster, "a", "b")
    await a.claim("alice")
    await a.join("alice", "Lobby", 15)
    await b.claim("bob")
    await b.join("bob", "lobby", 15)
    assert await a.deregister() == (Vanished("alice", "Lobby"),)
    assert await b.members("lobby") == ("Lobby", ("bob",))
    assert await b.users(None, 10) == Page(("bob",), False)
    assert await b.dead_nodes() == []
