"""Tests for :mod:`chatnet.client.render`: one readable line per event."""

import json
from typing import Any

import pytest

from chatnet import frames
from chatnet.client import render
from chatnet.client.commands import Exit, Help, Send, SendFile
from chatnet.client.downloads import Download
from chatnet.client.uploads import Upload


def event(obj: dict[str, Any]) -> Any:
    """The typed frame the client decodes ``obj`` to."""
    frame = frames.decode_from_server(json.dumps(obj).encode())
    assert not isinstance(frame, frames.BadFrame), frame
    return frame


def reply(command: Any, obj: dict[str, Any]) -> Any:
    """``obj`` as the typed reply to ``command``."""
    if not isinstance(command, Send):
        return obj
    result = frames.read_ok(frames.Ok(1, obj), command.request())
    assert not isinstance(result, frames.BadFrame), result
    return result


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
        ({"type": "file-received", "transfer": 1, "to": "bob", "verified": True}, render.NOTICE,
         "[server] file-received: transfer=1, to=bob, verified=True"),
    ],
)
def test_server_event(frame: dict[str, Any], style: str, text: str) -> None:
    """Each event has its line and its style."""
    line = render.server_event(event(frame), me="me")
    assert line is not None and (line.style, line.text) == (style, text)


def upload(**kw: Any) -> Upload:
    return Upload(**{"name": "report.pdf", "size": 2150, "peer": "bob", "transfer": 3, **kw})


def download(**kw: Any) -> Download:
    return Download(**{"name": "report.pdf", "size": 2150, "peer": "alice", "transfer": 3, **kw})


@pytest.mark.parametrize(
    "kind, transfer, text",
    [
        ("queued", upload(position=0), "[file] report.pdf (2.1 KiB) to bob: transfer 3, next"),
        ("queued", upload(position=2), "[file] report.pdf (2.1 KiB) to bob: transfer 3, queued, 2 ahead"),
        ("started", upload(), "[file] sending report.pdf to bob"),
        ("uploaded", upload(), "[file] report.pdf uploaded (2.1 KiB), delivering to bob"),
        ("delivered", upload(), "[file] report.pdf sent to bob"),
        ("failed", upload(reason="recipient-offline"),
         "[error] sending report.pdf to bob failed: the recipient went offline"),
        # our own /cancel and a declined offer are answers, not errors
        ("failed", upload(reason="cancelled"), "[file] report.pdf to bob cancelled"),
        ("failed", upload(reason="declined"),
         "[file] bob declined report.pdf (or did not answer in time)"),
        # an offer we did not decline (that is "declined") was left unanswered
        ("withdrawn", download(reason="declined"),
         "[file] report.pdf from alice will not come: the offer expired unanswered"),
        ("withdrawn", download(reason="cancelled"), "[file] report.pdf from alice will not come: cancelled"),
        ("receiving", download(), "[file] receiving report.pdf from alice (2.1 KiB)"),
        ("receiving", download(original="r.pdf"),
         "[file] receiving report.pdf from alice (2.1 KiB) (sent as r.pdf)"),
        ("saved", download(path="downloads/report_1.pdf"),
         "[file] received report.pdf from alice (2.1 KiB), sha256 matched -> downloads/report_1.pdf"),
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
    line = render.transfer_event("started", upload(), frames.UploadStart(3, 2.34))
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
        (Send("rooms"), {"rooms": [{"name": "a", "members": ["x", "y"], "capacity": 15},
                                   {"name": "b", "members": ["x"], "capacity": 15}]},
         "[rooms] a (2/15), b (1/15)"),
        (Send("who"), {"room": "a", "members": ["x", "y"]}, "[who] a: x, y (2)"),
        (Send("users"), {"users": ["x"]}, "[users] x (1 online)"),
        (Send("cancel", {"transfer": 4}), {"transfer": 4}, "[ok] cancelling transfer 4"),
        (Exit(), {}, "[ok] bye"),
    ],
)
def test_reply_lines(command: Any, result: Any, text: str) -> None:
    """Successful commands say what happened."""
    (line,) = render.reply_lines(command, reply(command, result), me="me", room="groupA")
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
        "50% 1.0 KiB/2.1 KiB 1.0 KiB/s ETA 1s", "50% 1.0 KiB/2.1 KiB", "50%", "50%"]
    d = download(started_at=0.0)
    d.done_bytes, d.state, d.finished_at = 2150, "saved", 1.0
    assert render.progress_texts(d, now=9.0)[0] == "100% 2.1 KiB/2.1 KiB 2.1 KiB/s saved"


INJECTION = "hello\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[41mFAKE: [server] shutting down\x1b[0m"


def test_injection_from_the_issue_is_escaped() -> None:
    """Screen wipe, window title and colours arrive as visible text, the sender kept."""
    line = render.server_event(event(
        {"type": "message", "room": "groupA", "from": "mallory", "text": INJECTION, "ts": 1.0}))
    assert line is not None
    assert line.text == (
        "[groupA] mallory: hello\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\x1b[41m"
        "FAKE: [server] shutting down\\x1b[0m")


@pytest.mark.parametrize(
    "char, shown",
    [("\x00", "\\x00"), ("\r", "\\r"), ("\t", "\\t"), ("\x7f", "\\x7f"), ("\x85", "\\x85"),
     ("\x9b", "\\x9b"), ("\u200b", "\\u200b"), ("\u200f", "\\u200f"), ("\u202a", "\\u202a"),
     ("\u202e", "\\u202e"), ("\u2066", "\\u2066"), ("\u2069", "\\u2069"), ("\ufeff", "\\ufeff"),
     ("\u2028", "\\u2028"), ("\ud800", "\\ud800"), ("\U000e0041", "\\U000e0041"),
     ("\n", "\\n")],
)
def test_escape_makes_hidden_characters_visible(char: str, shown: str) -> None:
    """C0, DEL, C1, bidi, invisible and separator characters are written out."""
    assert render.escape(f"a{char}b") == f"a{shown}b"


def test_escape_keeps_ordinary_text() -> None:
    """Accents, CJK, emoji, a no-break space and backslashes stay as they are."""
    text = "café 日本語 🎉 a\u00a0b C:\\path"
    assert render.escape(text) == text


def test_names_and_file_names_escaped_in_every_line() -> None:
    """Names, rooms, file names, reasons and error messages from the server are escaped."""
    evil = "x\x1b[2Jy\u202e"
    seen = [
        render.server_event(event({"type": "presence", "room": evil, "user": evil, "event": "join"})),
        render.server_event(event({"type": "shutdown", "message": evil})),
        render.server_event(event({"type": "error", "code": "x", "message": evil})),
        render.server_event(event({"type": "file-received", "transfer": 1, "to": evil,
                                   "verified": False})),
        render.server_event(event({"type": "whisper", "from": evil, "text": evil, "ts": 1.0})),
        render.transfer_event("receiving", download(name=evil, peer=evil, original=evil)),
        render.transfer_event("discarded", download(name=evil, reason=evil)),
        render.transfer_event("queued", upload(name=evil, peer=evil, position=0)),
        render.error_line(evil),
        *render.reply_lines(Send("join", {"room": "r"}),
                            reply(Send("join"), {"room": evil, "members": [evil]})),
        *render.reply_lines(Send("rooms"), reply(Send("rooms"), {
            "rooms": [{"name": evil, "members": ["a"], "capacity": 2}]})),
        *render.reply_lines(Send("users"), reply(Send("users"), {"users": [evil]})),
    ]
    for line in seen:
        assert line is not None
        assert "\x1b" not in line.text and "\u202e" not in line.text, line
        assert "x\\x1b[2Jy\\u202e" in line.text, line


def test_newlines_keep_the_sender() -> None:
    """Each further row of a message is indented under its text, never a line of its own."""
    line = render.server_event(event({"type": "message", "room": "groupA", "from": "mallory",
                                      "text": "hi\n[server] shutting down\n\tx", "ts": 1.0}))
    assert line is not None
    assert line.text.split("\n") == [
        "[groupA] mallory: hi",
        "                  [server] shutting down",
        "                          x",
    ]
    (own,) = render.reply_lines(Send("broadcast", {"text": "a\nb"}),
                                frames.BroadcastOk(1, 0), me="me", room="r")
    assert own.text == "[r] me: a\n        b"
    name = render.server_event(frames.Presence("r", "a\nb", "join"))
    assert name is not None and name.text == "[r] * a\\nb joined"


def test_a_careless_line_is_still_safe() -> None:
    """Whatever a Line is built from, it reaches the terminal escaped and indented."""
    line = render.Line(render.NOTICE, "x: \x1b[31mred\n[server] fake\r\n")
    assert line.text == "x: \\x1b[31mred\n    [server] fake\\r\n    "


def test_json_line_is_safe_and_exact() -> None:
    """--json: valid JSON decoding to the same frame, with nothing raw a terminal obeys."""
    import json

    frame = {"type": "message", "from": "m\u202e", "text": INJECTION + "\x7f\x9b\ud800\U000e0041 é"}
    out = render.json_line(frame)
    assert json.loads(out) == frame
    assert out.isprintable() and "é" in out
