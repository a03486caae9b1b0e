"""Tests for the upload idle timeout: a stalled sender cannot hold a slot."""

from __future__ import annotations

from dataclasses import replace

from chatnet.config import Settings
from chatnet.testing import FakeClient, TestServer, make_server


def start_upload(server: TestServer, size: int = 10) -> tuple[FakeClient, FakeClient, int]:
    alice, bob = server.connect(), server.connect()
    alice.login("alice")
    bob.login("bob")
    reply = alice.request("sendfile", to="bob", name="a.txt", size=size)
    server.advance(0)
    assert [e["type"] for e in alice.events()] == ["upload-start"]
    return alice, bob, reply["transfer"]


def test_upload_without_data_fails_after_the_idle_timeout() -> None:
    """No data frame for the idle timeout: size-mismatch, the slot is free, no timer left."""
    server = make_server(replace(Settings(), upload_idle_timeout=60.0))
    alice, bob, t = start_upload(server)
    server.advance(59.9)
    assert alice.events() == []
    server.advance(0.2)
    assert alice.events() == [{"type": "file-failed", "transfer": t, "reason": "size-mismatch"}]
    assert bob.events() == []
    assert server.transfers.running == 0
    assert server.spool.leftovers() == []
    assert any("no data for 60s" in line for line in server.audit.category("FILE"))
    server.flush()
    assert server.clock.getDelayedCalls() == []


def test_each_data_frame_restarts_the_idle_clock() -> None:
    """A slow but steady sender is never cut off."""
    server = make_server(replace(Settings(), upload_idle_timeout=60.0))
    alice, _, t = start_upload(server, size=3)
    for _ in range(2):
        server.advance(50)
        alice.send_data(t, b"x")
    server.advance(50)
    assert alice.events() == []
    alice.send_data(t, b"x")
    assert [e["type"] for e in alice.events()] == ["upload-done", "file-delivered"]
    server.advance(120)
    assert alice.events() == []
    server.flush()
    assert server.clock.getDelayedCalls() == []


def test_finished_upload_leaves_no_idle_timer() -> None:
    """Completing the upload cancels its idle timer."""
    server = make_server()
    alice, _, t = start_upload(server, size=2)
    alice.send_data(t, b"ok")
    server.flush()
    assert server.clock.getDelayedCalls() == []


def test_the_freed_slot_starts_the_next_waiting_upload() -> None:
    """With one slot, a stalled upload times out and the queued one starts."""
    server = make_server(replace(Settings(), upload_slots=1, upload_idle_timeout=30.0))
    alice, bob = server.connect(), server.connect()
    alice.login("alice")
    bob.login("bob")
    first = alice.request("sendfile", to="bob", name="a.txt", size=5)["transfer"]
    second = bob.request("sendfile", to="alice", name="b.txt", size=5)
    assert second["position"] == 0  # next in line: it waits for the one slot
    server.advance(0)
    alice.events()
    assert bob.events() == []
    server.advance(30)
    server.advance(0)
    assert [e["type"] for e in alice.events()] == ["file-failed"]
    assert [e for e in bob.events() if e["type"] == "upload-start"][0]["transfer"] == second["transfer"]
    assert first != second["transfer"]
