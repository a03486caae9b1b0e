"""
The client pointed at something that is not a chatnet server (a tiny HTTP
listener, a listener that never answers) ends with a clear message.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import start_client
from support.rawpeer import RawPeer

pytestmark = pytest.mark.scenario

HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@pytest.fixture
def http() -> Iterator[RawPeer]:
    peer = RawPeer(raw=HTTP_400)
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def silent() -> Iterator[RawPeer]:
    peer = RawPeer(silent=True)
    try:
        yield peer
    finally:
        peer.close()


def test_http_server_is_named(http: RawPeer, tmp_path: Path) -> None:
    """An HTTP answer to login: 'not a chatnet server', exit status 3, at once."""
    client = start_client(http.port, "--plain", "-u", "alice", cwd=tmp_path)
    try:
        assert client.wait(timeout=20) == 3, client.describe()
        assert client.err.lines == ["chatnet-client: not a chatnet server (it answered like HTTP)"]
    finally:
        client.kill()


def test_no_answer_to_login_times_out(silent: RawPeer, tmp_path: Path) -> None:
    """A listener that never answers: the client gives up after --login-timeout."""
    started = time.monotonic()
    client = start_client(silent.port, "--plain", "-u", "alice", "--login-timeout", "1",
                          cwd=tmp_path)
    try:
        assert client.wait(timeout=20) == 3, client.describe()
        assert silent.requests and silent.requests[0]["type"] == "login"
        assert time.monotonic() - started >= 1.0
        assert client.err.lines == [
            "chatnet-client: no answer to login within 1 s: the server is stuck, "
            "or it is not a chatnet server"]
    finally:
        client.kill()
