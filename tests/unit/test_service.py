"""
Tests for :mod:`chatnet.service`: starting, and the graceful stop of
PROTOCOL.md section 7, on a MemoryReactorClock with in-memory connections.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest
from support.chat import offer, start
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher

from chatnet.config import Settings
from chatnet.service import CannotStart, ChatService
from chatnet.spool import SpoolError
from chatnet.testing import FakeClient


class Running:
    """A started ChatService and its in-memory connections."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.reactor = MemoryReactorClock()
        self.log = tmp_path / "server.log"
        self.spool_dir = tmp_path / "spool"
        self.service = ChatService(
            "tcp:0", Settings(**settings), audit_log=str(self.log),
            spool_dir=str(self.spool_dir), reactor=self.reactor,
        )
        self.service.privilegedStartService()
        self.service.startService()
        self.clients: list[FakeClient] = []
        self.clock = self.reactor  # FakeClient helpers advance "server.clock"

    def connect(self) -> FakeClient:
        assert self.service.factory is not None
        peer = IPv4Address("TCP", "127.0.0.1", 50000 + len(self.clients))
        proto = self.service.factory.buildProtocol(peer)
        assert proto is not None
        transport = StringTransport(peerAddress=peer)
        client = FakeClient(self, proto, transport)  # type: ignore[arg-type]
        proto.makeConnection(transport)
        self.clients.append(client)
        return client

    def login(self, name: str) -> FakeClient:
        client = self.connect()
        client.login(name)
        return client

    def flush(self) -> None:
        assert self.service.factory is not None
        if self.service.factory.batch is not None:
            self.service.factory.batch.flush()

    def advance(self, seconds: float = 0) -> None:
        self.reactor.advance(seconds)
        self.settle()

    def settle(self) -> None:
        self.flush()
        for client in self.clients:
            if client.transport.disconnecting and not client.lost:
                client.lose(ConnectionDone())

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


def test_start_listens_and_logs(tmp_path: Path) -> None:
    """Starting opens the log and listens on the endpoint."""
    running = Running(tmp_path)
    assert running.service.running
    ((port, factory, _, interface),) = running.reactor.tcpServers
    assert port == 0 and factory is running.service.factory
    running.reactor.advance(0)
    assert "[CONNECT] chatnet/" in running.log_lines()[0]
    assert "listening on 0.0.0.0:0" in running.log_lines()[0]


def test_start_without_privileged_start(tmp_path: Path) -> None:
    """Runners that only call startService (``twist``) get a listening server too."""
    reactor = MemoryReactorClock()
    service = ChatService("tcp:0", Settings(), audit_log=str(tmp_path / "server.log"),
                          spool_dir=str(tmp_path / "spool"), reactor=reactor)
    service.startService()
    assert service.factory is not None and len(reactor.tcpServers) == 1
    results: list[object] = []
    service.stopService().addBoth(results.append)
    assert results == [None]


def test_stop_with_no_connections(tmp_path: Path) -> None:
    """Stopping an idle server finishes at once and logs SHUTDOWN."""
    running = Running(tmp_path)
    results: list[object] = []
    running.service.stopService().addBoth(results.append)
    assert results == [None]
    assert running.reactor.getDelayedCalls() == []
    assert running.log_lines()[-1].endswith(
        "[SHUTDOWN] server stopped: disconnected 0 clients, failed 0 transfers")


def test_graceful_stop(tmp_path: Path) -> None:
    """Every connection hears shutdown, every transfer fails with shutdown, spool emptied."""
    running = Running(tmp_path, upload_slots=1, shutdown_grace=5.0)
    alice, bob, carol = (running.login(n) for n in ("alice", "bob", "carol"))
    for c in (alice, bob):
        c.request("join", room="r")
    idle = running.connect()  # not logged in
    uploading = start(running, alice, "bob", "up.bin", 10)  # type: ignore[arg-type]
    alice.send_data(uploading, b"12345")
    queued = offer(carol, "bob", "q.bin", 3)["transfer"]
    running.advance()
    assert len(list(running.spool_dir.iterdir())) == 1
    for c in (alice, bob, carol, idle):
        c.frames()

    results: list[object] = []
    running.service.stopService().addBoth(results.append)
    running.flush()
    for c in (alice, bob, carol, idle):
        assert c.transport.disconnecting
    shutdown = {"type": "shutdown", "message": "The server is shutting down"}
    assert alice.frames() == [shutdown, {"type": "file-failed", "transfer": uploading, "reason": "shutdown"}]
    assert carol.frames() == [shutdown, {"type": "file-failed", "transfer": queued, "reason": "shutdown"}]
    assert bob.frames() == [shutdown]  # no presence events, no file-aborted (nothing started)
    assert idle.frames() == [shutdown]
    assert results == []
    running.settle()
    assert results == [None]
    assert list(running.spool_dir.iterdir()) == []
    line = running.log_lines()[-1]
    assert re.fullmatch(
        r"\[.*\] \[SHUTDOWN\] server stopped: disconnected 4 clients, failed 2 transfers", line)
    assert running.reactor.getDelayedCalls() == []


def test_stop_aborts_connections_that_do_not_close(tmp_path: Path) -> None:
    """A peer that never lets go is aborted after the grace period; the stop then finishes."""
    running = Running(tmp_path, shutdown_grace=2.0)
    stuck = running.login("stuck")
    assert stuck.transport.producer is not None
    stuck.transport.producer.pauseProducing()  # its socket is full
    results: list[object] = []
    running.service.stopService().addBoth(results.append)
    running.flush()
    assert stuck.frames()[0]["type"] == "shutdown"  # handed to the transport anyway
    running.reactor.advance(1.9)
    assert not stuck.transport.disconnected and results == []
    running.reactor.advance(0.2)
    assert stuck.transport.disconnected  # aborted
    stuck.lose()
    assert results == [None]
    assert "disconnected 1 client," in running.log_lines()[-1]


def test_stop_backstop_when_loss_never_reported(tmp_path: Path) -> None:
    """If a transport never reports its loss, the stop still ends at grace + 0.5 s."""
    running = Running(tmp_path, shutdown_grace=1.0)
    running.login("ghost")
    results: list[object] = []
    running.service.stopService().addBoth(results.append)
    running.reactor.advance(1.4)
    assert results == []
    running.reactor.advance(0.2)
    assert results == [None]
    assert "[SHUTDOWN]" in running.log_lines()[-1]


def test_delivery_aborted_on_stop(tmp_path: Path) -> None:
    """A delivery under way is aborted on both sides with reason shutdown."""
    running = Running(tmp_path)
    alice, bob = running.login("alice"), running.login("bob")
    assert bob.transport.producer is not None
    bob.transport.producer.pauseProducing()
    t = start(running, alice, "bob", "f.bin", 3)  # type: ignore[arg-type]
    alice.send_data(t, b"abc")
    alice.frames()
    running.service.stopService()
    running.flush()
    assert {"type": "file-failed", "transfer": t, "reason": "shutdown"} in alice.frames()
    events = [f for f in bob.frames() if isinstance(f, dict)]
    assert [f["type"] for f in events] == ["file-start", "shutdown", "file-aborted"]
    assert events[-1]["reason"] == "shutdown"


def test_start_removes_leftovers_and_says_so(tmp_path: Path) -> None:
    """Files a killed server left in the spool are removed at start, with a FILE line."""
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    (spool / "chatnet-upload-1.part").write_bytes(b"x" * 1024)
    (spool / "chatnet-upload-7.part").write_bytes(b"x" * 1024)
    (spool / "notes.txt").write_text("not ours")
    running = Running(tmp_path)
    running.reactor.advance(0)
    lines = running.log_lines()
    assert lines[1].endswith(f"[FILE] spool {spool}: removed 2 files (2.0 KiB) left by an earlier run")
    assert sorted(p.name for p in spool.iterdir()) == ["notes.txt"]


def test_the_spool_bounds_go_to_the_twistd_log(tmp_path: Path) -> None:
    """A clean spool gets no audit line; twistd's log states the bounds and how they were chosen."""
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        running = Running(tmp_path)
        Running(tmp_path / "fixed", spool_size=1024**3)
    finally:
        globalLogPublisher.removeObserver(observer)
    running.reactor.advance(0)
    assert [x for x in running.log_lines() if "[FILE]" in x] == []
    said = [formatEvent(e) for e in events if "spool" in formatEvent(e)]
    assert said[0].endswith(
        "(half the free disk space, at most 1 GiB), 16 files or 48.0 MiB for one addressee")
    assert said[1] == (
        f"chatnet spool {tmp_path / 'fixed' / 'spool'}: at most 1.0 GiB in all, "
        "16 files or 48.0 MiB for one addressee")


def test_an_unsafe_spool_folder_stops_the_start(tmp_path: Path) -> None:
    """A spool folder others can write is refused before anything is opened."""
    (tmp_path / "spool").mkdir(mode=0o700)
    (tmp_path / "spool").chmod(0o777)
    with pytest.raises(SpoolError, match="can be written by others"):
        Running(tmp_path)
    assert not (tmp_path / "server.log").exists()


def test_default_listen_backlog() -> None:
    """Listening endpoints get a backlog of 1024 unless they give one; others are left alone."""
    from chatnet.service import with_backlog

    assert with_backlog("tcp:8080") == "tcp:8080:backlog=1024"
    assert with_backlog("tcp:0:interface=127.0.0.1") == "tcp:0:interface=127.0.0.1:backlog=1024"
    assert with_backlog("TCP6:8080") == "TCP6:8080:backlog=1024"
    assert with_backlog("ssl:8443:privateKey=k.pem:certKey=c.pem").endswith(":backlog=1024")
    assert with_backlog("unix:/tmp/chat.sock") == "unix:/tmp/chat.sock:backlog=1024"
    assert with_backlog("tcp:8080:backlog=7") == "tcp:8080:backlog=7"
    assert with_backlog("tcp:port=8080:backlog=4096:interface=::1") == "tcp:port=8080:backlog=4096:interface=::1"
    assert with_backlog("systemd:domain=INET:index=0") == "systemd:domain=INET:index=0"
    assert with_backlog("tcp:8080", 64) == "tcp:8080:backlog=64"


def test_an_audit_log_that_cannot_be_opened_stops_the_start_in_one_line(tmp_path: Path) -> None:
    """The audit log's folder missing: CannotStart with a message an operator can act on."""
    service = ChatService(
        "tcp:0", Settings(), audit_log=str(tmp_path / "gone" / "server.log"),
        spool_dir=str(tmp_path / "spool"), reactor=MemoryReactorClock(),
    )
    with pytest.raises(CannotStart) as info:
        service.privilegedStartService()
    assert str(info.value) == (
        f"chatnet: cannot open the audit log {tmp_path / 'gone' / 'server.log'}: "
        "No such file or directory"
    )
