"""Limits that need a real socket: partial frames over TCP, the listen backlog, per-address limits."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest_twisted

from integration.helpers import LiveServer


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
