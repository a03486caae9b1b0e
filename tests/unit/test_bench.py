"""
The benchmark suite's own arithmetic (bench/report.py, bench/profile.py, the
command line).  The benchmarks themselves never run as tests.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain `pytest` does not put the checkout on the path
    sys.path.insert(0, str(ROOT))

from bench import profile, report  # noqa: E402
from bench.cli import parse_args  # noqa: E402

MIB = 1024 * 1024


def result(scenario: str, case: str, system: str = "chatnet", **figures: object) -> dict[str, Any]:
    base = {"scenario": scenario, "case": case, "system": system, "notes": [],
            "server_cpu": 0.5, "gen_cpu": 0.2}
    base.update(figures)
    return base


@pytest.mark.parametrize(
    ("q", "expected"), [(0, 1), (1, 1), (50, 50), (99, 99), (99.9, 100), (100, 100)]
)
def test_percentile_nearest_rank(q: float, expected: float) -> None:
    """Nearest rank over 1..100: the q-th percentile is ceil(q) itself."""
    values = list(range(1, 101))
    assert report.percentile(values, q) == expected


def test_percentile_edges() -> None:
    """No values give 0; a q outside 0..100 is an error."""
    assert report.percentile([], 50) == 0.0
    assert report.percentile([7.0], 99.9) == 7.0
    with pytest.raises(ValueError):
        report.percentile([1.0], 101)


def test_growth_and_per_connection() -> None:
    """Percent growth and KiB per connection, with their zero guards."""
    assert report.growth_pct(100, 110) == pytest.approx(10.0)
    assert report.growth_pct(100, 95) == pytest.approx(-5.0)
    assert report.growth_pct(0, 5) == 0.0
    assert report.per_connection_kib(10 * MIB, 10 * MIB + 4096 * 1000, 1000) == pytest.approx(4.0)
    assert report.per_connection_kib(1, 2, 0) == 0.0


def test_generator_bound_threshold() -> None:
    """Above 90 % of a core the generator may have been the bottleneck."""
    assert not report.gen_bound({"gen_cpu": 0.90})
    assert report.gen_bound({"gen_cpu": 0.91})
    assert not report.gen_bound({})


def test_ratios_pair_systems_per_case() -> None:
    """One ratio per case both systems ran; a generator-bound side is not quoted."""
    results = [
        result("fanout", "100x15", deliveries_per_s=300_000.0),
        result("fanout", "100x15", "ngircd", deliveries_per_s=100_000.0),
        result("fanout", "1x15", deliveries_per_s=300_000.0, gen_cpu=0.95),
        result("fanout", "1x15", "ngircd", deliveries_per_s=150_000.0),
        result("files", "1 sender", mb_per_s=500.0),
    ]
    rows = {r["case"]: r for r in report.ratios(results) if r["figure"] == "deliveries_per_s"}
    assert set(rows) == {"100x15", "1x15"}
    assert rows["100x15"]["ratio"] == pytest.approx(3.0)
    assert rows["100x15"]["quoted"]
    assert rows["1x15"]["ratio"] == pytest.approx(2.0)
    assert not rows["1x15"]["quoted"]


def test_ab_ratios_per_round() -> None:
    """--ab --repeat: chatnet over chatnet-b, one ratio per case and round."""
    results = [
        result("latency", "4000/s", p99_ms=1.0, round=1),
        result("latency", "4000/s", "chatnet-b", p99_ms=2.0, round=1),
        result("latency", "4000/s", "chatnet-b", p99_ms=1.0, round=2),
        result("latency", "4000/s", p99_ms=3.0, round=2),
    ]
    rows = [r for r in report.ratios(results, "chatnet-b") if r["figure"] == "p99_ms"]
    assert [(r["round"], r["ratio"]) for r in rows] == [(1, 0.5), (2, 3.0)]
    table = report.format_table(results, rows)
    assert "4000/s #2" in table and "chatnet-b" in table


def test_ab_order_alternates() -> None:
    """A then B in odd rounds, B then A in even ones (ABBA)."""
    from bench.scenarios import Plan, systems

    plan = Plan(reference=False, ab_args=["--no-fast-path"])
    assert systems(plan, baseline=True) == ["chatnet", "chatnet-b"]
    plan.round = 2
    assert systems(plan, baseline=True) == ["chatnet-b", "chatnet"]
    assert systems(plan) == ["chatnet"]  # connections, files, soak: A only


def test_targets_met_and_missed() -> None:
    """Each target reads the right figure; a failed one says MISSED."""
    results = [
        result("connections", "15000 clients", connected=15_000, failed=0, kib_per_conn=3.2),
        result("fanout", "100x15", deliveries_per_s=200_000.0, exact=True, audit_ok=True),
        result("fanout", "100x15", "ngircd", deliveries_per_s=100_000.0),
        result("fanout", "1x15", deliveries_per_s=290_000.0, exact=True, audit_ok=True),
        result("latency", "1000/s", p99_ms=1.5),
        result("latency", "4000/s", p99_ms=12.0, server_cpu=0.8),
        result("files", "1 sender", file_size=3 * MIB, mb_per_s=450.0, intact=True,
               sha256_match=True),
        result("files", "8 senders", file_size=3 * MIB, mb_per_s=450.0, intact=True,
               sha256_match=False),
        result("soak", "300s", rss_growth_pct=3.0, fds_leaked=0, spool_left=0),
    ]
    verdicts = {v.target: v.met for v in report.targets(results)}
    assert verdicts["15,000 logged-in clients held"] is True
    assert verdicts["<= 4 KiB RSS per connection"] is True
    assert verdicts["fan-out 100x15 >= 1.5x ngircd deliveries/s"] is True
    assert verdicts["fan-out 1x15 >= 300,000 deliveries/s"] is False
    assert verdicts["latency 1,000 msg/s: p99 <= 2 ms"] is True
    assert verdicts["latency 4,000 msg/s: server < 0.9 core"] is True
    assert verdicts["latency 4,000 msg/s: p99 <= 10 ms"] is False
    assert verdicts["files 1 sender: >= 400 MB/s, bytes and sha256 intact"] is True
    assert verdicts["files 8 senders: >= 400 MB/s, bytes and sha256 intact"] is False
    assert verdicts["soak: RSS within 10 % of start after warm-up"] is True


def test_targets_not_quoted_when_generator_bound_or_quick() -> None:
    """A generator-bound figure is left out; a quick run quotes nothing."""
    bound = [result("fanout", "1x15", deliveries_per_s=400_000.0, exact=True, gen_cpu=0.99)]
    assert "fan-out 1x15 >= 300,000 deliveries/s" not in {v.target for v in report.targets(bound)}
    quick = [result("latency", "1000/s", p99_ms=1.0)]
    assert all(v.met is None for v in report.targets(quick, quick=True))


def test_table_marks_generator_bound_and_failures() -> None:
    """The table flags a generator-bound row and prints a failed run's error."""
    text = report.format_table(
        [result("fanout", "1x15", deliveries_per_s=1.0, gen_cpu=0.97),
         result("files", "8 senders", error="server died")],
        [],
    )
    assert "GEN-BOUND" in text
    assert "FAILED: server died" in text


def test_profile_summarise_collapsed_stacks() -> None:
    """Self time goes to the leaf, inclusive time once per stack to every frame."""
    root = profile.CHECKOUT
    f = f"f ({root}/chatnet/session.py:10)"
    lines = [
        f"run (twisted/internet/base.py:1);{f};g ({root}/chatnet/codec.py:5) 3\n",
        f"run (twisted/internet/base.py:1);{f} 1\n",
        f"run (twisted/internet/base.py:1);{f};{f} 2\n",
        "\n",
        "garbage\n",
    ]
    own, inclusive, total = profile.summarise(lines)
    assert total == 6
    assert own["chatnet/codec.py:g"] == 3
    assert own["chatnet/session.py:f"] == 3
    assert inclusive["chatnet/session.py:f"] == 6
    assert inclusive["twisted/internet/base.py:run"] == 6


def test_command_line() -> None:
    """Scenario names are checked; --quick and --json parse."""
    args = parse_args(["fanout", "latency", "--quick", "--json", "-"])
    assert args.scenarios == ["fanout", "latency"] and args.quick and args.json == "-"
    with pytest.raises(SystemExit):
        parse_args(["nonsense"])
    args = parse_args(["--ab=--no-fast-path", "--repeat", "3"])
    assert (args.ab, args.repeat) == ("--no-fast-path", 3)


def test_other_load_splits_processes_and_softirq() -> None:
    """The machine's busy time less the server's and generator's shares."""
    others, softirq = report.other_load((0.0, 10.0, 5.0), (2.0, 12.4, 6.0), server=0.9, gen=0.2)
    assert others == pytest.approx(0.1)
    assert softirq == pytest.approx(0.5)
    assert report.other_load((1.0, 0.0, 0.0), (1.0, 5.0, 5.0), 0.0, 0.0) == (0.0, 0.0)
    assert report.noisy({"other_cpu": 0.5}) and not report.noisy({"other_cpu": 0.1})


def test_benchmarks_switch_the_protective_limits_off(tmp_path: Path) -> None:
    """The server under test runs without the flood and per-address limits, as ngircd does."""
    from bench.procs import ROOT, UNLIMITED, unlimited

    args = unlimited(ROOT)
    assert args == [a for option, value in UNLIMITED.items() for a in (option, value)]
    assert "--flood-rate" in args
    (tmp_path / "chatnet").mkdir()
    (tmp_path / "chatnet" / "tap.py").write_text('["max-clients", None, 1]')
    assert unlimited(tmp_path) == []  # an older checkout without them


@pytest.mark.parametrize(("files", "ok", "bad", "match"), [
    (160, 160, 0, True),
    (160, 159, 1, False),
    (160, 159, 0, False),  # one file-end without a hash, or none at all
    (0, 0, 0, False),
    (160, None, None, False),
])
def test_sha256_match_needs_every_file(files: int, ok: int | None, bad: int | None,
                                       match: bool) -> None:
    assert report.sha256_match(files, ok, bad) is match


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 65536 + 7])
def test_loadgen_sha256_is_hashlib_sha256(tmp_path: Path, size: int) -> None:
    """The generator's sha256 of a file's pattern, which it checks file-end against, is sha256."""
    from bench.procs import build_loadgen

    loadgen = build_loadgen()
    data = subprocess.run([str(loadgen), "--pattern", f"7:{size}"], capture_output=True,
                          check=True).stdout
    assert len(data) == size
    digest = subprocess.run([str(loadgen), "--pattern-sha256", f"7:{size}"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert digest == hashlib.sha256(data).hexdigest()


def test_cluster_group_and_leases_on_the_command_line() -> None:
    """'cluster' stands for the four cluster cases; --cluster-lease repeats."""
    args = parse_args(["cluster", "cluster-files", "--cluster-lease", "10", "--cluster-lease", "2"])
    assert args.scenarios == ["cluster-fanout", "cluster-latency", "cluster-failover",
                              "cluster-files"]
    assert args.cluster_lease == [10.0, 2.0]
    assert parse_args([]).cluster_lease == [10.0] and parse_args([]).scenarios == []
    with pytest.raises(SystemExit):
        parse_args(["cluster", "--cluster-lease", "0.1"])


def test_cluster_ratios_are_to_the_single_server_of_the_same_run() -> None:
    results = [
        result("cluster-fanout", "100x15", deliveries_per_s=300_000.0, ok=True),
        result("cluster-fanout", "100x15", "cluster-2", deliveries_per_s=150_000.0, ok=True),
        result("cluster-failover", "14x10", failover_s=0.01, ok=True),
        result("cluster-failover", "14x10 lease 2s", "cluster-2", failover_s=2.5, ok=True),
    ]
    rows = report.ratios(results, "chatnet", ours="cluster-2")
    fan = [q for q in rows if q["scenario"] == "cluster-fanout" and q["figure"] == "deliveries_per_s"]
    assert fan[0]["ratio"] == pytest.approx(0.5) and fan[0]["ours"] == "cluster-2"
    fail = [q for q in rows if q["scenario"] == "cluster-failover"]
    assert fail[0]["case"] == "14x10 lease 2s" and fail[0]["ratio"] == pytest.approx(250)
    table = report.format_table(results, rows)
    assert "cluster-2 150,000 / chatnet 300,000 = 0.50x" in table
    assert "cluster-2 2.50 / chatnet 0.01 = 250.00x" in table
    assert report.ratios(results) == []  # no ngircd in the cluster cases


def test_cluster_targets() -> None:
    results = [
        result("cluster-fanout", "100x15", "cluster-2", deliveries_per_s=1.0, exact=True),
        result("cluster-latency", "1000/s", "cluster-2", p50_ms=0.4, p99_ms=2.5),
        result("cluster-failover", "14x10 lease 2s", "cluster-2", lease_s=2.0, failover_s=3.9,
               seen_events=10, expected_events=10, duplicate_events=0, complete=True,
               name_free=True),
        result("cluster-failover", "14x10 lease 10s", "cluster-2", error="node a died"),
        result("cluster-files", "8 senders", "cluster-2", mb_per_s=100.0, intact=True,
               sha256_match=True),
    ]
    met = {v.target.split(":")[0]: v.met for v in report.cluster_targets(results)}
    assert met == {
        "cluster fan-out 100x15 over 2 nodes": True,
        "cluster latency 1000/s across nodes": False,
        "failover, lease 2 s": True,
        "failover, lease 10 s": False,
        "cluster files 8 senders across nodes": True,
    }
    text = report.format_targets(report.cluster_targets(results), "targets (issue 12, cluster):")
    assert text.startswith("targets (issue 12, cluster):") and "p99 2.50 ms" in text
    assert all(v.met is not True for v in report.cluster_targets(results, quick=True))


def test_loadgen_spreads_connections_over_ports(tmp_path: Path) -> None:
    """--ports: each room's members alternate between two listeners (here, closed ports)."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    from bench.procs import LOADGEN, build_loadgen

    build_loadgen()
    done = subprocess.run([str(LOADGEN), "--ports", "1,2", "--scenario", "fanout", "--rooms",
                           "1", "--room-size", "4", "--auto"], capture_output=True, text=True,
                          timeout=30)
    ready = [line for line in done.stdout.splitlines() if '"ready"' in line]
    assert ready and '"failed":4' in ready[0].replace(" ", "")


def test_files_ceiling_is_chatnet_over_the_relay() -> None:
    """chatnet's MB/s over the plain relay's, per case; the relay is judged on its bytes alone."""
    relay = {"sha256_checked": False, "sha256_match": None, "intact": True}
    results = [
        result("files", "1 sender", file_size=3 * MIB, mb_per_s=950.0, intact=True,
               sha256_match=True),
        result("files", "1 sender", report.RELAY, file_size=3 * MIB, mb_per_s=1000.0, **relay),
        result("files", "8 senders", file_size=3 * MIB, mb_per_s=500.0, intact=True,
               sha256_match=True),
        result("files", "8 senders", report.RELAY, file_size=3 * MIB, mb_per_s=1000.0, **relay),
    ]
    assert report.files_exact(results[1])
    rows = {q["case"]: q for q in report.ratios(results, report.RELAY)}
    assert rows["1 sender"]["ratio"] == pytest.approx(0.95)
    assert rows["8 senders"]["ratio"] == pytest.approx(0.5)
    assert "chatnet 500.0 / relay 1,000 = 0.50x" in report.format_table(results, list(rows.values()))
    verdicts = {v.target.split(":")[0]: v for v in report.ceiling_targets(results)}
    assert verdicts["files 1 sender"].met is True
    assert verdicts["files 8 senders"].met is False
    assert "500 vs relay 1000 MB/s = 0.50x" in verdicts["files 8 senders"].measured
    assert "seed 2x15 window 1" not in verdicts  # no seed run: no seed verdicts


def test_files_ceiling_needs_chatnet_whole_and_the_relay_intact() -> None:
    """A chatnet run without its sha256 misses; a relay that lost bytes sets no ceiling."""
    chatnet = result("files", "1 sender", mb_per_s=2000.0, intact=True, sha256_match=False)
    relay = result("files", "1 sender", report.RELAY, mb_per_s=1000.0, intact=True,
                   sha256_checked=False)
    verdict = report.ceiling_targets([chatnet, relay])[0]
    assert verdict.met is False and "SHA256" in verdict.measured
    broken = dict(relay, intact=False)
    assert report.ceiling_targets([dict(chatnet, sha256_match=True), broken])[0].met is None
    # only the relay may go without a sha256
    assert not report.files_exact(dict(chatnet, sha256_checked=False, sha256_match=None))
    assert report.ceiling_targets([chatnet])[0].met is None


def test_seed_targets_against_the_bare_twisted_server() -> None:
    """>= 2x the bare server's msgs/s, exact; p50 <= 1.0 ms; a quick run quotes nothing."""
    results = [
        result("seed", "2x15 window 1", msgs_per_s=25_000.0, p50_ms=0.9, exact=True, runs=5),
        result("seed", "2x15 window 1", report.BASELINE, msgs_per_s=12_000.0, p50_ms=2.5,
               exact=True),
    ]
    verdicts = report.ceiling_targets(results)
    assert [v.met for v in verdicts] == [True, True]
    assert "25,000 vs 12,000 msg/s = 2.08x (medians of 5 runs)" in verdicts[0].measured
    assert "bare Twisted 2.50 ms" in verdicts[1].measured
    slow = [dict(results[0], msgs_per_s=20_000.0, p50_ms=1.2), results[1]]
    assert [v.met for v in report.ceiling_targets(slow)] == [False, False]
    lossy = [dict(results[0], exact=False), results[1]]
    assert report.ceiling_targets(lossy)[0].met is False
    assert report.ceiling_targets(results[:1])[0].met is None  # no bare server in the run
    assert all(v.met is None for v in report.ceiling_targets(results, quick=True))
    rows = {q["figure"]: q for q in report.ratios(results, report.BASELINE)}
    assert rows["msgs_per_s"]["ratio"] == pytest.approx(25_000 / 12_000)
    assert rows["p50_ms"]["ratio"] == pytest.approx(0.36) and not rows["p50_ms"]["higher_is_better"]


def test_median_result_of_several_runs() -> None:
    """Medians of the figures, sums of the counts, exact only if every run was."""
    runs = [
        result("seed", "2x15 window 1", msgs_per_s=m, p50_ms=p, server_cpu=c, sent=s,
               exact=True, audit_ok=True, ok=True, notes=[f"n{i % 2}"])
        for i, (m, p, c, s) in enumerate([(10.0, 3.0, 0.9, 100), (30.0, 1.0, 0.7, 300),
                                          (20.0, 2.0, 0.8, 200)])
    ]
    one = report.median_result(runs)
    assert (one["msgs_per_s"], one["p50_ms"], one["server_cpu"]) == (20.0, 2.0, 0.8)
    assert one["sent"] == 600 and one["runs"] == 3 and one["exact"] and one["ok"]
    assert [r["msgs_per_s"] for r in one["per_run"]] == [10.0, 30.0, 20.0]
    assert one["notes"] == ["n0", "n1"]
    assert report.median_result(runs[:1]) is runs[0]
    lossy = report.median_result([*runs[:2], dict(runs[2], exact=False, ok=False)])
    assert not lossy["exact"] and not lossy["ok"]
    failed = report.median_result([*runs[:2], dict(runs[2], error="server died")])
    assert failed["error"] == "1 of 3 runs failed: server died" and not failed["ok"]
    assert failed["msgs_per_s"] == 20.0  # the median of the runs that finished
    assert "FAILED" in report.row_text(failed)


def test_seed_is_in_the_default_run_with_the_bare_server() -> None:
    """The seed scenario runs by default, on the bare Twisted server as well; --quickack parses."""
    from bench.scenarios import SCENARIOS, Plan

    assert "seed" in SCENARIOS
    assert parse_args(["seed", "--quickack"]).quickack
    assert not parse_args([]).quickack
    quick = Plan(quick=True)
    assert (quick.seed_runs, quick.seed_duration) == (1, 1.0)
    assert Plan().seed_runs > 1


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_loadgen_knows_quickack_and_no_sha256() -> None:
    """The generator accepts --quickack in any scenario and --no-sha256 for files."""
    from bench.procs import LOADGEN, build_loadgen

    build_loadgen()
    for args in (["--scenario", "fanout", "--quickack"], ["--scenario", "files", "--no-sha256"]):
        done = subprocess.run([str(LOADGEN), "--port", "1", *args, "--rooms", "1",
                               "--room-size", "2", "--duration", "0", "--warmup", "0",
                               "--auto"], capture_output=True, text=True, timeout=30)
        assert '"event":"ready"' in done.stdout, done.stderr
    assert '"event":"sha256","checked":false' in done.stdout  # files: nothing compared


def test_ratios_to_each_reference() -> None:
    """Ratios to ngircd and to InspIRCd come from the same run; connect times set up at
    different paces (InspIRCd's 1-second registration) are not compared."""
    results = [
        result("connections", "10000 clients", kib_per_conn=2.5, setup_s=2.0),
        result("connections", "10000 clients", "ngircd", kib_per_conn=5.0, setup_s=4.0),
        result("connections", "10000 clients", "inspircd", kib_per_conn=2.0, setup_s=11.0,
               setup_concurrency=1000),
        result("fanout", "100x15", deliveries_per_s=1_000_000.0),
        result("fanout", "100x15", "inspircd", deliveries_per_s=1_250_000.0),
    ]
    to_ngircd = {(q["scenario"], q["figure"]): q["ratio"] for q in report.ratios(results)}
    assert to_ngircd == {("connections", "kib_per_conn"): 0.5, ("connections", "setup_s"): 0.5}
    rows = report.ratios(results, "inspircd")
    to_inspircd = {(q["scenario"], q["figure"]): q["ratio"] for q in rows}
    assert to_inspircd == {("connections", "kib_per_conn"): 1.25,
                           ("fanout", "deliveries_per_s"): 0.8}
    assert "chatnet 1,000,000 / inspircd 1,250,000 = 0.80x" in report.format_table(results, rows)


Key = tuple[str, str, str]  # scenario, case, system


def inspircd_run(changes: dict[Key, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A run where every issue 14 target against InspIRCd is just met, then ``changes``."""
    figures: dict[Key, dict[str, Any]] = {
        ("connections", "10000 clients", "chatnet"): {"kib_per_conn": 2.4, "failed": 0},
        ("connections", "10000 clients", "inspircd"): {"kib_per_conn": 2.4, "failed": 0},
        ("connections", "15000 clients", "chatnet"): {"kib_per_conn": 2.3, "failed": 0},
        ("connections", "15000 clients", "inspircd"): {"kib_per_conn": 2.4, "failed": 0},
        ("fanout", "100x15", "chatnet"): {"deliveries_per_s": 800_000.0, "exact": True},
        ("fanout", "100x15", "inspircd"): {"deliveries_per_s": 1_000_000.0, "exact": True},
        ("latency", "1000/s", "chatnet"): {"p99_ms": 0.5},
        ("latency", "4000/s", "chatnet"): {"p99_ms": 0.3, "server_cpu": 0.5},
        ("latency", "4000/s", "inspircd"): {"p99_ms": 0.2, "server_cpu": 0.4},
    }
    for key, update in (changes or {}).items():
        figures[key] = {**figures[key], **update}
    return [result(s, c, system, **f) for (s, c, system), f in figures.items()]


def inspircd_verdicts(results: list[dict[str, Any]], quick: bool = False) -> dict[str, bool | None]:
    return {v.target: v.met for v in report.inspircd_targets(results, quick=quick)}


def test_inspircd_targets_met_at_their_bounds() -> None:
    """Issue 14's targets against InspIRCd, each met with nothing to spare."""
    verdicts = inspircd_verdicts(inspircd_run())
    assert verdicts == {
        "10,000 clients: KiB per connection <= InspIRCd's": True,
        "15,000 clients: KiB per connection <= InspIRCd's": True,
        "fan-out 100x15 >= 0.8x InspIRCd deliveries/s": True,
        "latency 4,000 msg/s: p99 <= 1.5x InspIRCd's": True,
        "latency 4,000 msg/s: server CPU <= InspIRCd's + 0.1 core": True,
        "latency 1,000 msg/s: p99 <= 0.5 ms": True,
    }
    assert all(met is None for met in inspircd_verdicts(inspircd_run(), quick=True).values())


@pytest.mark.parametrize(("key", "change", "missed"), [
    (("connections", "10000 clients", "chatnet"), {"kib_per_conn": 2.41},
     "10,000 clients: KiB per connection <= InspIRCd's"),
    (("connections", "15000 clients", "chatnet"), {"failed": 3},
     "15,000 clients: KiB per connection <= InspIRCd's"),
    (("fanout", "100x15", "chatnet"), {"deliveries_per_s": 799_000.0},
     "fan-out 100x15 >= 0.8x InspIRCd deliveries/s"),
    (("fanout", "100x15", "chatnet"), {"exact": False},
     "fan-out 100x15 >= 0.8x InspIRCd deliveries/s"),
    (("latency", "4000/s", "chatnet"), {"p99_ms": 0.31},
     "latency 4,000 msg/s: p99 <= 1.5x InspIRCd's"),
    (("latency", "4000/s", "chatnet"), {"server_cpu": 0.51},
     "latency 4,000 msg/s: server CPU <= InspIRCd's + 0.1 core"),
    (("latency", "1000/s", "chatnet"), {"p99_ms": 0.51}, "latency 1,000 msg/s: p99 <= 0.5 ms"),
])
def test_inspircd_targets_missed(key: Key, change: dict[str, Any], missed: str) -> None:
    """One figure past its bound misses that target and no other."""
    verdicts = inspircd_verdicts(inspircd_run({key: change}))
    assert [t for t, met in verdicts.items() if met is not True] == [missed]
    assert verdicts[missed] is False


def test_inspircd_targets_not_measured() -> None:
    """A count or a reference missing from the run is 'not measured', not a verdict."""
    results = [r for r in inspircd_run()
               if r["case"] != "15000 clients" and r["scenario"] != "fanout"]
    results.append(result("fanout", "100x15", "inspircd", deliveries_per_s=1.0, gen_cpu=0.95))
    verdicts = inspircd_verdicts(results)
    assert verdicts["15,000 clients: KiB per connection <= InspIRCd's"] is None
    assert verdicts["fan-out 100x15 >= 0.8x InspIRCd deliveries/s"] is None
    assert verdicts["10,000 clients: KiB per connection <= InspIRCd's"] is True
    text = report.format_targets(report.inspircd_targets(results), "issue 14:")
    assert "not measured (need both systems)" in text


def test_issue5_connection_targets_read_the_largest_count() -> None:
    """With 10,000 and 15,000 clients in one run, '15,000 held' reads the 15,000 case."""
    results = [
        result("connections", "10000 clients", clients=10_000, connected=10_000, failed=0,
               kib_per_conn=2.0),
        result("connections", "15000 clients", clients=15_000, connected=15_000, failed=0,
               kib_per_conn=3.0),
    ]
    verdicts = {v.target: v.measured for v in report.targets(results)}
    assert verdicts["15,000 logged-in clients held"] == "15,000 held, 0 failed"
    assert verdicts["<= 4 KiB RSS per connection"] == "3.00 KiB"


def test_command_line_clients_and_references() -> None:
    """--clients repeats (default 10,000 and 15,000); --reference chooses among the two."""
    args = parse_args([])
    assert args.clients == [10_000, 15_000]
    assert args.reference == ["ngircd", "inspircd"] and not args.no_reference
    args = parse_args(["--clients", "2000", "--clients", "4000", "--reference", "inspircd"])
    assert (args.clients, args.reference) == ([2000, 4000], ["inspircd"])
    assert parse_args(["--reference", "inspircd,ngircd,inspircd"]).reference == [
        "inspircd", "ngircd"]
    for bad in ("hybrid", ""):
        with pytest.raises(SystemExit):
            parse_args(["--reference", bad])


def test_systems_run_the_chosen_installed_references(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chosen reference runs after chatnet when installed; --no-reference runs none."""
    from bench import scenarios

    installed: dict[str, str | None] = {"ngircd": None, "inspircd": "/usr/sbin/inspircd"}

    def finder(name: str) -> Callable[[], str | None]:
        return lambda: installed[name]

    for name in installed:
        monkeypatch.setitem(scenarios.REFERENCES, name, finder(name))
    assert scenarios.systems(scenarios.Plan()) == ["chatnet", "inspircd"]
    installed["ngircd"] = "/usr/sbin/ngircd"
    assert scenarios.systems(scenarios.Plan()) == ["chatnet", "ngircd", "inspircd"]
    assert scenarios.systems(scenarios.Plan(references=["inspircd"])) == ["chatnet", "inspircd"]
    assert scenarios.systems(scenarios.Plan(reference=False)) == ["chatnet"]
    assert scenarios.proto("inspircd") == scenarios.proto("ngircd") == "irc"
    assert scenarios.proto("chatnet-b") == "chatnet"
    assert scenarios.Plan(quick=True, clients=[10_000, 15_000]).clients == [600]


def test_inspircd_configuration_fills_in() -> None:
    """bench/inspircd.conf takes exactly the runner's placeholders and lifts the limits."""
    from bench.procs import INSPIRCD_CONF

    text = INSPIRCD_CONF.read_text(encoding="utf-8").format(
        port=6999, motd="/tmp/motd", pidfile="/tmp/pid", max_clients=15_100)
    assert '<bind address="127.0.0.1" port="6999" type="clients">' in text
    for setting in ('localmax="0"', 'globalmax="0"', 'resolvehostnames="no"',
                    'softlimit="15100"'):
        assert setting in text
    # InspIRCd multiplies the penalty threshold by 1,000 in 32 bits: it must not wrap
    threshold = re.search(r'threshold="(\d+)"', text)
    rate = re.search(r'commandrate="(\d+)"', text)
    assert threshold and rate
    assert 1_000_000 <= int(threshold.group(1)) and int(threshold.group(1)) * 1000 < 2**32
    assert 1_000_000_000 <= int(rate.group(1)) < 2**32
