"""
Both front ends while the connection is restored: the full-screen view keeps
its window and says what happened; line mode waits, then carries on.
"""

import io
from typing import Any

from support import raw
from support.client_harness import has_result, result_of
from support.links import A, Net, opened
from twisted.internet.defer import Deferred, DeferredQueue, ensureDeferred
from twisted.internet.error import ConnectionDone

from chatnet.client.chat_view import ChatView
from chatnet.client.lines import (
    EXIT_INTERRUPTED,
    EXIT_LOGIN,
    EXIT_LOST,
    EXIT_OK,
    EXIT_SHUTDOWN,
    EXIT_TERMINATED,
    LineMode,
)


def screen(view: ChatView, cols: int = 110, rows: int = 24) -> str:
    canvas = view.frame.render((cols, rows), focus=True)
    return "\n".join(line.decode("utf-8").rstrip() for line in canvas.text)


def typed(view: ChatView, text: str) -> None:
    for key in [*text, "enter"]:
        if view.frame.keypress((110, 24), key) is not None:
            view.keypress(key)


def feed(net: Net, frame: dict[str, Any]) -> None:
    assert net.protocol is not None
    net.protocol.dataReceived(raw.encode_frame(frame))


def logged_in_view(tmp_path: Any) -> tuple[Net, ChatView, list[int]]:
    net = Net(tmp_path, A)
    opened(net)
    finished: list[int] = []
    view = ChatView(net.core, str(A), finished.append, "alice", "pw", link=net.link)
    net.answer("login", username="alice", server="chatnet/1.0", limits={})
    net.answer("users", users=["alice"])
    typed(view, "/join groupA")
    net.answer("join", room="groupA", members=["alice"])
    return net, view, finished


def test_full_screen_keeps_the_window_and_shows_what_failed(tmp_path: Any) -> None:
    """
    The server shuts down during an upload: the failed upload and the
    shutdown message are shown, the window stays, marked DISCONNECTED, and
    comes back in its room.
    """
    net, view, finished = logged_in_view(tmp_path)
    (tmp_path / "report.pdf").write_bytes(b"x" * 100)
    typed(view, f"/sendfile {tmp_path / 'report.pdf'} bob")
    net.answer("sendfile", transfer=7, position=0)
    feed(net, {"type": "file-failed", "transfer": 7, "reason": "shutdown"})
    feed(net, {"type": "shutdown", "message": "The server is shutting down"})
    net.drop(ConnectionDone())
    shown = screen(view)
    assert "[error] sending report.pdf to bob failed: the server shut down" in shown
    assert "[server] shutting down: The server is shutting down" in shown
    assert "[disconnected] the server shut down; reconnecting to a:1 in 1.0 s" in shown
    assert shown.count("The server is shutting down") == 1  # its message shown once
    assert "\n DISCONNECTED, retry in 1.0 s (Ctrl+R now)  alice | room groupA" in shown
    assert finished == []

    typed(view, "hello?")
    assert "Not sent: disconnected (/reconnect or Ctrl+R tries at once)" in screen(view)
    assert net.requests() == []

    net.up = set()
    view.keypress("ctrl r")  # at once: refused, the next try later
    net.clock.advance(0)
    assert "connection refused (is the server running?); reconnecting to a:1 in 2.0 s" in (
        screen(view).replace("\n         ", " "))
    net.up = {A}
    typed(view, "/reconnect")
    net.clock.advance(0)
    (login,) = net.requests()
    assert (login["username"], login["password"]) == ("alice", "pw")
    feed(net, {"type": "ok", "id": login["id"], "username": "alice", "server": "s", "limits": {}})
    net.answer("join", room="groupA", members=["alice", "bob"])
    shown = screen(view)
    assert "[ok] reconnected to a:1 as alice, back in groupA" in shown
    assert "DISCONNECTED" not in shown and " alice | room groupA (2)" in shown
    assert "[server] shutting down" in shown  # the scrollback is still there
    typed(view, "/reconnect")
    assert "/reconnect: not disconnected" in screen(view)


def test_full_screen_says_a_repeated_failure_once(tmp_path: Any) -> None:
    """
    A server that stays down is said to refuse once, not at every attempt:
    the countdown is in the status bar, and the conversation stays on screen.
    """
    net, view, finished = logged_in_view(tmp_path)
    net.up = set()
    net.drop(ConnectionDone())
    for _ in range(6):
        net.clock.advance(31)
    shown = screen(view, rows=60).replace("\n         ", " ")
    assert shown.count("connection refused (is the server running?)") == 1
    assert "[disconnected] the server closed the connection" in shown
    assert "DISCONNECTED, retry in" in shown
    net.up = {A}
    net.clock.advance(31)
    (login,) = net.requests()
    feed(net, {"type": "ok", "id": login["id"], "username": "alice", "server": "s", "limits": {}})
    net.answer("join", room="groupA", members=["alice"])
    net.up = set()
    net.drop(ConnectionDone())
    net.clock.advance(31)
    shown = screen(view, rows=60).replace("\n         ", " ")
    assert shown.count("connection refused (is the server running?)") == 2  # a new outage


def test_full_screen_before_login_still_ends(tmp_path: Any) -> None:
    """No name yet: nothing to restore; the loss ends the screen as before."""
    net = Net(tmp_path, A)
    opened(net)
    finished: list[int] = []
    ChatView(net.core, str(A), finished.append, None, link=net.link)
    net.drop()
    assert finished == [EXIT_LOST]


class Lines:
    def __init__(self, tmp_path: Any, terminal: bool = True, **options: Any) -> None:
        self.net = Net(tmp_path, A, **options)
        opened(self.net)
        self.lines: DeferredQueue[Any] = DeferredQueue()
        self.out, self.err = io.StringIO(), io.StringIO()
        mode = LineMode(self.net.core, self.lines, out=self.out, err=self.err,
                        username="alice", link=self.net.link, terminal=terminal)
        self.mode = mode
        self.done: Deferred[int] = ensureDeferred(mode.run())
        self.net.answer("login", username="alice", server="s", limits={})

    @property
    def output(self) -> list[str]:
        return self.out.getvalue().splitlines()


def test_line_mode_waits_and_carries_on(tmp_path: Any) -> None:
    """Lines read while disconnected wait for the reconnect, then run in order."""
    r = Lines(tmp_path)
    r.lines.put("/join groupA")
    r.net.answer("join", room="groupA", members=["alice"])
    r.net.drop()
    r.lines.put("one")
    r.lines.put("two")
    assert r.net.requests() == []
    assert r.output[-1] == ("[disconnected] the connection to the server was lost; reconnecting "
                            "to a:1 in 1.0 s (/reconnect to try now)")
    r.net.clock.advance(1.0)
    r.net.answer("login", username="alice", server="s", limits={})
    r.net.answer("join", room="groupA", members=["alice"])
    assert r.output[-1] == "[ok] reconnected to a:1 as alice, back in groupA"
    (one,) = r.net.requests()
    assert one["text"] == "one"
    feed(r.net, {"type": "ok", "id": one["id"], "delivered": 1})
    (two,) = r.net.requests()
    assert two["text"] == "two"
    feed(r.net, {"type": "ok", "id": two["id"], "delivered": 1})
    r.lines.put(None)
    r.net.answer("exit")
    r.net.drop(ConnectionDone())
    assert result_of(r.done) == EXIT_OK


def test_line_mode_from_a_pipe_says_a_repeated_failure_once(tmp_path: Any) -> None:
    """
    Stdin is not a terminal: ``/reconnect`` is not offered, and a server that
    stays down is said once per doubling of the wait, not at every attempt.
    """
    r = Lines(tmp_path, terminal=False)
    r.net.up = set()
    r.net.drop()
    for _ in range(8):
        r.net.clock.advance(31)
    shown = [line for line in r.output if line.startswith("[disconnected]")]
    assert shown == [
        "[disconnected] the connection to the server was lost; reconnecting to a:1 in 1.0 s",
        "[disconnected] cannot connect to a:1: connection refused (is the server running?); "
        "reconnecting to a:1 in 2.0 s",
        "[disconnected] still cannot connect to a:1: connection refused (is the server "
        "running?); next try in 4.0 s",
        "[disconnected] still cannot connect to a:1: connection refused (is the server "
        "running?); next try in 8.0 s",
        "[disconnected] still cannot connect to a:1: connection refused (is the server "
        "running?); next try in 16 s",
    ]
    assert "/reconnect" not in r.out.getvalue()
    r.net.up = {A}
    r.net.clock.advance(31)
    r.net.answer("login", username="alice", server="s", limits={})
    assert r.output[-1] == "[ok] reconnected to a:1 as alice"
    r.net.up = set()
    r.net.drop()
    r.net.clock.advance(1.0)
    assert r.output[-1] == ("[disconnected] cannot connect to a:1: connection refused (is the "
                            "server running?); reconnecting to a:1 in 2.0 s")  # a new outage


def test_line_mode_stopped_by_the_user_is_no_loss(tmp_path: Any) -> None:
    """
    SIGTERM: ``exit`` is said, and the connection's end (here cut, as the
    reactor's shutdown would) is neither announced as lost nor restored.
    """
    r = Lines(tmp_path)
    r.mode.leave("stopped (SIGTERM)", EXIT_TERMINATED)
    (req,) = r.net.requests()
    assert req["type"] == "exit"
    r.net.drop()
    assert result_of(r.done) == EXIT_TERMINATED
    assert r.err.getvalue() == "chatnet-client: stopped (SIGTERM), leaving\n"
    assert not any(line.startswith("[disconnected]") for line in r.output)
    assert not r.net.clock.getDelayedCalls()

    # Ctrl+C, the server never answers: cut off after 2 s, still no loss.
    r = Lines(tmp_path)
    r.mode.leave()
    r.net.clock.advance(2)
    r.net.drop()
    assert result_of(r.done) == EXIT_INTERRUPTED
    assert "lost" not in r.err.getvalue() and "reconnecting" not in r.out.getvalue()
    assert r.net.tried.count(A) == 1  # not connected again


def test_line_mode_cut_line_is_reported(tmp_path: Any) -> None:
    """A line whose reply the loss cut off: said, not sent again."""
    r = Lines(tmp_path)
    r.lines.put("/join groupA")
    r.net.answer("join", room="groupA", members=["alice"])
    r.lines.put("hello")
    (req,) = r.net.requests()
    r.net.drop()
    assert "[error] the connection to the server was lost: not known whether 'hello' was " \
        "carried out" in r.output
    r.net.clock.advance(1.0)
    r.net.answer("login", username="alice", server="s", limits={})
    r.net.answer("join", room="groupA", members=["alice"])  # the rejoin; "hello" is not resent
    assert r.net.requests() == []


def test_line_mode_gives_up_with_the_status(tmp_path: Any) -> None:
    """Past --retry-for: status 6, or 5 when the server had shut down."""
    r = Lines(tmp_path, give_up_after=5.0)
    feed(r.net, {"type": "shutdown", "message": "bye"})
    r.net.up = set()
    r.net.drop(ConnectionDone())
    r.net.clock.pump([1, 2, 4])
    assert result_of(r.done) == EXIT_SHUTDOWN
    assert "giving up: no working connection for" in r.err.getvalue()

    r = Lines(tmp_path, give_up_after=5.0)
    r.net.up = set()
    r.net.drop()
    assert not has_result(r.done)
    r.net.clock.pump([1, 2, 4])
    assert result_of(r.done) == EXIT_LOST


def test_line_mode_login_refused_on_reconnect(tmp_path: Any) -> None:
    """The password no longer works: status 4."""
    r = Lines(tmp_path)
    r.net.drop()
    r.net.clock.advance(1.0)
    r.net.refuse("auth-failed", "Wrong password")
    r.net.drop(ConnectionDone())
    assert result_of(r.done) == EXIT_LOGIN
    assert "logging in again was refused: Wrong password" in r.err.getvalue()


def test_line_mode_end_of_input_while_disconnected(tmp_path: Any) -> None:
    """Input ends while the connection is being restored: exit with the loss's status."""
    r = Lines(tmp_path)
    r.net.drop()
    r.lines.put(None)
    assert result_of(r.done) == EXIT_LOST
    assert not r.net.clock.getDelayedCalls()


def test_json_mode_records(tmp_path: Any) -> None:
    """``--json``: a record for each reconnect step, the words on stderr."""
    import json

    net = Net(tmp_path, A)
    opened(net)
    lines: DeferredQueue[Any] = DeferredQueue()
    out, err = io.StringIO(), io.StringIO()
    ensureDeferred(LineMode(net.core, lines, out=out, err=err, as_json=True,
                            username="alice", link=net.link).run())
    net.answer("login", username="alice", server="s", limits={})
    net.drop()
    net.clock.advance(1.0)
    net.answer("login", username="alice", server="s", limits={})
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["type"] for r in records] == ["ok", "reconnecting", "ok", "reconnected"]
    assert records[1] == {"type": "reconnecting", "why": "the connection to the server was lost",
                          "server": "a:1", "delay": 1.0}
    assert records[3] == {"type": "reconnected", "server": "a:1", "username": "alice",
                          "room": None}
    assert "[disconnected] the connection to the server was lost" in err.getvalue()


def test_full_screen_no_reconnect_ends_as_before(tmp_path: Any) -> None:
    """``--no-reconnect``: the loss ends the screen with status 6 (5 after a shutdown)."""
    net, view, finished = logged_in_view(tmp_path)
    net.link.enabled = False
    feed(net, {"type": "shutdown", "message": "bye"})
    net.drop(ConnectionDone())
    assert finished == [EXIT_SHUTDOWN]
