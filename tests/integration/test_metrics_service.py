"""Two metric-serving ChatServices in one process, scraped with twisted.web's Agent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent

from chatnet.config import Settings
from chatnet.metrics import ClusterCollector, cluster_health
from chatnet.service import ChatService
from integration.helpers import logged_in


@dataclass
class FakeCluster:
    """What the cluster runtime shows the metrics: ``up``, and ``why`` while down."""

    up: bool = True
    why: str = ""


def start(tmp_path: Path) -> ChatService:
    tmp_path.mkdir()
    service = ChatService("tcp:0:interface=127.0.0.1", Settings(shutdown_grace=0.5),
                          audit_log=str(tmp_path / "server.log"), spool_dir=str(tmp_path / "spool"),
                          reactor=reactor, metrics="tcp:0:interface=127.0.0.1")
    service.startService()
    return service


class Body(Protocol):
    """Collects a response body (``readBody`` warns about Agent's transport)."""

    def __init__(self) -> None:
        self.done: Deferred[bytes] = Deferred()
        self.parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(b"".join(self.parts))


async def get(service: ChatService, path: str) -> tuple[int, bytes]:
    assert service.metrics_port is not None
    port = service.metrics_port.getHost().port  # type: ignore[attr-defined]
    response = await Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}{path}".encode())
    body = Body()
    response.deliverBody(body)
    return response.code, await body.done


@pytest_twisted.ensureDeferred
async def test_two_servers_one_process(tmp_path: Path) -> None:
    """Each server has its own registry: its own figures, its own extra collectors."""
    one, two = start(tmp_path / "one"), start(tmp_path / "two")
    try:
        assert one.port is not None
        client = await logged_in(one.port.getHost().port, "alice")  # type: ignore[attr-defined]
        cluster = FakeCluster()
        one.registry.register(ClusterCollector(cluster))
        code, body = await get(one, "/metrics")
        assert code == 200
        assert b"chatnet_users_online 1.0" in body and b"chatnet_cluster_up 1.0" in body
        code, body = await get(two, "/metrics")
        assert b"chatnet_users_online 0.0" in body and b"chatnet_cluster_up" not in body
        assert b"process_cpu_seconds_total" in body
        one.health_checks.append(cluster_health(cluster))
        assert await get(one, "/healthz") == (200, b'{"status": "ok"}\n')
        cluster.up, cluster.why = False, "Redis not answering"
        assert await get(one, "/healthz") == (
            503, b'{"status": "unavailable", "reason": "cluster unavailable: Redis not answering"}\n')
        assert b"chatnet_cluster_up 0.0" in (await get(one, "/metrics"))[1]
        assert await get(two, "/healthz") == (200, b'{"status": "ok"}\n')
        client.transport.loseConnection()
    finally:
        await one.stopService()
        await two.stopService()
