# mypy: disallow-untyped-calls=False
# (Relay inherits Twisted's unannotated sendString; a typed wrapper would add
# a call per frame to the ceiling this server measures.)
"""
The ceiling under chatnet's file transfers: a plain Twisted relay speaking
just enough of the chatnet protocol (login, sendfile, data frames) for the
load generator's files scenario, forwarding each of the sender's data frames
to the addressee as it comes.

No spool, no hash, no upload queue, no checks: ``sendfile`` is answered at
once (``ok``, then ``upload-start`` to the sender and ``file-start`` to the
addressee), every data frame goes out unchanged with ``sendString`` (the
transfer number is the sender's), and when the declared size has passed the
sender gets ``upload-done`` and ``file-delivered``, the addressee ``file-end``
without a ``sha256`` (the generator runs with ``--no-sha256`` against it and
checks the bytes only).  The one thing it keeps is what any relay needs not
to hold a whole file in memory: the sender's connection is registered as the
streaming producer of the addressee's, so Twisted stops reading from the
sender while more than its write buffer (64 KiB) waits for the addressee.

``python -m bench files`` runs it beside chatnet: chatnet's MB/s over this
one's is what the spool, the sha256 and the rules cost.  Not a server to
use: it trusts every byte.

    python bench/relay_server.py [PORT]
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import protocol, reactor  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.tcp import Server  # noqa: E402
from twisted.protocols.basic import Int32StringReceiver  # noqa: E402

_encode = json.JSONEncoder(separators=(",", ":")).encode
_decode = json.JSONDecoder().decode
users: dict[str, Relay] = {}


class Transfer:
    """One file on its way: who sends, who receives, how many bytes are still to come."""

    __slots__ = ("number", "sender", "receiver", "left")

    def __init__(self, number: int, sender: Relay, receiver: Relay, size: int) -> None:
        self.number = number
        self.sender = sender
        self.receiver = receiver
        self.left = size


transfers: dict[int, Transfer] = {}
numbers = iter(range(1, 2**31))


class Relay(Int32StringReceiver):
    MAX_LENGTH = 65_541
    name = ""
    transport: Server

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def send(self, **fields: object) -> None:
        self.sendString(_encode(fields).encode())

    def reply(self, request: dict[str, Any], **fields: object) -> None:
        self.send(type="ok", id=request.get("id"), **fields)

    def stringReceived(self, payload: bytes) -> None:
        if payload[:1] == b"\x00":
            transfer = transfers.get(int.from_bytes(payload[1:5], "big"))
            if transfer is None:  # its addressee has gone
                return
            transfer.receiver.sendString(payload)
            transfer.left -= len(payload) - 5
            if transfer.left <= 0:
                self.finish(transfer)
            return
        request = _decode(payload.decode())
        kind = request["type"]
        if kind == "sendfile":
            self.sendfile(request)
        elif kind == "login":
            self.name = request["username"]
            users[self.name.lower()] = self
            self.reply(request, username=self.name)
        elif kind == "exit":
            self.reply(request)
            self.transport.loseConnection()
        else:
            self.reply(request)

    def sendfile(self, request: dict[str, Any]) -> None:
        receiver = users[request["to"].lower()]
        transfer = Transfer(next(numbers), self, receiver, request["size"])
        transfers[transfer.number] = transfer
        if receiver.transport.producer is None:
            # while the addressee's write buffer is full, stop reading the sender
            receiver.transport.registerProducer(self.transport, True)
        self.reply(request, transfer=transfer.number, position=0)
        receiver.send(type="file-start", transfer=transfer.number, **{"from": self.name},
                      name=request["name"], size=request["size"])
        self.send(type="upload-start", transfer=transfer.number)
        if transfer.left <= 0:
            self.finish(transfer)

    def finish(self, transfer: Transfer) -> None:
        del transfers[transfer.number]
        self.send(type="upload-done", transfer=transfer.number, waited=0, seconds=0)
        transfer.receiver.send(type="file-end", transfer=transfer.number)
        self.send(type="file-delivered", transfer=transfer.number, to=transfer.receiver.name)

    def connectionLost(self, reason: object = None) -> None:
        if users.get(self.name.lower()) is self:
            del users[self.name.lower()]
        for user in users.values():
            if user.transport.producer is self.transport:
                user.transport.unregisterProducer()
        for number, transfer in list(transfers.items()):
            if self in (transfer.sender, transfer.receiver):
                del transfers[number]
                if transfer.receiver is self and transfer.sender.transport.connected:
                    transfer.sender.transport.resumeProducing()


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
