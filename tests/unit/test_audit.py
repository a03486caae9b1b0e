"""Tests for :mod:`chatnet.audit` and the audit lines the server writes (PROTOCOL.md section 8)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from support.chat import logged_in, new_server, offer, upload
from twisted.internet.task import Clock
from twisted.logger import formatEvent

from chatnet.audit import (
    CATEGORIES,
    Audit,
    AuditFileObserver,
    one_line,
)

LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[([A-Z-]+)\] (.*)")


def file_audit() -> tuple[Audit, AuditFileObserver, io.StringIO, Clock]:
    clock, out = Clock(), io.StringIO()
    observer = AuditFileObserver(out, clock)
    return Audit(observer), observer, out, clock


def test_line_format() -> None:
    """Each event is one '[YYYY-MM-DD HH:MM:SS] [CATEGORY] text' line."""
    audit, _, out, clock = file_audit()
    audit("JOIN", "alice joined groupA (3/15)")
    audit("LEAVE", "alice left groupA (2/15)")
    assert out.getvalue() == ""  # written at the end of the reactor turn
    clock.advance(0)
    lines = out.getvalue().splitlines()
    assert [LINE.fullmatch(line).groups() for line in lines] == [  # type: ignore[union-attr]
        ("JOIN", "alice joined groupA (3/15)"), ("LEAVE", "alice left groupA (2/15)")]
    assert clock.getDelayedCalls() == []


def test_control_characters_stay_on_one_line() -> None:
    """Newlines and escapes in client text cannot forge extra lines."""
    audit, observer, out, _ = file_audit()
    audit("BROADCAST", "bob -> r (1 members): hi\n[2026-01-01 00:00:00] [LOGIN] x\r\x1b[2J")
    observer.flush()
    (line,) = out.getvalue().splitlines()
    assert "\\n" in line and "\\r" in line and "\\x1b" in line
    assert one_line("plain \u00e9") == "plain \u00e9"


def test_unicode_line_breaks_stay_on_one_line() -> None:
    """NEL, C1 controls and the Unicode line and paragraph separators are escaped too."""
    audit, observer, out, _ = file_audit()
    audit("BROADCAST", "a\x85b\u2028c\u2029d\x9be")
    observer.flush()
    assert len(out.getvalue().splitlines()) == 1
    assert out.getvalue().endswith("a\\x85b\\u2028c\\u2029d\\x9be\n")


def test_other_events_ignored() -> None:
    """Events without an audit category are not written."""
    _, observer, out, clock = file_audit()
    observer({"log_format": "hello", "log_time": 0})
    clock.advance(0)
    assert out.getvalue() == "" and clock.getDelayedCalls() == []


def test_close_flushes_and_cancels_timer() -> None:
    """close writes what is pending, closes the file and leaves no timer."""
    audit, observer, out, clock = file_audit()
    audit("SHUTDOWN", "server stopped")
    text = []
    out.close = lambda: text.append(out.getvalue())  # type: ignore[method-assign]
    observer.close()
    assert "[SHUTDOWN] server stopped" in text[0]
    assert clock.getDelayedCalls() == []


def test_event_renders_with_format_event() -> None:
    """The audit event is an ordinary twisted.logger event."""
    events: list[dict[str, object]] = []
    Audit(events.append)("LOGIN", "alice logged in")
    assert formatEvent(events[0]) == "[LOGIN] alice logged in"


def test_server_uses_every_category(tmp_path: Path) -> None:
    """A busy single server produces every category but SHUTDOWN and CLUSTER, and no other."""
    server = new_server(tmp_path, upload_slots=1)
    a, b = logged_in(server, "alice", "bob", room="r")
    server.connect().request("login", username="alice")
    a.request("broadcast", text="hello")
    a.request("whisper", to="bob", text="psst")
    a.request("join", room="nope!")
    offer(a, "bob", "one.txt", 1)
    offer(a, "bob", "two.txt", 0)
    server.advance()
    a.send_data(1, b"x")
    server.advance()
    b.request("leave")
    b.lose()
    a.request("exit")
    server.settle()
    used = {category for category, _ in server.audit.lines}
    assert used == CATEGORIES - {"SHUTDOWN", "CLUSTER"}


def test_lines_name_users_rooms_peers_and_files(tmp_path: Path) -> None:
    """Lines name who, where and what; whisper text never appears."""
    server = new_server(tmp_path)
    a, b = logged_in(server, "alice", "bob", room="groupA")
    peer = a.protocol.session.peer
    assert f"connection from {peer}" in server.audit.category("CONNECT")
    assert f"alice logged in from {peer}" in server.audit.category("LOGIN")
    assert server.audit.category("JOIN")[-1] == "bob joined groupA (2/15)"
    a.request("whisper", to="bob", text="the secret")
    assert not any("the secret" in text for _, text in server.audit.lines)
    upload(server, a, "bob", "r.pdf", b"data")
    upload(server, a, "bob", "r.pdf", b"data")
    assert any("r.pdf" in line and "r_1.pdf" in line for line in server.audit.category("FILE"))
    a.request("exit")
    b.lose()
    server.settle()
    assert server.audit.category("DISCONNECT") == [
        f"bob ({b.protocol.session.peer}) connection lost"
        " (Connection to the other side was lost in a non-clean fashion)",
        f"alice ({peer}) left cleanly",
    ]


def test_added_observers_see_every_later_event() -> None:
    """Audit.observe adds a listener beside the file observer; both get the same event."""
    from chatnet.audit import Audit

    first: list[dict[str, object]] = []
    second: list[dict[str, object]] = []
    audit = Audit(first.append)
    audit("CONNECT", "before")
    audit.observe(second.append)
    audit("JOIN", "alice joined r (1/15)")
    assert [e["audit_text"] for e in first] == ["before", "alice joined r (1/15)"]
    assert second == [first[1]]


def test_file_observer_alone_gets_lines_and_then_events_alike() -> None:
    """The direct path (file observer alone) and the event path write the same lines."""
    audit, _, out, clock = file_audit()
    audit("JOIN", "alice joined r (1/15)")  # direct: no event built
    seen: list[dict[str, object]] = []
    audit.observe(seen.append)
    audit("LEAVE", "alice left r (0/15)")  # now through events, to both
    clock.advance(0)
    lines = [LINE.fullmatch(line).groups() for line in out.getvalue().splitlines()]  # type: ignore[union-attr]
    assert lines == [("JOIN", "alice joined r (1/15)"), ("LEAVE", "alice left r (0/15)")]
    assert [e["audit_text"] for e in seen] == ["alice left r (0/15)"]


def test_invisible_and_bidi_characters_are_escaped() -> None:
    """A line cannot be made to read as another: bidi overrides and invisible characters are escaped."""
    audit, observer, out, _ = file_audit()
    audit("BROADCAST", "bob -> r (1 member): evil\u202etxt.exe \u2066x\u2069 a\u200bb \ufeff")
    observer.flush()
    line = out.getvalue()
    assert not any(c in line for c in "\u202e\u2066\u2069\u200b\ufeff")
    assert line.endswith("evil\\u202etxt.exe \\u2066x\\u2069 a\\u200bb \\ufeff\n")


def test_refused_file_name_is_escaped_in_the_error_line(tmp_path: Path) -> None:
    """A sendfile with a bidi override is invalid-filename; its ERROR line shows the name escaped."""
    server = new_server(tmp_path)
    alice, _ = logged_in(server, "alice", "bob")
    reply = alice.request("sendfile", to="bob", name="photo\u202egpj.exe", size=1)
    assert reply["code"] == "invalid-filename"
    (line,) = server.audit.category("ERROR")
    assert "\u202e" not in line and "photo\\u202egpj.exe" in line  # escaped before the log escapes it


def test_time_is_injected() -> None:
    """Lines and events carry the injected clock's time, not the wall clock's."""
    clock, out = Clock(), io.StringIO()
    clock.advance(1_000_000_000.5)  # 2001-09-09
    audit = Audit(AuditFileObserver(out, clock), now=clock.seconds)
    audit("LOGIN", "alice logged in")
    clock.advance(0)
    stamp = time.strftime("[%Y-%m-%d %H:%M:%S]", time.localtime(1_000_000_000))
    assert out.getvalue() == f"{stamp} [LOGIN] alice logged in\n"
    events: list[dict[str, object]] = []
    Audit(events.append, now=lambda: 42.0)("JOIN", "alice joined r (1/15)")
    assert events[0]["log_time"] == 42.0


def test_cluster_category() -> None:
    """CLUSTER is chatnet's category beside the contract's thirteen."""
    assert "CLUSTER" in CATEGORIES and len(CATEGORIES) == 14


def test_cluster_line_written(tmp_path: Path) -> None:
    """A CLUSTER line is written like any other."""
    clock = Clock()
    clock.advance(1_800_000_000)
    path = tmp_path / "server.log"
    observer = AuditFileObserver(path.open("a", encoding="utf-8"), clock)
    Audit(observer, now=clock.seconds)("CLUSTER", "node b lost (its lease ran out): 4 users taken out",
                                       {"node": "b", "event": "lost", "users": 4})
    observer.close()
    assert path.read_text().endswith("[CLUSTER] node b lost (its lease ran out): 4 users taken out\n")
