"""Small helpers for the server's tests, on top of :mod:`chatnet.testing`: log in, send files, compare frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatnet.config import Settings
from chatnet.testing import FakeClient, TestServer, make_server


def new_server(spool: Path, **settings: Any) -> TestServer:
    """An in-memory server spooling into ``spool``, with some settings changed."""
    return make_server(Settings(**settings), spool_dir=str(spool))


def logged_in(server: TestServer, *names: str, room: str | None = None) -> list[FakeClient]:
    """Connect and log in one client per name, optionally all in ``room``."""
    clients = []
    for name in names:
        client = server.connect()
        client.login(name)
        if room is not None:
            assert client.request("join", room=room)["type"] == "ok"
        clients.append(client)
    for client in clients:
        client.frames()
    return clients


def without_ts(frames: list[Any]) -> list[Any]:
    """Control frames with their ``ts`` field dropped, for exact comparison."""
    out = []
    for f in frames:
        if isinstance(f, dict) and "ts" in f:
            f = {k: v for k, v in f.items() if k != "ts"}
        out.append(f)
    return out


def error_code(reply: dict[str, Any]) -> str | None:
    """The ``code`` of an error reply (``None`` for ``ok``)."""
    assert reply["type"] in ("ok", "error"), reply
    if reply["type"] == "error":
        assert reply["message"]
    return reply.get("code")


def offer(sender: FakeClient, to: str, name: str, size: int) -> dict[str, Any]:
    reply = sender.request("sendfile", to=to, name=name, size=size)
    assert reply["type"] == "ok", reply
    return reply


def start(server: TestServer, sender: FakeClient, to: str, name: str, size: int) -> int:
    """Offer a file and let its upload start; :returns: its transfer number."""
    t: int = offer(sender, to, name, size)["transfer"]
    server.advance()
    assert sender.events("upload-start")[-1]["transfer"] == t
    return t


def upload(server: TestServer, sender: FakeClient, to: str, name: str, data: bytes) -> int:
    """Send a whole file; :returns: its transfer number."""
    t = start(server, sender, to, name, len(data))
    for i in range(0, len(data), 65536):
        sender.send_data(t, data[i : i + 65536])
    return t


def received(client: FakeClient, t: int) -> bytes:
    """The file bytes of transfer ``t`` among the client's new frames."""
    return b"".join(f[1] for f in client.frames() if isinstance(f, tuple) and f[0] == t)
