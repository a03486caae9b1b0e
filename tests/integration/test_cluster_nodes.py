"""
Cluster groundwork on a real redis-server: node registration, leases,
fencing, dead nodes, and Redis going away and coming back.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import AsyncIterator

import pytest
import pytest_twisted
import support.redis as support_redis
from support.redis import RedisServer, free_port, ping
from twisted.internet import reactor

from chatnet.cluster.keys import Fenced, NodeIdInUse, parse_url
from chatnet.cluster.redis import Redis, Unavailable
from integration.cluster_helpers import Cluster, eventually


@pytest_twisted.async_yield_fixture
async def cluster(redis_server: RedisServer) -> AsyncIterator[Cluster]:
    c = Cluster(redis_server)
    yield c
    await c.close()


def test_fixture_runs_a_redis_that_can_be_killed_and_restarted(redis_server: RedisServer) -> None:
    """PING answers; after kill -9 it does not; restart brings it back on the same port."""
    port = redis_server.port
    assert ping(port)
    redis_server.kill9()
    assert not ping(port, timeout=0.5)
    redis_server.restart()
    assert redis_server.port == port and ping(port)


def test_fixture_tries_another_port_when_one_is_taken(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port taken between choosing and binding: that start fails, the next port is tried."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not redis_server._spawn(port)
        chosen = iter([port, free_port()])
        monkeypatch.setattr(support_redis, "free_port", lambda: next(chosen))
        other = RedisServer(redis_server.executable, redis_server.folder)
        other.start()
        try:
            assert other.port != port and ping(other.port) and other.starts == 2
        finally:
            other.stop()


@pytest_twisted.ensureDeferred
async def test_register_with_a_lease(cluster: Cluster) -> None:
    """A fresh incarnation each time; the lease key holds it and expires."""
    a = cluster.node("a", lease=5.0)
    first = await a.register()
    assert first > 1_700_000_000_000  # from Redis's clock, in ms: never given twice
    redis = cluster.connection()
    assert await redis.command("GET", cluster.keys.lease("a")) == str(first)
    ttl = int(await redis.command("PTTL", cluster.keys.lease("a")))
    assert 0 < ttl <= 5000
    assert await redis.command("SMEMBERS", cluster.keys.nodes) == ["a"]
    assert await a.deregister() == ()
    assert await a.register() == first + 1


@pytest_twisted.ensureDeferred
async def test_a_live_id_is_refused(cluster: Cluster) -> None:
    a, again, b = cluster.node("a"), cluster.node("a"), cluster.node("b")
    await a.register()
    with pytest.raises(NodeIdInUse, match="'a'"):
        await again.register()
    assert await b.register() > 0


@pytest_twisted.ensureDeferred
async def test_the_lease_is_renewed_without_traffic(cluster: Cluster) -> None:
    """Lease 0.3 s, renewed every 0.1 s: still alive after three leases."""
    a, b = cluster.node("a", lease=0.3), cluster.node("b", lease=5.0)
    await a.register()
    await b.register()
    started = time.monotonic()
    await eventually(lambda: _later(started, 0.9), "three leases to pass")
    assert await b.dead_nodes() == []
    assert await a.renew()


async def _later(started: float, seconds: float) -> bool:
    return time.monotonic() - started >= seconds


@pytest_twisted.ensureDeferred
async def test_a_silent_node_is_noticed_dead_and_fenced(cluster: Cluster) -> None:
    """
    A node that stops beating (paused) is seen dead by another within its
    lease; when it comes back its old incarnation can do nothing, and it
    registers anew.
    """
    fenced: list[bool] = []
    a, b = cluster.node("a", lease=0.3), cluster.node("b", lease=5.0)
    a.on_fenced = lambda: fenced.append(True)
    first = await a.register()
    await b.register()
    assert await a.claim("Alice")
    a._beat.stop()  # as if the process were stopped (SIGSTOP)
    started = time.monotonic()
    assert await eventually(b.dead_nodes, "node a to be seen dead") == ["a"]
    assert time.monotonic() - started < 0.3 + 0.5
    assert not await a.renew()
    assert fenced == [True] and a.incarnation is None
    with pytest.raises(Fenced):
        await a.claim("Bob")
    assert await a.register() == first + 1
    # held by the old incarnation, which is dead: taken over at once
    assert await a.claim("alice")
    assert await b.reap("a") == ()


@pytest_twisted.ensureDeferred
async def test_a_stale_incarnation_is_fenced_by_every_script(cluster: Cluster) -> None:
    """Scripts check the incarnation itself, not just whether the lease exists."""
    a = cluster.node("a", lease=5.0)
    await a.register()
    assert await a.claim("alice")
    fenced: list[bool] = []
    a.on_fenced = lambda: fenced.append(True)
    a.incarnation = 99
    with pytest.raises(Fenced):
        await a.claim("bob")
    assert fenced == [True] and a.incarnation is None  # told once, the beat stopped
    assert not a._beat.running
    a.incarnation = 99
    with pytest.raises(Fenced):
        await a.join("alice", "lobby", 15)
    with pytest.raises(Fenced):
        await a.leave("alice")
    with pytest.raises(Fenced):
        await a.release("alice")
    with pytest.raises(Fenced):
        await a.deregister()


@pytest_twisted.ensureDeferred
async def test_redis_lost_and_back(cluster: Cluster) -> None:
    """
    With Redis gone a request fails promptly with Unavailable (not a hang);
    after a restart, empty, the same connection works again within seconds,
    and a node re-registers.
    """
    redis = cluster.connection(timeout=0.5)
    a = cluster.node("a", lease=5.0, redis=redis)
    a_first = await a.register()
    cluster.server.kill9()
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await a.claim("alice")
    assert time.monotonic() - started < 2.0
    cluster.server.restart()

    async def answers() -> bool:
        try:
            return bool(await redis.command("PING") == "PONG")
        except Unavailable:
            return False

    await eventually(answers, "the connection to come back", timeout=5.0)
    with pytest.raises(Fenced):  # Redis came back empty: the lease is gone
        await a.claim("alice")
    assert await a.register() > a_first  # never an incarnation given before the loss
    assert await a.claim("alice")


@pytest_twisted.ensureDeferred
async def test_a_refused_password_on_reconnection_does_not_stop_reconnecting(
        cluster: Cluster) -> None:
    """
    txredisapi stops reconnecting for good when AUTH fails while connecting;
    our link drops that attempt and keeps trying, so once the password
    works again the link comes back by itself.
    """
    admin = cluster.connection()
    await admin.command("CONFIG", "SET", "requirepass", "first")
    address = dataclasses.replace(parse_url(cluster.server.url), password="first")
    redis = Redis(address, reactor, timeout=0.5)
    cluster.connections.append(redis)
    assert await redis.command("PING") == "PONG"
    # the password changes and every connection is cut: reconnecting is refused
    other = Redis(dataclasses.replace(address, password="first"), reactor, timeout=0.5)
    cluster.connections.append(other)
    await other.command("CONFIG", "SET", "requirepass", "second")
    await other.command("CLIENT", "KILL", "TYPE", "normal")

    def as_admin(*commands: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", cluster.server.port)) as s:
            s.sendall(b"AUTH second\r\n" + b"".join(c + b"\r\n" for c in commands))
            s.settimeout(2.0)
            data = b""
            while data.count(b"\r\n") < 2 or (b"$" in data[:12] and not data.endswith(b"\r\n")):
                data += s.recv(65536)
            return data

    async def refused() -> bool:
        with pytest.raises(Unavailable):
            await redis.command("PING")
        info = as_admin(b"INFO stats").decode()
        return "acl_access_denied_auth:0" not in info

    await eventually(refused, "a reconnection to be refused its password")
    # the password works again: the same link comes back without being told
    assert as_admin(b"CONFIG SET requirepass first").count(b"+OK") == 2

    async def answers() -> bool:
        try:
            return bool(await redis.command("PING") == "PONG")
        except Unavailable:
            return False

    await eventually(answers, "the link to come back", timeout=10.0)


@pytest_twisted.ensureDeferred
async def test_a_registration_repeated_by_its_process_gets_the_same_incarnation(
        cluster: Cluster) -> None:
    """
    A REGISTER whose answer was lost (a timeout) asked again by the same
    process gets its incarnation back rather than "in use"; another process
    with the same id is still refused.
    """
    a = cluster.node("a", lease=5.0)
    first = await a.register()
    assert await a.register() == first  # same token: the same incarnation
    twin = cluster.node("a", lease=5.0)
    with pytest.raises(NodeIdInUse):
        await twin.register()


def test_start_up_registration_says_where_the_inbox_and_events_stand(
        redis_server: RedisServer) -> None:
    """The blocking registration of a starting node also answers its inbox's and ~all's heads."""
    from chatnet.cluster import startup
    from chatnet.cluster.keys import Keys

    address = parse_url(redis_server.url)
    first = startup.register(address, Keys("t"), "a", 5.0, token="x")
    assert first.everyone[1] >= 1  # its own node-joined
    again = startup.register(address, Keys("t"), "a", 5.0, token="x")
    assert again.incarnation == first.incarnation
    with pytest.raises(NodeIdInUse):
        startup.register(address, Keys("t"), "a", 5.0, token="y")
    other = startup.register(address, Keys("t"), "b", 5.0, token="z")
    assert other.everyone[1] == first.everyone[1] + 1 and other.inbox == ("", 0)
