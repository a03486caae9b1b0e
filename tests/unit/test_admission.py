"""Tests for :mod:`chatnet.admission`: connections per address, and those not logged in yet."""

from __future__ import annotations

from pathlib import Path

from support.chat import new_server

from chatnet.admission import Admission
from chatnet.config import Settings
from chatnet.testing import FakeClient, TestServer


def _refusal(server: TestServer, client: FakeClient) -> str | None:
    """The ``server-full`` message the client got (and was closed after), if any."""
    server.settle()
    frames = client.frames()
    if not frames:
        return None
    [frame] = frames
    assert frame["type"] == "error" and frame["code"] == "server-full" and "id" not in frame
    assert client.lost
    return str(frame["message"])


def test_counts_follow_connections() -> None:
    """Counted from admission to departure; logging in moves one from pending."""
    a = Admission(Settings(max_per_address=3, max_pending_per_address=2, max_pending=10))
    assert a.admit("10.0.0.1") is None and a.admit("10.0.0.1") is None
    refused = a.admit("10.0.0.1")
    assert refused and "not logged in yet (2, the most one address may have)" in refused
    a.logged_in("10.0.0.1")
    assert a.admit("10.0.0.1") is None  # 3 connections, 2 pending
    refused = a.admit("10.0.0.1")
    assert refused and "Too many connections from 10.0.0.1 (3, the most one address" in refused
    assert a.admit("10.0.0.2") is None  # another address is not affected
    assert (a.connections("10.0.0.1"), a.pending_from("10.0.0.1"), a.pending) == (3, 2, 3)
    a.gone("10.0.0.1", pending=False)
    a.gone("10.0.0.1", pending=True)
    a.gone("10.0.0.1", pending=True)
    a.gone("10.0.0.2", pending=True)
    assert (a.connections("10.0.0.1"), a.pending, a._by_address, a._pending_by_address) == (0, 0, {}, {})


def test_total_pending_and_no_address() -> None:
    """The total of pending connections counts every address, and connections with none."""
    a = Admission(Settings(max_pending=2))
    assert a.admit(None) is None and a.admit("10.0.0.1") is None
    refused = a.admit("10.0.0.2")
    assert refused == "The server has 2 connections not logged in yet, the most it takes; try again later"
    a.logged_in(None)
    assert a.admit("10.0.0.2") is None


def test_zero_is_no_limit() -> None:
    a = Admission(Settings(max_per_address=0, max_pending_per_address=0, max_pending=0))
    assert all(a.admit("127.0.0.1") is None for _ in range(20_000))


def test_one_address_cannot_lock_others_out(tmp_path: Path) -> None:
    """Idle connections from one address fill its own limit, not the server's."""
    server = new_server(tmp_path, max_pending_per_address=5)
    idle = [server.connect("10.0.0.66") for _ in range(5)]
    assert [_refusal(server, c) for c in idle] == [None] * 5
    extra = server.connect("10.0.0.66")
    message = _refusal(server, extra)
    assert message and "Too many connections from 10.0.0.66 not logged in yet (5," in message
    [line] = [x for x in server.audit.category("DISCONNECT") if "refused" in x]
    assert line.startswith("10.0.0.66:") and "refused: server full: Too many connections" in line
    other = server.connect("10.0.0.7")
    assert _refusal(server, other) is None
    other.login("alice")
    idle[0].login("mallory")  # logging in frees a pending place for that address
    assert _refusal(server, server.connect("10.0.0.66")) is None


def test_places_are_given_back(tmp_path: Path) -> None:
    """Closed and timed-out connections free their places; refused ones never took one."""
    server = new_server(tmp_path, max_per_address=2, max_pending_per_address=2, login_timeout=30.0)
    a, b = server.connect(), server.connect()
    assert _refusal(server, server.connect()) is not None
    a.login("alice")
    a.lose()
    server.advance(30)  # b's login timeout
    assert b.lost
    assert server.hub.admission.connections("127.0.0.1") == 0
    assert server.hub.admission.pending == 0
    c, d = server.connect(), server.connect()
    assert _refusal(server, c) is None and _refusal(server, d) is None


def test_a_harness_on_one_address_fits_the_defaults(tmp_path: Path) -> None:
    """A test harness on 127.0.0.1 opening a few dozen connections at once is never refused."""
    server = new_server(tmp_path)
    racers = [server.connect() for _ in range(48)]  # all connected before any logs in
    assert [_refusal(server, c) for c in racers] == [None] * 48
    for i, c in enumerate(racers):
        c.login(f"u{i}")
    members = [server.connect() for _ in range(15)]
    assert [_refusal(server, c) for c in members] == [None] * 15


def test_the_defaults() -> None:
    s = Settings()
    assert (s.max_per_address, s.max_pending_per_address, s.max_pending) == (256, 64, 2000)


def test_a_flood_of_refused_connections_is_logged_once_a_minute(tmp_path: Path) -> None:
    """Refusals from one address: the first logged in full, then one a minute with a count."""
    server = new_server(tmp_path, max_pending_per_address=1, login_timeout=1000.0)
    server.connect("10.0.0.66")
    refused = [server.connect("10.0.0.66") for _ in range(5)]
    assert all(_refusal(server, c) for c in refused)  # every one is told
    assert len([x for x in server.audit.category("DISCONNECT") if "refused" in x]) == 1
    assert len(server.audit.category("CONNECT")) == 2
    assert _refusal(server, server.connect("10.0.0.7")) is None  # another address: logged as usual
    server.advance(60)
    assert _refusal(server, server.connect("10.0.0.66"))
    assert server.audit.category("ERROR")[-1] == (
        "10.0.0.66: server-full: 4 more connections refused in the last 60s, not logged one by one")
    assert len([x for x in server.audit.category("DISCONNECT") if "refused" in x]) == 2


def test_refusal_log_forgets_stale_addresses() -> None:
    from chatnet.admission import RefusalLog

    class Small(RefusalLog):
        __slots__ = ()
        SWEEP = 3

    log = Small()
    assert [log.note(a, 0.0) for a in "abc"] == [0, 0, 0]
    assert log.note("a", 1.0) is None
    assert log.note("d", 100.0) == 0  # the sweep dropped a, b and c
    assert len(log._last) == 1
    assert log.note("a", 100.0) == 0
