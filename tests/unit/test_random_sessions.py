"""
Seeded random sessions against an in-memory server on a fake clock.

Clients connect, log in, chat, send files (whole, short, too long, or not at
all), cancel, stop and start reading, vanish and send garbage, while time
jumps past every timeout.  Whatever happens, no exception is logged, and
once everyone has gone the server holds nothing: no session, transfer,
spool file, delivery line, stall timer or open file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import pytest
from support.chat import new_server
from twisted.logger import ILogObserver, globalLogPublisher

from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server
from chatnet.transfer_state import State
from chatnet.upload_slots import LocalSlots

NAMES = ["ann", "bob", "cy", "dee", "ed", "ann"]  # one name twice: taken
ROOMS = ["r1", "r2", "r3"]


class Player:
    """One random client and what it knows of its own uploads."""

    def __init__(self, server: Server, rng: random.Random) -> None:
        self.client: FakeClient = server.connect()
        self.rng = rng
        self.name: str | None = None
        self.sizes: dict[int, int] = {}  # transfer -> declared size
        self.asked: dict[Any, int] = {}  # sendfile id -> declared size

    @property
    def gone(self) -> bool:
        return self.client.lost or self.client.transport.disconnecting

    def read(self) -> None:
        """Take in new frames; upload what the server lets us, more or less of it."""
        for frame in self.client.frames():
            if not isinstance(frame, dict):
                continue
            if frame["type"] == "ok" and frame.get("id") in self.asked and "transfer" in frame:
                self.sizes[frame["transfer"]] = self.asked.pop(frame["id"])
            elif frame["type"] == "ok" and frame.get("username"):
                self.name = frame["username"]
            elif frame["type"] == "upload-start" and frame["transfer"] in self.sizes:
                self.upload(frame["transfer"], self.sizes[frame["transfer"]])

    def upload(self, transfer: int, size: int) -> None:
        rng = self.rng
        sent = rng.choice([size, size, size, max(0, size - 1), size + 1, 0])
        data = rng.randbytes(sent)
        for i in range(0, sent, 65536):
            if self.gone:
                return
            self.client.send_data(transfer, data[i : i + 65536])


def step(server: Server, players: list[Player], rng: random.Random) -> None:
    live = [p for p in players if not p.gone]
    if len(live) < 5 and rng.random() < 0.3:
        players.append(Player(server, rng))
        return
    if not live:
        return
    p = rng.choice(live)
    c = p.client
    others = [q.name for q in live if q.name] + ["nobody"]
    ident = rng.randrange(1_000_000)
    action = rng.choice([
        "login", "login", "join", "leave", "say", "whisper", "who",
        "sendfile", "sendfile", "sendfile", "sendfile", "cancel", "pause", "pause",
        "resume", "advance", "lose", "garbage", "data",
    ])
    if action == "login":
        c.send({"type": "login", "id": ident, "username": rng.choice(NAMES)})
    elif action == "join":
        c.send({"type": "join", "id": ident, "room": rng.choice(ROOMS)})
    elif action == "leave":
        c.send({"type": "leave", "id": ident})
    elif action == "say":
        c.send({"type": "broadcast", "id": ident, "text": "x" * rng.randrange(1, 300)})
    elif action == "whisper":
        c.send({"type": "whisper", "id": ident, "to": rng.choice(others), "text": "psst"})
    elif action == "who":
        c.send({"type": rng.choice(["who", "users", "rooms", "ping"]), "id": ident})
    elif action == "sendfile":
        size = rng.choice([0, 1, 1000, 65536, 65537, 200_000])
        p.asked[ident] = size
        c.send({"type": "sendfile", "id": ident, "to": rng.choice(others),
                "name": rng.choice(["a.txt", "a.txt", "b.bin"]), "size": size})
    elif action == "cancel":
        numbers = list(p.sizes) or [rng.randrange(1, 50)]
        c.send({"type": "cancel", "id": ident, "transfer": rng.choice(numbers)})
    elif action == "pause":
        c.protocol.outbound.pauseProducing()  # stops reading
    elif action == "resume":
        c.protocol.outbound.resumeProducing()
    elif action == "advance":
        server.advance(rng.choice([0, 0.5, 5, 5, 5, 31, 61]))
    elif action == "lose":
        c.lose()
    elif action == "garbage":
        c.send_payload(rng.choice([b"", b"\x00", b"{", b"\x00\x00\x00\x00\x09junk", rng.randbytes(20)]))
    elif action == "data":
        c.send_data(rng.randrange(1, 50), b"stray")
    server.settle()
    for q in players:
        if not q.client.lost:
            q.read()


def check_invariants(server: Server) -> None:
    """What must hold between any two steps."""
    manager = server.transfers
    active = manager.active
    assert manager.running <= server.settings.upload_slots
    uploading = [t for t in active.values() if t.state in (State.STARTING, State.UPLOADING)]
    assert len(uploading) == manager.running
    settings = server.settings
    slots = manager._slots
    assert isinstance(slots, LocalSlots)
    waiting = list(slots._queue)
    assert len(waiting) == manager.waiting <= settings.upload_queue
    assert sorted(t.id for t in waiting) == sorted(
        t.id for t in active.values() if t.state is State.QUEUED)
    for t in waiting:
        assert slots._queue.count(t.sender) <= settings.upload_queue_per_user
    if slots._slots.tokens:  # a free slot is never left while an upload could take it
        assert not any(manager.may_start(t) for t in waiting)
    budget = manager.budget
    held = [t for t in active.values() if t.held]
    assert held == [t for t in active.values() if t.state is not State.QUEUED]
    assert budget.used == sum(t.size for t in held) <= budget.total
    for recipient in {t.recipient for t in held}:
        files, size = budget.held(recipient)
        assert files == len([t for t in held if t.recipient is recipient])
        assert files <= settings.addressee_spool_files
        assert size <= settings.addressee_spool_bytes or files == 1
    for user, inbox in manager._inboxes.items():
        assert all(active.get(t.id) is t and t.state is State.SPOOLED for t in inbox.waiting)
        delivering = [t for t in active.values() if t.recipient is user and t.state is State.DELIVERING]
        assert inbox.streaming == len(delivering) <= server.settings.deliveries_per_user
    for t in active.values():
        if t.state is State.SPOOLED:
            assert t in manager._inboxes[t.recipient].waiting
        assert (t.reader is not None) <= (t.state is State.DELIVERING)


@pytest.mark.parametrize("seed", range(60))
def test_random_sessions_leave_nothing_behind(tmp_path: Path, seed: int) -> None:
    """Any mix of requests, files, stalls, timeouts and drops: no error, and no leftovers."""
    failures: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            failures.append(event)

    globalLogPublisher.addObserver(cast(ILogObserver, observe))
    try:
        rng = random.Random(seed)
        server = new_server(tmp_path / "spool", upload_slots=2, upload_queue=3, upload_queue_per_user=2,
                            addressee_spool_files=2, addressee_spool_bytes=250_000,
                            spool_size=500_000,
                            deliveries_per_user=1, stall_timeout=60)
        players: list[Player] = []
        for _ in range(400):
            step(server, players, rng)
            check_invariants(server)
        for p in players:
            p.client.lose()
        server.settle()
        server.advance(120)
    finally:
        globalLogPublisher.removeObserver(cast(ILogObserver, observe))

    assert failures == []
    assert server.hub.sessions == set()
    assert server.transfers.active == {}
    assert server.transfers._inboxes == {}
    assert server.transfers.running == 0 and server.transfers.waiting == 0
    assert server.transfers.budget.used == 0
    assert server.spool.leftovers() == []
    watch = server.factory.stall_watch
    assert watch is not None and len(watch) == 0
    assert server.clock.getDelayedCalls() == []
    assert server.hub.directory.usernames() == []
