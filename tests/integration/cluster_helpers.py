"""Helpers of the cluster tests: nodes on a real Redis, bounded waits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from support.redis import RedisServer
from twisted.internet import reactor
from twisted.internet.task import deferLater

from chatnet.cluster.keys import Keys, parse_url
from chatnet.cluster.redis import Redis
from chatnet.cluster.state import Node

T = TypeVar("T")
WAIT = 10.0


class Cluster:
    """Connections and nodes on one Redis, all closed by :meth:`close`."""

    def __init__(self, server: RedisServer, prefix: str = "test") -> None:
        self.server = server
        self.keys = Keys(prefix)
        self.connections: list[Redis] = []
        self.nodes: list[Node] = []

    def connection(self, timeout: float = 1.0) -> Redis:
        redis = Redis(parse_url(self.server.url), reactor, timeout=timeout)
        self.connections.append(redis)
        return redis

    def node(self, node_id: str, lease: float = 1.0, redis: Redis | None = None) -> Node:
        node = Node(redis or self.connection(), node_id, reactor, lease=lease, keyspace=self.keys)
        self.nodes.append(node)
        return node

    async def close(self) -> None:
        for node in self.nodes:
            if node._beat.running:
                node._beat.stop()
        for redis in self.connections:
            await redis.disconnect()


async def eventually(check: Callable[[], Awaitable[T | None]], what: str,
                     timeout: float = WAIT, every: float = 0.05) -> T:
    """``await check()`` until it gives something true; fail after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while True:
        value = await check()
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await deferLater(reactor, every, lambda: None)
