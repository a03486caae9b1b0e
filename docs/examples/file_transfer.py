"""
Alice sends bob the 5-byte file ``hello``: every frame, both ways, in order.

This runs the real server in memory (:mod:`chatnet.testing`: no sockets, a
fake clock) and prints each frame as it crosses a connection: its 4-byte
length prefix in hex, then the JSON of a control frame, or the rest of a data
frame in hex (kind byte, transfer number, file bytes).  Run it from a
checkout with chatnet installed::

    python docs/examples/file_transfer.py
"""

from __future__ import annotations

import struct

from chatnet import frames
from chatnet.testing import FakeClient, make_server


def hexdump(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def show(arrow: str, payload: bytes) -> None:
    prefix = hexdump(struct.pack(">I", len(payload)))
    if payload[:1] == b"\x00":  # data frame: kind, transfer number, data
        kind, number, data = payload[:1], payload[1:5], payload[5:]
        body = f"{hexdump(kind)}  {hexdump(number)}  {hexdump(data)}"
    else:  # control frame: UTF-8 JSON
        body = payload.decode("utf-8")
    print(f"{arrow:<16} {prefix}  {body}")


def tap(name: str, client: FakeClient) -> None:
    """Print every frame the server writes to ``client``'s connection."""
    transport = client.transport
    write = transport.write
    buffer = bytearray()

    def write_and_show(data: bytes) -> None:
        write(data)
        buffer.extend(data)
        while len(buffer) >= 4:
            (n,) = struct.unpack(">I", buffer[:4])
            if len(buffer) < 4 + n:
                break
            show(f"server -> {name}", bytes(buffer[4 : 4 + n]))
            del buffer[: 4 + n]

    def write_sequence_and_show(data: list[bytes]) -> None:
        # file data goes out as a header and a chunk, without joining them
        for part in data:
            write_and_show(part)

    transport.write = write_and_show  # type: ignore[method-assign]
    transport.writeSequence = write_sequence_and_show  # type: ignore[method-assign]


def send(name: str, client: FakeClient, payload: bytes) -> None:
    """Deliver one frame to the server, then let the reactor turn end."""
    show(f"{name} -> server", payload)
    client.send_payload(payload)
    # The server writes each connection's control frames of a turn when the
    # turn ends, and starts granted uploads on the next turn: run them.
    server.advance(0)


server = make_server()
alice, bob = server.connect(), server.connect()
tap("alice", alice)
tap("bob", bob)

send("bob", bob, frames.Login(1, "bob").payload())
send("alice", alice, frames.Login(1, "alice").payload())
send("alice", alice, frames.Sendfile(2, "bob", "hello.txt", 5).payload())
send("alice", alice, frames.DataFrame(1, b"hello").payload())

print()
print("audit log (without the time stamps):")
for category, text in server.audit.lines:
    print(f"  [{category}] {text}")
