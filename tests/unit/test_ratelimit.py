"""Tests for :mod:`chatnet.ratelimit` and the ``rate-limited`` error."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import raw
from support.chat import error_code, logged_in, new_server

from chatnet.config import Settings
from chatnet.ratelimit import FloodGate, TokenBucket
from chatnet.testing import FakeClient
from chatnet.testing import TestServer as Server


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
    """Without --rate-limit, two thousand requests in one instant are all answered, none refused."""
    server = new_server(tmp_path)
    (alice,) = logged_in(server, "alice")
    for i in range(2000):
        alice.send({"type": "ping", "id": i})
    for _ in range(12):  # the default flood limit slows them down (it refuses nothing)
        server.advance(0.5)
    assert [f["type"] for f in alice.frames()] == ["ok"] * 2000
    assert server.audit.category("ERROR") == [
        f"alice (127.0.0.1:{alice.transport.getPeer().port}): flooding: past 1000 requests at "
        "once, served at most 200 a second (reading paused meanwhile; nothing refused)"
    ]


def test_flood_gate_gives_the_burst_then_the_rate() -> None:
    """``burst`` requests pass; then the pause lasts until a slice's worth is earned."""
    gate = FloodGate(rate=200, burst=1000, now=0.0)
    assert [gate.spend(0.0) for _ in range(999)] == [0.0] * 999
    assert gate.spend(0.0) == pytest.approx(10 / 200)  # 0 tokens left; resume with 10
    assert [gate.spend(0.05) for _ in range(9)] == [0.0] * 9
    assert gate.spend(0.05) == pytest.approx(0.05)
    assert gate.spend(1000.0) == 0.0  # refilled, never above the burst
    slow = FloodGate(rate=2, burst=3, now=0.0)
    assert [slow.spend(0.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]


def test_flood_gate_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        FloodGate(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        FloodGate(rate=1, burst=0, now=0)


def _pings(client: FakeClient, ids: range) -> None:
    client.protocol.dataReceived(b"".join(
        raw.encode_frame({"type": "ping", "id": i}) for i in ids))


def test_a_flooder_is_slowed_not_refused(tmp_path: Path) -> None:
    """Past the burst a flooder is served at the rate, in order, losing nothing; others are not slowed."""
    server = new_server(tmp_path, flood_rate=8, flood_burst=5)  # 1/8 s: exact in binary
    alice, bob = logged_in(server, "alice", "bob")  # alice's login took a token
    _pings(alice, range(100))
    assert [f["id"] for f in alice.frames()] == [0, 1, 2, 3]
    assert alice.transport.producerState == "paused"
    assert error_code(bob.request("ping")) is None  # bob is not slowed
    for _ in range(8):
        server.advance(0.125)
    assert [f["id"] for f in alice.frames()] == list(range(4, 12))  # 8 a second
    for _ in range(22):  # 4 a step
        server.advance(0.5)
    assert [f["id"] for f in alice.frames()] == list(range(12, 100))
    assert all(f["type"] == "ok" for f in alice.history("ok"))
    assert alice.history("error") == []
    server.advance(10.0)
    assert alice.transport.producerState == "producing"
    assert server.clock.getDelayedCalls() == []
    assert len(server.audit.category("ERROR")) == 1  # logged once


def test_file_data_does_not_count(tmp_path: Path) -> None:
    """Data frames are not requests: an upload is never slowed by the flood limit."""
    server = new_server(tmp_path, flood_rate=1, flood_burst=3)
    alice, bob = logged_in(server, "alice", "bob")
    t = alice.request("sendfile", to="bob", name="a.bin", size=40 * 10)["transfer"]
    server.advance()  # upload-start
    for _ in range(40):
        alice.send_data(t, b"x" * 10)
    assert alice.transport.producerState == "producing"
    assert alice.events("upload-done")


def test_flood_and_a_waiting_answer_do_not_fight(tmp_path: Path) -> None:
    """Reading resumes only when neither the flood limit nor a waiting request holds it."""
    server = new_server(tmp_path, flood_rate=10, flood_burst=2)
    (alice,) = logged_in(server, "alice")
    _pings(alice, range(5))
    assert [f["id"] for f in alice.frames()] == [0]
    alice.protocol.outbound.pause_reading()  # a request waits for its answer
    server.advance(1.0)  # the flood pause is over, the wait is not
    assert alice.frames() == [] and alice.transport.producerState == "paused"
    alice.protocol.outbound.resume_reading()
    assert [f["id"] for f in alice.frames()] == [1, 2]  # a burst earned meanwhile
    server.advance(1.0)
    assert [f["id"] for f in alice.frames()] == [3, 4]


def test_flood_limit_off(tmp_path: Path) -> None:
    """--flood-rate 0: never slowed."""
    server = new_server(tmp_path, flood_rate=0)
    (alice,) = logged_in(server, "alice")
    _pings(alice, range(3000))
    assert len(alice.frames()) == 3000


def test_connection_lost_while_slowed_leaves_no_timer(tmp_path: Path) -> None:
    server = new_server(tmp_path, flood_rate=10, flood_burst=2)
    (alice,) = logged_in(server, "alice")
    _pings(alice, range(5))
    alice.lose()
    server.flush()
    assert server.clock.getDelayedCalls() == []


def test_requests_over_the_limit_are_refused_not_done(tmp_path: Path) -> None:
    """Past the burst, a request gets rate-limited with its id and is not carried out."""
    server = new_server(tmp_path, rate_limit=2, rate_burst=3)
    alice, bob = logged_in(server, "alice", "bob", room="lobby")  # 2 requests each
    assert error_code(alice.request("broadcast", text="one")) is None
    refused = alice.request("broadcast", text="two")
    assert refused["code"] == "rate-limited" and refused["id"]
    assert "at most 2 a second" in refused["message"] and "try again in" in refused["message"]
    assert refused["retry_after"] == 0.5  # seconds until the next token
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
