"""Limits that need a real socket: partial frames over TCP, the listen backlog, per-address limits."""

from __future__ import annotations

import errno
import json
import select
import socket
import struct
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.threads import deferToThread

from integration.helpers import ChatClient, LiveServer, connect


@pytest_twisted.ensureDeferred
async def test_partial_frame_over_tcp_is_closed(tmp_path: Path) -> None:
    """A logged-in client that sends part of a frame and stops is closed at the deadline."""
    server = LiveServer(tmp_path, frame_timeout=0.5)
    try:
        alice = await server.client("alice")
        bob = await server.client("bob")
        logged = server.audit_event("DISCONNECT", "alice")
        alice.transport.write(struct.pack(">I", 65_000) + b'{"type":"ping"' + b" " * 60_000)
        await alice.wait_closed()
        line = await logged
        assert "a frame was left incomplete for" in line and "(60018 bytes held" in line
        assert not bob.closed  # the other client is untouched
        assert (await bob.request("ping"))["type"] == "ok"
    finally:
        await server.stop()


def _connect_all(port: int, count: int, within: float) -> tuple[list[socket.socket], int]:
    """
    Start ``count`` connects at once, without letting the server run, and
    wait up to ``within`` seconds for the kernel to complete them.

    :returns: the sockets, and how many completed their handshake (those
        the listen queue had room for; the kernel drops the others' SYNs,
        and their clients retry only after a second).
    """
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        assert s.connect_ex(("127.0.0.1", port)) in (0, errno.EINPROGRESS)
        socks.append(s)
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLOUT)
    done: set[int] = set()
    deadline = time.monotonic() + within
    while len(done) < count and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(left * 1000):
            done.add(fd)
            poller.unregister(fd)
    return socks, len(done)


def _ping_all(socks: list[socket.socket]) -> list[dict[str, object]]:
    """Send each socket a ping and read its reply (blocking: run in a thread)."""
    ping = json.dumps({"type": "ping", "id": 1}).encode()
    replies = []
    for s in socks:
        s.setblocking(True)
        s.settimeout(10)
        s.sendall(struct.pack(">I", len(ping)) + ping)
    for s in socks:
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            chunk = s.recv(4096)
            assert chunk, "closed"
            data += chunk
        replies.append(json.loads(data[4:]))
    return replies


@pytest_twisted.ensureDeferred
async def test_300_simultaneous_connects_are_all_answered(tmp_path: Path) -> None:
    """The listen backlog takes a burst of 300 connects: every handshake completes at once, all answered."""
    with open("/proc/sys/net/core/somaxconn") as f:
        if int(f.read()) < 300:
            pytest.skip("net.core.somaxconn is below 300")
    # All from 127.0.0.1: the per-address limits would refuse most of them.
    server = LiveServer(tmp_path, max_per_address=0, max_pending_per_address=0)
    try:
        # Twisted's default backlog of 50 completes about 51 of them here and
        # drops the other SYNs, whose clients retry a second later.
        socks, completed = _connect_all(server.port, 300, within=0.5)
        assert completed == 300
        replies = await deferToThread(_ping_all, socks)
        assert replies == [{"type": "ok", "id": 1}] * 300
        for s in socks:
            s.close()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_idle_connections_from_one_address_do_not_lock_out_another(tmp_path: Path) -> None:
    """Over TCP: one address's connections that never log in fill its own limit only."""
    server = LiveServer(tmp_path, max_pending_per_address=5)
    try:
        idle = [await connect(server.port) for _ in range(8)]
        for c in idle[5:]:
            await c.wait_closed()
            error = c.first("error")
            assert error is not None and error["code"] == "server-full"
        assert not any(c.closed for c in idle[:5])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", server.port, bindAddress=("127.0.0.2", 0))
        other = await connectProtocol(endpoint, ChatClient("other"))
        await other.login("other")
        for c in idle[:5]:
            c.transport.abortConnection()
            await c.wait_closed()
        other.transport.loseConnection()
        await other.wait_closed()
    finally:
        await server.stop()
