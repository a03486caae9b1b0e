"""
Servers that come and go, in memory: a :class:`~chatnet.client.link.Link`
whose connections are ``StringTransport`` pairs on a ``Clock``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chatnet import frames
from chatnet.client.core import ClientCore
from chatnet.client.events import ClientEvent
from chatnet.client.link import Link
from chatnet.client.protocol import ClientProtocol
from chatnet.client.reconnect import Policy, Server
from support import raw
from support.client_harness import parse_stream, result_of

A, B = Server("a", 1), Server("b", 2)


class Net:
    """Servers that are up or down; each connection a StringTransport."""

    def __init__(self, tmp_path: Any, *servers: Server, give_up_after: float | None = None) -> None:
        self.clock = Clock()
        self.core = ClientCore(self.clock, str(tmp_path / "dl"))
        self.up = set(servers)
        self.tried: list[Server] = []
        self.protocol: ClientProtocol | None = None
        self.transport = StringTransport()
        policy = Policy(list(servers), self.clock.seconds, random=lambda: 0.0,
                        give_up_after=give_up_after)
        self.link = Link(self.core, policy, self.connect_to)
        self.events: list[ClientEvent] = []
        self.core.subscribe(self.events.append)

    def connect_to(self, server: Server) -> Deferred[Any]:
        self.tried.append(server)
        if server not in self.up:
            return fail(ConnectionRefusedError())
        self.protocol = ClientProtocol(self.core)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        return succeed(self.protocol)

    def requests(self) -> list[dict[str, Any]]:
        data = self.transport.value()
        self.transport.clear()
        return [f.fields for f in parse_stream(data) if isinstance(f, raw.Request)]

    def answer(self, type: str, **fields: Any) -> None:
        (req,) = self.requests()
        assert req["type"] == type, req
        assert self.protocol is not None
        self.protocol.dataReceived(raw.encode_frame({"type": "ok", "id": req["id"], **fields}))

    def refuse(self, code: str, message: str) -> None:
        (req,) = self.requests()
        assert self.protocol is not None
        self.protocol.dataReceived(raw.encode_frame(
            {"type": "error", "id": req["id"], "code": code, "message": message}))

    def login(self, name: str = "alice", password: str | None = None) -> None:
        d = self.core.login(name, password)
        self.answer("login", username=name, server="chatnet/test", limits={})
        result_of(d)
        self.link.logged_in(name, password)

    def join(self, room: str) -> None:
        d = self.core.request(frames.Join(room=room))
        self.answer("join", room=room, members=["alice"])
        self.core.roster.room = result_of(d).room  # type: ignore[attr-defined]

    def drop(self, reason: Exception | None = None) -> None:
        assert self.protocol is not None
        self.protocol.connectionLost(Failure(reason or ConnectionLost()))

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def opened(net: Net) -> None:
    """The first connection, to the first server up."""
    result_of(ensureDeferred(net.link.open()))
