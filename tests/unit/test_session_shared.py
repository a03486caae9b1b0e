"""
The session over a :class:`~chatnet.interfaces.Shared` state whose answers
come later, as a cluster's do: replies keep request order, frames that
arrive meanwhile wait, refusals are logged as on one server, and a
connection that goes while its name is being held gives the name back.

``Later`` is the single server's :class:`LocalShared` with every answer
held in a Deferred the test fires (a cluster is tested for real, against
Redis, in tests/integration/test_cluster_*.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support.fakes import RecordingOutbox, World
from twisted.internet.defer import Deferred, fail

from chatnet import frames
from chatnet.errors import ChatError, ErrorCode
from chatnet.model import User
from chatnet.session import Session
from chatnet.shared_state import LocalShared, answered_now


class Later:
    """LocalShared, answering every request later (when :meth:`answer` is called)."""

    local = False

    def __init__(self, local: LocalShared) -> None:
        self.local = False
        self._inner = local
        self.pending: list[tuple[Deferred[Any], Callable[[], Any]]] = []
        self.exits: list[tuple[str, bool, bool]] = []

    def _later(self, work: Callable[[], Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append((d, work))
        return d

    def answer(self) -> None:
        """Answer every question asked so far, in order."""
        pending, self.pending = self.pending, []
        for d, work in pending:
            try:
                d.callback(work())
            except ChatError as e:
                d.errback(e)

    def enter(self, user: User) -> Deferred[None]:
        return self._later(lambda: self._inner.enter(user))

    def exit(self, user: User, clean: bool, quiet: bool = False) -> Any:
        self.exits.append((user.name, clean, quiet))
        return self._inner.exit(user, clean, quiet)

    def join(self, user: User, name: str) -> Deferred[Any]:
        return self._later(lambda: self._inner.join(user, name))

    def leave(self, user: User) -> Deferred[Any]:
        return self._later(lambda: self._inner.leave(user))

    def broadcast(self, user: User, room: Any, text: str, ts: float) -> Deferred[int]:
        return self._later(lambda: self._inner.broadcast(user, room, text, ts))

    def whisper(self, user: User, to: object, text: object, ts: float) -> Deferred[str]:
        return self._later(lambda: self._inner.whisper(user, to, text, ts))

    def locate(self, name: object) -> Deferred[User]:
        return self._later(lambda: self._inner.locate(name))

    def who(self, name: object) -> Deferred[Any]:
        return self._later(lambda: self._inner.who(name))

    def rooms_page(self, after: str | None, limit: int) -> Deferred[Any]:
        return self._later(lambda: self._inner.rooms_page(after, limit))

    def users_page(self, after: str | None, limit: int) -> Deferred[Any]:
        return self._later(lambda: self._inner.users_page(after, limit))

    @property
    def users_online(self) -> int:
        return self._inner.users_online

    @property
    def rooms_count(self) -> int:
        return self._inner.rooms_count


def world() -> tuple[World, Later]:
    w = World()
    later = Later(LocalShared(w.hub.directory))
    w.hub.shared = later
    return w, later


def login(w: World, later: Later, name: str) -> tuple[Session, RecordingOutbox]:
    session, out = w.session()
    session.received(frames.Login(1, name))
    later.answer()
    reply = out.take()
    assert isinstance(reply[0], frames.Ok) and reply[0].result["username"] == name, reply
    return session, out


def test_answered_now_tells_values_from_deferreds() -> None:
    assert answered_now(3) and answered_now(None) and answered_now(("a", []))
    assert not answered_now(Deferred())


def test_a_login_waits_for_the_shared_state_and_what_follows_waits_with_it() -> None:
    w, later = world()
    session, out = w.session()
    session.received(frames.Login(1, "alice"))
    session.received(frames.Ping(2))
    session.received(frames.Join(3, "lobby"))
    assert out.take() == [] and out.paused  # held, reading paused
    later.answer()  # the login: then the ping, then the join (which waits)
    got = [f for f in out.take() if isinstance(f, frames.Ok)]
    assert [f.id for f in got] == [1, 2]
    assert "username" in got[0].result and got[1].result == {}
    later.answer()
    (joined,) = out.take()
    assert isinstance(joined, frames.Ok) and joined.result["room"] == "lobby"
    assert not out.paused
    assert ("LOGIN", "alice logged in from 127.0.0.1:5000") in [
        (c, t) for c, t in w.audit.lines]


def test_a_name_taken_elsewhere_is_a_login_failed_line_not_an_error_line() -> None:
    w, later = world()
    login(w, later, "alice")
    session, out = w.session("127.0.0.1:6000")
    session.received(frames.Login(1, "ALICE"))
    later.answer()
    (reply,) = out.take()
    assert isinstance(reply, frames.ErrorReply) and reply.code == "username-taken"
    categories = w.audit.categories()
    assert categories.count("LOGIN-FAILED") == 1 and "ERROR" not in categories


def test_a_connection_lost_while_its_name_is_held_gives_the_name_back() -> None:
    w, later = world()
    session, out = w.session()
    session.received(frames.Login(1, "alice"))
    session.lost()
    later.answer()  # the cluster held the name; nobody is there to have it
    assert later.exits == [("alice", False, True)]
    assert "alice" not in w.hub.directory.users
    assert out.take() == []


def test_rooms_and_messages_answered_later_in_request_order() -> None:
    w, later = world()
    alice, a = login(w, later, "alice")
    bob, b = login(w, later, "bob")
    alice.received(frames.Join(1, "lobby"))
    later.answer()
    bob.received(frames.Join(1, "Lobby"))
    later.answer()
    a.take(), b.take()
    alice.received(frames.Broadcast(2, "hello"))
    alice.received(frames.Whisper(3, "bob", "psst"))
    alice.received(frames.Who(4))
    alice.received(frames.Users(5))
    alice.received(frames.Rooms(6))
    alice.received(frames.Leave(7))
    for _ in range(6):
        later.answer()
    got = a.take()
    assert all(isinstance(f, frames.Ok) for f in got)
    results = {f.id: f.result for f in got if isinstance(f, frames.Ok)}
    assert list(results) == [2, 3, 4, 5, 6, 7]
    assert results[2] == {"delivered": 1}
    assert results[4]["members"] == ["alice", "bob"]
    assert results[5]["users"] == ["alice", "bob"]
    assert results[7] == {"room": "lobby"}
    seen = b.take()
    assert [type(f) for f in seen] == [frames.Message, frames.WhisperEvent, frames.Presence]
    categories = w.audit.categories()
    for category in ("JOIN", "BROADCAST", "WHISPER", "LEAVE"):
        assert category in categories


def test_unavailable_is_the_request_s_error_with_retry_after() -> None:
    w, later = world()
    alice, a = login(w, later, "alice")
    error = ChatError(ErrorCode.UNAVAILABLE, "cluster away", 1.0)
    w.hub.shared.join = lambda user, name: fail(error)  # type: ignore[method-assign]
    alice.received(frames.Join(9, "lobby"))
    (reply,) = a.take()
    assert isinstance(reply, frames.ErrorReply)
    assert (reply.id, reply.code, reply.retry_after) == (9, "unavailable", 1.0)
    assert alice.user is not None and alice.user.room is None


def test_a_broadcast_and_a_whisper_sent_after_their_sender_left_are_still_logged() -> None:
    """The cluster published them; only the reply is lost with the connection."""
    w, later = world()
    alice, a = login(w, later, "alice")
    bob, b = login(w, later, "bob")
    for session in (alice, bob):
        session.received(frames.Join(1, "lobby"))
        later.answer()
    a.take(), b.take()
    alice.received(frames.Broadcast(2, "hello"))
    alice.received(frames.Whisper(3, "bob", "psst"))  # held behind the broadcast
    alice.lost()
    later.answer()  # the broadcast's answer comes after alice went
    assert a.take() == []
    assert [type(f) for f in b.take()] == [frames.Presence, frames.Message]
    categories = w.audit.categories()
    assert categories.count("BROADCAST") == 1 and w.hub.stats.broadcasts == 1
    # a whisper whose answer comes after its sender went is logged too
    carol, c = login(w, later, "carol")
    carol.received(frames.Whisper(4, "bob", "psst"))
    carol.lost()
    later.answer()
    assert [type(f) for f in b.take()] == [frames.WhisperEvent]
    assert w.audit.categories().count("WHISPER") == 1 and w.hub.stats.whispers == 1
