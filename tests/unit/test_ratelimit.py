"""Tests for :mod:`chatnet.ratelimit` and the ``rate-limited`` error."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatnet.config import Settings
from chatnet.ratelimit import TokenBucket
from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server
from unit.chat_helpers import error_code, logged_in, new_server


def test_bucket_allows_the_burst_then_the_rate() -> None:
    """A full bucket gives ``burst`` at once, then ``rate`` a second."""
    bucket = TokenBucket(rate=2, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    assert not bucket.take(100.4)
    assert bucket.take(100.5)
    assert not bucket.take(100.5)
    assert [bucket.take(200.0) for _ in range(4)] == [True, True, True, False]  # never more than burst


def test_bucket_ignores_a_clock_set_back() -> None:
    """Time going backwards neither earns nor costs tokens."""
    bucket = TokenBucket(rate=1, burst=1, now=50.0)
    assert bucket.take(50.0)
    assert not bucket.take(10.0)
    assert bucket.take(51.0)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, now=0)


def test_default_burst_is_twice_the_rate() -> None:
    assert Settings(rate_limit=5).burst() == 10
    assert Settings(rate_limit=0.2).burst() == 1
    assert Settings(rate_limit=5, rate_burst=3).burst() == 3


def test_no_limit_by_default(tmp_path: Path) -> None:
    """Without --rate-limit, a thousand requests in one instant are all answered."""
    server = new_server(tmp_path)
    (alice,) = logged_in(server, "alice")
    for i in range(1000):
        alice.send({"type": "ping", "id": i})
    assert [f["type"] for f in alice.frames()] == ["ok"] * 1000


def test_requests_over_the_limit_are_refused_not_done(tmp_path: Path) -> None:
    """Past the burst, a request gets rate-limited with its id and is not carried out."""
    server = new_server(tmp_path, rate_limit=2, rate_burst=3)
    alice, bob = logged_in(server, "alice", "bob", room="lobby")  # 2 requests each
    assert error_code(alice.request("broadcast", text="one")) is None
    refused = alice.request("broadcast", text="two")
    assert refused["code"] == "rate-limited" and refused["id"]
    assert "at most 2 a second" in refused["message"] and "try again in" in refused["message"]
    assert [m["text"] for m in bob.events("message")] == ["one"]  # "two" was never sent
    server.advance(0.5)
    assert error_code(alice.request("broadcast", text="three")) is None
    assert [m["text"] for m in bob.events("message")] == ["three"]


def test_exit_is_never_refused(tmp_path: Path) -> None:
    """A client over its limit can still say goodbye."""
    server = new_server(tmp_path, rate_limit=1, rate_burst=1)
    (alice,) = logged_in(server, "alice")  # the login took the one token
    assert alice.request("ping")["code"] == "rate-limited"
    alice.send({"type": "exit", "id": 9})
    server.settle()
    assert alice.lost
    assert "left cleanly" in server.audit.category("DISCONNECT")[-1]


def flooding(tmp_path: Path, pings: int) -> tuple[Server, FakeClient]:
    """A server allowing one request a second, and alice, logged in, who sent ``pings`` more."""
    server = new_server(tmp_path, rate_limit=1, rate_burst=1)
    c = server.connect()
    c.login("alice")
    for i in range(pings):
        c.send({"type": "ping", "id": i})
    return server, c


def test_a_run_of_refusals_is_logged_once_then_counted(tmp_path: Path) -> None:
    """The first refusal is an ERROR line; the rest of the run is one line with a count."""
    server, c = flooding(tmp_path, 50)
    assert [f["code"] for f in c.frames()] == ["rate-limited"] * 50
    errors = server.audit.category("ERROR")
    assert len(errors) == 1 and "rate-limited" in errors[0]
    server.advance(1)
    assert c.request("ping")["type"] == "ok"
    peer = c.protocol.session.peer
    assert server.audit.category("ERROR")[-1] == f"alice ({peer}): rate-limited: 49 more requests refused"


def test_refusals_counted_when_the_client_goes(tmp_path: Path) -> None:
    """A client that floods and leaves still gets its count logged."""
    server, c = flooding(tmp_path, 5)
    c.lose()
    assert "rate-limited: 4 more requests refused" in server.audit.category("ERROR")[-1]


def test_before_login_too(tmp_path: Path) -> None:
    """Requests before login count: a connection cannot flood its way in."""
    server = new_server(tmp_path, rate_limit=1, rate_burst=2)
    c = server.connect()
    c.send({"type": "ping", "id": 1})
    c.send({"type": "ping", "id": 2})
    c.send({"type": "login", "id": 3, "username": "alice"})
    assert [f.get("code") for f in c.frames()] == [None, None, "rate-limited"]


def test_one_more_refusal_is_singular(tmp_path: Path) -> None:
    server, c = flooding(tmp_path, 2)
    server.advance(1)
    c.send({"type": "ping", "id": 3})
    assert server.audit.category("ERROR")[-1].endswith("rate-limited: 1 more request refused")
