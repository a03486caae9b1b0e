"""
The five scenarios of issue 5 and the seed's own shape (issue 14).  Each
starts a fresh server per case, drives it with the load generator and returns
flat result dicts (see bench.report).
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profile as profiling
from bench import report
from bench.procs import (
    BENCH,
    BenchError,
    ChatnetServer,
    InspircdServer,
    Loadgen,
    NgircdServer,
    Sampler,
    Server,
    cpu_share,
    inspircd_path,
    machine_busy,
    ngircd_path,
    sample,
    tail,
    workdir,
)

MIB = 1024 * 1024

#: The reference servers, in the order they run after chatnet, and how to
#: find each (a reference that is not installed is left out, with a line).
REFERENCES: dict[str, Callable[[], str | None]] = {
    "ngircd": ngircd_path,
    "inspircd": inspircd_path,
}


@dataclass
class Plan:
    """Sizes and durations of one run; ``quick`` shrinks everything."""

    quick: bool = False
    #: connections: one case for each count (issue 14 weighs memory at both)
    clients: list[int] = field(default_factory=lambda: [10_000, 15_000])
    duration: float = 10.0
    warmup: float = 2.0
    soak_duration: float = 300.0
    soak_clients: int = 300
    reference: bool = True
    #: which of :data:`REFERENCES` run (when ``reference``)
    references: list[str] = field(default_factory=lambda: list(REFERENCES))
    reactor: str = "epoll"
    server_cmd: str | None = None
    server_args: list[str] = field(default_factory=list)
    keep: bool = False
    base: Path | None = None
    profile: Path | None = None
    source: Path | None = None
    baseline: bool = False
    #: Extra server arguments of the B side of an A/B run (``--ab``): every
    #: chatnet fan-out and latency case then runs again at once as
    #: ``chatnet-b``.
    ab_args: list[str] | None = None
    #: Which round of ``--repeat`` runs: B goes first in even rounds (ABBA),
    #: so a drift in the machine's load does not favour one side.
    round: int = 1
    #: The cluster cases' ``--cluster-lease`` values (seconds); the failover
    #: case runs once for each.
    cluster_leases: list[float] = field(default_factory=lambda: [10.0])
    #: TCP quick ACKs on the generator's connections in every fan-out and
    #: latency case (``--quickack``; the seed scenario and fan-out's
    #: "1x15 quickack" case always have them).
    quickack: bool = False
    #: The seed scenario: how many runs of each system (the figures are
    #: their medians) and the measured seconds of each.
    seed_runs: int = 5
    seed_duration: float = 4.0
    log: Callable[[str], None] = print

    def __post_init__(self) -> None:
        if self.quick:
            self.clients = sorted({min(n, 600) for n in self.clients})
            self.duration = min(self.duration, 1.0)
            self.warmup = min(self.warmup, 0.3)
            self.soak_duration = min(self.soak_duration, 5.0)
            self.soak_clients = min(self.soak_clients, 60)
            self.seed_runs = min(self.seed_runs, 1)
            self.seed_duration = min(self.seed_duration, 1.0)


def systems(plan: Plan, baseline: bool = False) -> list[str]:
    found = ["chatnet"]
    if baseline and plan.ab_args is not None:
        found.append("chatnet-b")
        if plan.round % 2 == 0:
            found.reverse()
    if plan.reference:
        found += [name for name in plan.references if REFERENCES[name]()]
    if baseline and plan.baseline:
        found.append("baseline")
    return found


@contextmanager
def running(plan: Plan, system: str, name: str, max_clients: int = 10_000) -> Iterator[Server]:
    wd = workdir(plan.base, f"{system}-{name}")
    server: Server
    if system in ("chatnet", "chatnet-b"):
        command = None
        if plan.server_cmd:
            command = [*shlex.split(plan.server_cmd)]
        extra = plan.server_args + ((plan.ab_args or []) if system == "chatnet-b" else [])
        server = ChatnetServer(wd, max_clients=max_clients, reactor=plan.reactor,
                               extra=extra, command=command,
                               **({"source": plan.source} if plan.source else {}))
    elif system == "baseline":
        server = ChatnetServer(wd, command=[sys.executable, str(BENCH / "baseline_server.py")])
        server.audited = False
    elif system == "relay":
        server = ChatnetServer(wd, command=[sys.executable, str(BENCH / "relay_server.py")])
        server.audited = False
    elif system == "inspircd":
        server = InspircdServer(wd, max_clients=max_clients)
    else:
        server = NgircdServer(wd)
    try:
        yield server
    finally:
        server.stop()
        if not plan.keep:
            shutil.rmtree(wd, ignore_errors=True)


def proto(system: str) -> str:
    """The load generator's protocol for ``system``."""
    return "irc" if system in REFERENCES else "chatnet"


def loadgen_for(server: Server, args: list[str]) -> Loadgen:
    """The load generator with ``args`` against ``server``, set up at the server's pace."""
    if server.setup_concurrency:
        args = [*args, "--concurrency", str(server.setup_concurrency)]
    return Loadgen(args, server.port, proto(server.name))


def base_result(scenario: str, case: str, system: str, **params: Any) -> dict[str, Any]:
    return {"scenario": scenario, "case": case, "system": system, "notes": [], **params}


def _finish(result: dict[str, Any], server: Server) -> dict[str, Any]:
    if not server.alive() and not server.stopped:
        result["ok"] = False
        result.setdefault("error", f"server died: {tail(getattr(server, 'stdout_path', Path('/nonexistent')), 800)}")
    if report.gen_bound(result):
        result["notes"].append("load generator above 90% of a core: figure not quoted")
    if report.noisy(result):
        result["notes"].append(
            f"noisy: other processes used {result['other_cpu']:.2f} cores during the window")
    return result


def _guard(fn: Callable[..., dict[str, Any]], scenario: str, case: str, system: str,
           *args: Any, **kw: Any) -> dict[str, Any]:
    try:
        return fn(*args, **kw)
    except BenchError as e:
        return base_result(scenario, case, system, error=str(e), ok=False)


# ---- 1. connections ----


def connections(plan: Plan) -> list[dict[str, Any]]:
    out = []
    for n in plan.clients:
        for system in systems(plan):
            plan.log(f"connections: {n:,} clients on {system}")
            out.append(_guard(_connections, "connections", f"{n} clients", system, plan,
                              system, n))
    return out


def _connections(plan: Plan, system: str, n: int) -> dict[str, Any]:
    r = base_result("connections", f"{n} clients", system, clients=n, room_size=15)
    with running(plan, system, "conn", max_clients=n + 100) as server:
        time.sleep(0.5)
        before = sample(server.pid)
        lg = loadgen_for(server, ["--scenario", "connect", "--clients", str(n),
                                  "--room-size", "15"])
        if server.setup_concurrency:
            r["setup_concurrency"] = server.setup_concurrency
            r["notes"].append(f"connect s: {server.setup_concurrency:,} clients set up at once "
                              "(8 for the others): registration completes on the server's "
                              "1-second timer")
        g0 = sample(lg.pid)
        try:
            ready = lg.wait("ready", 120 + n / 100)
            g1, s1 = sample(lg.pid), sample(server.pid)
            time.sleep(1.0)  # let the reactor settle, then weigh it
            after = sample(server.pid)
            lg.send("go")
            lg.wait("done", 30)
        finally:
            lg.quit()
        time.sleep(1.5)
        gone = sample(server.pid) if server.alive() else None
        r.update(
            connected=ready["connected"], failed=ready["failed"], setup_s=ready["setup_s"],
            codes=ready.get("codes", {}),
            rss_before_mib=before.rss / MIB, rss_after_mib=after.rss / MIB,
            rss_closed_mib=gone.rss / MIB if gone else None,
            kib_per_conn=report.per_connection_kib(before.rss, after.rss, ready["connected"]),
            fds_before=before.fds, fds_held=after.fds, fds_closed=gone.fds if gone else None,
            server_cpu=cpu_share(before, s1), gen_cpu=cpu_share(g0, g1),
            ok=ready["failed"] == 0,
        )
        return _finish(r, server)


# ---- 2. fan-out ----


def fanout(plan: Plan) -> list[dict[str, Any]]:
    # (rooms, quick ACKs): 1 x 15 once more with quick ACKs, to set beside
    # the references as issue 14 asks
    cases = [(10 if plan.quick else 100, False), (1, False), (1, True)]
    out = []
    for rooms, quickack in cases:
        for system in systems(plan, baseline=True):
            case = f"{rooms}x15" + (" quickack" if quickack else "")
            plan.log(f"fanout: {case} every member sending, window 8, {plan.duration:g}s on {system}")
            out.append(_guard(_chat, "fanout", case, system, plan, system, "fanout", rooms, None,
                              quickack=quickack, label=case))
    return out


# ---- 3. latency ----


def latency(plan: Plan) -> list[dict[str, Any]]:
    out = []
    rooms = 20 if plan.quick else 100
    for rate in (1000, 4000):
        for system in systems(plan, baseline=True):
            case = f"{rate}/s"
            plan.log(f"latency: {rate} msg/s into {rooms}x15 on {system}")
            out.append(_guard(_chat, "latency", case, system, plan, system, "latency", rooms, rate))
    return out


def _chat(plan: Plan, system: str, kind: str, rooms: int, rate: int | None, *,
          window: int = 8, quickack: bool = False, label: str | None = None,
          report_as: str | None = None, duration: float | None = None) -> dict[str, Any]:
    case = label or (f"{rooms}x15" if kind == "fanout" else f"{rate}/s")
    scenario = report_as
    duration = duration or plan.duration
    r = base_result(scenario or kind, case, system, rooms=rooms, room_size=15,
                    duration_s=duration)
    args = ["--scenario", kind, "--rooms", str(rooms), "--room-size", "15",
            "--duration", str(duration), "--warmup", str(plan.warmup)]
    if quickack or plan.quickack:
        args.append("--quickack")
        r["quickack"] = True
    if kind == "fanout":
        args += ["--window", str(window)]
        r["window"] = window
    else:
        # time 2 receivers a room, drain the other 12 every 100 ms: the
        # generator then costs ~0.3 core instead of ~0.6 at 4,000 msg/s,
        # CPU the server under test shares on a 2-core machine
        args += ["--rate", str(rate), "--eager", "2"]
        r["offered_rate"] = rate
        r["timed_receivers_per_room"] = 2
    with running(plan, system, kind, max_clients=rooms * 15 + 100) as server:
        lg = loadgen_for(server, args)
        try:
            ready = lg.wait("ready", 120)
            if ready["failed"]:
                raise BenchError(f"{ready['failed']} clients failed to set up: {ready.get('codes')}")
            s0 = sample(server.pid)
            lg.send("go")
            time.sleep(plan.warmup)
            spy = None
            if plan.profile and system.startswith("chatnet"):
                plan.profile.mkdir(parents=True, exist_ok=True)
                name = f"{scenario or kind}-{case.replace('/', 'per').replace(' ', '-')}"
                r["profile"] = str(plan.profile / f"{name}.txt")
                spy = profiling.start(server.pid, duration, Path(r["profile"]))
                r["notes"].append("profiled with py-spy: figures not quoted")
            a, ga, ma = sample(server.pid), sample(lg.pid), machine_busy()
            time.sleep(duration)
            b, gb, mb = sample(server.pid), sample(lg.pid), machine_busy()
            done = lg.wait("done", 60 + duration)
            if spy:
                spy.wait(timeout=60)
        finally:
            lg.quit()
        keys = ("msgs_per_s", "deliveries_per_s", "sent", "deliveries", "expected_deliveries",
                "gaps", "dups", "missing", "unknown", "exact", "p50_ms", "p99_ms", "p999_ms",
                "max_ms", "mean_ms", "replies_ok", "closed_unexpected", "codes")
        r.update({k: done.get(k) for k in keys})
        r.update(server_cpu=cpu_share(a, b), gen_cpu=cpu_share(ga, gb),
                 server_cpu_total=cpu_share(s0, b), rss_mib=b.rss / MIB)
        r["other_cpu"], r["softirq_cpu"] = report.other_load(ma, mb, r["server_cpu"], r["gen_cpu"])
        if r["server_cpu"] > 0 and done.get("deliveries_per_s"):
            # deliveries per second of server CPU: steadier than deliveries/s
            # on a machine others share
            r["deliveries_per_core_s"] = done["deliveries_per_s"] / r["server_cpu"]
        if r["gen_cpu"] > 0 and done.get("deliveries_per_s"):
            # what one core of the generator handles at this load: its headroom
            r["gen_deliveries_per_core"] = done["deliveries_per_s"] / r["gen_cpu"]
        if isinstance(server, ChatnetServer) and server.audited and server.alive():
            server.stop()
            logged = server.audit_count("BROADCAST")
            r["audit_broadcasts"] = logged
            r["audit_ok"] = logged == done.get("sent")
        r["ok"] = bool(done.get("exact")) and r.get("audit_ok", True) is not False
        return _finish(r, server)


# ---- 3b. the seed's own shape ----


def seed(plan: Plan) -> list[dict[str, Any]]:
    """
    Issue 14's "seed's own shape": 2 rooms x 15, every member sending with one
    message in flight (window 1), quick ACKs on the generator's side, as the
    blocking clients of the original assignment see them.  A latency race:
    each message waits for the one before it.  Always run on the bare Twisted
    server too (and the references); with ``plan.seed_runs`` > 1 the systems
    take turns, run after run, and each system's figures are the medians.
    """
    order = systems(plan, baseline=True)
    if "baseline" not in order:
        order.append("baseline")
    runs: dict[str, list[dict[str, Any]]] = {system: [] for system in order}
    duration = plan.seed_duration
    for n in range(plan.seed_runs):
        for system in order:
            plan.log(f"seed: 2x15, window 1, quick ACKs, {duration:g}s on {system}"
                     + (f" (run {n + 1} of {plan.seed_runs})" if plan.seed_runs > 1 else ""))
            runs[system].append(_guard(_chat, "seed", SEED_CASE, system, plan, system, "fanout",
                                       2, None, window=1, quickack=True, label=SEED_CASE,
                                       report_as="seed", duration=duration))
    return [report.median_result(results) for results in runs.values()]


SEED_CASE = "2x15 window 1"


# ---- 4. files ----


def files(plan: Plan) -> list[dict[str, Any]]:
    # About 500 MB a case (a second or so at the target rate): short runs
    # are all start-up and scheduling noise.
    cases = [
        ("1 sender", 1, 2 if plan.quick else 160, 3 * MIB),
        ("8 senders", 8, 1 if plan.quick else 20, 3 * MIB),
        ("8 senders small", 8, 1 if plan.quick else 160, 64 * 1024),
    ]
    if plan.profile:  # the 3 MiB cases are long enough for the profiler
        cases = cases[:2]
    out = []
    chatnets = [s for s in systems(plan, baseline=True) if s.startswith("chatnet")]
    for case, senders, per, size in cases:
        # the ceiling: a plain Twisted relay, same generator, same files (the
        # 3 MiB cases; not profiled)
        ceiling = ["relay"] if size == 3 * MIB and not plan.profile else []
        for system in chatnets + ceiling:
            plan.log(f"files: {case}, {per} x {size / MIB:g} MiB each, on {system}")
            out.append(_guard(_files, "files", case, system, plan, case, senders, per, size,
                              system))
    return out


def _files(plan: Plan, case: str, senders: int, per: int, size: int,
           system: str = "chatnet") -> dict[str, Any]:
    r = base_result("files", case, system, senders=senders, files_per_sender=per, file_size=size)
    args = ["--scenario", "files", "--senders", str(senders), "--files-per-sender", str(per),
            "--file-size", str(size), "--duration", "120"]
    if system == "relay":
        # it hashes nothing: its file-end has no sha256 to compare
        args.append("--no-sha256")
        r["notes"].append("relay: no sha256 (none computed); bytes checked only")
    with running(plan, system, "files") as server:
        lg = Loadgen(args, server.port)
        try:
            lg.wait("ready", 60)
            time.sleep(0.3)
            s0, g0, m0 = sample(server.pid), sample(lg.pid), machine_busy()
            sampler = Sampler(server.pid, 0.02)
            spy = None
            if plan.profile:
                plan.profile.mkdir(parents=True, exist_ok=True)
                r["profile"] = str(plan.profile / f"files-{case.replace(' ', '-')}.txt")
                spy = profiling.start(server.pid, 3, Path(r["profile"]))
                r["notes"].append("profiled with py-spy: figures not quoted")
            lg.send("go")
            done = lg.wait("done", 180)
            s1, g1, m1 = sample(server.pid), sample(lg.pid), machine_busy()
            peak = sampler.stop()
            if spy:
                spy.wait(timeout=60)
            # outside the measured window: the generator hashes what it sent
            hashes = lg.wait("sha256", 300)
        finally:
            lg.quit()
        time.sleep(0.5)
        r.update({k: done.get(k) for k in ("files", "mb_per_s", "span_s", "intact", "received_ok",
                                          "delivered", "failed", "corrupt_chunks", "bytes",
                                          "file_mean_s", "file_max_s", "codes")})
        r.update(server_cpu=cpu_share(s0, s1), gen_cpu=cpu_share(g0, g1),
                 rss_before_mib=s0.rss / MIB, peak_rss_delta_mib=(max(peak, s1.rss) - s0.rss) / MIB,
                 spool_left=server.spool_files() if isinstance(server, ChatnetServer) else None)
        r["other_cpu"], r["softirq_cpu"] = report.other_load(m0, m1, r["server_cpu"], r["gen_cpu"])
        r.update({k: hashes.get(k) for k in ("sha256_ok", "sha256_bad", "sha256_missing")})
        r["sha256_checked"] = hashes.get("checked", True)
        r["sha256_match"] = (report.sha256_match(done.get("files"), hashes.get("sha256_ok"),
                                                 hashes.get("sha256_bad"))
                             if r["sha256_checked"] else None)
        r["ok"] = report.files_exact(r)
        return _finish(r, server)


# ---- 5. soak ----


def soak(plan: Plan) -> list[dict[str, Any]]:
    plan.log(f"soak: {plan.soak_clients} churning clients for {plan.soak_duration:g}s on chatnet")
    case = f"{plan.soak_duration:g}s"
    return [_guard(_soak, "soak", case, "chatnet", plan, case)]


def _soak(plan: Plan, case: str) -> dict[str, Any]:
    r = base_result("soak", case, "chatnet", slots=plan.soak_clients, duration_s=plan.soak_duration)
    every = 1.0 if plan.quick else 5.0
    warm = plan.soak_duration * 0.2
    with running(plan, "chatnet", "soak", max_clients=plan.soak_clients + 100) as server:
        assert isinstance(server, ChatnetServer)
        time.sleep(0.5)
        base = sample(server.pid)
        lg = Loadgen(["--scenario", "soak", "--clients", str(plan.soak_clients),
                      "--duration", str(plan.soak_duration)], server.port)
        series = []
        try:
            lg.wait("ready", 30)
            g0 = sample(lg.pid)
            lg.send("go")
            t0 = time.monotonic()
            start = None
            while time.monotonic() - t0 < plan.soak_duration - every / 2:
                time.sleep(every)
                s = sample(server.pid)
                series.append({"t_s": round(s.t - t0, 1), "rss_mib": round(s.rss / MIB, 2), "fds": s.fds,
                               "spool": server.spool_files()})
                if start is None and s.t - t0 >= warm:
                    start = s
            end = sample(server.pid)
            g1 = sample(lg.pid)
            done = lg.wait("done", 60)
        finally:
            lg.quit()
        time.sleep(2.0)
        after = sample(server.pid)
        start = start or end
        r.update({k: done.get(k) for k in ("connects", "logins", "graceful", "drops", "msgs", "deliveries",
                                          "files", "files_received", "files_failed", "files_aborted",
                                          "corrupt_chunks", "codes")})
        r.update(
            rss_base_mib=base.rss / MIB, rss_start_mib=start.rss / MIB, rss_end_mib=end.rss / MIB,
            rss_after_mib=after.rss / MIB,
            rss_growth_pct=report.growth_pct(start.rss, end.rss),
            # the trend once warm: second half of the run only
            rss_late_growth_pct=report.growth_pct(
                series[len(series) // 2]["rss_mib"], end.rss / MIB) if series else 0.0,
            fds_before=base.fds, fds_after=after.fds, fds_leaked=after.fds - base.fds,
            spool_left=server.spool_files(), series=series,
            server_cpu=cpu_share(base, end), gen_cpu=cpu_share(g0, g1),
        )
        r["ok"] = abs(r["rss_growth_pct"]) <= 10 and r["fds_leaked"] <= 0 and r["spool_left"] == 0
        return _finish(r, server)


SCENARIOS: dict[str, Callable[[Plan], list[dict[str, Any]]]] = {
    "connections": connections,
    "fanout": fanout,
    "latency": latency,
    "seed": seed,
    "files": files,
    "soak": soak,
}
