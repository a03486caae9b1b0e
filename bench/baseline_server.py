# mypy: disallow-untyped-calls=False
# (Relay inherits Twisted's unannotated sendString; a typed wrapper would add
# a call per message to the floor this server measures.)
"""
The floor under chatnet: a bare Twisted broadcast server speaking just enough
of the chatnet protocol (login, join, broadcast, exit) for the fan-out and
latency scenarios, with no checks, no audit log and no files.

``python -m bench --baseline`` runs it beside chatnet: the gap between the two
is what chatnet's rules cost.  Not a server to use: it trusts every byte.

    python bench/baseline_server.py [PORT]
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import protocol, reactor  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.interfaces import ITCPTransport  # noqa: E402
from twisted.protocols.basic import Int32StringReceiver  # noqa: E402

_encode = json.JSONEncoder(separators=(",", ":")).encode
_decode = json.JSONDecoder().decode
rooms: dict[str, list[Relay]] = {}


class Relay(Int32StringReceiver):
    MAX_LENGTH = 65_541
    name = ""
    room: str | None = None
    transport: ITCPTransport

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def reply(self, request: dict[str, Any], **fields: object) -> None:
        self.sendString(_encode({"type": "ok", "id": request.get("id"), **fields}).encode())

    def stringReceived(self, payload: bytes) -> None:
        request = _decode(payload.decode())
        kind = request["type"]
        if kind == "broadcast":
            members = rooms.get(self.room or "", ())
            event = _encode({"type": "message", "room": self.room, "from": self.name,
                             "text": request["text"], "ts": time.time()}).encode()
            for member in members:
                if member is not self:
                    member.sendString(event)
            self.reply(request, delivered=len(members) - 1)
        elif kind == "login":
            self.name = request["username"]
            self.reply(request, username=self.name)
        elif kind == "join":
            self.leave()
            self.room = request["room"].lower()
            members = rooms.setdefault(self.room, [])
            members.append(self)
            self.reply(request, room=request["room"], members=[m.name for m in members])
        elif kind == "exit":
            self.reply(request)
            self.transport.loseConnection()
        else:
            self.reply(request)

    def leave(self) -> None:
        if self.room is not None:
            members = rooms[self.room]
            members.remove(self)
            if not members:
                del rooms[self.room]
            self.room = None

    def connectionLost(self, reason: object = None) -> None:
        self.leave()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    factory = protocol.ServerFactory()
    factory.protocol = Relay
    listening = reactor.listenTCP(port, factory, backlog=1024, interface="127.0.0.1")
    address = listening.getHost()
    assert isinstance(address, IPv4Address)
    print(f"chatnet listening on 127.0.0.1:{address.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
