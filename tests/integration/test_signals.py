"""
Signals an operator sends a real ``twistd -n chatnet``: SIGHUP after
logrotate and after editing the accounts file; and the JSON audit log.
(SIGTERM from systemd is tested beside SIGINT in test_twistd.py.)
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from support.processes import start_server
from support.wire import Wire

from chatnet.testing import quick_hasher

REOPENED = "chatnet reopened the audit log"
#: --shutdown-grace of the servers these tests stop.
GRACE = 2.0


def test_logrotate_rename_then_sighup_loses_no_line(tmp_path: Path) -> None:
    """Lines written around a rename + SIGHUP are all in one file or the other, once."""
    server = start_server(tmp_path)
    try:
        alice, bob = Wire(server.port), Wire(server.port)
        alice.login("alice")
        bob.login("bob")
        for wire in (alice, bob):
            wire.send(type="join", id="j", room="r")
            wire.until("ok", id="j")
        n = 400
        for i in range(n // 2):  # in flight while the file is renamed
            alice.send(type="broadcast", id=i, text=f"line {i}")
        server.log_path.rename(tmp_path / "server.log.1")
        server.proc.send_signal(signal.SIGHUP)
        server.out.wait_for(REOPENED)
        for i in range(n // 2, n):
            alice.send(type="broadcast", id=i, text=f"line {i}")
        alice.until("ok", id=n - 1)
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM), server.describe()

        old = (tmp_path / "server.log.1").read_text()
        new = server.log_path.read_text()
        said = re.findall(r"\[BROADCAST\] alice -> r \(1 member\): line (\d+)$", old + new, re.MULTILINE)
        assert sorted(map(int, said)) == list(range(n))
        assert "listening on" in old and "[SHUTDOWN]" in new
        assert f"line {n - 1}" in new  # sent after the reopen: in the new file
    finally:
        server.kill()


def test_sighup_rereads_accounts_without_dropping_anyone(tmp_path: Path) -> None:
    """Added accounts log in, removed ones cannot, and nobody logged in is dropped."""
    accounts = tmp_path / "accounts"
    h = quick_hasher.hash
    accounts.write_text(f"alice:{h('a')}\nbob:{h('b')}\n")
    server = start_server(tmp_path, "--accounts", str(accounts))
    try:
        alice, bob = Wire(server.port), Wire(server.port)
        for wire, name, password in ((alice, "alice", "a"), (bob, "bob", "b")):
            wire.send(type="login", id="l", username=name, password=password)
            wire.until("ok", id="l")
        accounts.write_text(f"alice:{h('a2')}\ncarol:{h('c')}\n")
        server.proc.send_signal(signal.SIGHUP)
        line = server.out.wait_for("chatnet reloaded the accounts")
        assert "added carol; removed bob; password changed for alice" in line.string

        bob.send(type="ping", id="p")  # bob's account is gone; bob is not
        assert bob.until("ok", id="p")
        carol = Wire(server.port)
        carol.send(type="login", id="l", username="carol", password="c")
        carol.until("ok", id="l")
        for name, password in (("bob", "b"), ("alice", "a")):
            late = Wire(server.port)
            late.send(type="login", id="l", username=name, password=password)
            assert late.until("error", id="l")["code"] == "auth-failed"

        accounts.write_text("not a valid line\n")
        server.proc.send_signal(signal.SIGHUP)
        server.out.wait_for("chatnet kept its accounts")
        dave = Wire(server.port)
        dave.send(type="login", id="l", username="dave", password="c")
        assert dave.until("error", id="l")["code"] == "auth-failed"
        dave.send(type="login", id="l2", username="Carol", password="c")
        assert dave.until("error", id="l2")["code"] == "username-taken"  # carol's account kept
    finally:
        server.kill()


def test_json_audit_log(tmp_path: Path) -> None:
    """--audit-format json: every event a JSON line with time, category, text and fields."""
    server = start_server(tmp_path, "--audit-format", "json")
    try:
        alice = Wire(server.port)
        alice.login("alice")
        alice.send(type="join", id="j", room="r")
        alice.until("ok", id="j")
        alice.send(type="broadcast", id="b", text="hi\nthere")
        alice.until("ok", id="b")
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM), server.describe()
        records = [json.loads(line) for line in server.log_path.read_text().splitlines()]
        assert [r["category"] for r in records] == [
            "CONNECT", "CONNECT", "LOGIN", "JOIN", "BROADCAST", "DISCONNECT", "SHUTDOWN"]
        broadcast = records[4]
        assert broadcast["fields"] == {"user": "alice", "room": "r", "delivered": 0, "message": "hi\nthere"}
        assert broadcast["text"] == "alice -> r (0 members): hi\nthere"
        assert records[-1]["fields"] == {"clients": 1, "transfers_failed": 0}
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in records)
    finally:
        server.kill()
