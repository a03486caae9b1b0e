"""
``chatnet-scenarios --cluster N``'s own parts: merging the nodes' audit logs,
spreading clients over the nodes, the option, and the Redis it starts.
The scenarios themselves run in tests/scenarios.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatnet.scenarios import cli
from chatnet.scenarios.context import Context
from chatnet.scenarios.files import max_running
from chatnet.scenarios.processes import Cluster, Server
from chatnet.scenarios.redis import RedisError, ping, start_redis


def node(folder: Path, node_id: str, port: int, events: list[tuple[str, str, str]]) -> Server:
    """A node that never ran: a log of JSON lines ``(time, category, text)``."""
    folder.mkdir(parents=True, exist_ok=True)
    server = Server.__new__(Server)
    server.cwd, server.node_id, server.port = folder, node_id, port
    server.log_path = folder / "server.log"
    server.log_path.write_text("".join(
        json.dumps({"time": t, "category": c, "text": x, "fields": {}}) + "\n"
        for t, c, x in events))
    return server


def cluster(tmp_path: Path, a: list[tuple[str, str, str]],
            b: list[tuple[str, str, str]]) -> Cluster:
    nodes = [node(tmp_path / "node-a", "a", 1001, a), node(tmp_path / "node-b", "b", 1002, b)]
    return Cluster(None, nodes)  # type: ignore[arg-type]  # no Redis: nothing runs


def test_logs_merge_in_time_order_as_text_lines(tmp_path: Path) -> None:
    """JSON lines become the text form the checks read; nodes interleave by time."""
    c = cluster(tmp_path,
                [("2026-12-06T03:00:00.100Z", "LOGIN", "alice logged in from 127.0.0.1:5"),
                 ("2026-12-06T03:00:00.300Z", "JOIN", "alice joined groupA (2/15)")],
                [("2026-12-06T03:00:00.200Z", "JOIN", "bob joined groupA (1/15)")])
    assert c.log_lines() == [
        "[2026-12-06 03:00:00.100] [LOGIN] alice logged in from 127.0.0.1:5",
        "[2026-12-06 03:00:00.200] [JOIN] bob joined groupA (1/15)",
        "[2026-12-06 03:00:00.300] [JOIN] alice joined groupA (2/15)",
    ]
    assert c.log_lines("JOIN", r"\(2/15\)") == [
        "[2026-12-06 03:00:00.300] [JOIN] alice joined groupA (2/15)"]
    # the checks cut the text after the second "] ", as with one server
    assert c.log_lines("LOGIN")[0].split("] ", 2)[2] == "alice logged in from 127.0.0.1:5"
    assert c.wait_log("JOIN", "groupA", 1.0, count=2)[0].endswith("bob joined groupA (1/15)")
    assert c.merged_log().splitlines()[1] == (
        "b [2026-12-06 03:00:00.200] [JOIN] bob joined groupA (1/15)")


def test_a_torn_last_line_is_kept_not_fatal(tmp_path: Path) -> None:
    c = cluster(tmp_path, [("2026-12-06T03:00:00.100Z", "JOIN", "x joined r (1/15)")], [])
    with open(c.nodes[0].log_path, "a") as f:
        f.write('{"time": "2026-12-06T03:0')
    assert len(c.log_lines()) == 2
    assert c.log_lines("JOIN") == ["[2026-12-06 03:00:00.100] [JOIN] x joined r (1/15)"]


def test_max_running_takes_an_end_before_a_start_in_the_same_millisecond(tmp_path: Path) -> None:
    """Node b's start in the millisecond of node a's end took the slot a freed."""
    started = "transfer #{} f.bin from u to v started, waited 0.10s"
    ended = "transfer #{} f.bin from u to v uploaded (1 KiB)"
    c = cluster(tmp_path,
                [("2026-12-06T03:00:00.100Z", "FILE-QUEUE", started.format(1)),
                 ("2026-12-06T03:00:00.500Z", "FILE", ended.format(1))],
                [("2026-12-06T03:00:00.500Z", "FILE-QUEUE", started.format(2)),
                 ("2026-12-06T03:00:00.600Z", "FILE", ended.format(2))])
    assert max_running(c) == 1
    c.nodes[1].log_path.write_text(json.dumps(
        {"time": "2026-12-06T03:00:00.400Z", "category": "FILE-QUEUE",
         "text": started.format(2), "fields": {}}) + "\n")
    assert max_running(c) == 2


def test_clients_go_round_robin_with_the_other_nodes_for_failover(tmp_path: Path) -> None:
    ctx = Context(tmp_path / "s", cluster=3)
    nodes = [node(tmp_path / f"node-{n}", n, 1000 + k, []) for k, n in enumerate("abc")]
    ctx.server = Cluster(None, nodes)  # type: ignore[arg-type]
    assert [ctx._ports(failover=True) for _ in range(4)] == [
        [1000, 1001, 1002], [1001, 1002, 1000], [1002, 1000, 1001], [1000, 1001, 1002]]
    assert ctx._ports(failover=False) == [1001]
    ctx.failover = False
    assert ctx._ports(failover=True) == [1002]
    assert ctx.spool_dirs() == [tmp_path / f"node-{n}" / "spool" for n in "abc"]


def test_the_cluster_option(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "10", "x"):
        with pytest.raises(SystemExit) as e:
            cli.main(["--cluster", bad])
        assert e.value.code == 2
    assert "--cluster takes 1 to 9 nodes" in capsys.readouterr().err
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemExit) as e:
        cli.main(["--cluster", "3"], out=io.StringIO())
    assert e.value.code == 2
    assert "apt-get install redis-server" in capsys.readouterr().err


def test_help_explains_the_cluster_option() -> None:
    done = subprocess.run([sys.executable, "-m", "chatnet.scenarios", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert "--cluster N" in done.stdout and "redis-server" in done.stdout


def test_redis_starts_answers_and_stops(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not found on PATH (apt-get install redis-server)")
    redis = start_redis(tmp_path / "redis", timeout=10.0)
    try:
        assert ping(redis.port)
        assert redis.url == f"redis://127.0.0.1:{redis.port}/0"
    finally:
        redis.stop()
    assert not redis.alive() and not ping(redis.port)


def test_redis_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RedisError, match=r"apt-get install redis-server"):
        start_redis(tmp_path)
