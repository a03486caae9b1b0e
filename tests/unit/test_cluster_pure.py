"""The pure parts of cluster mode: timing, key layout, script replies."""

from __future__ import annotations

import random

import pytest

from chatnet.cluster import keys, scripts, timing
from chatnet.cluster.keys import Address, ClusterError, Fenced, Join, Keys, Vanished


def test_renewal_is_frequent_enough() -> None:
    assert timing.renew_interval(10.0) == 2.0  # every couple of seconds
    assert timing.renew_interval(0.3) == pytest.approx(0.1)  # three beats a lease
    with pytest.raises(ValueError):
        timing.renew_interval(0)
    assert timing.lease_ms(10) == 10000 and timing.lease_ms(0.0001) == 1
    assert timing.reply_timeout(10.0) < 10.0


def test_backoff_grows_to_a_ceiling_with_jitter() -> None:
    rand = random.Random(1)
    delays = [timing.backoff(n, rand) for n in range(1, 12)]
    assert delays[0] == pytest.approx(timing.FIRST_DELAY, rel=timing.JITTER)
    assert all(d <= timing.MAX_DELAY * (1 + timing.JITTER) for d in delays)
    assert delays[-1] >= timing.MAX_DELAY * (1 - timing.JITTER)
    assert delays[3] > delays[0]
    assert timing.backoff(0, rand) <= timing.FIRST_DELAY * (1 + timing.JITTER)
    assert timing.backoff(10**6, rand) <= timing.MAX_DELAY * (1 + timing.JITTER)


def test_key_layout_folds_names() -> None:
    k = Keys("cn")
    assert k.user("Alice") == "cn:user:alice"
    assert k.members("Lobby") == "cn:room:lobby:members"
    assert k.lease("a") == "cn:node:a:lease"
    assert k.channel("Lobby") == "cn:chan:room:lobby"
    assert k.room_of_channel("cn:chan:room:lobby") == "lobby"
    assert k.room_of_channel("cn:chan:room:") is None
    assert k.room_of_channel("other:chan:room:lobby") is None
    with pytest.raises(ValueError):
        Keys("a b")


def test_replies_read_into_values() -> None:
    assert keys.join(["ok", "Lobby", "", 0, "e1", 7, "alice", "Bob"]) == Join(
        "ok", "Lobby", ("alice", "Bob"), None, 0, "e1", 7)
    assert keys.join(["same", "Lobby", "", 0, "e1", 3, "alice"]).status == "same"
    switched = keys.join(["ok", "Lobby", "Old", 2, "e1", 1, "alice"])
    assert (switched.left, switched.left_members) == ("Old", 2)
    assert keys.join(["room-full"]) == Join("room-full")
    with pytest.raises(Fenced):
        keys.join(["fenced"])
    with pytest.raises(ClusterError):
        keys.join(["what"])
    assert keys.page([1, "a", "B"]) == keys.Page(("a", "B"), True)
    assert keys.rooms_page([0, ["Lobby", "a"]]).rooms == (keys.RoomEntry("Lobby", ("a",)),)
    assert keys.vanished(["a", "Lobby", "b", ""]) == (Vanished("a", "Lobby"), Vanished("b", None))
    with pytest.raises(ClusterError):
        keys.vanished(["a"])
    with pytest.raises(ClusterError):
        keys.status("not a list")
    with pytest.raises(ClusterError):
        keys.integer("x")


def test_redis_urls() -> None:
    assert keys.parse_url("redis://127.0.0.1:6380/2") == Address("127.0.0.1", 6380, 2)
    assert keys.parse_url("redis://:s%40cret@db") == Address("db", 6379, 0, "s@cret")
    for bad in ("http://x", "redis://x:port", "redis://x/db", "redis://", "redis://x:0",
                "redis://x/-1", "redis://x/0?timeout=1", "redis://x:70000"):
        with pytest.raises(ValueError):
            keys.parse_url(bad)


def test_redis_urls_tls_and_acl_users() -> None:
    """rediss:// is TLS; a user name is an ACL user; IPv6 hosts in brackets."""
    assert keys.parse_url("rediss://h:6380/1") == Address("h", 6380, 1, tls=True)
    assert keys.parse_url("REDISS://bob:p%2Fw@h") == Address("h", 6379, 0, "p/w", True, "bob")
    assert keys.parse_url("redis://[::1]:7000") == Address("::1", 7000)
    assert keys.parse_url("redis://default:pw@h").username == "default"


def test_redis_urls_never_show_the_password() -> None:
    """Errors, str() and repr() of an address leave the password out."""
    address = keys.parse_url("rediss://bob:hunter2@h:1/2")
    assert "hunter2" not in repr(address) and str(address) == "rediss://bob@h:1/2"
    assert keys.redact("redis://:hunter2@h") == "redis://:***@h"
    assert keys.redact("redis://h") == "redis://h"
    with pytest.raises(ValueError) as info:
        keys.parse_url("redis://:hunter2@h:port")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_scripts_share_the_prelude_and_differ() -> None:
    assert len({s.sha1 for s in scripts.ALL}) == len(scripts.ALL)
    assert all(s.source.startswith(scripts._PRELUDE) for s in scripts.ALL)
    # every script acting for a node checks its incarnation first
    for s in (scripts.RENEW, scripts.DEREGISTER, scripts.CLAIM, scripts.RELEASE,
              scripts.JOIN, scripts.LEAVE, scripts.PUBLISH):
        assert "if not live(node, inc) then return {'fenced'} end" in s.body, s.name


def test_settling_covers_every_node_noticing() -> None:
    """After Redis lost its state, a node waits long enough for the slowest to notice."""
    for lease in (1.0, 2.0, 10.0):
        slowest = timing.MAX_DELAY * (1 + timing.JITTER) + timing.reply_timeout(lease) \
            + timing.renew_interval(lease)
        assert timing.settling(lease) > slowest
    assert timing.settling(10.0) < 10.0  # still "within seconds"
