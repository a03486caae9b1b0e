"""Line mode end to end: real ``twistd -n chatnet`` and client processes."""

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import CLIENT, Server, start_client, start_server

pytestmark = pytest.mark.scenario


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh server for the test, stopped afterwards."""
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill()


def test_chat_whisper_and_file(server: Server, tmp_path: Path) -> None:
    """Two clients chat, whisper, and exchange a file whose bytes arrive intact."""
    alice = start_client(server.port, "--username", "alice", cwd=tmp_path / "alice", name="alice")
    bob = start_client(server.port, cwd=tmp_path / "bob", name="bob")
    try:
        bob.send("bob", "/join groupA")
        bob.out.wait_for(r"^\[ok\] joined groupA")
        alice.send("/join groupA")
        alice.out.wait_for(r"^\[ok\] joined groupA \(2 here")
        bob.out.wait_for(r"^\[groupA\] \* alice joined$")

        alice.send("hello everyone")
        bob.out.wait_for(r"^\[groupA\] alice: hello everyone$")
        bob.send("/whisper alice psst")
        alice.out.wait_for(r"^\[whisper\] bob: psst$")

        content = os.urandom(200_000)
        (tmp_path / "alice" / "report.pdf").write_bytes(content)
        (tmp_path / "bob" / "downloads").mkdir()
        (tmp_path / "bob" / "downloads" / "report.pdf").write_bytes(b"old")
        alice.send("/sendfile report.pdf bob")
        saved = bob.out.wait_for(
            r"^\[file\] received report.pdf from alice \(195.3 KiB\), sha256 matched -> (\S+)$",
            timeout=20)
        assert saved.group(1) == "downloads/report_1.pdf"
        alice.out.wait_for(r"^\[file\] report.pdf sent to bob$", timeout=20)
        alice.out.wait_for(r"^\[file\] bob received report.pdf, sha256 verified$", timeout=20)
        received = (tmp_path / "bob" / "downloads" / "report_1.pdf").read_bytes()
        assert hashlib.sha256(received).digest() == hashlib.sha256(content).digest()
        assert (tmp_path / "bob" / "downloads" / "report.pdf").read_bytes() == b"old"
        assert sorted(os.listdir(tmp_path / "bob" / "downloads")) == ["report.pdf", "report_1.pdf"]

        alice.close_stdin()
        assert alice.wait() == 0, alice.describe()
        bob.out.wait_for(r"^\[groupA\] \* alice left$")
        bob.close_stdin()
        assert bob.wait() == 0, bob.describe()
    finally:
        alice.kill()
        bob.kill()


def test_pipe_waits_for_upload(server: Server, tmp_path: Path) -> None:
    """``printf ... | chatnet-client``: EOF right after /sendfile still delivers."""
    bob = start_client(server.port, "-u", "bob", cwd=tmp_path / "bob", name="bob")
    try:
        bob.out.wait_for(r"^\[ok\] logged in as bob")
        data = os.urandom(1_000_000)
        (tmp_path / "big.bin").write_bytes(data)
        script = f"alice\n/join r\nhello\n/sendfile {tmp_path / 'big.bin'} bob\n"
        done = subprocess.run(
            [sys.executable, str(CLIENT), "127.0.0.1", str(server.port)],
            input=script.encode(), capture_output=True, cwd=tmp_path, timeout=30,
        )
        out = done.stdout.decode()
        assert done.returncode == 0, out + done.stderr.decode()
        assert out.splitlines()[:3] == [
            "[ok] logged in as alice on " + out.splitlines()[0].split(" on ")[1],
            "[ok] joined r (1 here: alice)",
            "[r] alice: hello",
        ]
        assert "[file] big.bin sent to bob" in out
        assert "[file] bob received big.bin, sha256 verified" in out
        bob.out.wait_for(r"^\[file\] received big.bin from alice")
        assert (tmp_path / "bob" / "downloads" / "big.bin").read_bytes() == data
    finally:
        bob.kill()


def test_exit_statuses(server: Server, tmp_path: Path) -> None:
    """Refused connection: 3; taken --username: 4; server shutdown (no reconnect): 5."""
    first = start_client(server.port, "-u", "alice", "--no-reconnect", cwd=tmp_path / "a",
                         name="first")
    try:
        first.out.wait_for(r"^\[ok\] logged in")
        taken = start_client(server.port, "-u", "ALICE", cwd=tmp_path / "b", name="taken")
        assert taken.wait() == 4, taken.describe()
        assert "login rejected" in taken.err.text
        taken.kill()

        server.stop()
        assert first.wait() == 5, first.describe()
        first.out.wait_for(r"^\[server\] shutting down")
        assert "server shut down" in first.err.text

        refused = start_client(server.port, "-u", "alice", cwd=tmp_path / "c", name="refused")
        assert refused.wait() == 3, refused.describe()
        assert "connection refused" in refused.err.text
        refused.kill()
    finally:
        first.kill()


def test_json_mode(server: Server, tmp_path: Path) -> None:
    """``--json`` prints server frames as JSON lines."""
    import json

    done = subprocess.run(
        [sys.executable, str(CLIENT), "127.0.0.1", str(server.port), "--json", "-u", "jay"],
        input=b"/join r\n/users\n", capture_output=True, cwd=tmp_path, timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()
    frames = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [f["type"] for f in frames] == ["ok", "ok", "ok", "ok"]
    assert frames[0]["username"] == "jay" and frames[2]["users"] == ["jay"]


def test_two_uploads_at_once_while_chatting(server: Server, tmp_path: Path) -> None:
    """Two uploads in flight share the connection; chat keeps flowing."""
    alice = start_client(server.port, "-u", "alice", cwd=tmp_path / "alice", name="alice")
    bob = start_client(server.port, "-u", "bob", cwd=tmp_path / "bob", name="bob")
    try:
        bob.send("/join r")
        bob.out.wait_for(r"^\[ok\] joined r")
        alice.send("/join r")
        alice.out.wait_for(r"^\[ok\] joined r")
        one, two = os.urandom(3_000_000), os.urandom(2_000_000)
        (tmp_path / "alice" / "one.bin").write_bytes(one)
        (tmp_path / "alice" / "two.bin").write_bytes(two)
        alice.send("/sendfile one.bin bob", "/sendfile two.bin bob", "chat goes on")
        bob.out.wait_for(r"^\[r\] alice: chat goes on$")
        bob.out.wait_for(r"^\[file\] received one.bin from alice", timeout=30)
        bob.out.wait_for(r"^\[file\] received two.bin from alice", timeout=30)
        assert (tmp_path / "bob" / "downloads" / "one.bin").read_bytes() == one
        assert (tmp_path / "bob" / "downloads" / "two.bin").read_bytes() == two
        alice.close_stdin()
        assert alice.wait() == 0, alice.describe()
    finally:
        alice.kill()
        bob.kill()


def test_ctrl_c_leaves_cleanly(server: Server, tmp_path: Path) -> None:
    """SIGINT in line mode says exit to the server and ends with status 130."""
    import signal

    carol = start_client(server.port, "-u", "carol", cwd=tmp_path / "carol", name="carol")
    try:
        carol.out.wait_for(r"^\[ok\] logged in as carol")
        carol.proc.send_signal(signal.SIGINT)
        assert carol.wait() == 130, carol.describe()
        assert "interrupted" in carol.err.text
    finally:
        carol.kill()
    server.stop()
    assert "carol (127.0.0.1" in server.log_path.read_text()
    assert "left cleanly" in server.log_path.read_text().split("carol (127.0.0.1")[1]


def test_offers_in_line_mode(server: Server, tmp_path: Path) -> None:
    """``--ask-files``: each file is offered; /decline tells the sender, /accept takes it."""
    bob = start_client(server.port, "-u", "bob", "--ask-files", cwd=tmp_path / "bob", name="bob")
    alice = start_client(server.port, "-u", "alice", cwd=tmp_path / "alice", name="alice")
    try:
        bob.out.wait_for(r"^\[ok\] logged in as bob")
        alice.out.wait_for(r"^\[ok\] logged in as alice")
        (tmp_path / "alice" / "a.txt").write_bytes(b"first")
        alice.send("/sendfile a.txt bob")
        offer = bob.out.wait_for(r"^\[file\] alice offers a.txt \(5 B\): /accept (\d+) or")
        bob.send(f"/decline {offer.group(1)}")
        alice.out.wait_for(r"^\[file\] bob declined a.txt \(or did not answer in time\)$")
        seen = len(bob.out.lines)
        alice.send("/sendfile a.txt bob")
        offer = bob.out.wait_for(r"^\[file\] alice offers a.txt \(5 B\): /accept (\d+) or",
                                 start=seen)
        bob.send(f"/accept {offer.group(1)}")
        bob.out.wait_for(r"^\[file\] received a.txt from alice \(5 B\), sha256 matched")
        alice.out.wait_for(r"^\[file\] bob received a.txt, sha256 verified$")
        assert (tmp_path / "bob" / "downloads" / "a.txt").read_bytes() == b"first"
    finally:
        alice.kill()
        bob.kill()


def test_sigterm_leaves_cleanly(server: Server, tmp_path: Path) -> None:
    """SIGTERM in line mode: exit, status 143, and nothing said lost or reconnecting."""
    import signal

    dave = start_client(server.port, "-u", "dave", cwd=tmp_path / "dave", name="dave")
    try:
        dave.out.wait_for(r"^\[ok\] logged in as dave")
        dave.proc.send_signal(signal.SIGTERM)
        assert dave.wait() == 143, dave.describe()
        assert "stopped" in dave.err.text
        assert "lost" not in dave.err.text and "disconnected" not in dave.out.text
    finally:
        dave.kill()
    server.stop()
    assert "left cleanly" in server.log_path.read_text().split("dave (127.0.0.1")[1]
