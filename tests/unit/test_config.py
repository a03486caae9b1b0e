"""Tests for :mod:`chatnet.config`: the defaults."""

from __future__ import annotations

import math
from typing import Any

import pytest

from chatnet.cluster.keys import Address
from chatnet.config import (
    ClusterSettings,
    Settings,
    check_host,
    check_node_id,
    endpoint_parts,
)
from chatnet.testing import make_accounts


def test_defaults_are_the_contract() -> None:
    """Every default is the one PROTOCOL.md gives."""
    s = Settings()
    assert (s.max_clients, s.room_capacity, s.max_text, s.max_file_size) == (10_000, 15, 4096, 3_145_728)
    assert (s.upload_slots, s.upload_queue, s.login_timeout, s.shutdown_grace) == (5, 100, 30.0, 5.0)
    assert s.max_output == 8 * 1024 * 1024
    assert s.allowed_extensions is None and s.accounts is None


def test_limits_object() -> None:
    """The login reply's limits are integers named as the contract names them."""
    limits = Settings(room_capacity=4, upload_queue=0).limits()
    assert limits == {"username": 16, "room": 32, "room_capacity": 4, "text": 4096,
                      "file_size": 3_145_728, "upload_slots": 5, "upload_queue": 0}
    assert all(type(v) is int for v in limits.values())


def test_accounts_not_in_repr() -> None:
    """Password hashes never show in a printed Settings."""
    accounts = make_accounts({"alice": "hunter2"})
    assert "argon2" not in repr(Settings(accounts=accounts))


def test_cluster_settings_defaults() -> None:
    """A cluster needs a URL and a node id; the rest has defaults."""
    c = ClusterSettings("redis://127.0.0.1:6379/0", "a")
    assert (c.lease, c.password, c.prefix, c.slots) == (10.0, None, "chatnet", "cluster")
    assert (c.files, c.advertise) == ("tcp:0:interface=127.0.0.1", None)
    assert c.address() == Address("127.0.0.1", 6379, 0)
    assert c.files_host() == "127.0.0.1"
    assert Settings().cluster is None


def test_cluster_limits_say_the_upload_scope() -> None:
    """The login reply's limits say whose upload numbers they are, in a cluster only."""
    assert "upload_per_node" not in Settings().limits()
    for scope, per_node in (("cluster", 0), ("node", 1)):
        cluster = ClusterSettings("redis://h", "a", slots=scope)
        limits = Settings(cluster=cluster).limits()
        assert limits["upload_per_node"] == per_node
        assert all(type(v) is int for v in limits.values())  # the contract: integers


def test_cluster_password_from_the_url_or_the_file() -> None:
    """address() carries the one password there is, and TLS; both at once are refused."""
    assert ClusterSettings("rediss://:s%3Acret@h:1/2", "a").address() == Address("h", 1, 2, "s:cret", True)
    assert ClusterSettings("rediss://h", "a", password="pw").address() == Address("h", 6379, 0, "pw", True)
    with pytest.raises(ValueError, match="password: given twice"):
        ClusterSettings("redis://:x@h", "a", password="y")


def test_cluster_passwords_never_in_repr() -> None:
    """Neither the URL's password nor the file's shows when the settings are printed."""
    text = repr(Settings(cluster=ClusterSettings("redis://u:hunter2@h", "a")))
    assert "hunter2" not in text and "redis://u:***@h" in text
    assert "hunter3" not in repr(ClusterSettings("redis://h", "a", password="hunter3"))


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"url": "http://h"}, "url: not a redis:// or rediss:// URL"),
        ({"node_id": ""}, "node_id"),
        ({"node_id": "a" * 65}, "node_id"),
        ({"node_id": "a:b"}, "node_id"),
        ({"lease": 0.5}, "lease: at least 1 second"),
        ({"lease": math.inf}, "lease"),
        ({"prefix": "a b"}, "prefix"),
        ({"slots": "room"}, "slots: 'room' is not one of cluster, node"),
        ({"files": "unix:/tmp/s"}, "files: 'unix:/tmp/s' is not a tcp: or tcp6: endpoint"),
        ({"files": "tcp:9000"}, "advertise: needed"),
        ({"files": "tcp6:9000:interface=\\:\\:"}, "advertise: needed"),
        ({"files": "tcp:9000", "advertise": "not a host"}, "advertise: 'not a host'"),
    ],
)
def test_cluster_settings_checked(changes: dict[str, Any], words: str) -> None:
    """Every field is checked when the settings are made, the error naming it."""
    fields = {"url": "redis://h", "node_id": "a", **changes}
    with pytest.raises(ValueError) as info:
        ClusterSettings(**fields)
    assert words in str(info.value)


def test_cluster_files_host() -> None:
    """The files' host is --cluster-advertise, else the interface the endpoint names."""
    assert ClusterSettings("redis://h", "a", files="tcp:9000", advertise="node-a.example").files_host() == (
        "node-a.example")
    assert ClusterSettings("redis://h", "a", files="tcp:9000:10.0.0.5").files_host() == "10.0.0.5"
    assert ClusterSettings("redis://h", "a", files="tcp6:port=0:interface=\\:\\:1").files_host() == "::1"
    assert ClusterSettings("redis://h", "a", files="tcp:0:interface=10.0.0.5",
                           advertise="2001:db8::1").files_host() == "2001:db8::1"


def test_endpoint_parts() -> None:
    """Endpoint strings split as Twisted splits them, escapes undone."""
    assert endpoint_parts("TCP:80:interface=\\:\\:1:backlog=5") == ("tcp", ["80"], {"interface": "::1", "backlog": "5"})
    assert endpoint_parts("tcp:80:10.0.0.1") == ("tcp", ["80", "10.0.0.1"], {})


def test_node_ids_and_hosts() -> None:
    assert check_node_id("node-1.eu_west") == "node-1.eu_west"
    assert check_host("db.example.org") == "db.example.org" and check_host("::1") == "::1"
    for bad in ("", "-x.org", "a..b", "x" * 64 + ".org"):
        with pytest.raises(ValueError):
            check_host(bad)
