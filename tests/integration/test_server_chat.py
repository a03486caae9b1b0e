"""Chat over real loopback TCP: many clients, fan-out order, a slow consumer."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.defer import ensureDeferred, gatherResults

from integration.helpers import ChatClient, LiveServer, connect

MESSAGES = 6


@pytest_twisted.ensureDeferred
async def test_thirty_clients_two_rooms(tmp_path: Path) -> None:
    """Each message reaches every other member of its room once, in order, and no one else."""
    server = LiveServer(tmp_path)
    try:
        rooms = {"alpha": [f"a{i}" for i in range(15)], "beta": [f"b{i}" for i in range(15)]}
        clients: dict[str, ChatClient] = {}
        for room, names in rooms.items():
            for name in names:
                clients[name] = await server.client(name, room=room)
        for c in clients.values():
            c.frames.clear()

        async def chatter(name: str) -> None:
            c = clients[name]
            for i in range(MESSAGES):
                c.send(type="broadcast", id=f"m{i}", text=f"{name}:{i}")
            reply = await c.until(lambda: c.reply_to(f"m{MESSAGES - 1}"), "last reply")
            assert reply["delivered"] == 14

        await gatherResults([ensureDeferred(chatter(n)) for n in clients])
        expected = 14 * MESSAGES
        for name, c in clients.items():
            def got_all(c: ChatClient = c) -> bool:
                return len(c.of("message")) >= expected

            await c.until(got_all, f"{name}'s messages")
        for room, names in rooms.items():
            for name in names:
                got = [(m["from"], m["text"]) for m in clients[name].of("message")]
                assert len(got) == expected
                assert all(m["room"] == room for m in clients[name].of("message"))
                for sender in names:
                    mine = [text for frm, text in got if frm == sender]
                    want = [] if sender == name else [f"{sender}:{i}" for i in range(MESSAGES)]
                    assert mine == want, (name, sender)
        # Every request got exactly one reply.
        for c in clients.values():
            assert sorted(f["id"] for f in c.frames if f["type"] == "ok") == sorted(
                f"m{i}" for i in range(MESSAGES))
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_presence_over_tcp(tmp_path: Path) -> None:
    """join, leave, exit and a dropped connection are seen by the room."""
    server = LiveServer(tmp_path)
    try:
        watcher = await server.client("watcher", room="r")
        alice = await server.client("alice", room="r")
        bob = await server.client("bob", room="r")
        await alice.request("leave")
        assert (await bob.request("exit"))["type"] == "ok"
        await bob.wait_closed()
        carol = await server.client("carol", room="r")
        carol.transport.abortConnection()
        await watcher.until(lambda: len(watcher.of("presence")) == 6, "six presence events")
        assert [(p["user"], p["event"]) for p in watcher.of("presence")] == [
            ("alice", "join"), ("bob", "join"), ("alice", "leave"), ("bob", "leave"),
            ("carol", "join"), ("carol", "disconnect")]
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_slow_consumer_closed_others_unaffected(tmp_path: Path) -> None:
    """A member that stops reading is closed past --max-output; the others get everything."""
    server = LiveServer(tmp_path, max_output=256 * 1024)
    try:
        sender = await server.client("sender", room="r")
        fast = await server.client("fast", room="r")
        slow = await connect(server.port, "slow")
        # A fixed, small receive buffer: autotuned, it may take tens of MiB
        # (tcp_rmem's maximum is 32 MiB on some machines) before the server's
        # output backs up at all.
        slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await slow.login("slow")
        await slow.request("join", room="r")
        slow.transport.pauseProducing()  # stops reading; the server's buffers fill
        text = "x" * 4000
        sent = 0
        while not fast.first("presence", user="slow", event="disconnect"):
            assert sent < 5000, "the slow consumer was never closed"
            for _ in range(100):
                sender.send(type="broadcast", id=f"b{sent}", text=f"{sent} {text}")
                sent += 1
            last = f"b{sent - 1}"
            def replied(last: str = last) -> dict[str, Any] | None:
                return sender.reply_to(last)

            await sender.until(replied, "a batch of replies")
        await fast.until(lambda: len(fast.of("message")) == sent, "every message")
        assert [int(m["text"].split()[0]) for m in fast.of("message")] == list(range(sent))
        lines = server.log_lines()
        assert any("[DISCONNECT] slow (" in line and "slow consumer" in line for line in lines)
        assert (await sender.request("who"))["members"] == ["sender", "fast"]
        hub = server.service.hub
        assert hub is not None
        assert len(hub.sessions) == 2  # DISCONNECT is logged as the session goes
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_frame_too_large_over_tcp(tmp_path: Path) -> None:
    """A declared length over the limit: frame-too-large, then the server closes."""
    server = LiveServer(tmp_path)
    try:
        c = await connect(server.port, "big")
        c.transport.write((65_542).to_bytes(4, "big") + b"{")
        error = await c.event("error")
        assert error["code"] == "frame-too-large" and "id" not in error
        await c.wait_closed()
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_login_timeout_over_tcp(tmp_path: Path) -> None:
    """A connection that never logs in is closed at the (short) login timeout."""
    server = LiveServer(tmp_path, login_timeout=0.3)
    try:
        c = await connect(server.port, "idle")
        await c.wait_closed(timeout=5)
        assert any("no login within 0.3s" in line for line in server.log_lines())
    finally:
        await server.stop()
