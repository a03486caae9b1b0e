"""
Scenarios about files: 3 (upload queue limit), 6 (oversized file), 9 (same
filename collision) and 10 (queue wait duration).

Slots are kept busy by raw peers (:mod:`.rawpeer`) that hold an upload
until the scenario lets them send, so "busy" and "waiting" are facts the
scenario arranges, not races it hopes to win.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from chatnet.scenarios.context import Context, check, found, sha256_file
from chatnet.scenarios.processes import Cluster, Peer, ScenarioFailed, Servers

#: The contract's default limits.
SLOTS = 5
MAX_FILE = 3 * 1024 * 1024
#: ``[file] received report.pdf from alice (2.1 KiB), sha256 matched -> downloads/report.pdf``
RECEIVED = r"^\[file\] received (\S+) from (\w+) \(([^)]*)\), sha256 matched -> (.+)$"


def offer(ctx: Context, peer: Peer, to: str, path: Path) -> int:
    """``sendfile`` from ``peer``; :returns: the request id (reply not awaited)."""
    return peer.request("sendfile", to=to, name=path.name, size=path.stat().st_size)


def accepted(ctx: Context, peer: Peer, ident: int) -> dict[str, Any]:
    reply = peer.reply(ident, ctx.timeout)
    check(reply.get("type") == "ok", f"{peer.name}: sendfile refused: {reply}")
    return reply


STARTED = re.compile(r"\[FILE-QUEUE\] transfer #\d+ .* started, waited ")
ENDED = re.compile(r"\[FILE\] transfer #\d+ .* (uploaded \(|failed \((starting|uploading)\))")


def max_running(server: Servers) -> int:
    """
    The most uploads running at once, replayed from ``server.log``.  In a
    cluster the nodes' lines are merged by time, to the millisecond: within
    one millisecond an upload's end on one node is taken to come before a
    start on another (the slot it freed is what the other took).
    """
    lines = server.log_lines()
    if isinstance(server, Cluster):
        lines.sort(key=lambda line: (line[:25], 0 if ENDED.search(line) else 1))
    running = peak = 0
    for line in lines:
        if STARTED.search(line):
            running += 1
            peak = max(peak, running)
        elif ENDED.search(line):
            running -= 1
    return peak


def _ms(stamp: str) -> float:
    """Milliseconds of the day of ``2026-12-06 04:18:56.181``."""
    h, m, sec = stamp[11:].split(":")
    return (int(h) * 3600 + int(m) * 60 + float(sec)) * 1000


def started(ctx: Context, peers: list[Peer], replies: list[dict[str, Any]],
            count: int) -> list[int]:
    """
    Wait until ``count`` of ``peers`` have been told ``upload-start`` for
    their transfer (in ``replies``); :returns: their indexes.
    """
    deadline = time.monotonic() + ctx.timeout
    while True:
        going = [k for k, peer in enumerate(peers)
                 if any(f.get("type") == "upload-start" and f.get("transfer") == replies[k]["transfer"]
                        for f in peer.frames())]
        if len(going) >= count:
            return going
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"after {ctx.timeout:g}s only {len(going)} uploads started, "
                                 f"expected {count}: {[peers[k].name for k in going]}")
        time.sleep(0.01)  # several processes' output: no one event to wait on


def upload_queue_limit(ctx: Context, senders: int = 10) -> str:
    """
    Ten clients offer a file each at once.  Five uploads start; the other
    five are told their queue position and wait, and start in order as
    slots free up; never more than five run; all ten arrive intact.
    """
    server = ctx.start_server()
    sink = ctx.client("sink")
    paths = [ctx.workdir / "files" / f"file{i:02d}.bin" for i in range(1, senders + 1)]
    digests = {p.name: ctx.make_file(p, 200_000 + 7_919 * i) for i, p in enumerate(paths)}
    peers = [ctx.peer(f"up{i:02d}", login=False) for i in range(1, senders + 1)]
    for peer in peers:
        peer.login(peer.name, ctx.timeout)
    idents = [offer(ctx, peer, "sink", path) for peer, path in zip(peers, paths, strict=True)]
    replies = [accepted(ctx, peer, i) for peer, i in zip(peers, idents, strict=True)]
    # Slots go first come, first served.  On one server the transfer numbers
    # are that order.  In a cluster the offers reach different nodes and the
    # numbers come from per-node blocks: the five that run are the five told
    # upload-start, and the others wait in the order of their positions.
    clustered = isinstance(server, Cluster)
    if clustered:
        first = started(ctx, peers, replies, SLOTS)
    else:
        first = sorted(range(senders), key=lambda k: int(replies[k]["transfer"]))[:SLOTS]
        for k in first:
            peers[k].wait_frame(ctx.timeout, type="upload-start", transfer=replies[k]["transfer"])
    queued = sorted((k for k in range(senders) if k not in first),
                    key=lambda k: int(replies[k]["position"]))
    for k in queued:
        peers[k].out.stays_without('"upload-start"', 0.1)
    positions = [replies[k]["position"] for k in queued]
    check(positions == list(range(senders - SLOTS)),
          f"queued uploads were told positions {positions}")
    server.wait_log("FILE-QUEUE", r"queued at position \d+ \(queue size \d+\)", ctx.timeout,
                    senders - SLOTS)
    # Let the five send; each queued one sends once it is told to start.
    for k in first + queued:
        transfer = replies[k]["transfer"]
        peers[k].wait_frame(ctx.timeout, type="upload-start", transfer=transfer)
        peers[k].upload(transfer, paths[k])
    for peer, reply in zip(peers, replies, strict=True):
        peer.wait_frame(ctx.timeout, type="file-delivered", transfer=reply["transfer"])
    saved = sink.out.wait_count(RECEIVED, senders, ctx.timeout)
    for m in saved:
        name, path = m.group(1), ctx.workdir / "sink" / m.group(4)
        check(sha256_file(path) == digests.get(name), f"{path} differs from what was sent")
    check(sorted(m.group(1) for m in saved) == sorted(digests), "files missing or renamed")
    peak = max_running(server)
    check(peak == SLOTS, f"at most {peak} uploads ran at once, expected exactly {SLOTS}")
    started_lines = server.log_lines("FILE-QUEUE", "started")
    numbers = [int(n) for n in re.findall(r"transfer #(\d+) ", "\n".join(started_lines))]
    order_note = ""
    if clustered:
        # Redis gives the freed slots to the queue in order; a node hears of
        # another's grant by pub/sub, so across nodes the starts may be a
        # few milliseconds out of order.  On each node they must be in
        # order of position (its log's times; a tie is no order).
        when = {int(m.group(2)): m.group(1) for m in (
            re.match(r"\[([^]]+)\] \[FILE-QUEUE\] transfer #(\d+) ", line)
            for line in started_lines) if m}
        times = [when.get(int(replies[k]["transfer"]), "") for k in queued]
        told = ", ".join(f"position {replies[k]['position']} on {peers[k].node_id} at "
                         f"{t[11:] or 'never'}" for k, t in zip(queued, times, strict=True))
        check(all(times), f"a queued upload never started: {told}")
        for node in {peers[k].node_id for k in queued}:
            mine = [t for k, t in zip(queued, times, strict=True) if peers[k].node_id == node]
            check(mine == sorted(mine),
                  f"queued uploads on node {node} started out of the order of their "
                  f"positions: {told}")
        late = max((_ms(a) - _ms(b) for i, a in enumerate(times) for b in times[i + 1:]),
                   default=0.0)
        order_note = (f" (across nodes up to {late:.0f} ms out of order)" if late > 0
                      else "")
    else:
        check(numbers == sorted(numbers), f"uploads started out of order: {numbers}")
    waits = [float(w) for w in re.findall(r"waited (\d+\.\d+)s", "\n".join(started_lines))]
    ctx.finish(sink)
    return (f"{senders} offered at once: {SLOTS} started, {senders - SLOTS} queued at positions "
            f"{positions}; log: at most {peak} running, started in order{order_note}, longest wait "
            f"{max(waits):.2f}s; "
            f"{len(saved)} files arrived, sha256 equal")


def oversized_file(ctx: Context) -> str:
    """
    A file over 3 MiB is refused by the client before anything is sent; a
    raw peer that declares it anyway gets ``file-too-large``, and one that
    sends more bytes than it declared gets ``bad-transfer`` and its transfer
    fails with ``size-mismatch``.  A file of exactly 3 MiB goes through.
    """
    server = ctx.start_server()
    bob, alice = ctx.client("bob"), ctx.client("alice")
    ctx.make_file(alice.cwd / "big.bin", MAX_FILE + 1)
    exact = ctx.make_file(alice.cwd / "exact.bin", MAX_FILE)
    alice.send("/sendfile big.bin bob")
    _, told = alice.out.wait_for(r"^\[error\] (big\.bin is .*\(3145728 bytes\))$", ctx.timeout)
    alice.send("/sendfile exact.bin bob")
    alice.out.wait_for(r"^\[file\] exact\.bin sent to bob$", ctx.timeout)
    _, got = bob.out.wait_for(RECEIVED, ctx.timeout)
    check(sha256_file(bob.cwd / got.group(4)) == exact, "exact.bin arrived damaged")
    offers = server.log_lines("SENDFILE")
    check(not any("big.bin" in line for line in offers),
          "big.bin reached the server:\n" + "\n".join(offers))

    liar = ctx.peer("liar")
    too_big = liar.reply(liar.request("sendfile", to="bob", name="huge.bin", size=MAX_FILE + 1),
                         ctx.timeout)
    check(too_big.get("code") == "file-too-large", f"declaring 3 MiB + 1: {too_big}")
    short = ctx.workdir / "files" / "short.bin"
    ctx.make_file(short, 2000)
    reply = accepted(ctx, liar, liar.request("sendfile", to="bob", name="short.bin", size=1000))
    transfer = reply["transfer"]
    liar.wait_frame(ctx.timeout, type="upload-start", transfer=transfer)
    liar.upload(transfer, short)
    bad = liar.wait_frame(ctx.timeout, type="error", code="bad-transfer")
    check("id" not in bad, f"the bad-transfer error carries an id: {bad}")
    liar.wait_frame(ctx.timeout, type="file-failed", transfer=transfer, reason="size-mismatch")
    server.wait_log("ERROR", r"liar .*file-too-large", ctx.timeout)
    server.wait_log("FILE", rf"transfer #{transfer} short\.bin .* failed \(uploading\): size-mismatch",
                    ctx.timeout)
    ctx.finish(alice, bob)
    # (bob may be told that short.bin was on its way, and that it will not come)
    check(not bob.out.matching(r"(receiving|received|offers) (huge|short|big)\.bin"),
          "bob was offered a refused file")
    check(sorted(p.name for p in (bob.cwd / "downloads").iterdir()) == ["exact.bin"],
          "bob's downloads hold more than exact.bin")
    return (f"client refused big.bin ({MAX_FILE + 1} bytes) before sending: \"{told.group(1)}\"; "
            "exactly 3 MiB delivered intact; declared 3 MiB + 1: file-too-large; "
            "2000 bytes sent for 1000 declared: bad-transfer + size-mismatch; all logged")


def filename_collision(ctx: Context) -> str:
    """
    Three users send ``project.pdf`` to one receiver, who ends up with
    ``project.pdf``, ``project_1.pdf`` and ``project_2.pdf``, each holding
    its sender's bytes; the server logs each rename.
    """
    server = ctx.start_server()
    dana = ctx.client("dana")
    senders = {name: ctx.client(name) for name in ("alice", "bob", "carol")}
    digests = {name: ctx.make_file(c.cwd / "project.pdf", 150_000 + 10_000 * i)
               for i, (name, c) in enumerate(senders.items())}
    for client in senders.values():
        client.send("/sendfile project.pdf dana")
    for client in senders.values():
        client.out.wait_for(r"^\[file\] project\.pdf sent to dana$", ctx.timeout)
    saved = dana.out.wait_count(RECEIVED, 3, ctx.timeout)
    names = {m.group(1): m.group(2) for m in saved}
    check(sorted(names) == ["project.pdf", "project_1.pdf", "project_2.pdf"],
          f"dana saved {sorted(names)}")
    for m in saved:
        name, sender, path = m.group(1), m.group(2), dana.cwd / m.group(4)
        check(path == dana.cwd / "downloads" / name, f"{name} saved as {path}")
        check(sha256_file(path) == digests[sender], f"{name} does not hold {sender}'s bytes")
    renamed = dana.out.matching(r"^\[file\] receiving (project_\d\.pdf) from \w+ .*\(sent as project\.pdf\)$")
    check(len(renamed) == 2, "dana was not told of both renames:\n" + dana.out.text)
    conflicts = server.wait_log("FILE", r"name conflict: dana already received project\.pdf",
                                ctx.timeout, 2)
    ctx.finish(*senders.values(), dana)
    pairs = ", ".join(f"{n} <- {names[n]}" for n in sorted(names))
    return f"dana has {pairs}, sha256 equal to each sender's file; log: {len(conflicts)} name conflicts"


def queue_wait_duration(ctx: Context, hold: float = 1.0) -> str:
    """
    With every slot busy a client's upload is queued: it is told its place,
    waits, and when it starts is told how long it waited; the log's
    ``waited N.NNs`` agrees with the client and with the runner's own clock.
    """
    server = ctx.start_server()
    rx = ctx.client("rx")
    filler = ctx.workdir / "files" / "filler.bin"
    ctx.make_file(filler, 100_000)
    holders = [ctx.peer(f"hold{i}") for i in range(1, SLOTS + 2)]
    transfers = []
    for peer in holders:
        transfers.append(accepted(ctx, peer, offer(ctx, peer, "rx", filler))["transfer"])
    for peer, transfer in zip(holders[:SLOTS], transfers, strict=False):
        peer.wait_frame(ctx.timeout, type="upload-start", transfer=transfer)
    quinn = ctx.client("quinn")
    digest = ctx.make_file(quinn.cwd / "report.pdf", 500_000)
    asked = time.monotonic()
    quinn.send("/sendfile report.pdf rx")
    queued_line, queued = quinn.out.wait_for(
        r"^\[file\] report\.pdf \(.*\) to rx: transfer (\d+), (queued, 1 ahead)$", ctx.timeout)
    # The slots stay busy for `hold` seconds: quinn must not start meanwhile.
    quinn.out.stays_without(r"^\[file\] sending ", hold)
    released = time.monotonic()
    holders[0].upload(transfers[0], filler)
    holders[SLOTS].wait_frame(ctx.timeout, type="upload-start", transfer=transfers[SLOTS])
    holders[SLOTS].upload(transfers[SLOTS], filler)
    started_line, started = quinn.out.wait_for(
        r"^\[file\] sending report\.pdf to rx after waiting (\d+\.\d)s$", ctx.timeout)
    quinn.out.wait_for(r"^\[file\] report\.pdf sent to rx$", ctx.timeout)
    number = queued.group(1)
    server.wait_log("FILE-QUEUE", rf"transfer #{number} report\.pdf from quinn queued at position 1 "
                    r"\(queue size 2\)", ctx.timeout)
    line = server.wait_log("FILE-QUEUE", rf"transfer #{number} report\.pdf from quinn started, "
                           r"waited \d+\.\d\ds", ctx.timeout)[0]
    waited = float(found(re.search(r"waited (\d+\.\d\d)s", line), f"no wait in {line!r}").group(1))
    told = float(started.group(1))
    # By the runner's clock the wait began after `asked` and before the
    # queued line arrived, and ended after `released` and before the started
    # line arrived; the log's figure must lie in between (0.01s for its
    # rounding and for the two clocks).
    least, most = released - queued_line.at, started_line.at - asked
    check(waited >= hold, f"the log says it waited {waited:.2f}s, less than the {hold}s hold")
    check(abs(told - waited) <= 0.051, f"the client said {told}s, the log {waited:.2f}s")
    check(least - 0.01 <= waited <= most + 0.01,
          f"the log says it waited {waited:.2f}s; by the runner's clock it waited between "
          f"{least:.2f}s and {most:.2f}s")
    _, got = rx.out.wait_for(r"^\[file\] received report\.pdf from quinn .* -> (.+)$", ctx.timeout)
    check(sha256_file(rx.cwd / got.group(1)) == digest, "report.pdf arrived damaged")
    ctx.finish(quinn, rx)
    return (f"quinn told '{queued.group(2)}' while {SLOTS} slots were busy; started after "
            f"{told:.1f}s (client), 'waited {waited:.2f}s' (log), {least:.2f}s to {most:.2f}s "
            "(runner's clock); delivered intact")
