"""
Logging in with accounts: the password checked later (as in a thread), the
login throttle and the summed audit lines, on a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.chat import error_code, new_server
from twisted.internet.defer import Deferred

from chatnet import auth
from chatnet.testing import FakeClient, make_accounts
from chatnet.testing import TestServer as Server


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return new_server(tmp_path / "spool", accounts=make_accounts({"alice": "s3cret", "bob": "pw"}))


class ByHand:
    """A ``run`` for the checker whose checks finish when the test says so."""

    def __init__(self) -> None:
        self.calls: list[tuple[Deferred[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((d, f, args))
        return d

    def finish(self, n: int = 0) -> None:
        d, f, args = self.calls[n]
        d.callback(f(*args))


@pytest.fixture
def by_hand(server: Server) -> ByHand:
    run = ByHand()
    assert server.settings.accounts is not None
    server.hub.auth = auth.authenticator(server.settings.accounts, run)
    return run


def login(c: FakeClient, name: str = "alice", password: str | None = "wrong") -> dict[str, Any]:
    fields = {"username": name} if password is None else {"username": name, "password": password}
    return c.request("login", **fields)


def test_right_password_logs_in(server: Server) -> None:
    c = server.connect()
    assert login(c, "Alice", "s3cret")["username"] == "Alice"
    assert server.audit.category("LOGIN")[0].startswith("Alice logged in")


def test_check_runs_later_and_replies_stay_in_order(server: Server, by_hand: ByHand) -> None:
    """The check is not done at once; what follows the login is answered after it."""
    c = server.connect()
    c.send({"type": "login", "id": 1, "username": "alice", "password": "s3cret"})
    c.send({"type": "join", "id": 2, "room": "r"})
    c.send({"type": "ping", "id": 3})
    assert c.frames() == [] and c.transport.producerState == "paused"
    by_hand.finish()
    frames = c.frames()
    assert [(f["id"], f["type"]) for f in frames] == [(1, "ok"), (2, "ok"), (3, "ok")]
    assert frames[1]["members"] == ["alice"]


def test_lost_while_checking_never_logs_in(server: Server, by_hand: ByHand) -> None:
    """A right password whose check ends after the connection died logs nobody in."""
    c = server.connect()
    c.send({"type": "login", "id": 1, "username": "alice", "password": "s3cret"})
    c.lose()
    by_hand.finish()
    assert server.hub.directory.usernames() == []
    assert server.audit.category("LOGIN") == []
    again = server.connect()
    again.send({"type": "login", "id": 1, "username": "alice", "password": "s3cret"})
    by_hand.finish(1)
    assert again.frames()[0]["type"] == "ok"


def test_checks_run_a_few_at_a_time(server: Server, by_hand: ByHand) -> None:
    """At most CHECKS_AT_ONCE checks are running; the others wait their turn."""
    clients = [server.connect() for _ in range(5)]
    for c in clients:
        c.send({"type": "login", "id": 1, "username": "alice", "password": "x"})
    assert len(by_hand.calls) == auth.CHECKS_AT_ONCE
    by_hand.finish(0)
    assert len(by_hand.calls) == auth.CHECKS_AT_ONCE + 1


def test_wrong_unknown_and_missing(server: Server) -> None:
    """A wrong password and an unknown name look the same; no password is not a guess."""
    c = server.connect()
    wrong, unknown = login(c, "alice", "nope"), login(c, "nobody", "nope")
    assert wrong["code"] == unknown["code"] == "auth-failed"
    assert wrong["message"] == unknown["message"]
    for _ in range(5):
        assert error_code(login(c, "alice", None)) == "auth-failed"
    assert c.protocol.session._logins.failures == 2  # type: ignore[union-attr]


def test_free_failures_then_rate_limited(server: Server) -> None:
    """Three free failures on a connection, then rate-limited with retry_after, growing."""
    c = server.connect()
    for _ in range(3):
        assert error_code(login(c)) == "auth-failed"
    assert login(c, password="s3cret")["type"] == "ok"
    c2 = server.connect()
    for _ in range(3):
        login(c2, "bob")
    assert error_code(login(c2, "bob")) == "auth-failed"  # the 4th is checked ...
    limited = login(c2, "bob", "pw")  # ... and makes the next one wait
    assert limited["code"] == "rate-limited" and limited["retry_after"] == 1.0
    assert "try again in 1s" in limited["message"]
    server.advance(1.0)
    assert error_code(login(c2, "bob")) == "auth-failed"  # the 5th: 2 s
    assert login(c2, "bob", "pw")["retry_after"] == 2.0
    server.advance(1.5)
    assert login(c2, "bob", "pw")["retry_after"] == 0.5
    server.advance(0.5)
    assert login(c2, "bob", "pw")["type"] == "ok"


def test_account_throttled_across_connections(server: Server) -> None:
    """Guesses at one account from several connections and addresses add up."""
    for n in range(5):
        c = server.connect(host=f"10.0.0.{n}")
        assert error_code(login(c)) == "auth-failed"
    c = server.connect(host="10.0.0.9")
    assert error_code(login(c)) == "auth-failed"  # the 6th failure ...
    reply = login(server.connect(host="10.0.0.10"), "alice", "s3cret")
    assert reply["code"] == "rate-limited" and reply["retry_after"] == 1.0
    assert login(server.connect(host="10.0.0.10"), "bob", "pw")["type"] == "ok"


def test_address_throttled_across_names(server: Server) -> None:
    """One address guessing many names is slowed as a whole."""
    for n in range(20):
        login(server.connect(host="10.0.0.5"), f"user{n}")
    assert error_code(login(server.connect(host="10.0.0.5"), "user99")) == "auth-failed"
    assert error_code(login(server.connect(host="10.0.0.5"), "bob", "pw")) == "rate-limited"
    assert login(server.connect(host="10.0.0.6"), "bob", "pw")["type"] == "ok"


def test_taken_or_invalid_names_are_not_guesses(server: Server) -> None:
    """username-taken and invalid-username never count as failures."""
    login(server.connect(), "alice", "s3cret")
    c = server.connect()
    for _ in range(20):
        assert error_code(login(c, "alice", "s3cret")) == "username-taken"
        assert error_code(login(c, "bad name", "x")) == "invalid-username"
    assert not c.transport.disconnecting
    assert login(c, "bob", "pw")["type"] == "ok"


def test_connection_that_keeps_failing_is_closed(server: Server) -> None:
    """After 10 failed attempts (checked or refused) the connection is closed."""
    c = server.connect()
    codes = []
    for _ in range(10):
        c.send({"type": "login", "id": 1, "username": "alice", "password": "x"})
        codes += [f["code"] for f in c.frames()]
    assert codes == ["auth-failed"] * 4 + ["rate-limited"] * 6
    assert c.transport.disconnecting
    server.settle()
    assert server.audit.category("DISCONNECT")[-1].endswith("closed after 10 failed logins")


def test_audit_lines_are_summed(server: Server) -> None:
    """A guessing storm writes a few lines a minute, not one per guess."""
    for n in range(30):
        c = server.connect(host="10.0.0.5")
        for _ in range(10):
            c.send({"type": "login", "id": 1, "username": "alice", "password": f"guess{n}"})
        c.frames()
        server.settle()
    assert len(server.audit.category("LOGIN-FAILED")) == 1
    assert server.audit.category("ERROR") == []
    server.advance(60)
    assert server.audit.category("LOGIN-FAILED")[1:] == [
        "299 more failed logins for alice from 10.0.0.5 in the last minute "
        "(294 refused as rate-limited)"]
