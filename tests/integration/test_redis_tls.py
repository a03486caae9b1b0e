"""
``rediss://`` on a real redis-server with TLS: txredisapi's command link and
subscriber link through :mod:`chatnet.cluster.tls`, the certificate checked.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from support.processes import Process
from support.redis import free_port
from support.tls import make_certificate
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from chatnet.cluster.keys import parse_url
from chatnet.cluster.tls import client_tls, endpoint

txredisapi = pytest.importorskip("txredisapi")


class TLSRedis:
    def __init__(self, port: int, ca: Path, process: Process) -> None:
        self.port, self.ca, self.process = port, ca, process


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TLSRedis]:
    """A redis-server that speaks TLS only, with a certificate for 127.0.0.1 and localhost."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server not found on PATH (Debian: apt-get install redis-server)")
    key, cert = make_certificate(tmp_path)
    port = free_port()
    process = Process([executable, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                       "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                       "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                       "--requirepass", "pw", "--save", "", "--appendonly", "no",
                       "--dir", str(tmp_path), "--logfile", "", "--daemonize", "no"],
                      tmp_path, f"redis-server-tls:{port}")
    try:
        process.out.wait_for("Ready to accept connections", timeout=10)
    except AssertionError:
        process.kill()
        if "TLS" in process.out.text and "not" in process.out.text:
            pytest.skip(f"this redis-server has no TLS:\n{process.out.text}")
        raise
    try:
        yield TLSRedis(port, cert, process)
    finally:
        process.kill()


async def bounded(d: Deferred[Any], seconds: float = 5.0) -> Any:
    d.addTimeout(seconds, reactor)
    return await d


@pytest_twisted.ensureDeferred
async def test_commands_over_tls_with_the_certificate_checked(tls_redis: TLSRedis) -> None:
    """lazyConnection with client_tls: PING answered over TLS, Redis's certificate trusted via --cluster-ca."""
    address = parse_url(f"rediss://:pw@127.0.0.1:{tls_redis.port}/0")
    connection = txredisapi.lazyConnection(
        address.host, address.port, password=address.password, replyTimeout=5,
        ssl_context_factory=client_tls(address, str(tls_redis.ca)))
    try:
        assert await bounded(connection.ping()) == "PONG"
        assert await bounded(connection.set("k", "v")) == "OK"
    finally:
        await connection.disconnect()


@pytest_twisted.ensureDeferred
async def test_subscriber_over_tls(tls_redis: TLSRedis) -> None:
    """The subscriber link through endpoint(): SUBSCRIBE acknowledged over TLS."""
    address = parse_url(f"rediss://:pw@localhost:{tls_redis.port}")
    ready: Deferred[Any] = Deferred()

    class Subscriber(txredisapi.SubscriberProtocol):  # type: ignore[misc, name-defined]
        def connectionMade(self) -> Any:
            d = super().connectionMade()
            self.whenConnected().addCallback(lambda _: None if ready.called else ready.callback(self))
            return d

    factory = txredisapi.SubscriberFactory()
    factory.protocol = Subscriber
    factory.password = address.password
    factory.startConnecting(endpoint(reactor, address, 5.0, str(tls_redis.ca)))
    try:
        protocol = await bounded(ready)
        assert await bounded(protocol.subscribe("chatnet:x")) == ["subscribe", "chatnet:x", 1]
    finally:
        await factory.disconnect()


@pytest_twisted.ensureDeferred
async def test_untrusted_certificate_refused(tls_redis: TLSRedis, tmp_path: Path) -> None:
    """Against another authority the handshake fails: no command is ever answered."""
    other = tmp_path / "other"
    other.mkdir()
    _, other_ca = make_certificate(other)
    address = parse_url(f"rediss://127.0.0.1:{tls_redis.port}")  # no password: nothing to AUTH
    connection = txredisapi.lazyConnection(
        address.host, address.port, replyTimeout=1, ssl_context_factory=client_tls(address, str(other_ca)))
    try:
        with pytest.raises(txredisapi.ConnectionError):  # the handshake failed: 'Lost connection'
            await bounded(connection.ping(), 1.5)
    finally:
        await connection.disconnect()
