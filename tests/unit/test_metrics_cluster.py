"""``chatnet_cluster_up`` and the cluster's ``/healthz`` check (:mod:`chatnet.metrics`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from support.chat import new_server
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatnet.metrics import ClusterStatus, cluster_health, make_registry, make_site
from chatnet.testing import TestServer


@dataclass
class FakeCluster:
    """What the cluster runtime exposes: ``up`` and, while down, ``why``."""

    up: bool = True
    why: str = ""


@pytest.fixture
def server(tmp_path: Path) -> TestServer:
    return new_server(tmp_path / "spool")


def http_get(site: object, path: str) -> tuple[int, dict[str, object] | str]:
    """One real HTTP/1.1 request through the site's protocol, on a memory transport."""
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))  # type: ignore[attr-defined]
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    raw = transport.value()
    channel.connectionLost(Failure(ConnectionDone()))  # cancels the channel's idle timeout
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():
        body = dechunk(body)
    if b"application/json" in head:
        return status, json.loads(body)
    return status, body.decode()


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


def test_fake_is_a_cluster_status() -> None:
    """The shape the runtime must have: two read-only attributes."""
    status: ClusterStatus = FakeCluster()
    assert status.up is True


def test_cluster_up_gauge_follows_the_cluster(server: TestServer) -> None:
    """1 while up, 0 while down, read at each scrape."""
    cluster = FakeCluster()
    registry = make_registry(server.hub, cluster=cluster)
    assert registry.get_sample_value("chatnet_cluster_up") == 1
    cluster.up, cluster.why = False, "Redis not answering"
    assert registry.get_sample_value("chatnet_cluster_up") == 0
    cluster.up = True
    assert registry.get_sample_value("chatnet_cluster_up") == 1


def test_no_cluster_gauge_on_a_single_server(server: TestServer) -> None:
    """A single server has no chatnet_cluster_up at all (absent, not 0)."""
    text = generate_latest(make_registry(server.hub)).decode()
    assert "chatnet_cluster_up" not in text
    text = generate_latest(make_registry(server.hub, FakeCluster())).decode()
    assert "# TYPE chatnet_cluster_up gauge" in text and "chatnet_cluster_up 1.0" in text


def test_cluster_health_check() -> None:
    """None while up; while down, the reason on one line, with a default when none is given."""
    cluster = FakeCluster()
    check = cluster_health(cluster)
    assert check() is None
    cluster.up, cluster.why = False, "Redis not answering\n(connection refused)"
    assert check() == "cluster unavailable: Redis not answering (connection refused)"
    cluster.why = ""
    assert check() == "cluster unavailable"


def test_metrics_and_healthz_over_http(server: TestServer) -> None:
    """/metrics and /healthz answer real HTTP requests as the cluster comes and goes."""
    from twisted.internet import reactor

    before = set(reactor.getDelayedCalls())
    cluster = FakeCluster()
    serving: list[str | None] = [None]
    site = make_site(make_registry(server.hub, cluster), [lambda: serving[0], cluster_health(cluster)])
    assert http_get(site, "/healthz") == (200, {"status": "ok"})
    status, text = http_get(site, "/metrics")
    assert status == 200 and "chatnet_cluster_up 1.0" in str(text)

    cluster.up, cluster.why = False, "this node's lease ran out; registering again"
    assert http_get(site, "/healthz") == (
        503, {"status": "unavailable", "reason": "cluster unavailable: this node's lease ran out; registering again"})
    status, text = http_get(site, "/metrics")
    assert status == 200 and "chatnet_cluster_up 0.0" in str(text)

    serving[0] = "shutting down"  # the server's own check comes first
    assert http_get(site, "/healthz") == (503, {"status": "unavailable", "reason": "shutting down"})
    serving[0] = None
    cluster.up = True
    assert http_get(site, "/healthz") == (200, {"status": "ok"})
    assert not [c for c in reactor.getDelayedCalls() if c.active() and c not in before]
