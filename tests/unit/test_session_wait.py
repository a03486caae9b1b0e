"""
Tests for :meth:`chatnet.session.Session.wait`: a request whose answer comes
later, with replies kept in request order and reading paused meanwhile.

The ``who`` request is made slow for these tests: its answer is a Deferred
the test fires by hand.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.chat import logged_in, new_server
from twisted.internet.defer import Deferred, succeed

from chatnet import frames
from chatnet import session as session_module
from chatnet.errors import ChatError, ErrorCode
from chatnet.frames import Request
from chatnet.session import Session
from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server


class Slow:
    """The slow request: ``ok`` with the answer, once its Deferred fires."""

    def __init__(self) -> None:
        self.pending: list[Deferred[str]] = []
        self.undone: list[str] = []
        self.answer_at_once: str | None = None
        self.cancellable = False

    def __call__(self, session: Session, req: Request) -> None:
        if self.answer_at_once is not None:
            d: Any = succeed(self.answer_at_once)
        else:
            d = Deferred()
            self.pending.append(d)

        def then(answer: str) -> None:
            if answer == "refuse":
                raise ChatError(ErrorCode.ROOM_FULL, "no")
            session._reply(frames.Ok(req.id, {"answer": answer}))

        session.wait(d, then, req.id, undo=self.undone.append, cancellable=self.cancellable)


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[Slow]:
    handler = Slow()
    monkeypatch.setitem(session_module._HANDLERS, frames.Who, handler)
    yield handler


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return new_server(tmp_path / "spool")


def payload(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj).encode()
    return struct.pack(">I", len(data)) + data


def replies(client: FakeClient) -> list[tuple[Any, str]]:
    return [(f.get("id"), f["type"]) for f in client.frames() if isinstance(f, dict)]


def test_replies_keep_request_order(server: Server, slow: Slow) -> None:
    """Requests after a waiting one are answered after it, in order."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": "s"})
    a.send({"type": "ping", "id": 2})
    a.send({"type": "join", "id": 3, "room": "r"})
    a.send({"type": "who", "id": "t"})
    a.send({"type": "ping", "id": 5})
    assert a.frames() == []
    slow.pending[0].callback("one")
    assert replies(a) == [("s", "ok"), (2, "ok"), (3, "ok")]
    assert len(slow.pending) == 2
    slow.pending[1].callback("two")
    assert replies(a) == [("t", "ok"), (5, "ok")]
    assert server.hub.directory.find_room("r").names() == ["alice"]


def test_answer_fields_reach_the_reply(server: Server, slow: Slow) -> None:
    """``then`` builds the reply from the answer."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    slow.pending[0].callback("forty-two")
    assert a.frames() == [{"type": "ok", "id": 1, "answer": "forty-two"}]


def test_data_frames_do_not_overtake(server: Server, slow: Slow) -> None:
    """A data frame sent after a waiting request is handled after it."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    a.send_data(99, b"x")
    assert a.frames() == []
    slow.pending[0].callback("done")
    frames = a.frames()
    assert [(f.get("id"), f.get("code")) for f in frames] == [(1, None), (None, "bad-transfer")]


def test_reading_paused_while_frames_are_held(server: Server, slow: Slow) -> None:
    """
    While a request waits, reading goes on until a frame must be held (so a
    client that asked and left is noticed); then it pauses until the answer.
    """
    (a,) = logged_in(server, "alice")
    assert a.transport.producerState == "producing"
    a.send({"type": "who", "id": 1})
    assert a.transport.producerState == "producing"
    a.send({"type": "ping", "id": 2})
    assert a.transport.producerState == "paused"
    slow.pending[0].callback("x")
    assert a.transport.producerState == "producing"
    assert [i for i, _ in replies(a)] == [1, 2]


def test_frames_in_the_same_read_stay_unparsed(server: Server, slow: Slow) -> None:
    """
    Frames that came in the same read as the waiting request stay bytes in
    the protocol's buffer, not decoded frames: what is held is bounded.
    """
    (a,) = logged_in(server, "alice")
    chunk = payload({"type": "who", "id": 1}) + b"".join(
        payload({"type": "ping", "id": n}) for n in range(2, 50)
    )
    a.protocol.dataReceived(chunk)
    session = a.protocol.session
    assert session._held is not None and len(session._held) <= 1  # the rest stays bytes
    assert a.frames() == []
    slow.pending[0].callback("x")
    assert [i for i, _ in replies(a)] == list(range(1, 50))


def test_answer_at_once_changes_nothing(server: Server, slow: Slow) -> None:
    """An answer that is there at once is used at once; reading is never paused."""
    (a,) = logged_in(server, "alice")
    slow.answer_at_once = "now"
    a.protocol.dataReceived(payload({"type": "who", "id": 1}) + payload({"type": "ping", "id": 2}))
    assert replies(a) == [(1, "ok"), (2, "ok")]
    assert a.transport.producerState == "producing"
    assert a.protocol.session._held is None


def test_waits_in_a_row_from_held_frames(server: Server, slow: Slow) -> None:
    """A held request that waits in turn holds the rest again."""
    (a,) = logged_in(server, "alice")
    for ident in (1, 2, 3):
        a.send({"type": "who", "id": ident})
    a.send({"type": "ping", "id": 4})
    for n in range(3):
        assert a.transport.producerState == "paused"
        slow.pending[n].callback(str(n))
    assert [i for i, _ in replies(a)] == [1, 2, 3, 4]
    assert a.transport.producerState == "producing"


def test_error_while_waiting(server: Server, slow: Slow, observe_errors: list[Any]) -> None:
    """A ChatError, raised by ``then`` or failing the answer, is the request's error reply."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    a.send({"type": "who", "id": 2})
    a.send({"type": "ping", "id": 3})
    slow.pending[0].callback("refuse")
    slow.pending[1].errback(ChatError(ErrorCode.NO_SUCH_USER, "gone"))
    frames = a.frames()
    assert [(f.get("id"), f.get("code")) for f in frames] == [
        (1, "room-full"), (2, "no-such-user"), (3, None)]
    assert observe_errors == []


def test_unexpected_failure_while_waiting_is_internal(
    server: Server, slow: Slow, observe_errors: list[Any]
) -> None:
    """Any other failure is an internal error, logged, and the session goes on."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    a.send({"type": "ping", "id": 2})
    slow.pending[0].errback(ZeroDivisionError())
    frames = a.frames()
    assert [(f.get("id"), f.get("code")) for f in frames] == [(1, "internal"), (2, None)]
    assert len(observe_errors) == 1
    observe_errors.clear()


def test_lost_while_waiting_is_undone(server: Server, slow: Slow, observe_errors: list[Any]) -> None:
    """An answer that comes after the connection is gone is undone, not used."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    a.send({"type": "join", "id": 2, "room": "r"})
    a.lose()
    slow.pending[0].callback("late")
    assert slow.undone == ["late"]
    assert a.frames() == []
    assert server.hub.directory.usernames() == []
    assert "r" not in [r["name"] for r in server.hub.directory.room_list()]


def test_lost_while_waiting_is_noticed_and_cancels(
    server: Server, slow: Slow, observe_errors: list[Any]
) -> None:
    """
    A client that asks and leaves is noticed at once (reading was not
    paused), and a cancellable question (a password check) is cancelled.
    """
    slow.cancellable = True
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    assert a.transport.producerState == "producing"
    d = slow.pending[0]
    a.lose()
    assert d.called  # cancelled: CancelledError, consumed
    assert observe_errors == [] and slow.undone == []
    assert server.hub.directory.usernames() == []


def test_failure_after_loss_is_dropped(server: Server, slow: Slow, observe_errors: list[Any]) -> None:
    """A failed answer after the connection is gone is consumed quietly."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    a.lose()
    d = slow.pending[0]
    d.errback(ZeroDivisionError())
    assert observe_errors == []
    assert d.called and d.result is None


def test_closed_while_waiting(server: Server, slow: Slow) -> None:
    """A connection closed by the server (shutdown, login timeout) ignores the answer."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    a.protocol.session.close("test")
    slow.pending[0].callback("late")
    assert slow.undone == ["late"]
    assert all(f.get("id") != 1 for f in a.frames())


def test_exit_while_waiting_comes_after(server: Server, slow: Slow) -> None:
    """An ``exit`` sent while a request waits is answered after it."""
    (a,) = logged_in(server, "alice")
    a.send({"type": "who", "id": 1})
    a.send({"type": "exit", "id": 2})
    assert not a.transport.disconnecting
    slow.pending[0].callback("x")
    assert replies(a) == [(1, "ok"), (2, "ok")]
    assert a.transport.disconnecting

