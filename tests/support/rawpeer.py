"""
A pretend server on ``127.0.0.1`` port 0 for client tests: it sends whatever
the test says, however hostile, where the real server would refuse it.

Plain sockets in threads, so a test can drive client processes with blocking
waits meanwhile.  Every wait is bounded.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

Reply = Callable[[dict[str, Any]], list[dict[str, Any]]]


def frame(obj: dict[str, Any]) -> bytes:
    """One length-prefixed control frame."""
    payload = json.dumps(obj).encode()
    return struct.pack(">I", len(payload)) + payload


def chat_replies(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Answer like a permissive chatnet server: ``ok`` to everything."""
    kind, ident = request.get("type"), request.get("id")
    if kind == "login":
        return [{"type": "ok", "id": ident, "username": request.get("username"),
                 "server": "rawpeer/0", "limits": {}}]
    if kind == "join":
        return [{"type": "ok", "id": ident, "room": request.get("room"),
                 "members": ["mallory"]}]
    if kind == "users":
        return [{"type": "ok", "id": ident, "users": ["mallory"], "more": False}]
    return [{"type": "ok", "id": ident}]


class RawPeer:
    """
    Listen on ``127.0.0.1`` port 0 and serve each connection in a thread.

    :param reply: the frames to answer each request with (``chat_replies``).
    :param raw: when given, the bytes to answer any input with instead of
        frames (an HTTP server, say); the connection is closed after them.
    :param silent: read and never answer.
    """

    def __init__(self, reply: Reply = chat_replies, raw: bytes | None = None,
                 silent: bool = False) -> None:
        self.reply, self.raw, self.silent = reply, raw, silent
        self.requests: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._conns: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._cond:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                if self.raw is not None:
                    conn.sendall(self.raw)
                    conn.close()
                    return
                buffer += chunk
                while len(buffer) >= 4:
                    (n,) = struct.unpack(">I", buffer[:4])
                    if len(buffer) < 4 + n:
                        break
                    request = json.loads(buffer[4 : 4 + n])
                    buffer = buffer[4 + n :]
                    with self._cond:
                        self.requests.append(request)
                        self._cond.notify_all()
                    if not self.silent:
                        conn.sendall(b"".join(frame(f) for f in self.reply(request)))
                    if request.get("type") == "exit":
                        conn.close()
                        return
        except OSError:
            return

    def wait_for(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        """The first request of type ``kind``, once it has come."""
        with self._cond:
            found = self._cond.wait_for(
                lambda: next((r for r in self.requests if r.get("type") == kind), None),
                timeout,
            )
        if found is None:
            raise AssertionError(f"no {kind!r} request within {timeout}s: {self.requests}")
        return found

    def push(self, obj: dict[str, Any]) -> None:
        """Send a frame to every connection."""
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            conn.sendall(frame(obj))

    def close(self) -> None:
        self._listener.close()
        with self._cond:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
