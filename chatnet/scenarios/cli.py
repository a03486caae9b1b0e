"""
``chatnet-scenarios``: run the ten acceptance scenarios against fresh
servers of their own and print a report, one line per scenario.

Exit status 0 when all pass, 1 when any fails, 2 for bad options.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import TextIO

from chatnet._version import __version__
from chatnet.scenarios.checks import SCENARIOS, Scenario, run_scenario
from chatnet.scenarios.context import Result
from chatnet.scenarios.processes import NODE_IDS
from chatnet.scenarios.redis import RedisError, find_redis, redis_version

WIDTH = 28


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatnet-scenarios",
        description="Run chatnet's ten acceptance scenarios with real server and "
        "client processes on loopback, and report PASSED or FAILED for each.",
        epilog="Each scenario starts its own twistd chatnet server on a free "
        "127.0.0.1 port, in a temporary folder (with --cluster: its own redis-server "
        "and nodes).  Exit status: 0 all passed, 1 some failed, 2 bad options or no "
        "redis-server for --cluster.",
    )
    parser.add_argument("--step", action="store_true",
                        help="pause before each scenario (press ENTER), for a live demonstration")
    parser.add_argument("--only", metavar="N", type=_numbers, action="extend", default=[],
                        help="run only these scenarios (e.g. --only 3 or --only 3,7,10); repeatable")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (server.log, client folders) even when all pass")
    parser.add_argument("--workdir", metavar="DIR", type=Path,
                        help="work in DIR (created) rather than a new temporary folder")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=30.0,
                        help="the bound on any single wait (default 30)")
    parser.add_argument("--show-log", action="store_true",
                        help="after each scenario, print its server.log (for a demonstration)")
    parser.add_argument("--cluster", metavar="N", type=_nodes, default=0,
                        help="run each scenario against a cluster: a fresh redis-server (from "
                        "PATH, on a free 127.0.0.1 port, nothing saved) and N chatnet nodes "
                        "using it, the clients spread over the nodes in turn (each also given "
                        "the others to reconnect to); the checks read every node's log")
    parser.add_argument("--server-arg", metavar="ARG", action="append", default=[],
                        help="one more option for every chatnet server or node, e.g. "
                        "--server-arg=--cluster-lease=2 (repeatable)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print the details of a failure (process output, server.log)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


#: The most nodes ``--cluster`` starts (node ids are single letters).
MAX_NODES = 9


def _nodes(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of nodes") from None
    if not 1 <= n <= MAX_NODES:
        raise argparse.ArgumentTypeError(f"--cluster takes 1 to {MAX_NODES} nodes, not {n}")
    return n


def _numbers(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give scenario numbers, 1 to 10") from None
    known = {s.number for s in SCENARIOS}
    for n in numbers:
        if n not in known:
            raise argparse.ArgumentTypeError(f"there is no scenario {n}; they are 1 to 10")
    return numbers


def summary(scenario: Scenario) -> str:
    """The first paragraph of the scenario function's docstring, on one line."""
    doc = inspect.getdoc(scenario.run) or ""
    return " ".join(doc.split("\n\n")[0].split())


def format_result(result: Result) -> str:
    """`` 3. Upload queue limit ....... PASSED   6.2s  evidence``"""
    dots = "." * max(2, WIDTH - len(result.title))
    verdict = "PASSED" if result.passed else "FAILED"
    return (f"{result.number:2d}. {result.title} {dots} {verdict} {result.seconds:5.1f}s  "
            f"{result.evidence}")


def pause(out: TextIO, scenario: Scenario) -> None:
    out.write(f"\n== {scenario.number}. {scenario.title}\n")
    out.write(textwrap.fill(summary(scenario), 78, initial_indent="   ",
                            subsequent_indent="   ") + "\n")
    out.write("   Press ENTER to run it ... ")
    out.flush()
    answered = sys.stdin.readline()
    if not answered or not sys.stdin.isatty():  # no echo of the ENTER
        out.write("\n")


def _installed(distribution: str) -> str:
    """An installed distribution's version, without importing it."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    """The console script; :returns: the exit status (``sys.exit(main())``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cluster:
        try:
            args.redis = find_redis()
        except RedisError as e:
            parser.exit(2, f"{parser.prog}: --cluster: {e}\n")
    try:
        return run(args, out)
    except BrokenPipeError:  # the report's reader went away (``| head``)
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the chosen scenarios, printing the report to ``out``."""
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl+C, so each scenario stops its processes.
        signal.signal(signal.SIGTERM, _interrupt)
    chosen = [s for s in SCENARIOS if not args.only or s.number in args.only]
    if args.workdir is not None:
        base = args.workdir.resolve()
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="chatnet-scenarios-"))
    out.write(f"chatnet scenarios: chatnet {__version__}, Twisted {_installed('Twisted')}, "
              f"Python {platform.python_version()}\n")
    if args.cluster:
        out.write(f"cluster: {args.cluster} node{'s' if args.cluster > 1 else ''} "
                  f"({', '.join(NODE_IDS[: args.cluster])}) and a redis-server "
                  f"{redis_version(args.redis)} per scenario\n")
    out.write(f"work folder: {base}\n")
    out.flush()
    results: list[Result] = []
    start = time.monotonic()
    try:
        for scenario in chosen:
            if args.step:
                pause(out, scenario)
            result = run_scenario(scenario, base, timeout=args.timeout, cluster=args.cluster,
                                  server_args=tuple(args.server_arg))
            results.append(result)
            out.write(format_result(result) + "\n")
            if not result.passed:
                out.write(f"    details: {result.workdir}/failure.txt\n")
                if args.verbose:
                    out.write(textwrap.indent(result.details, "    ") + "\n")
            if args.show_log and result.workdir is not None:
                log = result.workdir / "server" / "server.log"
                if args.cluster:  # every node's lines, merged, node id first
                    log = result.workdir / "cluster.log"
                if log.exists():
                    out.write(textwrap.indent(log.read_text("utf-8", "replace"), "    | "))
            out.flush()
    except KeyboardInterrupt:
        out.write("\ninterrupted\n")
        return 130
    failed = [r for r in results if not r.passed]
    took = time.monotonic() - start
    out.write(f"{len(results) - len(failed)} passed, {len(failed)} failed in {took:.1f}s\n")
    if failed or args.keep or args.workdir is not None:
        out.write(f"logs kept in {base}\n")
    else:
        shutil.rmtree(base, ignore_errors=True)
    out.flush()
    return 1 if failed else 0


