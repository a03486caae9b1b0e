"""
``python -m bench``: build the load generator, run the scenarios, print the
table, the ratios to the references (ngircd, InspIRCd) and the targets; write
every result as a JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench import profile as profiling
from bench import report
from bench.cluster import CLUSTER_SCENARIOS, GROUPS
from bench.procs import (
    BENCH,
    BenchError,
    build_loadgen,
    machine,
    raise_nofile,
    write_json_line,
)
from bench.scenarios import REFERENCES, SCENARIOS, Plan
from chatnet.scenarios.redis import RedisError, find_redis, redis_version

#: Every scenario by name: issue 5's five, then the cluster cases.
ALL = {**SCENARIOS, **CLUSTER_SCENARIOS}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark chatnet (this checkout, twistd -n chatnet) over loopback, "
        "against ngircd and InspIRCd when they are installed.  Prints a table and writes "
        "JSON lines.",
        epilog="Cluster cases (name 'cluster' for all four, or each by name): each runs in "
        "the same run on one server (system 'chatnet') and on two nodes sharing one "
        "redis-server (system 'cluster-2'; redis-server from PATH on a free 127.0.0.1 "
        "port, nothing saved), and prints the ratios.  cluster-fanout: 100 rooms x 15, "
        "each room's members alternating between the nodes, deliveries/s, exact and in "
        "order; cluster-latency: 1,000 msg/s, senders on node a and timed receivers on "
        "node b, p50/p99; cluster-failover: kill -9 of node b, the time to the last "
        "presence 'disconnect' its users cause at the clients on node a (on one server: "
        "those users' connections reset at once), once per --cluster-lease; "
        "cluster-files: senders on node a, receivers on node b, MB/s and sha256.  Every "
        "cluster case also reports Redis's own CPU.  Example: python -m bench cluster "
        "--cluster-lease 10 --cluster-lease 2",
    )
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help=f"which to run: {', '.join(SCENARIOS)} (default: these), "
                   f"{', '.join(CLUSTER_SCENARIOS)}, or cluster (all four cluster cases)")
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run of every chosen scenario (well under a minute)")
    p.add_argument("--json", metavar="PATH",
                   help="write the results as JSON lines here ('-' for stdout; default: "
                   "bench/out/<time>.jsonl)")
    p.add_argument("--clients", type=int, action="append", metavar="N",
                   help="connections scenario: clients to hold; repeatable, one case each "
                   "(default 10000 and 15000; the open-file limit bounds it)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="measured seconds of each fan-out and latency run (default 10)")
    p.add_argument("--warmup", type=float, default=2.0,
                   help="seconds of load before measuring (default 2)")
    p.add_argument("--soak-duration", type=float, default=300.0,
                   help="soak seconds (default 300)")
    p.add_argument("--soak-clients", type=int, default=300,
                   help="soak: client slots churning at once (default 300)")
    p.add_argument("--no-reference", action="store_true",
                   help="run no reference server (neither ngircd nor InspIRCd)")
    p.add_argument("--reference", type=_references, metavar="NAMES",
                   default=list(REFERENCES),
                   help=f"which reference servers to run, comma-separated (default "
                   f"{','.join(REFERENCES)})")
    p.add_argument("--quickack", action="store_true",
                   help="TCP quick ACKs on the generator's connections in every fan-out and "
                   "latency case too (the seed scenario and fan-out 1x15 quickack always "
                   "have them)")
    p.add_argument("--baseline", action="store_true",
                   help="also run fan-out and latency on bench/baseline_server.py, a bare "
                   "Twisted broadcast server with no checks (the floor under chatnet; the "
                   "seed scenario always runs it)")
    p.add_argument("--reactor", default="epoll", help="twistd --reactor (default epoll)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for 'twistd chatnet' (repeatable)")
    p.add_argument("--server-cmd", metavar="CMD",
                   help="run this command instead of twistd chatnet; it must print "
                   "'chatnet listening on 127.0.0.1:PORT'")
    p.add_argument("--checkout", type=Path, metavar="DIR",
                   help="run the chatnet server from this source tree (e.g. a git worktree "
                   "of an older commit) instead of this checkout")
    p.add_argument("--workdir", type=Path, help="where servers keep logs and spools "
                   "(default: the temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep each server's folder")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="record the chatnet server with py-spy during each fan-out and "
                   "latency window into DIR and print its hottest functions (slows the "
                   "server: figures of a profiled run are not quoted)")
    p.add_argument("--ab", metavar="ARGS",
                   help="A/B: run every chatnet fan-out and latency case twice in a row, "
                   "as configured (chatnet) and with these extra server arguments "
                   "(chatnet-b; shell words, e.g. --ab=--no-fast-path), and print B's "
                   "ratios to A")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run the chosen scenarios N times over (rounds #2.. are marked), "
                   "so that A/B pairs interleave across the machine's changing load")
    p.add_argument("--cluster-lease", type=_lease, action="append", metavar="SECONDS",
                   help="the nodes' --cluster-lease in the cluster cases (default 10); "
                   "repeatable: cluster-failover runs once for each (e.g. 10 and 2; a "
                   "short lease makes the run quicker), the other cases use the first")
    p.add_argument("--rebuild", action="store_true", help="rebuild the load generator")
    args = p.parse_args(argv)
    known = [*ALL, *GROUPS]
    unknown = [s for s in args.scenarios if s not in known]
    if unknown:
        p.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(known)}")
    expanded: list[str] = []
    for name in args.scenarios:
        for one in GROUPS.get(name, [name]):
            if one not in expanded:
                expanded.append(one)
    args.scenarios = expanded
    args.cluster_lease = args.cluster_lease or [10.0]
    args.clients = args.clients or [10_000, 15_000]
    return args


def _references(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in REFERENCES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose from {', '.join(REFERENCES)} (comma-separated)")
    return list(dict.fromkeys(names))


def cluster_machine() -> dict[str, Any]:
    """What the cluster cases' figures depend on: Redis's version, the reply parser."""
    try:
        redis = redis_version(find_redis())
    except RedisError as e:
        redis = str(e)
    # txredisapi parses replies with hiredis when it can import it, else in Python
    parser = "hiredis" if importlib.util.find_spec("hiredis") else "python (no hiredis)"
    return {"redis_server": redis, "redis_reply_parser": parser}


def _lease(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1.0 <= value <= 600.0:
        raise argparse.ArgumentTypeError(f"a lease of {value:g}s: give 1 to 600 seconds")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = args.scenarios or list(SCENARIOS)

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    if args.profile and not profiling.py_spy():
        print("bench: --profile needs py-spy on PATH (pip install py-spy)", file=sys.stderr)
        return 2
    try:
        build_loadgen(force=args.rebuild)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    nofile = raise_nofile()
    plan = Plan(
        quick=args.quick, clients=args.clients, duration=args.duration, warmup=args.warmup,
        soak_duration=args.soak_duration, soak_clients=args.soak_clients,
        reference=not args.no_reference, references=args.reference, reactor=args.reactor, server_cmd=args.server_cmd,
        server_args=args.server_arg, keep=args.keep, base=args.workdir, log=log,
        profile=args.profile, baseline=args.baseline, source=args.checkout.resolve() if args.checkout else None,
        ab_args=shlex.split(args.ab) if args.ab is not None else None,
        cluster_leases=args.cluster_lease, quickack=args.quickack,
    )
    if max(plan.clients) > nofile - 50:
        log(f"--clients {max(plan.clients)} is above the open-file limit ({nofile}); "
            "expect failures")

    info = machine(args.reactor, *([args.checkout.resolve()] if args.checkout else []))
    info["quick"] = args.quick
    if any(name in CLUSTER_SCENARIOS for name in chosen):
        info.update(cluster_machine())
    if args.json == "-":
        sink = sys.stdout
    else:
        path = Path(args.json) if args.json else BENCH / "out" / time.strftime("%Y%m%d-%H%M%S.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        sink = open(path, "w", encoding="utf-8")
        log(f"results: {path}")
    for name in plan.references if plan.reference else []:
        if info.get(name) == "not installed":
            log(f"{name}: not installed (apt-get install {name}); no figures, no ratios to it")
    write_json_line(sink, {"kind": "machine", **info})

    results: list[dict[str, Any]] = []
    for round_ in range(1, max(1, args.repeat) + 1):
        plan.round = round_
        for name in chosen:
            for r in ALL[name](plan):
                r["round"] = round_
                results.append(r)
                write_json_line(sink, {"kind": "result", **r})
                if r.get("error"):
                    log(f"  {r['scenario']} {r['case']} {r['system']}: FAILED {r['error'][:300]}")
                else:
                    log(f"  {r['scenario']} {r['case']} {r['system']}: {report.row_text(r)}")
    ratio_rows = (report.ratios(results) + report.ratios(results, "inspircd")
                  + report.ratios(results, report.BASELINE)
                  + report.ratios(results, report.RELAY)
                  + report.ratios(results, "chatnet-b")
                  + report.ratios(results, "chatnet", ours="cluster-2"))
    for q in ratio_rows:
        write_json_line(sink, {"kind": "ratio", **q})
    verdicts = report.targets(results, quick=args.quick or bool(args.profile))
    reference_verdicts = report.inspircd_targets(results, quick=args.quick or bool(args.profile))
    cluster_verdicts = report.cluster_targets(results, quick=args.quick)
    ceiling_verdicts = report.ceiling_targets(results, quick=args.quick or bool(args.profile))
    for v in verdicts:
        write_json_line(sink, {"kind": "target", "target": v.target, "measured": v.measured, "met": v.met})
    for v in [*reference_verdicts, *ceiling_verdicts]:
        write_json_line(sink, {"kind": "target", "issue": 14, "target": v.target,
                               "measured": v.measured, "met": v.met})
    for v in cluster_verdicts:
        write_json_line(sink, {"kind": "target", "issue": 12, "target": v.target,
                               "measured": v.measured, "met": v.met})
    if sink is not sys.stdout:
        sink.close()

    out = sys.stderr if args.json == "-" else sys.stdout
    print(file=out)
    print("machine: " + json.dumps(info, sort_keys=True), file=out)
    print(report.format_table(results, ratio_rows), file=out)
    print(file=out)
    if any(not r["scenario"].startswith("cluster-") for r in results):
        print(report.format_targets(verdicts), file=out)
        print(report.format_targets(reference_verdicts,
                                    "targets (issue 14, against InspIRCd):"), file=out)
    if ceiling_verdicts:
        print(report.format_targets(ceiling_verdicts,
                                    "targets (issue 14, against the Twisted floors):"), file=out)
    if cluster_verdicts:
        print(report.format_targets(cluster_verdicts, "targets (issue 12, cluster):"),
              file=out)
    for r in results:
        if r.get("profile"):
            print(file=out)
            print(profiling.report(Path(r["profile"])), file=out)
    return 1 if any(r.get("error") for r in results) else 0
