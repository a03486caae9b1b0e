"""
The cluster cases of issue 12, each measured in the same run on one server
(``chatnet``) and on two cluster nodes sharing one Redis (``cluster-2``), for
the ratios:

``cluster-fanout``
    100 rooms x 15 (10 with ``--quick``), every member sending with 8
    outstanding; each room's members alternate between the two nodes, so
    every message reaches receivers on both.  Deliveries/s, exact and in
    order (the generator checks every sequence).
``cluster-latency``
    1,000 msg/s into those rooms; the sender of each room on node a, its two
    timed receivers on node b: every timed delivery crosses nodes.  p50/p99.
``cluster-failover``
    14 rooms of 10, five members on each node; node b is killed with
    ``kill -9``: the time from the kill to the last ``presence``
    ``disconnect`` for b's users seen by the clients on a, and whether every
    one was seen, once.  Once per ``--cluster-lease``.  On one server the
    same users' connections are reset at once instead (their processes
    killed): the floor.
``cluster-files``
    8 senders on node a send 3 MiB files to 8 receivers on node b: MB/s, every
    byte and sha256 intact.

Every cluster case also reports Redis's own CPU (cores, from
``/proc/<pid>/stat`` of the ``redis-server``) over the measured window.
"""

from __future__ import annotations

import json
import selectors
import shutil
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench import report
from bench.procs import (
    BenchError,
    Loadgen,
    Nodes,
    cpu_share,
    cpu_sum,
    machine_busy,
    sample,
    workdir,
)
from bench.scenarios import MIB, Plan, base_result

#: The systems each case runs on: one server, and two nodes of a cluster.
SINGLE, CLUSTER = "chatnet", "cluster-2"
NODES = 2


@contextmanager
def nodes_for(plan: Plan, system: str, name: str, lease: float | None = None,
              max_clients: int = 10_000) -> Iterator[Nodes]:
    wd = workdir(plan.base, f"{system}-{name}")
    kw: dict[str, Any] = {"max_clients": max_clients, "reactor": plan.reactor}
    if plan.source:
        kw["source"] = plan.source
    if system == CLUSTER:
        nodes = Nodes.cluster(wd, NODES, lease or plan.cluster_leases[0],
                              extra=list(plan.server_args), **kw)
    else:
        nodes = Nodes.single(wd, extra=list(plan.server_args), **kw)
    try:
        yield nodes
    finally:
        nodes.stop()
        if not plan.keep:
            shutil.rmtree(wd, ignore_errors=True)


def _ports(nodes: Nodes) -> list[str]:
    if len(nodes.ports) == 1:
        return []
    return ["--ports", ",".join(str(p) for p in nodes.ports)]


def _finish(r: dict[str, Any], nodes: Nodes, expect_dead: bool = False) -> dict[str, Any]:
    if not expect_dead and not nodes.alive():
        r["ok"] = False
        r.setdefault("error", nodes.describe_death() or "a node died")
    if report.gen_bound(r):
        r["notes"].append("load generator above 90% of a core: figure not quoted")
    if report.noisy(r):
        r["notes"].append(
            f"noisy: other processes used {r['other_cpu']:.2f} cores during the window")
    if nodes.clustered:
        r["notes"].append(f"{NODES} nodes, Redis and the generator share this machine's "
                          "cores")
    return r


def _guard(fn: Callable[..., dict[str, Any]], scenario: str, case: str, system: str,
           *args: Any, **kw: Any) -> dict[str, Any]:
    try:
        return fn(*args, **kw)
    except BenchError as e:
        return base_result(scenario, case, system, error=str(e), ok=False)


# ---- fan-out and latency ----


def fanout(plan: Plan) -> list[dict[str, Any]]:
    rooms = 10 if plan.quick else 100
    out = []
    for system in (SINGLE, CLUSTER):
        plan.log(f"cluster-fanout: {rooms}x15 on {system}, every member sending, window 8, "
                 f"{plan.duration:g}s")
        out.append(_guard(_chat, "cluster-fanout", f"{rooms}x15", system, plan, system,
                          "fanout", rooms, None))
    return out


def latency(plan: Plan) -> list[dict[str, Any]]:
    rooms = 20 if plan.quick else 100
    out = []
    for system in (SINGLE, CLUSTER):
        plan.log(f"cluster-latency: 1000 msg/s into {rooms}x15 on {system}")
        out.append(_guard(_chat, "cluster-latency", "1000/s", system, plan, system,
                          "latency", rooms, 1000))
    return out


def _chat(plan: Plan, system: str, kind: str, rooms: int, rate: int | None) -> dict[str, Any]:
    scenario = f"cluster-{kind}"
    case = f"{rooms}x15" if kind == "fanout" else f"{rate}/s"
    r = base_result(scenario, case, system, rooms=rooms, room_size=15,
                    duration_s=plan.duration, nodes=NODES if system == CLUSTER else 1)
    args = ["--scenario", kind, "--rooms", str(rooms), "--room-size", "15",
            "--duration", str(plan.duration), "--warmup", str(plan.warmup)]
    if kind == "fanout":
        args += ["--window", "8"]
        r["window"] = 8
    else:
        args += ["--rate", str(rate), "--eager", "2"]
        r["offered_rate"] = rate
        r["timed_receivers_per_room"] = 2
        if system == CLUSTER:
            r["notes"].append("senders on node a, timed receivers on node b")
    with nodes_for(plan, system, kind, max_clients=rooms * 15 + 100) as nodes:
        lg = Loadgen([*args, *_ports(nodes)], nodes.ports[0])
        try:
            ready = lg.wait("ready", 180)
            if ready["failed"]:
                raise BenchError(f"{ready['failed']} clients failed to set up: "
                                 f"{ready.get('codes')}")
            r["setup_s"] = ready.get("setup_s")
            s0 = nodes.sample()
            lg.send("go")
            time.sleep(plan.warmup)
            a, ga, ma, ra = nodes.sample(), sample(lg.pid), machine_busy(), nodes.redis_sample()
            time.sleep(plan.duration)
            b, gb, mb, rb = nodes.sample(), sample(lg.pid), machine_busy(), nodes.redis_sample()
            done = lg.wait("done", 60 + plan.duration)
        finally:
            lg.quit()
        keys = ("msgs_per_s", "deliveries_per_s", "sent", "deliveries", "expected_deliveries",
                "gaps", "dups", "missing", "unknown", "exact", "p50_ms", "p99_ms", "p999_ms",
                "max_ms", "mean_ms", "replies_ok", "closed_unexpected", "codes")
        r.update({k: done.get(k) for k in keys})
        r.update(server_cpu=cpu_sum(a, b), gen_cpu=cpu_share(ga, gb),
                 server_cpu_total=cpu_sum(s0, b),
                 node_cpu=[round(cpu_share(x, y), 3) for x, y in zip(a, b, strict=True)],
                 rss_mib=sum(x.rss for x in b) / MIB)
        redis_cpu = cpu_share(ra, rb) if ra and rb else None
        r["redis_cpu"] = redis_cpu
        r["other_cpu"], r["softirq_cpu"] = report.other_load(
            ma, mb, r["server_cpu"] + (redis_cpu or 0.0), r["gen_cpu"])
        if r["server_cpu"] > 0 and done.get("deliveries_per_s"):
            r["deliveries_per_core_s"] = done["deliveries_per_s"] / (
                r["server_cpu"] + (redis_cpu or 0.0))
        if not nodes.alive():
            r["ok"] = False
            r["error"] = nodes.describe_death() or "a node died"
        nodes.stop()  # flushes the audit logs
        logged = nodes.audit_counts("BROADCAST")
        r["audit_broadcasts"] = sum(logged)
        r["audit_per_node"] = logged
        # every broadcast carried out is logged once, by its sender's node;
        # a refused one (an error reply, e.g. 'unavailable') is in 'codes';
        # one still unanswered when the generator stopped counts as carried out
        sent = done.get("sent") or 0
        r["refused"] = sum((done.get("codes") or {}).values())
        r["unanswered"] = sent - (done.get("replies_ok") or 0) - r["refused"]
        r["audit_ok"] = sum(logged) == sent - r["refused"]
        r["ok"] = bool(done.get("exact")) and r["audit_ok"]
        return _finish(r, nodes, expect_dead=True)


# ---- failover ----

_LENGTH = struct.Struct(">I")


class Peer:
    """A blocking chatnet connection for setup, then read without blocking."""

    def __init__(self, port: int, name: str, timeout: float = 30.0) -> None:
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.next_id = 1

    def send(self, kind: str, **fields: Any) -> int:
        ident = self.next_id
        self.next_id += 1
        payload = json.dumps({"type": kind, "id": ident, **fields}).encode()
        self.sock.sendall(_LENGTH.pack(len(payload)) + payload)
        return ident

    def frames(self, data: bytes) -> list[dict[str, Any]]:
        self.buffer += data
        out = []
        while len(self.buffer) >= 4:
            size = _LENGTH.unpack(self.buffer[:4])[0]
            if len(self.buffer) < 4 + size:
                break
            payload, self.buffer = self.buffer[4:4 + size], self.buffer[4 + size:]
            if payload[:1] != b"\x00":
                out.append(json.loads(payload))
        return out

    def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send a request and read until its reply (blocking, bounded)."""
        ident = self.send(kind, **fields)
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise BenchError(f"{self.name}: connection closed waiting for {kind}")
            for frame in self.frames(data):
                if frame.get("id") == ident:
                    if frame.get("type") != "ok":
                        raise BenchError(f"{self.name}: {kind} refused: {frame}")
                    return frame

    def reset(self) -> None:
        """Close with a reset, as the kernel does for a killed process."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()


def failover(plan: Plan) -> list[dict[str, Any]]:
    rooms, per_node = (4, 5) if plan.quick else (14, 5)
    case = f"{rooms}x{2 * per_node}"
    plan.log(f"cluster-failover: {case} on {SINGLE} (the users' connections reset at once)")
    out = [_guard(_failover, "cluster-failover", case, SINGLE, plan, SINGLE, rooms, per_node,
                  None)]
    for lease in plan.cluster_leases:
        plan.log(f"cluster-failover: {case} on {CLUSTER}, lease {lease:g}s, kill -9 of node b")
        out.append(_guard(_failover, "cluster-failover", f"{case} lease {lease:g}s", CLUSTER,
                          plan, CLUSTER, rooms, per_node, lease))
    return out


def _failover(plan: Plan, system: str, rooms: int, per_node: int,
              lease: float | None) -> dict[str, Any]:
    case = f"{rooms}x{2 * per_node}" + (f" lease {lease:g}s" if lease is not None else "")
    r = base_result("cluster-failover", case, system, rooms=rooms, per_node=per_node,
                    lease_s=lease)
    with nodes_for(plan, system, "failover", lease=lease) as nodes:
        port_a, port_b = nodes.ports[0], nodes.ports[-1]
        watchers: list[tuple[Peer, str]] = []
        victims: list[tuple[Peer, str]] = []
        try:
            for k in range(rooms):
                room = f"f{k}"
                for j in range(per_node):
                    for port, group, tag in ((port_a, watchers, "w"), (port_b, victims, "v")):
                        peer = Peer(port, f"{tag}{k}x{j}")
                        peer.request("login", username=peer.name)
                        peer.request("join", room=room)
                        group.append((peer, room))
            expected = {(w.name, v.name) for w, room in watchers for v, vroom in victims
                        if room == vroom}
            sel = selectors.DefaultSelector()
            for peer, _ in watchers:
                peer.sock.setblocking(False)
                sel.register(peer.sock, selectors.EVENT_READ, peer)
            # whatever arrived during setup (presence joins) is read first
            _drain(sel, 0.2)
            before = machine_busy()
            r0 = nodes.redis_sample()
            survivors0 = [sample(nodes.pids[0])]
            t0 = time.monotonic()
            if nodes.clustered:
                nodes.servers[-1].proc.kill()  # kill -9 of node b
                nodes.servers[-1].proc.wait()
                nodes.servers[-1].stopped = True
                for peer, _ in victims:
                    peer.sock.close()
            else:
                for peer, _ in victims:
                    peer.reset()
            limit = (lease or 0.0) + 30.0
            seen: dict[tuple[str, str], float] = {}
            dups = other = 0
            first = None
            while len(seen) < len(expected) and time.monotonic() - t0 < limit:
                for key, _ in sel.select(timeout=0.5):
                    peer = key.data
                    try:
                        data = peer.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        raise BenchError(f"{peer.name}: its node closed the connection")
                    now = time.monotonic()
                    for frame in peer.frames(data):
                        if frame.get("type") != "presence":
                            continue
                        pair = (peer.name, str(frame.get("user")))
                        if pair not in expected:
                            continue
                        if frame.get("event") != "disconnect":
                            other += 1
                        if pair in seen:
                            dups += 1
                            continue
                        seen[pair] = now - t0
                        first = first if first is not None else now - t0
            t_last = max(seen.values()) if seen else None
            r1 = nodes.redis_sample()
            after = machine_busy()
            survivors1 = [sample(nodes.pids[0])]
            # b's names are free again on a
            again = Peer(port_a, victims[0][0].name)
            try:
                again.request("login", username=again.name)
                name_free = True
            except BenchError:
                name_free = False
            again.sock.close()
        finally:
            for peer, _ in watchers + victims:
                try:
                    peer.sock.close()
                except OSError:
                    pass
        r.update(
            users_lost=len(victims), watchers=len(watchers), expected_events=len(expected),
            seen_events=len(seen), missing_events=len(expected) - len(seen),
            duplicate_events=dups, not_disconnect=other,
            first_disconnect_s=first, failover_s=t_last, name_free=name_free,
            server_cpu=cpu_sum(survivors0, survivors1),
            redis_cpu=cpu_share(r0, r1) if r0 and r1 else None,
        )
        if after[0] - before[0] >= 1.0:  # a shorter window says nothing of the others
            r["other_cpu"] = max(0.0, (after[1] - before[1]) / (after[0] - before[0])
                                 - r["server_cpu"] - (r["redis_cpu"] or 0.0))
        r["complete"] = len(seen) == len(expected) and not dups and not other
        r["within_target"] = (t_last is not None and lease is not None
                              and t_last <= lease + 2.0)
        r["ok"] = r["complete"] and name_free and (lease is None or r["within_target"])
        return _finish(r, nodes, expect_dead=True)


def _drain(sel: selectors.BaseSelector, seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for key, _ in sel.select(timeout=left):
            try:
                key.data.frames(key.data.sock.recv(65536))
            except BlockingIOError:
                pass


# ---- files ----


def files(plan: Plan) -> list[dict[str, Any]]:
    senders, per, size = 8, (1 if plan.quick else 8), 3 * MIB
    out = []
    for system in (SINGLE, CLUSTER):
        plan.log(f"cluster-files: {senders} senders x {per} x 3 MiB on {system}"
                 + (" (senders on node a, receivers on node b)" if system == CLUSTER else ""))
        out.append(_guard(_files, "cluster-files", f"{senders} senders", system, plan, system,
                          senders, per, size))
    return out


def _files(plan: Plan, system: str, senders: int, per: int, size: int) -> dict[str, Any]:
    r = base_result("cluster-files", f"{senders} senders", system, senders=senders,
                    files_per_sender=per, file_size=size)
    with nodes_for(plan, system, "files") as nodes:
        lg = Loadgen(["--scenario", "files", "--senders", str(senders), "--files-per-sender",
                      str(per), "--file-size", str(size), "--duration", "120",
                      *_ports(nodes)], nodes.ports[0])
        try:
            lg.wait("ready", 60)
            s0, g0, m0, r0 = nodes.sample(), sample(lg.pid), machine_busy(), nodes.redis_sample()
            lg.send("go")
            done = lg.wait("done", 300)
            s1, g1, m1, r1 = nodes.sample(), sample(lg.pid), machine_busy(), nodes.redis_sample()
            hashes = lg.wait("sha256", 300)
        finally:
            lg.quit()
        r.update({k: done.get(k) for k in ("files", "mb_per_s", "span_s", "intact", "received_ok",
                                          "delivered", "failed", "corrupt_chunks", "bytes",
                                          "file_mean_s", "file_max_s", "codes")})
        r.update(server_cpu=cpu_sum(s0, s1), gen_cpu=cpu_share(g0, g1),
                 node_cpu=[round(cpu_share(x, y), 3) for x, y in zip(s0, s1, strict=True)],
                 redis_cpu=cpu_share(r0, r1) if r0 and r1 else None)
        r["other_cpu"], r["softirq_cpu"] = report.other_load(
            m0, m1, r["server_cpu"] + (r["redis_cpu"] or 0.0), r["gen_cpu"])
        r.update({k: hashes.get(k) for k in ("sha256_ok", "sha256_bad", "sha256_missing")})
        r["sha256_match"] = report.sha256_match(done.get("files"), hashes.get("sha256_ok"),
                                                hashes.get("sha256_bad"))
        r["ok"] = report.files_exact(r)
        return _finish(r, nodes)


CLUSTER_SCENARIOS: dict[str, Callable[[Plan], list[dict[str, Any]]]] = {
    "cluster-fanout": fanout,
    "cluster-latency": latency,
    "cluster-failover": failover,
    "cluster-files": files,
}

#: Names that stand for several scenarios.
GROUPS = {"cluster": list(CLUSTER_SCENARIOS)}

