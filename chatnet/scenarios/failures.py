"""
Scenarios about things going wrong: 4 (unexpected disconnection) and 7
(SIGINT shutdown).
"""

from __future__ import annotations

import re
import signal
import time

from chatnet.scenarios.context import Context, check, found
from chatnet.scenarios.files import SLOTS, accepted, offer

#: ``chatnet-client`` exit status after the server shut down.
EXIT_SHUTDOWN = 5
#: The server's default ``--shutdown-grace``.
GRACE = 5.0


def unexpected_disconnection(ctx: Context) -> str:
    """
    A client killed with SIGKILL is noticed: its room sees it disconnect,
    the log says the connection was lost, and its name is free again.  A
    peer killed in the middle of an upload loses the transfer
    (``sender-disconnected``) and its slot goes to the next in the queue.
    """
    server = ctx.start_server()
    watcher, victim = ctx.client("watcher"), ctx.client("victim")
    for client in (watcher, victim):
        client.send("/join groupA")
        client.out.wait_for(r"^\[ok\] joined groupA ", ctx.timeout)
    watcher.out.wait_for(r"^\[groupA\] \* victim joined$", ctx.timeout)
    ctx.kill9(victim)
    watcher.out.wait_for(r"^\[groupA\] \* victim disconnected$", ctx.timeout)
    lost = server.wait_log("DISCONNECT", r"victim \(\S+\) connection lost", ctx.timeout)
    server.wait_log("LEAVE", r"victim left groupA \(1/15\)", ctx.timeout)
    watcher.send("/who")
    watcher.out.wait_for(r"^\[who\] groupA: watcher \(1\)$", ctx.timeout)
    again = ctx.client("victim-again", login=False)
    again.send("victim")
    again.out.wait_for(r"^\[ok\] logged in as victim ", ctx.timeout)

    # Mid-upload: five peers hold the five slots, a sixth waits.
    big = ctx.workdir / "files" / "big.bin"
    ctx.make_file(big, 1024 * 1024)
    peers = [ctx.peer(name) for name in ("dropper", "hold2", "hold3", "hold4", "hold5", "waiter")]
    transfers = [accepted(ctx, peer, offer(ctx, peer, "watcher", big))["transfer"] for peer in peers]
    for peer, transfer in zip(peers[:SLOTS], transfers, strict=False):
        peer.wait_frame(ctx.timeout, type="upload-start", transfer=transfer)
    dropper, waiter = peers[0], peers[SLOTS]
    half = 512 * 1024
    dropper.upload(transfers[0], big, half)
    dropper.wait_frame(ctx.timeout, type="sent", bytes=half)
    waiter.out.stays_without('"upload-start"', 0.1)
    ctx.kill9(dropper)
    server.wait_log(
        "FILE", rf"transfer #{transfers[0]} big\.bin from dropper .* failed \(uploading\): "
        "sender-disconnected", ctx.timeout)
    server.wait_log("DISCONNECT", r"dropper \(\S+\) connection lost", ctx.timeout)
    start = waiter.wait_frame(ctx.timeout, type="upload-start", transfer=transfers[SLOTS])
    spooled = [p.name for d in ctx.spool_dirs() if d.exists() for p in d.iterdir()]
    check(not [n for n in spooled if re.search(rf"(?<!\d){transfers[0]}\.part$", n)],
          f"the dropped upload's spool file is still there: {spooled}")
    ctx.finish(watcher, again)
    return ("victim killed: groupA saw it disconnect, log '"
            + lost[0].split("] ", 2)[2] + "', name taken again by a new client; "
            f"dropper killed after {half // 1024} KiB of 1 MiB: sender-disconnected, "
            f"its slot went to waiter (waited {start['waited']:.2f}s)")


def sigint_shutdown(ctx: Context) -> str:
    """
    SIGINT to the server with clients chatting, uploads running and queued,
    and one connection not logged in: everyone is told, the clients exit
    with the shut-down status, every transfer fails with ``shutdown``, the
    server exits within the grace period and logs ``SHUTDOWN`` with the
    number of clients.

    In a cluster every node gets SIGINT at once (the whole service shuts
    down; one node stopping while the others go on is the cluster tests'
    case), the clients are given only their own node, and each node's
    ``SHUTDOWN`` line counts its own connections and the transfers it
    failed for its shutdown: the sums are checked.  A transfer whose other
    end was on a node that stopped a moment earlier may fail with that end's
    reason (``recipient-offline``, ``sender-disconnected``) instead, as the
    contract says of a node that stops; every transfer must still fail
    once (one ``FILE`` ``failed`` line in all the logs).
    """
    ctx.failover = False  # a client given the other nodes would move to one
    ctx.start_server("--shutdown-grace", str(GRACE))
    nodes = ctx.nodes
    clustered = len(nodes) > 1
    alice, bob = ctx.client("alice"), ctx.client("bob")
    for client in (alice, bob):
        client.send("/join groupA")
        client.out.wait_for(r"^\[ok\] joined groupA ", ctx.timeout)
    alice.send("hello before the shutdown")
    bob.out.wait_for(r"^\[groupA\] alice: hello before the shutdown$", ctx.timeout)

    big = ctx.workdir / "files" / "big.bin"
    ctx.make_file(big, 1024 * 1024)
    peers = [ctx.peer(f"up{i}") for i in range(1, SLOTS + 2)]
    transfers = [accepted(ctx, peer, offer(ctx, peer, "bob", big))["transfer"] for peer in peers]
    for peer, transfer in zip(peers[:SLOTS], transfers, strict=False):
        peer.wait_frame(ctx.timeout, type="upload-start", transfer=transfer)
        peer.upload(transfer, big, 256 * 1024)
        peer.wait_frame(ctx.timeout, type="sent")
    carol = ctx.client("carol")
    ctx.make_file(carol.cwd / "report.pdf", 100_000)
    carol.send("/sendfile report.pdf bob")
    carol.out.wait_for(r"^\[file\] report\.pdf .* to bob: transfer \d+, queued, 1 ahead$", ctx.timeout)
    lurker = ctx.peer("lurker", login=False)
    lurker.request("ping")
    lurker.wait_frame(ctx.timeout, type="ok", id=1)
    clients = [alice, bob, carol]
    connections = len(clients) + len(peers) + 1

    sent_at = time.monotonic()
    for node in nodes:
        node.signal(signal.SIGINT)
    took = 0.0
    statuses = []
    for node in nodes:
        status = node.wait(GRACE + ctx.timeout)
        statuses.append(status)
        took = max(took, (node.exited_at or time.monotonic()) - sent_at)
        check(status in (0, -signal.SIGINT), f"{node.name} exited with status {status}\n"
              + node.describe())
    check(took <= GRACE + 1, f"the server took {took:.2f}s to exit (grace {GRACE}s)")
    for client in clients:
        client.out.wait_for(r"^\[server\] shutting down: ", ctx.timeout)
        ctx.finish(client, status=EXIT_SHUTDOWN)
        check("server shut down" in client.err.text, f"{client.name}: " + client.err.text)
    reasons = ("shutdown", "recipient-offline", "sender-disconnected") if clustered else ("shutdown",)
    carol.out.wait_for(r"^\[error\] sending report\.pdf to bob failed: "
                       + ("" if clustered else "the server shut down$"), ctx.timeout)
    seen = []
    for peer, transfer in zip(peers, transfers, strict=True):
        failed_frame = peer.wait_frame(ctx.timeout, type="file-failed", transfer=transfer)
        check(failed_frame.get("reason") in reasons,
              f"{peer.name}: transfer {transfer} failed with {failed_frame.get('reason')!r}, "
              f"expected {' or '.join(reasons)}")
        seen.append(failed_frame["reason"])
        check(len([f for f in peer.frames() if f.get("type") == "file-failed"
                   and f.get("transfer") == transfer]) == 1,
              f"{peer.name}: transfer {transfer} failed more than once")
    for peer in (*peers, lurker):
        peer.wait_frame(ctx.timeout, type="shutdown")
        peer.wait_frame(ctx.timeout, type="closed")
        check(peer.wait(ctx.timeout) == 0, f"{peer.name} did not exit cleanly")
    server = ctx.server
    assert server is not None
    lines = server.wait_log("SHUTDOWN", r"disconnected \d+ clients?", ctx.timeout, len(nodes))
    told = failed = 0
    for line in lines:
        counts = found(re.search(r"disconnected (\d+) clients?, failed (\d+) transfers?", line),
                       f"no counts in {line!r}")
        told += int(counts.group(1))
        failed += int(counts.group(2))
    each = " + ".join(found(re.search(r"disconnected (\d+)", line), line).group(1) for line in lines)
    check(told == connections, f"expected {connections} clients in all, got {each}:\n"
          + "\n".join(lines))
    expected = len(peers) + 1
    if clustered:
        # Each transfer fails once, on its sender's node; a node counts in
        # its SHUTDOWN line those it failed for its own shutdown.
        failures = server.log_lines("FILE", r"transfer #\d+ .* failed \(")
        numbers = sorted(int(m.group(1)) for m in (
            re.search(r"transfer #(\d+) ", line) for line in failures) if m)
        check(len(numbers) == expected and len(set(numbers)) == expected,
              f"expected {expected} transfers to fail once each; the logs say:\n"
              + "\n".join(failures))
        bad = [line for line in failures if not line.endswith(reasons)]
        check(not bad, "transfers failed for another reason:\n" + "\n".join(bad))
        for_shutdown = sum(line.endswith(": shutdown") for line in failures)
        check(failed == for_shutdown,
              f"the SHUTDOWN lines count {failed} failed transfers, the FILE lines "
              f"{for_shutdown} failed for the shutdown:\n" + "\n".join(lines + failures))
    else:
        check(failed == expected, f"expected {expected} failed transfers in:\n"
              + "\n".join(lines))
    left = [p for d in ctx.spool_dirs() if d.exists() for p in d.iterdir()]
    check(not left, f"spool files left behind: {left}")
    how = ", ".join(sorted({"0" if s == 0 else "SIGINT re-raised" for s in statuses}))
    if not clustered:
        return (f"{connections} connections told (1 not logged in), {len(clients)} clients "
                f"exited {EXIT_SHUTDOWN} (shut down); {SLOTS} running + 2 queued uploads failed "
                f"'shutdown'; server exited ({how}) in {took:.2f}s; log: "
                f"'{lines[0].split('] ', 2)[2]}'")
    why = ", ".join(f"{seen.count(r)} {r}" for r in reasons if seen.count(r))
    return (f"{len(nodes)} nodes interrupted: {connections} connections told ({each}), "
            f"{len(clients)} clients exited {EXIT_SHUTDOWN}; the peers' {len(peers)} uploads "
            f"failed ({why}); every node exited ({how}) within {took:.2f}s; "
            f"log: {expected} transfers failed once each, {failed} for the shutdown")
