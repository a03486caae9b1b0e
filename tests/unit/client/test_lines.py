"""Tests for :mod:`chatnet.client.lines`: line mode against an in-memory server."""

import io
import json
from typing import Any

from support.client_harness import Harness, connected, has_result, result_of
from twisted.internet.defer import Deferred, DeferredQueue, ensureDeferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure

from chatnet.client.lines import (
    EXIT_LOGIN,
    EXIT_LOST,
    EXIT_OK,
    EXIT_SHUTDOWN,
    LineMode,
)


class Run:
    """A line mode session: feed lines, answer requests, read output."""

    def __init__(self, tmp_path: Any, **options: Any) -> None:
        self.h: Harness = connected(str(tmp_path / "dl"), login=False)
        self.lines: DeferredQueue[Any] = DeferredQueue()
        self.out, self.err = io.StringIO(), io.StringIO()
        mode = LineMode(self.h.core, self.lines, out=self.out, err=self.err, **options)
        self.done: Deferred[int] = ensureDeferred(mode.run())

    def type(self, *lines: Any) -> None:
        for line in lines:
            self.lines.put(line)

    def answer(self, type: str, **fields: Any) -> dict[str, Any]:
        """Answer the one outstanding request, checking its type."""
        (req,) = self.h.requests()
        assert req["type"] == type, req
        self.h.reply(req, **fields)
        return req

    def login(self, name: str = "alice") -> None:
        self.answer("login", username=name, server="chatnet/1.0", limits={})

    def finish(self) -> int:
        """Answer ``exit`` and close like the server does."""
        self.answer("exit")
        self.h.protocol.connectionLost(Failure(ConnectionDone()))
        return result_of(self.done)

    @property
    def output(self) -> list[str]:
        return self.out.getvalue().splitlines()


def test_piped_session(tmp_path: Any) -> None:
    """``printf 'alice\\n/join r\\nhello\\n' | chatnet-client``: login shown, exit 0."""
    r = Run(tmp_path)
    r.type("alice", "/join r", "hello", None)
    assert r.h.requests()[0] == {"type": "login", "id": 1, "username": "alice", "notices": True}
    r.h.reply({"id": 1}, username="alice", server="chatnet/1.0", limits={})
    r.answer("join", room="r", members=["alice"])
    r.answer("broadcast", delivered=0)
    assert r.finish() == EXIT_OK
    assert r.output == [
        "[ok] logged in as alice on chatnet/1.0",
        "[ok] joined r (1 here: alice)",
        "[r] alice: hello",
    ]


def test_events_printed_as_they_come(tmp_path: Any) -> None:
    """Server events are printed while the client waits for input."""
    r = Run(tmp_path, username="alice")
    r.login()
    r.h.feed({"type": "message", "room": "r", "from": "bob", "text": "hi", "ts": 0},
             {"type": "whisper", "from": "bob", "text": "psst", "ts": 0})
    assert r.output[1:] == ["[r] bob: hi", "[whisper] bob: psst"]


def test_taken_name_reads_next_line(tmp_path: Any) -> None:
    """Without ``--username`` a rejected name is followed by the next line."""
    r = Run(tmp_path)
    r.type("alice")
    (req,) = r.h.requests()
    r.h.feed({"type": "error", "id": req["id"], "code": "username-taken",
              "message": "Username 'alice' is taken"})
    r.type("alice2")
    assert r.h.requests()[0]["username"] == "alice2"
    assert r.output == ["[error] Username 'alice' is taken",
                        "[error] Type another username on the next line"]


def test_rejected_username_option_exits(tmp_path: Any) -> None:
    """With ``--username`` a rejected login exits with status 4."""
    r = Run(tmp_path, username="alice")
    (req,) = r.h.requests()
    r.h.feed({"type": "error", "id": req["id"], "code": "username-taken",
              "message": "Username 'alice' is taken"})
    assert result_of(r.done) == EXIT_LOGIN
    assert "login rejected: Username 'alice' is taken" in r.err.getvalue()


def test_eof_before_username(tmp_path: Any) -> None:
    """Empty input: nothing to log in with."""
    r = Run(tmp_path)
    r.type(None)
    assert result_of(r.done) == EXIT_LOGIN


def test_bad_lines_are_explained(tmp_path: Any) -> None:
    """Refused commands print a hint and the session goes on."""
    r = Run(tmp_path, username="alice")
    r.login()
    r.type("/jion r", "/whisper bob", "/sendfile nothere.txt bob", "/help who", None)
    assert r.finish() == EXIT_OK
    assert r.output[1:] == [
        "[error] Unknown command /jion. Did you mean /join <room>? Type /help for all commands.",
        "[error] Type a message after bob. Usage: /whisper <user> <message>",
        "[error] No such file: 'nothere.txt'. Check the path (~ is expanded)",
        "/who [room]  list the members of a room (default: yours)",
    ]


def test_server_errors_are_printed(tmp_path: Any) -> None:
    """An error reply prints its message."""
    r = Run(tmp_path, username="alice")
    r.login()
    r.type("/join groupA")
    (req,) = r.h.requests()
    r.h.feed({"type": "error", "id": req["id"], "code": "room-full",
              "message": "Room 'groupA' is full (15/15)"})
    assert r.output[-1] == "[error] Room 'groupA' is full (15/15)"


def test_eof_waits_for_uploads(tmp_path: Any) -> None:
    """At end of input the client stays until its upload is delivered."""
    (tmp_path / "f.txt").write_bytes(b"abc")
    r = Run(tmp_path, username="alice")
    r.login()
    r.type(f"/sendfile {tmp_path / 'f.txt'} bob", None)
    r.answer("sendfile", transfer=1, position=0)
    r.h.feed({"type": "upload-start", "transfer": 1, "waited": 0})
    r.h.clock.advance(0)
    r.h.sent()
    r.h.feed({"type": "upload-done", "transfer": 1, "waited": 0, "seconds": 0})
    assert r.h.requests() == []  # no exit yet
    r.h.feed({"type": "file-delivered", "transfer": 1, "to": "bob"})
    assert r.h.requests() == []  # bob's receipt may still come
    r.h.feed({"type": "file-received", "transfer": 1, "to": "bob", "verified": True})
    assert r.finish() == EXIT_OK
    assert r.output[-2:] == ["[file] f.txt sent to bob", "[file] bob received f.txt, sha256 verified"]


def test_eof_waits_for_a_receipt_only_so_long(tmp_path: Any) -> None:
    """A receipt that does not come (a server of revision 1) delays the exit 10 s at most."""
    (tmp_path / "f.txt").write_bytes(b"abc")
    r = Run(tmp_path, username="alice")
    r.login()
    r.type(f"/sendfile {tmp_path / 'f.txt'} bob", None)
    r.answer("sendfile", transfer=1, position=0)
    r.h.feed({"type": "upload-start", "transfer": 1, "waited": 0})
    r.h.clock.advance(0)
    r.h.sent()
    r.h.feed({"type": "upload-done", "transfer": 1, "waited": 0, "seconds": 0})
    r.h.feed({"type": "file-delivered", "transfer": 1, "to": "bob"})
    r.h.clock.advance(9.9)
    assert r.h.requests() == []
    r.h.clock.advance(0.1)
    assert r.finish() == EXIT_OK
    assert r.output[-2:] == [
        "[file] f.txt sent to bob",
        "[file] bob has not confirmed receiving f.txt: no receipt came within 10 s "
        "(it was sent in full)",
    ]


def test_eof_confirmed_and_old_files_are_not_said_unconfirmed(tmp_path: Any) -> None:
    """Only the files waited for at the end of input and never confirmed are named."""
    (tmp_path / "f.txt").write_bytes(b"abc")
    r = Run(tmp_path, username="alice")
    r.login()
    for transfer in (1, 2):
        r.type(f"/sendfile {tmp_path / 'f.txt'} bob")
        r.answer("sendfile", transfer=transfer, position=0)
        r.h.feed({"type": "upload-start", "transfer": transfer, "waited": 0})
        r.h.clock.advance(0)
        r.h.sent()
        r.h.feed({"type": "upload-done", "transfer": transfer, "waited": 0, "seconds": 0})
        r.h.feed({"type": "file-delivered", "transfer": transfer, "to": "bob"})
        r.h.clock.advance(15 if transfer == 1 else 0)  # 1: long done, never confirmed
    r.h.feed({"type": "file-received", "transfer": 2, "to": "bob", "verified": True})
    r.type(None)
    assert r.finish() == EXIT_OK
    assert not any("not confirmed" in line for line in r.output)


def test_exit_command(tmp_path: Any) -> None:
    """``/exit`` leaves at once with status 0."""
    r = Run(tmp_path, username="alice")
    r.login()
    r.type("/exit")
    assert r.finish() == EXIT_OK
    assert r.output[-1] == "[ok] bye"


def test_server_shutdown(tmp_path: Any) -> None:
    """A ``shutdown`` event is shown and the client exits with status 5."""
    r = Run(tmp_path, username="alice")
    r.login()
    r.h.feed({"type": "shutdown", "message": "maintenance"})
    r.h.protocol.connectionLost(Failure(ConnectionDone()))
    assert result_of(r.done) == EXIT_SHUTDOWN
    assert r.output[-1] == "[server] shutting down: maintenance"
    assert "server shut down: maintenance" in r.err.getvalue()


def test_connection_lost(tmp_path: Any) -> None:
    """A lost connection exits with status 6 and says so."""
    r = Run(tmp_path, username="alice")
    r.login()
    r.type("/users")
    r.h.protocol.connectionLost(Failure(ConnectionLost("reset")))
    assert result_of(r.done) == EXIT_LOST
    assert "chatnet-client: the connection to the server was lost (reset)" in r.err.getvalue()


def test_json_prints_frames(tmp_path: Any) -> None:
    """``--json`` prints each server frame, and saved downloads, as JSON lines."""
    r = Run(tmp_path, username="alice", as_json=True)
    r.login()
    r.h.feed({"type": "message", "room": "r", "from": "bob", "text": "hi", "ts": 0})
    r.h.feed({"type": "file-start", "transfer": 2, "from": "bob", "name": "a", "size": 0},
             {"type": "file-end", "transfer": 2,
              "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
    r.type("/frob")
    frames = [json.loads(line) for line in r.output]
    assert [f["type"] for f in frames] == ["ok", "message", "file-start", "file-end", "download-saved"]
    assert frames[-1]["path"].endswith("a")
    assert "Unknown command /frob" in r.err.getvalue()
    assert not has_result(r.done)


def test_invalid_username_refused_locally(tmp_path: Any) -> None:
    """A name the server would refuse is refused before sending; next line tried."""
    r = Run(tmp_path)
    r.type("al ice")
    assert r.h.requests() == []
    assert r.output == [
        "[error] Invalid username 'al ice': use 1-16 ASCII letters or digits",
        "[error] Type another username on the next line",
    ]
    r.type("alice")
    assert r.h.requests()[0]["username"] == "alice"


def test_rate_limited_lines_are_sent_again_in_order(tmp_path: Any) -> None:
    """A line the server refuses as rate-limited goes again after a pause, before the next."""
    r = Run(tmp_path, username="alice")
    r.login()
    r.type("/join r")
    r.answer("join", room="r", members=["alice"])
    r.type("one", "two")
    (first,) = r.h.requests()
    r.h.feed({"type": "error", "id": first["id"], "code": "rate-limited", "message": "Too many requests"})
    assert r.h.requests() == []  # "two" waits for "one"
    r.h.clock.advance(0.1)
    (again,) = r.h.requests()
    assert again["text"] == "one" and again["id"] != first["id"]
    r.h.feed({"type": "error", "id": again["id"], "code": "rate-limited", "message": "Too many requests"})
    r.h.clock.advance(0.1)
    assert r.h.requests() == []  # the second pause is longer
    r.h.clock.advance(0.1)
    r.answer("broadcast", delivered=0)
    assert r.answer("broadcast", delivered=0)["text"] == "two"
    assert r.output[-2:] == ["[r] alice: one", "[r] alice: two"]
    assert "rate" not in r.err.getvalue()


def test_rate_limited_for_a_minute_is_shown(tmp_path: Any) -> None:
    """A server that keeps refusing: after the last retry the refusal is printed."""
    from chatnet.client.lines import RATE_LIMIT_PAUSES

    r = Run(tmp_path, username="alice")
    r.login()
    r.type("/join r")
    r.answer("join", room="r", members=["alice"])
    r.type("hello")
    for pause in (*RATE_LIMIT_PAUSES, None):
        (req,) = r.h.requests()
        r.h.feed({"type": "error", "id": req["id"], "code": "rate-limited", "message": "Slow down"})
        if pause is not None:
            r.h.clock.advance(pause)
    assert r.output[-1] == "[error] Slow down"
    assert 50 < sum(RATE_LIMIT_PAUSES) < 70


def test_auth_failed_says_where_the_password_goes(tmp_path: Any) -> None:
    """A server with accounts: line mode cannot prompt, so it says how to give the password."""
    r = Run(tmp_path)
    r.type("alice")
    (req,) = r.h.requests()
    r.h.feed({"type": "error", "id": req["id"], "code": "auth-failed", "message": "Wrong username or password"})
    assert result_of(r.done) == EXIT_LOGIN
    assert r.output[-1] == "[error] Wrong username or password"
    assert "$CHATNET_PASSWORD" in r.err.getvalue() and "none was given" in r.err.getvalue()


INJECTION = "hello\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[41mFAKE: [server] shutting down\x1b[0m"


def test_hostile_text_printed_escaped(tmp_path: Any) -> None:
    """Nothing a server forwards reaches stdout or stderr raw; every row keeps its sender."""
    r = Run(tmp_path, username="alice")
    r.login()
    r.h.feed({"type": "message", "room": "groupA", "from": "mallory", "text": INJECTION, "ts": 0},
             {"type": "message", "room": "groupA", "from": "mallory",
              "text": "ok\n[server] shutting down\u202e", "ts": 0},
             {"type": "shutdown", "message": "bye\x1b]0;pwned\x07"})
    r.h.protocol.connectionLost(Failure(ConnectionDone()))
    assert result_of(r.done) == EXIT_SHUTDOWN
    out, err = r.out.getvalue(), r.err.getvalue()
    for stream in (out, err):
        assert "\x1b" not in stream and "\x07" not in stream and "\u202e" not in stream
    assert r.output[1] == ("[groupA] mallory: hello\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07"
                           "\\x1b[41mFAKE: [server] shutting down\\x1b[0m")
    assert r.output[2:4] == ["[groupA] mallory: ok",
                             "                  [server] shutting down\\u202e"]
    assert "server shut down: bye\\x1b]0;pwned\\x07" in err


def test_json_stays_json_and_safe(tmp_path: Any) -> None:
    """``--json``: each frame one valid JSON line, equal to what came, with no raw controls."""
    r = Run(tmp_path, username="alice", as_json=True)
    r.login()
    frame = {"type": "message", "room": "r", "from": "m", "text": INJECTION + "\x9b\u202e\n", "ts": 0}
    r.h.feed(frame)
    (line,) = r.output[1:]
    assert json.loads(line) == frame
    assert line.isprintable()
