"""
The protocol with nothing but the standard library: two blocking sockets,
alice and bob, chat and pass a file through a running server.

Start a server, then run this against it::

    twistd -n chatnet --port tcp:8080:interface=127.0.0.1 &
    python docs/examples/raw_client.py 127.0.0.1 8080
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import sys
from typing import Any

Frame = dict[str, Any] | tuple[int, bytes]


class Connection:
    """One connection: length-prefixed frames over a blocking socket."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.next_id = 1

    def send_payload(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def send_data(self, transfer: int, data: bytes) -> None:
        self.send_payload(b"\x00" + struct.pack(">I", transfer) + data)

    def recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    def receive(self) -> Frame:
        """The next frame: a dict, or ``(transfer, data)`` for a data frame."""
        (n,) = struct.unpack(">I", self.recv_exact(4))
        payload = self.recv_exact(n)
        if payload[0] == 0:
            (transfer,) = struct.unpack(">I", payload[1:5])
            return transfer, payload[5:]
        return json.loads(payload.decode("utf-8"))

    def request(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send a request and return its reply; print events seen meanwhile."""
        ident = self.next_id
        self.next_id += 1
        self.send_payload(json.dumps({"type": type, "id": ident, **fields}).encode())
        while True:
            frame = self.receive()
            if isinstance(frame, dict) and frame.get("id") == ident:
                return frame
            print("  event:", frame)

    def wait_for(self, type: str) -> dict[str, Any]:
        while True:
            frame = self.receive()
            if isinstance(frame, dict) and frame["type"] == type:
                return frame
            print("  event:", frame)


def main(host: str, port: int) -> None:
    alice, bob = Connection(host, port), Connection(host, port)
    print(alice.request("login", username="alice"))
    print(bob.request("login", username="bob"))
    print(alice.request("join", room="lobby"))
    print(bob.request("join", room="lobby"))
    print(bob.request("broadcast", text="hi alice"))
    print(alice.wait_for("message"))
    print(alice.request("whisper", to="bob", text="a secret"))
    print(bob.wait_for("whisper"))

    content = b"hello"
    reply = alice.request("sendfile", to="bob", name="hello.txt", size=len(content))
    transfer = reply["transfer"]
    print(alice.wait_for("upload-start"))
    alice.send_data(transfer, content)  # one frame: at most 64 KiB of data
    print(alice.wait_for("upload-done"))

    start = bob.wait_for("file-start")
    received = b""
    while len(received) < start["size"]:
        frame = bob.receive()
        if isinstance(frame, tuple) and frame[0] == transfer:
            received += frame[1]
    end = bob.wait_for("file-end")
    assert end["sha256"] == hashlib.sha256(received).hexdigest()
    print(f"bob received {start['name']}: {received!r}")
    print(alice.wait_for("file-delivered"))

    print(bob.request("exit"))
    print(alice.request("exit"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1",
         int(sys.argv[2]) if len(sys.argv) > 2 else 8080)
