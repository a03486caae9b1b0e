"""Tests for :mod:`chatnet.client.login`: the one login flow, with recording fakes."""

from __future__ import annotations

from typing import Any

from support.client_harness import has_result, result_of
from twisted.internet.defer import Deferred, ensureDeferred, succeed

from chatnet import frames
from chatnet.client.events import ConnectionClosed, Disconnected, LocalError
from chatnet.client.login import (
    Closed,
    LoggedIn,
    NoInput,
    Outcome,
    Rejected,
    Then,
    log_in,
)
from chatnet.errors import ChatError, ErrorCode

TAKEN = ChatError(ErrorCode.USERNAME_TAKEN, "Username 'alice' is taken")
AUTH = ChatError(ErrorCode.AUTH_FAILED, "Wrong username or password")


class Core:
    """Records each login and answers it with the next scripted result."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str | None]] = []
        self.gone: Disconnected | None = None

    def login(self, username: str, password: str | None = None) -> Deferred[frames.LoginOk]:
        self.calls.append((username, password))
        answer = self.answers.pop(0)
        d: Deferred[frames.LoginOk] = Deferred()
        if isinstance(answer, Exception):
            d.errback(answer)
        else:
            d.callback(answer)
        return d


class Front:
    """Answers with scripted input; records what it was asked and shown."""

    def __init__(self, *typed: str | None, again: bool = True, password: bool = True) -> None:
        self.typed = list(typed)
        self.asks_again = again
        self.asks_password = password
        self.log: list[Any] = []

    def ask_username(self) -> Deferred[str | None]:
        self.log.append("ask username")
        return succeed(self.typed.pop(0))

    def ask_password(self, username: str) -> Deferred[str | None]:
        self.log.append(f"ask password for {username}")
        return succeed(self.typed.pop(0))

    def refused(self, error: ChatError | LocalError, then: Then, username: str) -> None:
        self.log.append((error.message, then, username))


def run(core: Core, front: Front, username: str | None = None,
        password: str | None = None) -> Outcome:
    d = ensureDeferred(log_in(core, front, username, password))
    assert has_result(d)
    return result_of(d)


OK = frames.LoginOk(1, "alice2", "chatnet/1.0.0", {})


def test_taken_name_asks_for_another() -> None:
    """username-taken: the front end is told and asked again."""
    core, front = Core(TAKEN, OK), Front("alice", "alice2")
    assert run(core, front) == LoggedIn(OK, None)
    assert core.calls == [("alice", None), ("alice2", None)]
    assert front.log == ["ask username", (TAKEN.message, Then.USERNAME, "alice"), "ask username"]


def test_given_name_refused_stops_when_the_front_cannot_ask() -> None:
    """Line mode with --username: a refusal is the end, with the reason."""
    core, front = Core(TAKEN), Front(again=False)
    outcome = run(core, front, "alice")
    assert outcome == Rejected(TAKEN) and not outcome.needs_password
    assert front.log == [(TAKEN.message, Then.STOP, "alice")]


def test_invalid_name_refused_locally_asks_again() -> None:
    """A name the core refuses before sending counts as a refusal too."""
    bad = LocalError("Invalid username 'al ice'")
    core, front = Core(bad, OK), Front("al ice", "alice")
    assert isinstance(run(core, front), LoggedIn)
    assert front.log[1] == (bad.message, Then.USERNAME, "al ice")


def test_auth_failed_asks_for_the_password_and_retries_the_same_name() -> None:
    """auth-failed: the password is asked for; the same name goes again with it."""
    core, front = Core(AUTH, OK), Front("s3cret")
    assert run(core, front, "alice") == LoggedIn(OK, "s3cret")
    assert core.calls == [("alice", None), ("alice", "s3cret")]
    assert front.log == [(AUTH.message, Then.PASSWORD, "alice"), "ask password for alice"]


def test_empty_password_chooses_another_name() -> None:
    """An empty answer to the password question goes back to the username."""
    core, front = Core(AUTH, OK), Front("", "bob")
    assert isinstance(run(core, front, "alice", "wrong"), LoggedIn)
    assert core.calls == [("alice", "wrong"), ("bob", None)]


def test_auth_failed_without_a_way_to_ask_is_rejected() -> None:
    """Line mode cannot ask for a password: it stops and says so."""
    core, front = Core(AUTH), Front("alice", password=False)
    outcome = run(core, front)
    assert isinstance(outcome, Rejected) and outcome.needs_password
    assert front.log[-1] == (AUTH.message, Then.STOP, "alice")


def test_blank_lines_are_skipped() -> None:
    """An empty or blank name is not sent."""
    core, front = Core(OK), Front("", "  ", "alice")
    assert isinstance(run(core, front), LoggedIn)
    assert core.calls == [("alice", None)]


def test_input_ended() -> None:
    """No more input before a name was accepted."""
    assert run(Core(), Front(None)) == NoInput()


def test_input_ended_because_the_connection_went() -> None:
    """The line queue closes when the connection does: that is Closed."""
    core = Core()
    core.gone = Disconnected(False, "Connection lost")
    assert run(core, Front(None)) == Closed()


def test_connection_closed_while_logging_in() -> None:
    """The login request fails with ConnectionClosed: Closed, nothing shown."""
    core, front = Core(ConnectionClosed("gone")), Front()
    assert run(core, front, "alice") == Closed()
    assert front.log == []
