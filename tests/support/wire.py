"""A blocking socket client that speaks chatnet frames, for tests against a real server process."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any


class Wire:
    """A blocking socket client speaking frames; every read is bounded."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.seen: list[Any] = []

    def send(self, **obj: Any) -> None:
        payload = json.dumps(obj).encode()
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def send_data(self, transfer: int, data: bytes) -> None:
        self.sock.sendall(struct.pack(">IBI", len(data) + 5, 0, transfer) + data)

    def read(self) -> Any:
        """The next frame (a dict, or (transfer, bytes)), or None at end of stream."""
        while True:
            if len(self.buffer) >= 4:
                (n,) = struct.unpack(">I", self.buffer[:4])
                if len(self.buffer) >= 4 + n:
                    payload, self.buffer = self.buffer[4 : 4 + n], self.buffer[4 + n :]
                    frame = ((struct.unpack(">I", payload[1:5])[0], payload[5:])
                             if payload[:1] == b"\x00" else json.loads(payload))
                    self.seen.append(frame)
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def until(self, type: str, **fields: Any) -> dict[str, Any]:
        while True:
            frame = self.read()
            assert frame is not None, f"connection closed before {type}; saw {self.seen}"
            if isinstance(frame, dict) and frame["type"] == type and all(
                    frame.get(k) == v for k, v in fields.items()):
                return frame

    def rest(self) -> list[Any]:
        """Every frame until the server closes the connection."""
        frames = []
        while (frame := self.read()) is not None:
            frames.append(frame)
        return frames

    def login(self, name: str) -> None:
        self.send(type="login", id="login", username=name)
        assert self.until("ok", id="login")["username"] == name
