"""
Helpers for the server's integration tests: a ChatService on the global
reactor at 127.0.0.1 port 0, and a small frame-level client.

Every wait is bounded: :meth:`ChatClient.until` fails with a
:class:`~twisted.internet.defer.TimeoutError` instead of hanging.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from support import raw
from twisted.internet import reactor, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from chatnet import codec, frames
from chatnet.config import Settings
from chatnet.service import ChatService

T = TypeVar("T")

WAIT = 10.0  # seconds: the bound on every wait


class ChatClient(Int32StringReceiver):
    """A client that records every frame and can wait for conditions on them."""

    MAX_LENGTH = codec.MAX_PAYLOAD
    #: set by makeConnection; always TCP here
    transport: tcp.Client

    def __init__(self, name: str = "") -> None:
        self.name = name
        #: Control frames in arrival order.
        self.frames: list[dict[str, Any]] = []
        #: File bytes received, by transfer number.
        self.data: dict[int, bytearray] = defaultdict(bytearray)
        #: Every frame in arrival order: a control frame's type, or
        #: ``("data", transfer)`` for a data frame.
        self.timeline: list[Any] = []
        self.closed = False
        self._ids = itertools.count(1)
        self._watchers: list[tuple[Callable[[], Any], Deferred[Any]]] = []
        self._lost: Deferred[None] = Deferred()

    # the wire

    def stringReceived(self, payload: bytes) -> None:
        frame = raw.decode(payload)
        if isinstance(frame, raw.DataFrame):
            self.data[frame.transfer] += frame.data
            self.timeline.append(("data", frame.transfer))
        elif isinstance(frame, raw.Request):
            self.frames.append(frame.fields)
            self.timeline.append(frame.type)
        else:
            raise AssertionError(f"{self.name}: server sent a bad frame: {payload[:80]!r}")
        self._check()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True
        self._lost.callback(None)
        self._check()

    # sending

    def send(self, **obj: Any) -> None:
        self.sendString(json.dumps(obj).encode("utf-8"))

    def send_data(self, transfer: int, data: bytes) -> None:
        for i in range(0, len(data), codec.MAX_DATA):
            self.sendString(frames.DataFrame(transfer, data[i : i + frames.MAX_DATA]).payload())

    async def request(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send a request with a fresh id; :returns: its reply."""
        ident = next(self._ids)
        self.send(type=type, id=ident, **fields)
        return await self.until(lambda: self.reply_to(ident), f"reply to {type}")

    async def login(self, name: str) -> dict[str, Any]:
        self.name = name
        reply = await self.request("login", username=name)
        assert reply["type"] == "ok", reply
        return reply

    # receiving

    def reply_to(self, ident: int | str) -> dict[str, Any] | None:
        for f in self.frames:
            if f.get("id") == ident and f["type"] in ("ok", "error"):
                return f
        return None

    def of(self, type: str, **fields: Any) -> list[dict[str, Any]]:
        """Control frames of ``type`` whose fields match ``fields``."""
        return [f for f in self.frames if f["type"] == type
                and all(f.get(k) == v for k, v in fields.items())]

    def first(self, type: str, **fields: Any) -> dict[str, Any] | None:
        found = self.of(type, **fields)
        return found[0] if found else None

    def until(
        self, condition: Callable[[], T | None], what: str = "", timeout: float = WAIT
    ) -> Deferred[T]:
        """
        Fire with ``condition()`` once it is true (checked on every frame and
        on connection loss); fail after ``timeout`` seconds.
        """
        value = condition()
        if value:
            return succeed(value)
        d: Deferred[T] = Deferred()
        self._watchers.append((condition, d))

        def timed_out(failure: Failure) -> Failure:
            assert failure.value is not None
            failure.value.args = (f"{self.name}: timed out after {timeout}s waiting for "
                                  f"{what or condition}; last frames: {self.frames[-5:]}",)
            return failure

        d.addTimeout(timeout, reactor)
        d.addErrback(timed_out)
        return d

    def event(self, type: str, timeout: float = WAIT, **fields: Any) -> Deferred[dict[str, Any]]:
        """Wait for the first control frame of ``type`` matching ``fields``."""
        return self.until(lambda: self.first(type, **fields), f"{type} {fields}", timeout)

    def wait_closed(self, timeout: float = WAIT) -> Deferred[bool]:
        return self.until(lambda: self.closed, "the connection to close", timeout)

    def _check(self) -> None:
        for watcher in list(self._watchers):
            condition, d = watcher
            if d.called:
                self._watchers.remove(watcher)
                continue
            value = condition()
            if value:
                self._watchers.remove(watcher)
                d.callback(value)


async def connect(port: int, name: str = "") -> ChatClient:
    """A ChatClient connected to 127.0.0.1:``port``."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=WAIT)
    client: ChatClient = await connectProtocol(endpoint, ChatClient(name))
    return client


async def logged_in(port: int, name: str, room: str | None = None) -> ChatClient:
    """A connected, logged-in client, optionally in ``room``."""
    client = await connect(port, name)
    await client.login(name)
    if room is not None:
        reply = await client.request("join", room=room)
        assert reply["type"] == "ok", reply
    return client


class LiveServer:
    """A ChatService listening on 127.0.0.1, on the global reactor."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        settings.setdefault("shutdown_grace", 1.0)
        self.log_path = tmp_path / "server.log"
        self.spool_dir = tmp_path / "spool"
        self.service = ChatService(
            "tcp:0:interface=127.0.0.1", Settings(**settings),
            audit_log=str(self.log_path), spool_dir=str(self.spool_dir), reactor=reactor,
        )
        self.service.privilegedStartService()
        self.service.startService()
        assert self.service.port is not None
        address = self.service.port.getHost()
        assert isinstance(address, IPv4Address)
        self.port: int = address.port
        self.clients: list[ChatClient] = []
        self._audit_waiters: list[tuple[str, str, Deferred[str]]] = []
        assert self.service.hub is not None
        self.service.hub.audit.observe(self._audit_event)  # type: ignore[attr-defined]

    def _audit_event(self, event: dict[str, Any]) -> None:
        text = event["audit_text"]
        for waiter in list(self._audit_waiters):
            category, needle, d = waiter
            if event["audit_category"] == category and needle in text:
                self._audit_waiters.remove(waiter)
                # On the next turn: the server finishes what logged the line first.
                reactor.callLater(0, d.callback, text)

    def audit_event(self, category: str, needle: str, timeout: float = WAIT) -> Deferred[str]:
        """
        Fires with the text of the next audit event of ``category`` holding
        ``needle``, once the server has finished the step that logged it.
        """
        d: Deferred[str] = Deferred()
        self._audit_waiters.append((category, needle, d))
        return d.addTimeout(timeout, reactor)

    async def client(self, name: str, room: str | None = None) -> ChatClient:
        client = await logged_in(self.port, name, room)
        self.clients.append(client)
        return client

    def spool_files(self) -> list[Path]:
        return sorted(self.spool_dir.glob("*")) if self.spool_dir.exists() else []

    def log_lines(self) -> list[str]:
        self.service._observer.flush()
        return self.log_path.read_text(encoding="utf-8").splitlines()

    async def stop(self) -> None:
        """Disconnect the test's clients, then stop the service."""
        for client in self.clients:
            if not client.closed:
                client.transport.abortConnection()
        for client in self.clients:
            await client.wait_closed()
        await self.service.stopService()
