"""
The operator's view of a real ``twistd -n chatnet`` process: ``/metrics``
scraped over HTTP after real traffic, ``/healthz`` through a shutdown.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import urllib.error
import urllib.request
from pathlib import Path

from support.processes import Server, start_server
from support.wire import Wire

METRICS_LINE = r"chatnet metrics on http://127\.0\.0\.1:(\d+)/metrics"


def metrics_server(tmp_path: Path, *args: str) -> tuple[Server, int]:
    server = start_server(tmp_path, "--metrics", "tcp:0:interface=127.0.0.1", *args)
    port = int(server.out.wait_for(METRICS_LINE).group(1))
    return server, port


def get(port: int, path: str) -> tuple[int, str]:
    """A real HTTP GET; :returns: the status and the body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as ``{'name{labels}': value}``, comments dropped."""
    status, text = get(port, "/metrics")
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            samples[name] = float(number)
    return samples


def test_scrape_after_real_traffic(tmp_path: Path) -> None:
    """Connections, users, messages, deliveries, transfers and errors match what happened."""
    server, port = metrics_server(tmp_path)
    try:
        before = scrape(port)
        assert before["chatnet_connections"] == 0
        assert before["chatnet_messages_total{kind=\"broadcast\"}"] == 0
        assert "process_resident_memory_bytes" in before
        alice, bob, carol = Wire(server.port), Wire(server.port), Wire(server.port)
        for wire, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            wire.login(name)
        for wire in (alice, bob):
            wire.send(type="join", id="j", room="r")
            wire.until("ok", id="j")
        for i in range(3):
            alice.send(type="broadcast", id=i, text=f"hello {i}")
            alice.until("ok", id=i)
        alice.send(type="whisper", id="w", to="carol", text="psst")
        alice.until("ok", id="w")
        alice.send(type="whisper", id="w2", to="nobody", text="psst")
        assert alice.until("error", id="w2")["code"] == "no-such-user"
        alice.send(type="sendfile", id="f", to="carol", name="a.txt", size=100)
        t = alice.until("ok", id="f")["transfer"]
        alice.until("upload-start", transfer=t)
        alice.send_data(t, b"x" * 100)
        carol.until("file-end", transfer=t)
        alice.until("file-delivered", transfer=t)

        now = scrape(port)
        assert now["chatnet_connections"] == 3
        assert now["chatnet_users_online"] == 3
        assert now["chatnet_rooms"] == 1
        assert now["chatnet_messages_total{kind=\"broadcast\"}"] == 3
        assert now["chatnet_messages_total{kind=\"whisper\"}"] == 1
        assert now["chatnet_deliveries_total"] == 4  # bob thrice, carol once
        assert now["chatnet_errors_total{code=\"no-such-user\"}"] == 1
        assert now["chatnet_logins_total{result=\"ok\"}"] == 3
        assert now["chatnet_transfers_total{result=\"delivered\"}"] == 1
        assert now["chatnet_file_bytes_total{direction=\"in\"}"] == 100
        assert now["chatnet_file_bytes_total{direction=\"out\"}"] == 100
        assert now["chatnet_upload_wait_seconds_count"] == 1
        # a connection's first request is timed, then one in 64
        assert now["chatnet_request_seconds_count{type=\"login\"}"] == 3

        bob.send(type="exit", id="x")
        bob.rest()
        alice.send(type="ping", id="p")  # the server has handled bob's exit by its reply
        alice.until("ok", id="p")
        later = scrape(port)
        assert later["chatnet_connections"] == 2
        assert later["chatnet_rooms"] == 1  # alice is still in r
        assert get(port, "/healthz") == (200, '{"status": "ok"}\n')
    finally:
        server.kill()


def test_healthz_unavailable_while_shutting_down(tmp_path: Path) -> None:
    """/healthz answers 503 with a reason from SIGTERM until the process is gone."""
    grace = 4.0
    server, port = metrics_server(tmp_path, "--shutdown-grace", str(grace), "--max-output", "64MiB")
    try:
        assert get(port, "/healthz") == (200, '{"status": "ok"}\n')
        # A peer that reads nothing holds the shutdown open for the grace period.
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.settimeout(10)
        stuck.connect(("127.0.0.1", server.port))
        frames = [{"type": "login", "id": 1, "username": "stuck"}, {"type": "join", "id": 2, "room": "r"}]
        stuck.sendall(b"".join(struct.pack(">I", len(p)) + p for p in map(str.encode, map(json.dumps, frames))))
        talker = Wire(server.port)
        talker.login("talker")
        talker.send(type="join", id="j", room="r")
        talker.until("ok", id="j")
        for i in range(1500):  # about 6 MB for stuck
            talker.send(type="broadcast", id=i, text="x" * 4000)
        talker.until("ok", id=1499)

        server.proc.send_signal(signal.SIGTERM)
        # The service is stopping (and unhealthy) before it tells clients so.
        talker.until("shutdown")
        health = get(port, "/healthz")
        assert health == (503, '{"status": "unavailable", "reason": "shutting down"}\n')
        assert scrape(port)["chatnet_connections"] >= 1  # still scraped while stuck drains
        assert server.wait(timeout=grace + 10) in (0, -signal.SIGTERM), server.describe()
        stuck.close()
    finally:
        server.kill()
