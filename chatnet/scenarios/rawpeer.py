"""
A raw chatnet peer for the scenarios: the wire protocol by hand, standard
library only, driven through stdin.

Run as ``python -c "from chatnet.scenarios.rawpeer import main; main()" HOST PORT``.
Input lines:

``{"type": ...}``
    a request, sent as a control frame as it is;
``!upload T PATH [LIMIT]``
    the bytes of ``PATH`` (at most ``LIMIT``) as data frames of transfer ``T``;
    then ``{"type": "sent", "transfer": T, "bytes": N}`` is printed.

Every frame from the server is printed as one JSON line (a data frame as
``{"type": "data", "transfer": T, "bytes": N}``); when the server closes the
connection ``{"type": "closed"}`` is printed and the process exits with
status 0.  End of input closes the connection and exits.

It exists because the real client does everything right and at full speed:
a scenario needs uploads that hold a slot until it says so, and peers that
lie about a file's size.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
from typing import Any

CHUNK = 65536
_LENGTH = struct.Struct(">I")
_lock = threading.Lock()


def emit(obj: dict[str, Any]) -> None:
    """Print one JSON line, whole, whichever thread calls."""
    with _lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    parts = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_frames(sock: socket.socket) -> None:
    """Print every frame the server sends; exit when it closes."""
    try:
        while True:
            head = _read_exactly(sock, 4)
            if head is None:
                break
            payload = _read_exactly(sock, _LENGTH.unpack(head)[0])
            if payload is None:
                break
            if payload[:1] == b"\x00":
                number = _LENGTH.unpack(payload[1:5])[0]
                emit({"type": "data", "transfer": number, "bytes": len(payload) - 5})
            else:
                try:
                    emit(json.loads(payload))
                except ValueError:
                    emit({"type": "?", "raw": payload.decode("utf-8", "replace")})
    except OSError as e:
        emit({"type": "closed", "error": str(e)})
    else:
        emit({"type": "closed"})
    os._exit(0)


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def upload(sock: socket.socket, transfer: int, path: str, limit: int | None) -> int:
    """Send the file as data frames; :returns: the bytes sent."""
    sent = 0
    with open(path, "rb") as f:
        while limit is None or sent < limit:
            want = CHUNK if limit is None else min(CHUNK, limit - sent)
            data = f.read(want)
            if not data:
                break
            sock.sendall(frame(b"\x00" + _LENGTH.pack(transfer) + data))
            sent += len(data)
    return sent


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    host, port = args[0], int(args[1])
    sock = socket.create_connection((host, port), timeout=30)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=read_frames, args=(sock,), daemon=True).start()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("{"):
                sock.sendall(frame(line.encode("utf-8")))
            elif line.startswith("!upload "):
                _, number, path, *rest = line.split()
                limit = int(rest[0]) if rest else None
                sent = upload(sock, int(number), path, limit)
                emit({"type": "sent", "transfer": int(number), "bytes": sent})
            else:
                emit({"type": "?", "input": line})
        except OSError as e:
            emit({"type": "send-failed", "error": str(e)})
    try:
        sock.close()
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
