"""
What :mod:`chatnet.deliveries` offers files between nodes: the ``watch``
(what addressees are told, and when deliveries end) and
:class:`~chatnet.deliveries.StreamFailed` (a stream to another node failed
while its addressee may still be there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from chatnet.config import Settings
from chatnet.deliveries import StreamFailed
from chatnet.errors import FailReason
from chatnet.frames import DataFrame, Event
from chatnet.model import User
from chatnet.spool import Spool
from chatnet.transfer_state import Transfer
from chatnet.transfers import TransferManager


class Outbox:
    """Frames as dicts; each file stream's Deferred kept for the test to fire."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.streams: dict[int, Deferred[bytes]] = {}

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        self.events.append(json.loads(data[4:]))
        if on_written is not None:
            on_written()

    def send_file(self, transfer: int, file: BinaryIO) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.streams[transfer] = d
        return d

    def cancel_file(self, transfer: int) -> None:
        d = self.streams.get(transfer)
        if d is not None and not d.called:  # a stream that ended is no longer there
            d.errback(Exception("cancelled"))

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


class Watch:
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def telling(self, user: User, event: Event) -> bool:
        self.seen.append((user.name, type(event).__name__))
        return False

    def names_elsewhere(self, user: User) -> bool:
        return False

    def ended(self, t: Transfer, delivered: bool) -> None:
        self.seen.append(("ended", (t.id, delivered)))


def setup(tmp_path: Path) -> tuple[TransferManager, Clock, User, User, Watch]:
    clock = Clock()
    manager = TransferManager(Settings(deliveries_per_user=1), Spool(tmp_path), clock,
                              lambda c, t, f=None: None)
    watch = Watch()
    manager.watch = watch
    return manager, clock, User("alice", Outbox()), User("bob", Outbox()), watch


def send(manager: TransferManager, clock: Clock, alice: User, bob: User, data: bytes) -> int:
    t = manager.offer(alice, bob, "f", len(data))
    assert isinstance(t, Transfer)  # on one node, at once
    clock.advance(0)
    manager.receive(alice, DataFrame(t.id, data))
    return t.id


def events(user: User) -> list[dict[str, Any]]:
    out = user.outbox
    assert isinstance(out, Outbox)
    return out.events


def stream(user: User, number: int) -> Deferred[bytes]:
    out = user.outbox
    assert isinstance(out, Outbox)
    return out.streams[number]


def test_watch_sees_what_the_addressee_is_told_and_the_end(tmp_path: Path) -> None:
    """telling() before file-start (and every event), ended(delivered=True) after file-end."""
    manager, clock, alice, bob, watch = setup(tmp_path)
    n = send(manager, clock, alice, bob, b"abcd")
    assert ("bob", "FileStart") in watch.seen
    assert ("ended", (n, True)) not in watch.seen
    stream(bob, n).callback(b"d")
    assert [e["type"] for e in events(bob)] == ["file-start", "file-end"]
    assert watch.seen[-1] == ("ended", (n, True))
    assert ("alice", "FileDelivered") in watch.seen


def test_stream_failed_tells_both_and_keeps_the_inbox(tmp_path: Path) -> None:
    """
    StreamFailed: the transfer fails with its reason, the addressee told
    (file-aborted), and its next delivery starts: it is still there.
    """
    manager, clock, alice, bob, watch = setup(tmp_path)
    first = send(manager, clock, alice, bob, b"abcd")
    second = send(manager, clock, alice, bob, b"efgh")  # waits: one delivery at a time
    assert second not in {e.get("transfer") for e in events(bob)}
    stream(bob, first).errback(StreamFailed(FailReason.RECIPIENT_OFFLINE, "the link was cut"))
    assert {"type": "file-aborted", "transfer": first, "reason": "recipient-offline"} \
        in events(bob)
    assert {"type": "file-failed", "transfer": first, "reason": "recipient-offline"} \
        in events(alice)
    assert ("ended", (first, False)) in watch.seen
    assert {"type": "file-start", "transfer": second, "from": "alice", "name": "f_1",
            "size": 4, "original": "f"} in events(bob)
    stream(bob, second).callback(b"h")
    assert {"type": "file-delivered", "transfer": second, "to": "bob"} in events(alice)


def test_other_stream_failures_still_mean_the_addressee_is_gone(tmp_path: Path) -> None:
    """A plain failure (the connection went): recipient-offline, the addressee not told."""
    manager, clock, alice, bob, _ = setup(tmp_path)
    n = send(manager, clock, alice, bob, b"abcd")
    stream(bob, n).errback(ConnectionError("gone"))
    assert "file-aborted" not in [e["type"] for e in events(bob)]
    assert {"type": "file-failed", "transfer": n, "reason": "recipient-offline"} \
        in events(alice)
