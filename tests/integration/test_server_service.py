"""ChatService on the global reactor: listening errors and a graceful stop over TCP."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.error import ConnectionRefusedError

from chatnet.config import Settings
from chatnet.service import CannotStart, ChatService
from integration.helpers import LiveServer, connect


def test_busy_port_fails_at_start(tmp_path: Path) -> None:
    """A port already in use stops privilegedStartService with one line, before running."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = ChatService(f"tcp:{port}:interface=127.0.0.1", Settings(),
                              audit_log=str(tmp_path / "server.log"),
                              spool_dir=str(tmp_path / "spool"), reactor=reactor)
        with pytest.raises(CannotStart) as info:
            service.privilegedStartService()
    assert str(info.value) == f"chatnet: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert not service.running


@pytest_twisted.ensureDeferred
async def test_stop_service_over_tcp(tmp_path: Path) -> None:
    """stopService tells every client, fails transfers, closes them all and logs SHUTDOWN."""
    # A grace far longer than the bound below: the stop must end because
    # every client that reads has gone, not because the grace ran out.
    server = LiveServer(tmp_path, shutdown_grace=600.0)
    alice = await server.client("alice", room="r")
    bob = await server.client("bob", room="r")
    anonymous = await connect(server.port, "anonymous")
    reply = await alice.request("sendfile", to="bob", name="a.bin", size=10)
    t = reply["transfer"]
    await alice.event("upload-start", transfer=t)
    alice.send_data(t, b"12345")
    await alice.request("ping")
    stopping = server.service.stopService()
    stopping.addTimeout(60, reactor)
    await stopping
    for client in (alice, bob, anonymous):
        await client.wait_closed()
        assert client.first("shutdown") == {"type": "shutdown", "message": "The server is shutting down"}
    assert alice.first("file-failed", transfer=t)["reason"] == "shutdown"  # type: ignore[index]
    assert bob.of("presence") == []  # nobody is told of the others leaving
    assert server.spool_files() == []
    last = server.log_path.read_text().splitlines()[-1]
    assert "[SHUTDOWN] server stopped: disconnected 3 clients, failed 1 transfer" in last
    refused = connect(server.port)
    with pytest.raises(ConnectionRefusedError):
        await refused


@pytest.mark.parametrize("nagle", [False, True])
@pytest_twisted.ensureDeferred
async def test_nagle_option_decides_tcp_nodelay(tmp_path: Path, nagle: bool) -> None:
    """Clients' connections have TCP_NODELAY unless --nagle; keep-alive either way."""
    server = LiveServer(tmp_path, nagle=nagle)
    try:
        await server.client("alice")
        assert server.service.hub is not None
        [session] = server.service.hub.sessions
        sock = session.outbox._transport.getHandle()  # type: ignore[attr-defined]
        assert bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is not nagle
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    finally:
        await server.stop()
