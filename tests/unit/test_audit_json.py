"""The audit log's structured side: fields, ``--audit-format json``, reopening after rotation."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from support.chat import logged_in, new_server
from twisted.internet.task import Clock

from chatnet.audit import Audit, AuditFileObserver, AuditJSONObserver, open_observer
from chatnet.service import describe_accounts_change


def test_text_line_ignores_fields() -> None:
    """Fields change nothing in the text format: the line is the one without them."""
    clock, plain, rich = Clock(), io.StringIO(), io.StringIO()
    when = 1_764_000_000.25
    AuditFileObserver(plain, clock).line("JOIN", "alice joined r (1/15)", when)
    AuditFileObserver(rich, clock).line("JOIN", "alice joined r (1/15)", when, {"user": "alice"})
    clock.advance(0)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_764_000_000))
    assert plain.getvalue() == rich.getvalue() == f"[{stamp}] [JOIN] alice joined r (1/15)\n"


def test_json_lines() -> None:
    """One JSON object a line: UTC time with milliseconds, category, text, fields."""
    clock, out = Clock(), io.StringIO()
    audit = Audit(AuditJSONObserver(out, clock))
    audit("JOIN", "alice joined r (1/15)", {"user": "alice", "room": "r", "members": 1})
    audit("CONNECT", "connection from 127.0.0.1:5000")
    clock.advance(0)
    first, second = map(json.loads, out.getvalue().splitlines())
    assert first["category"] == "JOIN" and first["text"] == "alice joined r (1/15)"
    assert first["fields"] == {"user": "alice", "room": "r", "members": 1}
    assert second["fields"] == {}
    assert time.strptime(first["time"][:19], "%Y-%m-%dT%H:%M:%S")
    assert first["time"][19] == "." and first["time"].endswith("Z") and len(first["time"]) == 24


def test_json_line_stays_one_ascii_line() -> None:
    """Newlines, controls and Unicode line separators in client text are escaped."""
    clock, out = Clock(), io.StringIO()
    AuditJSONObserver(out, clock).line(
        "BROADCAST", "hi\n{\"forged\": 1}\u2028\u00e9", 0.0, {"message": "a\nb\u2029"})
    clock.advance(0)
    text = out.getvalue()
    assert text.isascii() and text.count("\n") == 1
    record = json.loads(text)
    assert record["text"] == "hi\n{\"forged\": 1}\u2028\u00e9" and record["fields"]["message"] == "a\nb\u2029"


def test_event_observers_get_the_fields() -> None:
    """Other observers see the fields in the event, as ``audit_fields``."""
    events: list[dict[str, object]] = []
    audit = Audit(events.append)
    audit("WHISPER", "alice -> bob", {"user": "alice", "to": "bob"})
    audit("LOGIN", "bob logged in")
    assert events[0]["audit_fields"] == {"user": "alice", "to": "bob"}
    assert events[1]["audit_fields"] is None


def test_reopen_after_rename(tmp_path: Path) -> None:
    """Buffered lines go to the renamed file; later ones to a new file at the old path."""
    clock = Clock()
    path = tmp_path / "server.log"
    observer = open_observer(str(path), clock)
    audit = Audit(observer)
    audit("LOGIN", "one")
    path.rename(tmp_path / "server.log.1")
    audit("LOGIN", "two")  # before the SIGHUP comes: still the old file
    observer.reopen()
    audit("LOGIN", "three")
    clock.advance(0)
    observer.close()
    assert [line[-3:] for line in (tmp_path / "server.log.1").read_text().splitlines()] == ["one", "two"]
    assert path.read_text().endswith("[LOGIN] three\n") and len(path.read_text().splitlines()) == 1


def test_json_reopen_keeps_format(tmp_path: Path) -> None:
    """A reopened JSON log is still JSON."""
    clock = Clock()
    path = tmp_path / "audit.jsonl"
    observer = open_observer(str(path), clock, "json")
    path.rename(tmp_path / "audit.jsonl.1")
    observer.reopen()
    Audit(observer)("LOGIN", "after")
    observer.close()
    assert json.loads(path.read_text())["text"] == "after"


def test_sessions_give_fields(tmp_path: Path) -> None:
    """Logins, joins and errors carry fields; broadcasts only when the log keeps them."""
    server = new_server(tmp_path / "spool")
    a, b = logged_in(server, "alice", "bob", room="r")
    a.request("broadcast", text="hi")
    a.request("whisper", to="nobody", text="x")
    audit = server.audit
    fields = dict(zip((c for c, _ in audit.lines), audit.fields, strict=True))
    assert fields["LOGIN"] == {"user": "bob", "peer": b.protocol.session.peer}
    assert fields["JOIN"] == {"user": "bob", "room": "r", "members": 2}
    assert fields["ERROR"] == {"user": "alice", "peer": a.protocol.session.peer, "code": "no-such-user"}
    assert fields["BROADCAST"] is None  # the text log has no use for them: not built
    server.hub.audit_fields = True
    a.request("broadcast", text="again")
    assert audit.fields[-1] == {"user": "alice", "room": "r", "delivered": 1, "message": "again"}


def test_transfer_fields(tmp_path: Path) -> None:
    """File events name the transfer, the file and both ends, and how it ended."""
    server = new_server(tmp_path / "spool")
    a, _ = logged_in(server, "alice", "bob")
    t = a.request("sendfile", to="bob", name="f.txt", size=3)["transfer"]
    server.advance()
    a.send_data(t, b"abc")
    files = [f for (c, _), f in zip(server.audit.lines, server.audit.fields, strict=True) if c == "FILE"]
    assert files[-1] == {"transfer": t, "name": "f.txt", "from": "alice", "to": "bob",
                         "result": "delivered", "size": 3}


def test_accounts_change_described() -> None:
    """What a reload changed, by name, without passwords."""
    old = {"alice": "a", "bob": "b", "dave": "d"}
    new = {"alice": "A", "carol": "c", "dave": "d"}
    assert describe_accounts_change(old, new) == "added carol; removed bob; password changed for alice"
    assert describe_accounts_change(old, dict(old)) == "no change"
