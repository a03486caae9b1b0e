"""
Transfer managers of two nodes whose upload slots are the cluster's
(:class:`chatnet.cluster.slots.ClusterSlots` on a real redis-server),
driven through their sessions: the ``sendfile`` replies give positions true
across nodes, uploads start when a slot frees on the other node, ``waited``
counts the whole wait, and Redis away is ``unavailable`` with nothing kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_twisted
from support.chat import logged_in, new_server
from support.redis import RedisServer
from twisted.internet import reactor
from twisted.internet.task import deferLater

from chatnet.cluster.keys import parse_url
from chatnet.cluster.slots import ClusterSlots
from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server
from chatnet.transfers import TransferManager
from integration.cluster_helpers import Cluster, eventually


class Nodes:
    def __init__(self, cluster: Cluster, tmp_path: Path) -> None:
        self.cluster = cluster
        self.tmp_path = tmp_path
        self.slots: list[ClusterSlots] = []
        self.servers: list[Server] = []

    async def server(self, node_id: str, **settings: Any) -> Server:
        node = self.cluster.node(node_id, lease=5.0)
        await node.register()
        server = new_server(self.tmp_path / node_id, **settings)
        slots = ClusterSlots(node, server.settings, reactor, parse_url(self.cluster.server.url))
        server.transfers = TransferManager(server.settings, server.spool, reactor, server.audit,
                                           server.stats, slots=slots)
        server.hub.transfers = server.transfers
        slots.start()
        assert slots._subscriber is not None
        subscriber = slots._subscriber

        async def subscribed() -> bool:
            return slots.channel in subscriber.live

        await eventually(subscribed, "the grants channel to be subscribed")
        self.slots.append(slots)
        self.servers.append(server)
        return server

    async def close(self) -> None:
        for slots in self.slots:
            await slots.stop()
        for server in self.servers:
            server.close()
        await self.cluster.close()


@pytest_twisted.async_yield_fixture
async def nodes(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Nodes]:
    n = Nodes(Cluster(redis_server), tmp_path)
    yield n
    await n.close()


async def reply(client: FakeClient, ident: int) -> dict[str, Any]:
    """The reply to request ``ident`` (above those the login helpers used)."""
    async def answered() -> dict[str, Any] | None:
        for frame in client.history("ok") + client.history("error"):
            if frame.get("id") == ident:
                return frame
        return None

    return await eventually(answered, f"the reply to request {ident}")


async def event(client: FakeClient, type: str) -> dict[str, Any]:
    async def arrived() -> dict[str, Any] | None:
        found = client.history(type)
        return found[-1] if found else None

    return await eventually(arrived, f"{type}")


async def sendfile(client: FakeClient, ident: int, name: str, size: int = 1,
                   to: str = "rx") -> dict[str, Any]:
    client.send({"type": "sendfile", "id": ident, "to": to, "name": name, "size": size})
    return await reply(client, ident)


@pytest_twisted.ensureDeferred
async def test_positions_and_waits_are_true_across_nodes(nodes: Nodes) -> None:
    a = await nodes.server("a", upload_slots=2)
    b = await nodes.server("b", upload_slots=2)
    alice, carol, rx_a = logged_in(a, "alice", "carol", "rx")
    bob, dave, rx_b = logged_in(b, "bob", "dave", "rx")
    first = await sendfile(alice, 101, "a1")
    second = await sendfile(bob, 101, "b1")
    assert (first["position"], second["position"]) == (0, 0)
    assert first["transfer"] != second["transfer"]  # numbers unique in the cluster
    assert (await sendfile(carol, 101, "c1"))["position"] == 0
    assert (await sendfile(dave, 101, "d1"))["position"] == 1  # behind carol's, on node a
    assert a.audit.category("FILE-QUEUE")[-1].endswith("queued at position 0 (queue size 1)")
    assert b.audit.category("FILE-QUEUE")[-1].endswith("queued at position 1 (queue size 2)")
    await event(alice, "upload-start")
    await event(bob, "upload-start")
    await deferLater(reactor, 0.2, lambda: None)  # a wait long enough to see in 'waited'
    alice.send_data(first["transfer"], b"x")  # a's slot frees: carol's starts
    start = await event(carol, "upload-start")
    assert start["waited"] >= 0.2
    assert dave.history("upload-start") == []
    bob.send_data(second["transfer"], b"x")  # b's slot frees: dave's starts
    assert (await event(dave, "upload-start"))["waited"] >= 0.2
    assert (await event(alice, "upload-done"))["transfer"] == first["transfer"]
    assert a.transfers.running <= 2 and b.transfers.running <= 2


@pytest_twisted.ensureDeferred
async def test_a_cancelled_upload_frees_its_place_for_the_other_node(nodes: Nodes) -> None:
    a = await nodes.server("a", upload_slots=1)
    b = await nodes.server("b", upload_slots=1)
    alice, carol, rx_a = logged_in(a, "alice", "carol", "rx")
    (bob, rx_b) = logged_in(b, "bob", "rx")
    running = await sendfile(alice, 101, "a1")
    queued = await sendfile(carol, 101, "c1")
    assert (await sendfile(bob, 101, "b1"))["position"] == 1
    assert carol.request("cancel", transfer=queued["transfer"])["type"] == "ok"
    assert alice.request("cancel", transfer=running["transfer"])["type"] == "ok"
    assert (await event(bob, "upload-start"))["transfer"] != running["transfer"]


@pytest_twisted.ensureDeferred
async def test_a_sender_that_leaves_frees_its_slot_for_the_other_node(nodes: Nodes) -> None:
    a = await nodes.server("a", upload_slots=1)
    b = await nodes.server("b", upload_slots=1)
    alice, rx_a = logged_in(a, "alice", "rx")
    (bob, rx_b) = logged_in(b, "bob", "rx")
    await sendfile(alice, 101, "a1", size=10)
    await event(alice, "upload-start")
    assert (await sendfile(bob, 101, "b1"))["position"] == 0
    alice.lose()
    await event(bob, "upload-start")


@pytest_twisted.ensureDeferred
async def test_redis_away_is_unavailable_and_nothing_is_kept(
    nodes: Nodes, redis_server: RedisServer,
) -> None:
    a = await nodes.server("a")
    alice, rx = logged_in(a, "alice", "rx")
    redis_server.kill9()
    alice.send({"type": "sendfile", "id": 101, "to": "rx", "name": "f", "size": 1})
    alice.send({"type": "ping", "id": 102})
    refused = await reply(alice, 101)
    assert refused["code"] == "unavailable" and refused["retry_after"] == 1.0
    assert (await reply(alice, 102))["type"] == "ok"
    assert a.transfers.active == {}
