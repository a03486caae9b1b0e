"""
An in-memory chatnet server for tests: no sockets, no real time.

:func:`make_server` builds a server on a :class:`~twisted.internet.task.Clock`
whose connections are :class:`~twisted.internet.testing.StringTransport`
objects; :class:`FakeClient` speaks frames to one of them::

    server = make_server()
    alice = server.connect()
    assert alice.request("login", username="alice")["type"] == "ok"

:func:`connect_pump` joins any client protocol to the server over
:mod:`twisted.test.iosim` instead, for testing a real client against a real
server in memory.
"""

from __future__ import annotations

import itertools
import json
import struct
import weakref
from collections.abc import Mapping
from typing import Any

import argon2
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim

from chatnet import auth, frames
from chatnet.accounts import Accounts
from chatnet.config import Settings
from chatnet.hub import Hub
from chatnet.model import Directory
from chatnet.protocol import ChatServerFactory, ChatServerProtocol
from chatnet.spool import Spool
from chatnet.stats import Stats
from chatnet.transfers import TransferManager

_ports = itertools.count(40000)

#: argon2id at its cheapest: for tests only (a real file uses chatnet-passwd's defaults).
quick_hasher = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def make_accounts(passwords: dict[str, str], path: str | None = None) -> Accounts:
    """Accounts for ``{username: password}``, hashed quickly (for tests)."""
    return Accounts({name.lower(): quick_hasher.hash(pw) for name, pw in passwords.items()}, path)


class RecordingAudit:
    """An audit sink that keeps ``(category, text)`` pairs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        #: The fields of each line, in the same order.
        self.fields: list[Mapping[str, object] | None] = []

    def __call__(self, category: str, text: str, fields: Mapping[str, object] | None = None) -> None:
        self.lines.append((category, text))
        self.fields.append(fields)

    def category(self, name: str) -> list[str]:
        return [text for cat, text in self.lines if cat == name]


class TestServer:
    """A server's shared state and factory, on a fake clock."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, settings: Settings, spool_dir: str | None) -> None:
        self.settings = settings
        self.clock = Clock()
        self.audit = RecordingAudit()
        #: With no ``spool_dir``, a temporary folder of its own, removed by
        #: :meth:`close`, or else once this server is garbage collected.
        self.spool = Spool(spool_dir)
        self._close_spool = weakref.finalize(self, self.spool.close)
        self.stats = Stats(time_requests=True, sample_every=1)
        self.transfers = TransferManager(
            settings, self.spool, self.clock, self.audit, self.stats
        )
        self.hub = Hub(
            settings, Directory(settings.room_capacity), self.transfers, self.audit,
            now=self.clock.seconds, stats=self.stats,
        )
        if settings.accounts is not None:  # checked at once, not in a thread
            auth.install(self.hub, settings.accounts, self.clock, auth.run_now)
        self.factory = ChatServerFactory(self.hub, self.clock)
        self.clients: list[FakeClient] = []

    def connect(self, host: str = "127.0.0.1") -> FakeClient:
        """A new connection, as if a client had just connected."""
        peer = IPv4Address("TCP", host, next(_ports))
        proto = self.factory.buildProtocol(peer)
        assert proto is not None  # (a factory may refuse; ours never does)
        transport = StringTransport(peerAddress=peer)
        client = FakeClient(self, proto, transport)
        proto.makeConnection(transport)
        self.clients.append(client)
        return client

    def close(self) -> None:
        """Remove the spool files, and the spool folder when the server made it."""
        self._close_spool()

    def advance(self, seconds: float = 0) -> None:
        """Move the clock and complete any close the server asked for."""
        self.clock.advance(seconds)
        self.settle()

    def flush(self) -> None:
        """Write what the server batched for the end of the reactor turn."""
        if self.factory.batch is not None:
            self.factory.batch.flush()

    def settle(self) -> None:
        """Report connection loss on every transport the server closed."""
        self.flush()
        for client in self.clients:
            if client.transport.disconnecting and not client.lost:
                client.lose(ConnectionDone())


class FakeClient:
    """One connection to a :class:`TestServer`, seen from the client side."""

    def __init__(
        self, server: TestServer, protocol: ChatServerProtocol, transport: StringTransport
    ) -> None:
        self.server = server
        self.protocol = protocol
        self.transport = transport
        self.lost = False
        self._ids = itertools.count(1)
        self._buffer = b""
        self._seen: list[Any] = []

    # sending

    def send_payload(self, payload: bytes) -> None:
        self.protocol.dataReceived(struct.pack(">I", len(payload)) + payload)

    def send(self, obj: dict[str, Any]) -> None:
        self.send_payload(json.dumps(obj).encode("utf-8"))

    def send_data(self, transfer: int, data: bytes) -> None:
        self.send_payload(frames.DataFrame(transfer, data).payload())

    def request(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send a request with a fresh ``id``; :returns: its reply."""
        ident = next(self._ids)
        self.send({"type": type, "id": ident, **fields})
        for frame in self.frames():
            if isinstance(frame, dict) and frame.get("id") == ident:
                return frame
        raise AssertionError(f"no reply to {type} #{ident}; saw {self._seen[-5:]}")

    def login(self, name: str) -> dict[str, Any]:
        reply = self.request("login", username=name)
        assert reply["type"] == "ok", reply
        return reply

    # receiving

    def frames(self) -> list[Any]:
        """
        Frames received since the last call: dicts for control frames,
        ``(transfer, bytes)`` tuples for data frames.
        """
        self.server.flush()
        self._buffer += self.transport.value()
        self.transport.clear()
        out: list[Any] = []
        while len(self._buffer) >= 4:
            (n,) = struct.unpack(">I", self._buffer[:4])
            if len(self._buffer) < 4 + n:
                break
            payload, self._buffer = self._buffer[4 : 4 + n], self._buffer[4 + n :]
            if payload[:1] == b"\x00":
                out.append((struct.unpack(">I", payload[1:5])[0], payload[5:]))
            else:
                out.append(json.loads(payload))
        self._seen.extend(out)
        return out

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Control frames received since the last call, of ``type`` if given."""
        return [
            f for f in self.frames()
            if isinstance(f, dict) and (type is None or f.get("type") == type)
        ]

    def history(self, type: str) -> list[dict[str, Any]]:
        """Every control frame of ``type`` received so far, read or not."""
        self.frames()
        return [f for f in self._seen if isinstance(f, dict) and f.get("type") == type]

    # the connection

    def lose(self, reason: Exception | None = None) -> None:
        """The connection drops (``ConnectionLost`` unless told otherwise)."""
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(reason or ConnectionLost()))


def make_server(settings: Settings | None = None, spool_dir: str | None = None) -> TestServer:
    """A fresh in-memory server (default settings: the contract's)."""
    return TestServer(settings or Settings(), spool_dir)


def connect_pump(server: TestServer, client: IProtocol) -> iosim.IOPump:
    """
    Connect ``client`` to ``server`` through :mod:`twisted.test.iosim`;
    call ``pump.flush()`` to move bytes both ways.
    """
    peer = IPv4Address("TCP", "127.0.0.1", next(_ports))
    server_proto = server.factory.buildProtocol(peer)
    pump: iosim.IOPump = iosim.connect(
        server_proto, iosim.makeFakeServer(server_proto),
        client, iosim.makeFakeClient(client),
        greet=True, clock=server.clock,
    )
    return pump
