"""An in-memory connection for client tests: a core on a StringTransport."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatnet.client.core import ClientCore
from chatnet.client.events import ClientEvent
from chatnet.client.protocol import ClientProtocol
from support import raw


@dataclass
class Harness:
    """A connected core, its transport and clock, and what it emitted."""

    core: ClientCore
    protocol: ClientProtocol
    transport: StringTransport
    clock: Clock
    events: list[ClientEvent] = field(default_factory=list)

    def feed(self, *frames: dict[str, Any]) -> None:
        """Deliver control frames from the server."""
        for frame in frames:
            self.protocol.dataReceived(raw.encode_frame(frame))

    def feed_data(self, transfer: int, data: bytes) -> None:
        """Deliver one data frame from the server."""
        self.protocol.dataReceived(raw.data_frame(transfer, data))

    def sent(self) -> list[raw.Frame]:
        """Every frame written since the last call, decoded."""
        data = self.transport.value()
        self.transport.clear()
        return parse_stream(data)

    def requests(self) -> list[dict[str, Any]]:
        """The control frames written since the last call."""
        return [f.fields for f in self.sent() if isinstance(f, raw.Request)]

    def reply(self, request: dict[str, Any], **fields: Any) -> None:
        """Answer ``request`` with ``ok``."""
        self.feed({"type": "ok", "id": request["id"], **fields})

    def kinds(self) -> list[str]:
        """The kinds of transfer events and types of server events so far."""
        out = []
        for e in self.events:
            kind = getattr(e, "kind", None) or getattr(e, "frame", {}).get("type")
            out.append(kind or type(e).__name__)
        return out


def parse_stream(data: bytes) -> list[raw.Frame]:
    """Split length-prefixed frames and decode each."""
    frames = []
    while data:
        (n,) = struct.unpack(">I", data[:4])
        frames.append(raw.decode(data[4 : 4 + n]))
        data = data[4 + n :]
    return frames


class Pipe(StringTransport):
    """
    A transport whose buffer fills as a socket's does: past ``limit`` unread
    bytes it pauses its producer; :meth:`drain` reads everything and
    resumes it.
    """

    def __init__(self, limit: int = 2**30) -> None:
        super().__init__()
        self.limit = limit
        self.paused = False

    def write(self, data: bytes) -> None:
        super().write(data)
        self._check()

    def writeSequence(self, data: Any) -> None:
        super().writeSequence(data)
        self._check()

    def _check(self) -> None:
        if not self.paused and len(self.io.getvalue()) >= self.limit and self.producer:
            self.paused = True
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        """What was written; then the producer may write again."""
        data: bytes = self.value()
        self.clear()
        if self.paused and self.producer is not None:
            self.paused = False
            self.producer.resumeProducing()
        return data


def connected(
    downloads: str, login: bool = True, transport: StringTransport | None = None, **limits: Any
) -> Harness:
    """A core connected over a StringTransport (or ``transport``), logged in as alice."""
    clock = Clock()
    core = ClientCore(clock, downloads)
    protocol = ClientProtocol(core)
    transport = transport if transport is not None else StringTransport()
    protocol.makeConnection(transport)
    h = Harness(core, protocol, transport, clock)
    core.subscribe(h.events.append)
    if login:
        d = core.login("alice")
        (req,) = h.requests()
        h.reply(req, username="alice", server="chatnet/test", limits={
            "username": 16, "room": 32, "room_capacity": 15, "text": 4096,
            "file_size": 3 * 1024 * 1024, "upload_slots": 5, "upload_queue": 100,
            **limits,
        })
        result_of(d)
    return h


T = TypeVar("T")


def result_of(d: Deferred[T]) -> T:
    """The result a Deferred already has; re-raises a failure."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "Deferred has no result yet"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    result: T = results[0]
    return result


def has_result(d: Deferred[Any]) -> bool:
    """Whether ``d`` fired (its result is kept)."""
    results: list[Any] = []
    def keep(result: Any) -> Any:
        results.append(result)
        return result

    d.addBoth(keep)
    return bool(results)
