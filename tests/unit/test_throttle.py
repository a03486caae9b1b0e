"""Tests for :mod:`chatnet.throttle`: login throttling and summed audit lines, on a fake clock."""

from __future__ import annotations

import pytest

from chatnet.throttle import FailureDigest, LoginThrottle, Policy, Table, address_key


def test_policy_delays_grow_to_a_ceiling() -> None:
    """Free failures cost nothing; then 1, 2, 4 ... seconds, up to the ceiling."""
    p = Policy(free=3, first=1.0, longest=60.0)
    assert [p.delay(n) for n in range(0, 11)] == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60]
    assert p.delay(10_000) == 60.0


def test_two_mistypes_never_slow_anyone() -> None:
    """The default policies let a person mistype twice (and more) without waiting."""
    t = LoginThrottle()
    conn = t.new_connection()
    for _ in range(2):
        t.failed(conn, "10.0.0.5", "alice", 0.0)
    assert t.wait(conn, "10.0.0.5", "alice", 0.0) == 0
    t.failed(conn, "10.0.0.5", "alice", 0.0)
    assert t.wait(conn, "10.0.0.5", "alice", 0.0) == 0


def test_connection_address_and_account_each_throttle() -> None:
    """Past its free failures each key makes the next attempt wait."""
    t = LoginThrottle(connection=Policy(3), address=Policy(20), account=Policy(5))
    conn = t.new_connection()
    for _ in range(4):
        t.failed(conn, "10.0.0.5", "alice", 100.0)
    assert t.wait(conn, "10.0.0.5", "alice", 100.0) == 1.0  # the connection's 4th
    other = t.new_connection()
    assert t.wait(other, "10.0.0.5", "alice", 100.0) == 0  # account: 4 of 5 free
    t.failed(other, "10.0.0.5", "alice", 100.0)
    t.failed(other, "10.0.0.5", "alice", 100.0)
    assert t.wait(t.new_connection(), "10.0.0.9", "alice", 100.0) == 1.0  # account's 6th
    assert t.wait(t.new_connection(), "10.0.0.5", "bob", 100.0) == 0  # address: 6 of 20
    assert t.wait(t.new_connection(), "10.0.0.5", "bob", 101.0) == 0


def test_address_throttle_catches_many_names() -> None:
    """One address guessing a different name each time is slowed by its address."""
    t = LoginThrottle()
    for n in range(21):
        t.failed(t.new_connection(), "10.0.0.5", f"user{n}", 0.0)
    assert t.wait(t.new_connection(), "10.0.0.5", "fresh", 0.0) == 1.0
    assert t.wait(t.new_connection(), "10.0.0.6", "fresh", 0.0) == 0


def test_success_resets_account_and_connection_not_address() -> None:
    """A login that succeeds clears its account and connection, not its address."""
    t = LoginThrottle(connection=Policy(0), address=Policy(0), account=Policy(0))
    conn = t.new_connection()
    t.failed(conn, "a", "alice", 0.0)
    t.succeeded(conn, "alice")
    assert conn.until == 0 and t.accounts.wait("alice", 0.0) == 0
    assert t.addresses.wait("a", 0.0) == 1.0


def test_exhausted_counts_failures_and_refusals() -> None:
    t = LoginThrottle(close_after=4)
    conn = t.new_connection()
    for _ in range(3):
        t.failed(conn, "a", "x", 0.0)
    assert not t.exhausted(conn)
    t.refused(conn)
    assert t.exhausted(conn)


def test_table_is_bounded() -> None:
    """An attacker with many names cannot grow a table past its size."""
    table = Table(Policy(0), size=100, expire=900)
    for n in range(10_000):
        table.fail(f"name{n}", float(n) / 1000)
    assert len(table) == 100
    assert table.wait("name9999", 9.999) > 0 and table.wait("name0", 9.999) == 0


def test_table_expires() -> None:
    """A count is forgotten ``expire`` seconds after its last failure."""
    table = Table(Policy(1), size=100, expire=900)
    table.fail("alice", 0.0)
    table.fail("alice", 10.0)
    table.fail("bob", 500.0)
    assert table.wait("alice", 10.0) == 1.0
    table.fail("carol", 911.0)  # a later failure prunes what expired
    assert len(table) == 2
    table.fail("alice", 912.0)
    assert table.wait("alice", 912.0) == 0  # a fresh count: 1 free


def test_digest_sums_a_run() -> None:
    """The first failure is logged in full; the rest once per window."""
    d = FailureDigest(window=60)
    assert d.failed("alice", "10.0.0.5", 0.0) is True
    assert [d.failed("alice", "10.0.0.5", float(n)) for n in range(1, 42)] == [False] * 41
    assert d.flush(59.0) == []
    assert d.flush(60.0) == ["41 more failed logins for alice from 10.0.0.5 in the last minute"]
    assert d.failed("alice", "10.0.0.5", 61.0) is False
    assert d.flush(120.0) == ["1 more failed login for alice from 10.0.0.5 in the last minute"]
    assert d.flush(180.0) == []  # a quiet window ends the run
    assert d.failed("alice", "10.0.0.5", 181.0) is True


def test_digest_refused_attempts() -> None:
    """Refused attempts are counted in their run, or for the address alone."""
    d = FailureDigest(window=60)
    assert d.failed("alice", "10.0.0.5", 0.0) is True
    assert d.failed("alice", "10.0.0.5", 1.0, refused=True) is False
    for n in range(30):
        assert d.failed(f"name{n}", "10.0.0.5", 2.0, refused=True) is False
    assert len(d) == 2
    assert sorted(d.flush(62.0)) == [
        "1 more failed login for alice from 10.0.0.5 in the last minute (1 refused as rate-limited)",
        "30 logins from 10.0.0.5 refused as rate-limited in the last minute",
    ]


def test_digest_is_bounded_and_loses_no_count() -> None:
    """Past its size, the oldest run's line is written early instead of lost."""
    d = FailureDigest(window=60, size=10)
    for n in range(11):
        d.failed(f"u{n}", "a", 0.0)
        d.failed(f"u{n}", "a", 0.0)
    assert len(d) == 10
    lines = d.flush(1.0)
    assert lines == ["1 more failed login for u0 from a in the last minute"]


def test_digest_flush_everything() -> None:
    """At shutdown every run with something to say is written."""
    d = FailureDigest()
    d.failed("alice", "a", 0.0)
    d.failed("alice", "a", 1.0)
    d.failed("bob", "a", 1.0)
    assert d.flush(2.0, everything=True) == [
        "1 more failed login for alice from a in the last minute"]
    assert len(d) == 0


@pytest.mark.parametrize(
    "peer, key",
    [
        ("10.0.0.5:4000", "10.0.0.5"),
        ("[2001:db8::1]:4000", "2001:db8::/64"),
        ("[2001:db8::ffff:1]:1", "2001:db8::/64"),
        ("[::ffff:10.0.0.5]:4000", "10.0.0.5"),
        ("[::1]:5", "::/64"),
        ("/tmp/chat.sock", "/tmp/chat.sock"),
    ],
)
def test_address_key(peer: str, key: str) -> None:
    assert address_key(peer) == key
