"""Tests for :mod:`chatnet.client.render`: one readable line per event."""

from typing import Any

import pytest

from chatnet.client import render
from chatnet.client.commands import Exit, Help, Send, SendFile
from chatnet.client.transfers import Download, Upload


@pytest.mark.parametrize(
    "frame, style, text",
    [
        ({"type": "message", "room": "groupA", "from": "alice", "text": "hello", "ts": 1.0},
         render.OTHER, "[groupA] alice: hello"),
        ({"type": "message", "room": "groupA", "from": "me", "text": "x", "ts": 1.0},
         render.OWN, "[groupA] me: x"),
        ({"type": "whisper", "from": "bob", "text": "hi", "ts": 1.0}, render.WHISPER, "[whisper] bob: hi"),
        ({"type": "presence", "room": "r", "user": "bob", "event": "join"}, render.NOTICE, "[r] * bob joined"),
        ({"type": "presence", "room": "r", "user": "bob", "event": "leave"}, render.NOTICE, "[r] * bob left"),
        ({"type": "presence", "room": "r", "user": "bob", "event": "disconnect"}, render.NOTICE,
         "[r] * bob disconnected"),
        ({"type": "shutdown", "message": "bye"}, render.SERVER, "[server] shutting down: bye"),
        ({"type": "error", "code": "room-full", "message": "Room 'groupA' is full (15/15)"},
         render.ERROR, "[error] Room 'groupA' is full (15/15)"),
        ({"type": "novel", "x": 1}, render.NOTICE, "[server] novel: x=1"),
    ],
)
def test_server_event(frame: dict[str, Any], style: str, text: str) -> None:
    """Each event has its line and its style."""
    line = render.server_event(frame, me="me")
    assert line is not None and (line.style, line.text) == (style, text)


def upload(**kw: Any) -> Upload:
    return Upload(name="report.pdf", size=2150, peer="bob", transfer=3, **kw)


def download(**kw: Any) -> Download:
    return Download(name="report.pdf", size=2150, peer="alice", transfer=3, **kw)


@pytest.mark.parametrize(
    "kind, transfer, text",
    [
        ("queued", upload(position=0), "[file] report.pdf (2.1 KiB) to bob: transfer 3, next"),
        ("queued", upload(position=2), "[file] report.pdf (2.1 KiB) to bob: transfer 3, queued, 2 ahead"),
        ("started", upload(), "[file] sending report.pdf to bob"),
        ("uploaded", upload(), "[file] report.pdf uploaded (2.1 KiB), delivering to bob"),
        ("delivered", upload(), "[file] report.pdf delivered to bob"),
        ("failed", upload(reason="recipient-offline"),
         "[error] sending report.pdf to bob failed: the recipient went offline"),
        ("receiving", download(), "[file] receiving report.pdf from alice (2.1 KiB)"),
        ("receiving", download(original="r.pdf"),
         "[file] receiving report.pdf from alice (2.1 KiB) (sent as r.pdf)"),
        ("saved", download(path="downloads/report_1.pdf"),
         "[file] received report.pdf from alice (2.1 KiB) -> downloads/report_1.pdf"),
        ("discarded", download(reason="sha256 mismatch: the file was damaged"),
         "[error] report.pdf from alice discarded: sha256 mismatch: the file was damaged"),
    ],
)
def test_transfer_event(kind: str, transfer: Any, text: str) -> None:
    """Transfer steps read as sentences."""
    line = render.transfer_event(kind, transfer)
    assert line is not None and line.text == text


def test_started_after_wait() -> None:
    """A queued upload says how long it waited."""
    line = render.transfer_event("started", upload(), {"waited": 2.34})
    assert line is not None and line.text.endswith("after waiting 2.3s")


def test_progress_not_a_line() -> None:
    """Progress goes to bars, not to the message list."""
    assert render.transfer_event("progress", upload()) is None


@pytest.mark.parametrize(
    "command, result, text",
    [
        (Send("join", {"room": "groupA"}), {"room": "groupA", "members": ["alice", "bob"]},
         "[ok] joined groupA (2 here: alice, bob)"),
        (Send("leave"), {"room": "groupA"}, "[ok] left groupA"),
        (Send("broadcast", {"text": "hi"}), {"delivered": 1}, "[groupA] me: hi"),
        (Send("whisper", {"to": "bob", "text": "hi"}), {}, "[whisper to bob] me: hi"),
        (Send("rooms"), {"rooms": []}, "[rooms] no rooms yet; /join <room> creates one"),
        (Send("rooms"), {"rooms": [{"name": "a", "members": 2, "capacity": 15},
                                   {"name": "b", "members": ["x"], "capacity": 15}]},
         "[rooms] a (2/15), b (1/15)"),
        (Send("who"), {"room": "a", "members": ["x", "y"]}, "[who] a: x, y (2)"),
        (Send("users"), {"users": ["x"]}, "[users] x (1 online)"),
        (Send("cancel", {"transfer": 4}), {}, "[ok] cancelling transfer 4"),
        (Exit(), {}, "[ok] bye"),
    ],
)
def test_reply_lines(command: Any, result: Any, text: str) -> None:
    """Successful commands say what happened."""
    (line,) = render.reply_lines(command, result, me="me", room="groupA")
    assert line.text == text


def test_reply_lines_quiet_for_sendfile_and_help() -> None:
    """``/sendfile`` is reported by its transfer events; ``/help`` prints help."""
    assert render.reply_lines(SendFile("a", "b"), object()) == []
    assert render.reply_lines(Help(), None)[0].text == "Commands:"


def test_progress_texts() -> None:
    """Bars say bytes, percent and speed; queued transfers their place and wait."""
    t = upload(position=2, created_at=0.0)
    t.state = "queued"
    assert render.progress_texts(t, now=5.0)[0] == "queued (2 ahead), waiting 5s"
    t.state, t.started_at, t.done_bytes = "sending", 5.0, 1075
    assert render.progress_texts(t, now=6.0) == [
        "50% 1.0 KiB/2.1 KiB 1.0 KiB/s", "50% 1.0 KiB/2.1 KiB", "50%", "50%"]
    d = download(started_at=0.0)
    d.done_bytes, d.state, d.finished_at = 2150, "saved", 1.0
    assert render.progress_texts(d, now=9.0)[0] == "100% 2.1 KiB/2.1 KiB 2.1 KiB/s saved"
