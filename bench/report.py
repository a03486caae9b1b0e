"""
Turning results into figures: the table, the ratios to the references
(ngircd, InspIRCd), the targets of issue 5, and issue 14's: against InspIRCd,
the files ceiling and the seed's shape.  Pure: no processes, no clocks, no
I/O.

A result is a flat ``dict``: ``scenario``, ``case``, ``system`` plus the
figures the scenario measured, ``server_cpu`` and ``gen_cpu`` (cores used
during the measured window) and ``notes``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: A load generator using more than this share of a core may itself have been
#: the bottleneck: its figure is marked and not quoted.
GEN_LIMIT = 0.90

KIB = 1024
MIB = 1024 * 1024

#: The systems issue 14 measures chatnet against besides the references: the
#: plain Twisted file relay (bench/relay_server.py) and the bare Twisted
#: broadcast server (bench/baseline_server.py).
RELAY = "relay"
BASELINE = "baseline"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return 0.0
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n*q/100), at least 1
    return float(sorted_values[int(rank) - 1])


def growth_pct(start: float, end: float) -> float:
    """Relative change from ``start`` to ``end``, in percent."""
    return 0.0 if start == 0 else (end - start) * 100.0 / start


def per_connection_kib(rss_before: int, rss_after: int, connections: int) -> float:
    """Server memory each held connection costs, in KiB."""
    if connections <= 0:
        return 0.0
    return (rss_after - rss_before) / KIB / connections


def gen_bound(result: dict[str, Any]) -> bool:
    """Was the load generator at (or near) a full core during the window?"""
    return float(result.get("gen_cpu") or 0.0) > GEN_LIMIT


#: CPU (in cores) used during a window by everything but the server and the
#: generator (other processes, interrupts) above which the window is noisy.
NOISE_LIMIT = 0.30


def other_load(a: tuple[float, float, float], b: tuple[float, float, float],
               server: float, gen: float) -> tuple[float, float]:
    """
    From two ``(time, process CPU seconds, irq+softirq CPU seconds)``
    readings of the whole machine and the server's and generator's shares of
    the same window: (cores other processes used, cores spent in interrupts
    and softirqs -- loopback TCP for the two, mostly).
    """
    (t0, busy0, irq0), (t1, busy1, irq1) = a, b
    if t1 <= t0:
        return 0.0, 0.0
    span = t1 - t0
    return max(0.0, (busy1 - busy0) / span - server - gen), max(0.0, (irq1 - irq0) / span)


def noisy(result: dict[str, Any]) -> bool:
    return float(result.get("other_cpu") or 0.0) > NOISE_LIMIT


# ---- the headline figure of each scenario ----

#: scenario -> the figures compared across systems: (figure, unit, higher is better)
HEADLINE: dict[str, list[tuple[str, str, bool]]] = {
    "connections": [("kib_per_conn", "KiB/conn", False), ("setup_s", "s to connect", False)],
    "fanout": [("deliveries_per_s", "deliveries/s", True),
               ("deliveries_per_core_s", "deliv/core-s", True)],
    "latency": [("p99_ms", "ms p99", False), ("server_cpu", "server cores", False)],
    "seed": [("msgs_per_s", "msg/s", True), ("p50_ms", "ms p50", False),
             ("p99_ms", "ms p99", False)],
    "files": [("mb_per_s", "MB/s", True)],
    "soak": [("rss_growth_pct", "% RSS growth", False)],
    "cluster-fanout": [("deliveries_per_s", "deliveries/s", True),
                       ("deliveries_per_core_s", "deliv/core-s", True)],
    "cluster-latency": [("p50_ms", "ms p50", False), ("p99_ms", "ms p99", False),
                        ("server_cpu", "server cores", False)],
    "cluster-failover": [("failover_s", "s to last disconnect", False)],
    "cluster-files": [("mb_per_s", "MB/s", True)],
}


def ratios(results: Iterable[dict[str, Any]], reference: str = "ngircd",
           ours: str = "chatnet") -> list[dict[str, Any]]:
    """
    ``ours``'s headline figures over the reference's, per (scenario, case), for
    the cases both ran in this run.  A ratio involving a generator-bound or
    failed figure is reported but marked ``quoted: False``.  (The failover
    case's cases differ by lease on the cluster: each is set against the one
    server's case of the same rooms.)
    """
    table: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    results = list(results)
    for r in results:
        table.setdefault((r["scenario"], r["case"], r.get("round", 1)), {})[r["system"]] = r
    singles = {(r["scenario"], r["case"], r.get("round", 1)): r for r in results
               if r["system"] == reference}
    out = []
    for (scenario, case, round_), systems in table.items():
        mine, ref = systems.get(ours), systems.get(reference)
        if mine and not ref and " lease " in case:
            ref = singles.get((scenario, case.split(" lease ")[0], round_))
        if not mine or not ref or scenario not in HEADLINE:
            continue
        for key, unit, higher in HEADLINE[scenario]:
            a, b = mine.get(key), ref.get(key)
            if a is None or b is None or b == 0:
                continue
            if key == "setup_s" and mine.get("setup_concurrency") != ref.get("setup_concurrency"):
                continue  # set up at different paces (InspIRCd's 1-second registration)
            out.append({
                "scenario": scenario, "case": case, "round": round_, "figure": key, "unit": unit,
                "chatnet": a, reference: b, "ours": ours, "value": a, "reference": reference,
                "reference_value": b, "ratio": a / b, "higher_is_better": higher,
                "quoted": not (gen_bound(mine) or gen_bound(ref))
                and mine.get("ok", True) and ref.get("ok", True),
            })
    return out


# ---- the table ----


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


#: scenario -> the figures shown in the table, in order (key, label)
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "connections": [("connected", "held"), ("failed", "failed"), ("setup_s", "connect s"),
                    ("rss_before_mib", "RSS0 MiB"), ("rss_after_mib", "RSS MiB"),
                    ("kib_per_conn", "KiB/conn")],
    "fanout": [("msgs_per_s", "msg/s"), ("deliveries_per_s", "deliv/s"),
               ("deliveries_per_core_s", "deliv/core-s"),
               ("exact", "exact"), ("audit_ok", "audit"), ("p50_ms", "p50 ms"),
               ("p99_ms", "p99 ms")],
    "latency": [("msgs_per_s", "msg/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                ("p999_ms", "p99.9 ms"), ("max_ms", "max ms"), ("exact", "exact")],
    "seed": [("msgs_per_s", "msg/s"), ("deliveries_per_s", "deliv/s"), ("p50_ms", "p50 ms"),
             ("p99_ms", "p99 ms"), ("exact", "exact"), ("audit_ok", "audit"), ("runs", "runs")],
    "files": [("files", "files"), ("mb_per_s", "MB/s"), ("span_s", "wall s"),
              ("intact", "intact"), ("sha256_match", "sha256"),
              ("peak_rss_delta_mib", "peak +MiB")],
    "cluster-fanout": [("msgs_per_s", "msg/s"), ("deliveries_per_s", "deliv/s"),
                       ("exact", "exact"), ("refused", "refused"),
                       ("unanswered", "unanswered"), ("audit_ok", "audit"), ("p50_ms", "p50 ms"),
                       ("p99_ms", "p99 ms"), ("redis_cpu", "redis cores")],
    "cluster-latency": [("msgs_per_s", "msg/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                        ("p999_ms", "p99.9 ms"), ("max_ms", "max ms"), ("exact", "exact"),
                        ("refused", "refused"), ("redis_cpu", "redis cores")],
    "cluster-failover": [("users_lost", "users lost"), ("first_disconnect_s", "first s"),
                         ("failover_s", "last s"), ("complete", "all seen once"),
                         ("name_free", "names free"), ("redis_cpu", "redis cores")],
    "cluster-files": [("files", "files"), ("mb_per_s", "MB/s"), ("span_s", "wall s"),
                      ("intact", "intact"), ("sha256_match", "sha256"),
                      ("redis_cpu", "redis cores")],
    "soak": [("rss_start_mib", "RSS start"), ("rss_end_mib", "RSS end"),
             ("rss_growth_pct", "growth %"), ("rss_late_growth_pct", "2nd half %"),
             ("fds_leaked", "fd leak"),
             ("spool_left", "spool left"), ("connects", "connects")],
}


def files_exact(r: dict[str, Any]) -> bool:
    """
    A files case delivered every file whole: each byte as sent (``intact``)
    and the sha256 of every ``file-end`` the sha256 of the bytes sent.  The
    relay computes no sha256 (its generator compares none: ``sha256_checked``
    false): for it, the bytes alone.
    """
    if r.get("system") == RELAY and r.get("sha256_checked") is False:
        return bool(r.get("intact"))
    return bool(r.get("intact")) and bool(r.get("sha256_match"))


def sha256_match(files: int | None, ok: int | None, bad: int | None) -> bool:
    """Every one of ``files`` had its ``file-end`` sha256 checked, and none differed."""
    return bool(files) and ok == files and not bad


def row_text(r: dict[str, Any]) -> str:
    if r.get("error"):
        return f"FAILED: {r['error']}"
    parts = []
    for key, label in COLUMNS.get(r["scenario"], []):
        if key in r and r[key] is not None:
            parts.append(f"{label} {_fmt(r[key])}")
    return ", ".join(parts)


def _round(r: dict[str, Any]) -> str:
    return f" #{r['round']}" if r.get("round", 1) > 1 else ""


def format_table(results: Sequence[dict[str, Any]], ratio_rows: Sequence[dict[str, Any]]) -> str:
    """The plain-text table the runner prints."""
    head = ("scenario", "case", "system", "server cpu", "gen cpu", "softirq", "others", "figures")
    rows = []
    for r in results:
        flag = " GEN-BOUND" if gen_bound(r) else ""
        rows.append((
            r["scenario"], r["case"] + _round(r), r["system"],
            f"{r['server_cpu']:.2f}" if r.get("server_cpu") is not None else "-",
            (f"{r['gen_cpu']:.2f}" if r.get("gen_cpu") is not None else "-") + flag,
            f"{r['softirq_cpu']:.2f}" if r.get("softirq_cpu") is not None else "-",
            f"{r['other_cpu']:.2f}" if r.get("other_cpu") is not None else "-",
            row_text(r),
        ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    widths[-1] = len(head[-1])
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if ratio_rows:
        lines.append("")
        lines.append("ratios (same run):")
        for q in ratio_rows:
            better = "higher" if q["higher_is_better"] else "lower"
            note = "" if q["quoted"] else "  (not quoted: generator-bound or failed)"
            lines.append(
                f"  {q['scenario']:<12} {q['case'] + _round(q):<14} {q['unit']:<14} "
                f"{q.get('ours', 'chatnet')} {_fmt(q.get('value', q['chatnet']))} / {q['reference']} "
                f"{_fmt(q['reference_value'])} = "
                f"{q['ratio']:.2f}x ({better} is better){note}"
            )
    return "\n".join(lines)


# ---- issue 5's targets ----


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: not measured in this run, or not quotable


def _find(results: Iterable[dict[str, Any]], scenario: str, case: str | None = None,
          system: str = "chatnet") -> dict[str, Any] | None:
    for r in results:
        if r["scenario"] == scenario and r["system"] == system and (case is None or r["case"] == case):
            return r
    return None


def _usable(r: dict[str, Any] | None) -> bool:
    return r is not None and not r.get("error") and not gen_bound(r)


def targets(results: Sequence[dict[str, Any]], quick: bool = False) -> list[Verdict]:
    """Check each target of issue 5 against one run's results."""
    out: list[Verdict] = []

    c = max((r for r in results if r["scenario"] == "connections" and r["system"] == "chatnet"),
            key=lambda r: r.get("clients") or 0, default=None)
    if _usable(c):
        assert c is not None
        held = c["connected"] >= 15_000 and c["failed"] == 0
        out.append(Verdict("15,000 logged-in clients held", f"{c['connected']:,} held, {c['failed']} failed", held))
        out.append(Verdict("<= 4 KiB RSS per connection", f"{c['kib_per_conn']:.2f} KiB", c["kib_per_conn"] <= 4.0))
    else:
        out.append(Verdict("15,000 clients, <= 4 KiB each", "not measured", None))

    f100, n100 = _find(results, "fanout", "100x15"), _find(results, "fanout", "100x15", "ngircd")
    if _usable(f100) and _usable(n100):
        assert f100 is not None and n100 is not None
        ratio = f100["deliveries_per_s"] / max(1.0, n100["deliveries_per_s"])
        measured = f"{f100['deliveries_per_s']:,.0f} vs {n100['deliveries_per_s']:,.0f} = {ratio:.2f}x"
        if f100.get("deliveries_per_core_s") and n100.get("deliveries_per_core_s"):
            per_core = f100["deliveries_per_core_s"] / n100["deliveries_per_core_s"]
            measured += f" (per core-second of server CPU: {per_core:.2f}x)"
        out.append(Verdict("fan-out 100x15 >= 1.5x ngircd deliveries/s", measured, ratio >= 1.5))
    else:
        out.append(Verdict("fan-out 100x15 >= 1.5x ngircd deliveries/s", "not measured (need both systems)", None))
    f1 = _find(results, "fanout", "1x15")
    if _usable(f1):
        assert f1 is not None
        out.append(Verdict("fan-out 1x15 >= 300,000 deliveries/s", f"{f1['deliveries_per_s']:,.0f}",
                           f1["deliveries_per_s"] >= 300_000))
    fan = [r for r in results if r["scenario"] == "fanout" and r["system"] == "chatnet" and not r.get("error")]
    if fan:
        exact = all(r.get("exact") for r in fan)
        audit = all(r.get("audit_ok") is not False for r in fan)
        out.append(Verdict("fan-out: no loss, no reordering", "exact" if exact else "LOSS/REORDER seen", exact))
        out.append(Verdict("fan-out: every broadcast in the audit log",
                           "complete" if audit else "lines missing", audit))

    l1 = _find(results, "latency", "1000/s")
    if _usable(l1):
        assert l1 is not None
        out.append(Verdict("latency 1,000 msg/s: p99 <= 2 ms", f"p99 {l1['p99_ms']:.2f} ms", l1["p99_ms"] <= 2.0))
    l4 = _find(results, "latency", "4000/s")
    if _usable(l4):
        assert l4 is not None
        out.append(Verdict("latency 4,000 msg/s: server < 0.9 core", f"{l4['server_cpu']:.2f} core",
                           l4["server_cpu"] < 0.9))
        out.append(Verdict("latency 4,000 msg/s: p99 <= 10 ms", f"p99 {l4['p99_ms']:.2f} ms", l4["p99_ms"] <= 10.0))

    files = [r for r in results if r["scenario"] == "files" and r["system"] == "chatnet"
             and r.get("file_size") == 3 * MIB]
    for r in files:
        if not _usable(r):
            continue
        whole = ("intact, sha256 matched" if files_exact(r)
                 else "CORRUPT/INCOMPLETE" if not r.get("intact") else "SHA256 MISMATCH/UNCHECKED")
        out.append(Verdict(f"files {r['case']}: >= 400 MB/s, bytes and sha256 intact",
                           f"{r['mb_per_s']:.0f} MB/s, {whole}",
                           r["mb_per_s"] >= 400 and files_exact(r)))
    big = _find(results, "files", "8 senders")
    small = _find(results, "files", "8 senders small")
    if _usable(big) and _usable(small):
        assert big is not None and small is not None
        a, b = big["peak_rss_delta_mib"], small["peak_rss_delta_mib"]
        # independent of file size: 48x larger files may not cost more than
        # a few MiB (the bounded buffers) above the small-file run
        ok = a <= b + 8
        out.append(Verdict("files: server memory independent of file size",
                           f"peak +{a:.1f} MiB (3 MiB files) vs +{b:.1f} MiB (64 KiB files)", ok))

    s = _find(results, "soak")
    if _usable(s):
        assert s is not None
        out.append(Verdict("soak: RSS within 10 % of start after warm-up",
                           f"{s['rss_growth_pct']:+.1f} %", abs(s["rss_growth_pct"]) <= 10))
        out.append(Verdict("soak: no leaked descriptors or spool files",
                           f"{s['fds_leaked']} fds, {s['spool_left']} spool files",
                           s["fds_leaked"] <= 0 and s["spool_left"] == 0))
    if quick:
        out = [Verdict(v.target, v.measured + " (quick run: not quotable)", None) for v in out]
    return out


# ---- issue 14's targets against InspIRCd ----

#: The connection counts issue 14 weighs memory at.
MEMORY_COUNTS = (10_000, 15_000)


def inspircd_targets(results: Sequence[dict[str, Any]], quick: bool = False,
                     reference: str = "inspircd") -> list[Verdict]:
    """Check issue 14's targets that are set against InspIRCd (and p99 at 1,000 msg/s)."""
    out: list[Verdict] = []
    for n in MEMORY_COUNTS:
        target = f"{n:,} clients: KiB per connection <= InspIRCd's"
        mine = _find(results, "connections", f"{n} clients")
        ref = _find(results, "connections", f"{n} clients", reference)
        if not (_usable(mine) and _usable(ref)):
            out.append(Verdict(target, "not measured (need both systems)", None))
            continue
        assert mine is not None and ref is not None
        held = mine.get("failed") == 0 and ref.get("failed") == 0
        a, b = mine["kib_per_conn"], ref["kib_per_conn"]
        out.append(Verdict(target, f"{a:.2f} vs {b:.2f} KiB = {a / b:.2f}x"
                           + ("" if held else " (some clients failed)"), held and a <= b))

    target = "fan-out 100x15 >= 0.8x InspIRCd deliveries/s"
    mine, ref = _find(results, "fanout", "100x15"), _find(results, "fanout", "100x15", reference)
    if _usable(mine) and _usable(ref):
        assert mine is not None and ref is not None
        ratio = mine["deliveries_per_s"] / max(1.0, ref["deliveries_per_s"])
        measured = (f"{mine['deliveries_per_s']:,.0f} vs {ref['deliveries_per_s']:,.0f} "
                    f"= {ratio:.2f}x")
        if mine.get("deliveries_per_core_s") and ref.get("deliveries_per_core_s"):
            per_core = mine["deliveries_per_core_s"] / ref["deliveries_per_core_s"]
            measured += f" (per core-second of server CPU: {per_core:.2f}x)"
        out.append(Verdict(target, measured, ratio >= 0.8 and bool(mine.get("exact"))))
    else:
        out.append(Verdict(target, "not measured (need both systems)", None))
    # 1 x 15: shown beside InspIRCd, with the generator's quick ACKs when the
    # run has that case (InspIRCd leaves Nagle on: without them its small
    # writes wait for delayed ACKs)
    for case in ("1x15 quickack", "1x15"):
        mine, ref = _find(results, "fanout", case), _find(results, "fanout", case, reference)
        if _usable(mine) and _usable(ref):
            assert mine is not None and ref is not None
            ratio = mine["deliveries_per_s"] / max(1.0, ref["deliveries_per_s"])
            out.append(Verdict(f"fan-out {case} beside InspIRCd (reported, no target)",
                               f"{mine['deliveries_per_s']:,.0f} vs "
                               f"{ref['deliveries_per_s']:,.0f} = {ratio:.2f}x", None))
            break

    mine, ref = _find(results, "latency", "4000/s"), _find(results, "latency", "4000/s", reference)
    if _usable(mine) and _usable(ref):
        assert mine is not None and ref is not None
        p99, ref_p99 = mine["p99_ms"], ref["p99_ms"]
        out.append(Verdict("latency 4,000 msg/s: p99 <= 1.5x InspIRCd's",
                           f"p99 {p99:.2f} vs {ref_p99:.2f} ms = {p99 / ref_p99:.2f}x"
                           if ref_p99 else f"p99 {p99:.2f} vs {ref_p99:.2f} ms",
                           p99 <= 1.5 * ref_p99))
        cpu, ref_cpu = mine["server_cpu"], ref["server_cpu"]
        out.append(Verdict("latency 4,000 msg/s: server CPU <= InspIRCd's + 0.1 core",
                           f"{cpu:.2f} vs {ref_cpu:.2f} core", cpu <= ref_cpu + 0.1))
    else:
        out.append(Verdict("latency 4,000 msg/s: p99 <= 1.5x, CPU <= +0.1 core of InspIRCd's",
                           "not measured (need both systems)", None))
    mine = _find(results, "latency", "1000/s")
    if _usable(mine):
        assert mine is not None
        out.append(Verdict("latency 1,000 msg/s: p99 <= 0.5 ms", f"p99 {mine['p99_ms']:.2f} ms",
                           mine["p99_ms"] <= 0.5))
    if quick:
        out = [Verdict(v.target, v.measured + " (quick run: not quotable)", None) for v in out]
    return out


def _codes(r: dict[str, Any]) -> str:
    return ", ".join(f"{n:,} {code}" for code, n in (r.get("codes") or {}).items()) or "no code"


def cluster_targets(results: Sequence[dict[str, Any]], quick: bool = False) -> list[Verdict]:
    """Check issue 12's targets against the cluster cases of one run."""
    out: list[Verdict] = []
    mine = [r for r in results if r["system"] == "cluster-2"]
    for r in mine:
        if r["scenario"] != "cluster-fanout":
            continue
        if r.get("error"):
            out.append(Verdict(f"cluster fan-out {r['case']}: exact, in order", "FAILED", False))
            continue
        single = _find(results, "cluster-fanout", r["case"])
        ratio = (f" = {r['deliveries_per_s'] / single['deliveries_per_s']:.2f}x one server"
                 if single and single.get("deliveries_per_s") and r.get("deliveries_per_s")
                 else "")
        refused = (f", {r['refused']:,} broadcasts refused ({_codes(r)})"
                   if r.get("refused") else "")
        out.append(Verdict(f"cluster fan-out {r['case']} over 2 nodes: exact, in order",
                           f"{_fmt(r.get('deliveries_per_s'))} deliveries/s{ratio}, "
                           + ("exact" if r.get("exact") else "LOSS/REORDER seen") + refused,
                           bool(r.get("exact"))))
    for r in mine:
        if r["scenario"] != "cluster-latency":
            continue
        if not _usable(r):
            out.append(Verdict(f"cluster latency {r['case']}: p99 <= 2 ms",
                               "FAILED" if r.get("error") else "generator-bound", None
                               if not r.get("error") else False))
            continue
        out.append(Verdict(f"cluster latency {r['case']} across nodes: p99 <= 2 ms",
                           f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms",
                           r["p99_ms"] <= 2.0))
    for r in mine:
        if r["scenario"] != "cluster-failover":
            continue
        lease = float(r.get("lease_s") or r["case"].rsplit(" lease ", 1)[-1].rstrip("s") or 0)
        if r.get("error") or r.get("failover_s") is None:
            out.append(Verdict(f"failover, lease {lease:g} s: last disconnect <= lease + 2 s",
                               f"FAILED {r.get('error', 'no disconnect seen')}"[:200], False))
            continue
        out.append(Verdict(
            f"failover, lease {lease:g} s: last disconnect <= lease + 2 s, each seen once",
            f"{r['failover_s']:.2f} s ({r['seen_events']}/{r['expected_events']} seen, "
            f"{r['duplicate_events']} twice, names free: {'yes' if r['name_free'] else 'NO'})",
            r["failover_s"] <= lease + 2.0 and bool(r.get("complete"))
            and bool(r.get("name_free"))))
    for r in mine:
        if r["scenario"] != "cluster-files":
            continue
        if r.get("error"):
            out.append(Verdict(f"cluster files {r['case']}: intact", "FAILED", False))
            continue
        out.append(Verdict(f"cluster files {r['case']} across nodes: bytes and sha256 intact",
                           f"{r['mb_per_s']:.0f} MB/s, "
                           + ("intact" if files_exact(r) else "CORRUPT/INCOMPLETE/UNCHECKED"),
                           files_exact(r)))
    if quick:
        out = [Verdict(v.target, v.measured + " (quick run: not quotable)",
                       None if v.met else v.met) for v in out]
    return out


def format_targets(verdicts: Sequence[Verdict], header: str = "targets (issue 5):") -> str:
    lines = [header]
    for v in verdicts:
        mark = {True: "met   ", False: "MISSED", None: "  -   "}[v.met]
        lines.append(f"  [{mark}] {v.target}: {v.measured}")
    return "\n".join(lines)


# ---- several runs of one case ----

#: The figures of a case run several times that :func:`median_result` gives
#: as the median of the runs.
MEDIAN_KEYS = ("msgs_per_s", "deliveries_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms",
               "mean_ms", "server_cpu", "gen_cpu", "server_cpu_total", "other_cpu",
               "softirq_cpu", "deliveries_per_core_s", "gen_deliveries_per_core", "rss_mib")
#: ... and those it adds up.
SUM_KEYS = ("sent", "deliveries", "expected_deliveries", "gaps", "dups", "missing", "unknown",
            "closed_unexpected", "audit_broadcasts")


def median_result(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """
    One result from several runs of the same case on the same system: the
    median of each figure of :data:`MEDIAN_KEYS` (so a p50 is the median of
    the runs' p50s), the sums of the counts, exact and audited only if every
    run was, each run's headline figures under ``per_run``.  A run that
    failed fails the whole (its error is kept).
    """
    if len(results) == 1:
        return results[0]
    good = [r for r in results if not r.get("error")]
    out = dict(good[0] if good else results[0])
    out["runs"] = len(results)
    out["per_run"] = [{k: r.get(k) for k in ("msgs_per_s", "p50_ms", "p99_ms", "server_cpu")}
                      for r in good]
    for key in MEDIAN_KEYS:
        values = [float(r[key]) for r in good if r.get(key) is not None]
        if values:
            out[key] = statistics.median(values)
    for key in SUM_KEYS:
        values = [r[key] for r in good if r.get(key) is not None]
        if values:
            out[key] = sum(values)
    if good:
        out["exact"] = all(r.get("exact") for r in good)
        if any("audit_ok" in r for r in good):
            out["audit_ok"] = all(r.get("audit_ok") is not False for r in good)
    notes: list[str] = []
    for r in results:
        notes += [n for n in r.get("notes", []) if n not in notes]
    out["notes"] = notes
    failed = [r for r in results if r.get("error")]
    if failed:
        out["error"] = f"{len(failed)} of {len(results)} runs failed: {failed[0]['error']}"
    out["ok"] = not failed and all(r.get("ok", True) for r in results)
    return out


# ---- issue 14: the files ceiling and the seed's shape ----

#: chatnet's files MB/s over the plain Twisted relay's, 3 MiB files
FILES_CEILING = 0.9
#: chatnet's msgs/s over the bare Twisted server's in the seed's shape
SEED_OVER_BASELINE = 2.0
#: the C thread-per-client originals' p50 in the seed's shape (0.9-1.0 ms)
SEED_P50_MS = 1.0


def ceiling_targets(results: Sequence[dict[str, Any]], quick: bool = False) -> list[Verdict]:
    """
    Issue 14's targets against the Twisted floors of one run: files at
    >= 0.9x the plain relay's MB/s (1 and 8 senders, chatnet's bytes and
    sha256 intact); in the seed's shape, >= 2x the bare Twisted server's
    msgs/s and a p50 at or under the C originals' 1.0 ms.
    """
    out: list[Verdict] = []
    ran = {r["scenario"] for r in results}
    for case in ("1 sender", "8 senders") if "files" in ran else ():
        target = f"files {case}: >= {FILES_CEILING:g}x the plain Twisted relay's MB/s, intact"
        mine, relay = _find(results, "files", case), _find(results, "files", case, RELAY)
        if not (_usable(mine) and _usable(relay)):
            out.append(Verdict(target, "not measured (need chatnet and the relay)", None))
            continue
        assert mine is not None and relay is not None
        if not files_exact(relay):
            out.append(Verdict(target, "the relay's bytes were not intact: no ceiling", None))
            continue
        ratio = mine["mb_per_s"] / relay["mb_per_s"]
        whole = ("intact, sha256 matched" if files_exact(mine)
                 else "CORRUPT/INCOMPLETE" if not mine.get("intact") else "SHA256 MISMATCH/UNCHECKED")
        out.append(Verdict(target, f"{mine['mb_per_s']:.0f} vs relay {relay['mb_per_s']:.0f} MB/s "
                                   f"= {ratio:.2f}x, {whole}",
                           ratio >= FILES_CEILING and files_exact(mine)))

    if "seed" not in ran:
        return _unquoted(out) if quick else out
    mine, bare = _find(results, "seed"), _find(results, "seed", system=BASELINE)
    runs = f" (medians of {mine['runs']} runs)" if mine and mine.get("runs", 1) > 1 else ""
    target = f"seed 2x15 window 1: >= {SEED_OVER_BASELINE:g}x the bare Twisted server's msgs/s"
    if _usable(mine) and _usable(bare) and bare is not None and bare.get("msgs_per_s"):
        assert mine is not None
        ratio = mine["msgs_per_s"] / bare["msgs_per_s"]
        out.append(Verdict(target, f"{mine['msgs_per_s']:,.0f} vs {bare['msgs_per_s']:,.0f} msg/s "
                                   f"= {ratio:.2f}x{runs}"
                                   + ("" if mine.get("exact") else ", LOSS/REORDER seen"),
                           ratio >= SEED_OVER_BASELINE and bool(mine.get("exact"))))
    else:
        out.append(Verdict(target, "not measured (need chatnet and the bare Twisted server)", None))
    target = f"seed 2x15 window 1: p50 <= {SEED_P50_MS:g} ms (the C originals')"
    if _usable(mine):
        assert mine is not None
        bare_p50 = (f", bare Twisted {bare['p50_ms']:.2f} ms" if _usable(bare) and bare
                    and bare.get("p50_ms") is not None else "")
        out.append(Verdict(target, f"p50 {mine['p50_ms']:.2f} ms{bare_p50}{runs}",
                           mine["p50_ms"] <= SEED_P50_MS))
    else:
        out.append(Verdict(target, "not measured", None))
    return _unquoted(out) if quick else out


def _unquoted(verdicts: list[Verdict]) -> list[Verdict]:
    return [Verdict(v.target, v.measured + " (quick run: not quotable)", None) for v in verdicts]
