"""
Scenarios about users, rooms and messages: 1 (concurrent load), 2 (duplicate
username), 5 (room switching) and 8 (rejoining rooms).

Each function takes a :class:`~chatnet.scenarios.context.Context`, starts its
own server, and returns the evidence line, or raises
:class:`~chatnet.scenarios.processes.ScenarioFailed`.
"""

from __future__ import annotations

import re
from collections import defaultdict

from chatnet.scenarios.context import Context, check, found

#: A room message as line mode prints it: ``[groupA] alice: hello``.
MESSAGE = re.compile(r"^\[(\w+)\] (\w+): (.*)$")


def concurrent_load(ctx: Context, clients: int = 30, messages: int = 3) -> str:
    """
    30 clients connect at once and split into two rooms of 15; each
    broadcasts ``messages`` lines and whispers once to a user in the other
    room.  Every message reaches exactly its room's other members, once, in
    the order sent; every whisper reaches its addressee only.
    """
    server = ctx.start_server()
    names = [f"u{i:02d}" for i in range(1, clients + 1)]
    half = clients // 2
    room_of = {n: ("groupA" if i < half else "groupB") for i, n in enumerate(names)}
    partner = {n: names[(i + half) % clients] for i, n in enumerate(names)}
    # All at once: nobody waits for anybody before connecting.
    procs = {n: ctx.client(n, login=False) for n in names}
    for n, proc in procs.items():
        proc.send(n, f"/join {room_of[n]}")
    for n, proc in procs.items():
        proc.out.wait_for(rf"^\[ok\] joined {room_of[n]} ", ctx.timeout)
    # Everyone is in a room: now the traffic.
    for n, proc in procs.items():
        proc.send(*(f"load {n} #{k}" for k in range(messages)),
                  f"/whisper {partner[n]} secret for {partner[n]} from {n}")
    per_room = {room: [n for n in names if room_of[n] == room] for room in ("groupA", "groupB")}
    for n, proc in procs.items():
        expected = len(per_room[room_of[n]]) * messages  # others' and its own echo
        proc.out.wait_count(r"^\[group[AB]\] u\d\d: load ", expected, ctx.timeout)
        proc.out.wait_for(r"^\[whisper\] ", ctx.timeout)
    ctx.finish(*procs.values())

    room_messages = whispers = 0
    for n, proc in procs.items():
        seen: dict[str, list[int]] = defaultdict(list)
        for line in proc.out.lines:
            m = MESSAGE.match(line.text)
            if m is None or m.group(2) == n:
                continue
            room, sender, text = m.groups()
            if room == "whisper":
                check(text == f"secret for {n} from {sender}",
                      f"{n} got a whisper not meant for it: {line.text!r}")
                whispers += 1
                continue
            t = found(re.fullmatch(r"load (u\d\d) #(\d+)", text), f"{n}: unexpected line {line.text!r}")
            check(t.group(1) == sender, f"{n}: unexpected line {line.text!r}")
            check(room == room_of[n] == room_of[sender],
                  f"{n} (in {room_of[n]}) got {sender}'s message in {room}: {line.text!r}")
            seen[sender].append(int(t.group(2)))
            room_messages += 1
        others = sorted(m for m in per_room[room_of[n]] if m != n)
        check(sorted(seen) == others,
              f"{n} heard from {sorted(seen)}, expected {others}")
        for sender, numbers in seen.items():
            check(numbers == list(range(messages)),
                  f"{n} got {sender}'s messages as {numbers}: lost, duplicated or out of order")
        got = [line.text for line in proc.out.lines if line.text.startswith("[whisper] ")]
        wanted = [m for m in names if partner[m] == n]
        check(got == [f"[whisper] {w}: secret for {n} from {w}" for w in wanted],
              f"{n} got whispers {got}, expected one from each of {wanted}")
    expected_messages = sum(len(members) * (len(members) - 1) for members in per_room.values()) * messages
    check(room_messages == expected_messages,
          f"{room_messages} room messages delivered, expected {expected_messages}")
    broadcasts = server.wait_log("BROADCAST", r" -> group[AB] \(14 members\): load ", ctx.timeout,
                                 clients * messages)
    logged_whispers = server.log_lines("WHISPER")
    check(len(broadcasts) == clients * messages, f"{len(broadcasts)} BROADCAST lines")
    check(len(logged_whispers) == clients, f"{len(logged_whispers)} WHISPER lines, expected {clients}")
    check(not any("secret" in line for line in logged_whispers),
          "a WHISPER line shows the whispered text")
    return (f"{clients} clients in groupA/groupB: {room_messages} room messages and "
            f"{whispers} whispers, each delivered once, in order; log: "
            f"{len(broadcasts)} BROADCAST, {len(logged_whispers)} WHISPER (no text)")


def duplicate_username(ctx: Context) -> str:
    """
    A second client asking for a connected user's name, also in another
    letter case, is refused with a clear message and picks another name on
    the same connection; both refusals are logged.
    """
    server = ctx.start_server()
    alice = ctx.client("alice")
    second = ctx.client("second", login=False)
    second.send("alice")
    _, refusal = second.out.wait_for(r"^\[error\] (.*taken.*)$", ctx.timeout)
    second.out.wait_for(r"^\[error\] Type another username", ctx.timeout)
    second.send("ALICE")
    second.out.wait_count(r"^\[error\] .*'ALICE'.*taken", 1, ctx.timeout)
    second.send("alice2")
    second.out.wait_for(r"^\[ok\] logged in as alice2 ", ctx.timeout)
    alice.send("/users")
    alice.out.wait_for(r"^\[users\] (alice, alice2|alice2, alice) \(2 online\)$", ctx.timeout)
    failed = server.wait_log("LOGIN-FAILED", "username-taken", ctx.timeout, 2)
    login = server.wait_log("LOGIN", r"^\S+ \S+ \[LOGIN\] alice2 logged in from ", ctx.timeout)[0]
    peer = login.rsplit(" ", 1)[1]
    check(all(f"] {peer} as " in line for line in failed),
          f"the refusals and the login of alice2 are not from one connection ({peer}):\n"
          + "\n".join(failed))
    check("'alice'" in failed[0] and "'ALICE'" in failed[1], "\n".join(failed))
    ctx.finish(alice, second)
    return (f"'alice' and 'ALICE' refused: \"{refusal.group(1)}\"; same connection then "
            f"logged in as alice2 ({peer}); log: {len(failed)} LOGIN-FAILED username-taken")


def room_switching(ctx: Context) -> str:
    """
    A client in groupA joins groupB: groupA sees it leave, groupB sees it
    arrive, and from then on it gets groupB's messages and not groupA's.
    """
    server = ctx.start_server()
    mover, in_a, in_b = ctx.client("mover"), ctx.client("anna"), ctx.client("bert")
    in_a.send("/join groupA")
    in_a.out.wait_for(r"^\[ok\] joined groupA ", ctx.timeout)
    in_b.send("/join groupB")
    in_b.out.wait_for(r"^\[ok\] joined groupB ", ctx.timeout)
    mover.send("/join groupA")
    mover.out.wait_for(r"^\[ok\] joined groupA \(2 here", ctx.timeout)
    in_a.send("hello groupA")
    mover.out.wait_for(r"^\[groupA\] anna: hello groupA$", ctx.timeout)

    mark = len(mover.out.lines)
    mover.send("/join groupB")
    mover.out.wait_for(r"^\[ok\] joined groupB \(2 here: ", ctx.timeout, start=mark)
    in_a.out.wait_for(r"^\[groupA\] \* mover left$", ctx.timeout)
    in_b.out.wait_for(r"^\[groupB\] \* mover joined$", ctx.timeout)
    # anna speaks first; once her reply is back the server has fanned it
    # out, so bert's later message would reach mover after it, if at all.
    in_a.send("groupA after the switch")
    in_a.out.wait_for(r"^\[groupA\] anna: groupA after the switch$", ctx.timeout)
    in_b.send("groupB after the switch")
    mover.out.wait_for(r"^\[groupB\] bert: groupB after the switch$", ctx.timeout, start=mark)
    after = [line.text for line in mover.out.lines[mark:] if MESSAGE.match(line.text)]
    check(not any(text.startswith("[groupA]") for text in after),
          f"mover still got groupA messages after switching: {after}")
    joins = server.wait_log("JOIN", r"mover joined groupB \(2/15\), leaving groupA \(1/15\)",
                            ctx.timeout)
    ctx.finish(mover, in_a, in_b)
    return ("groupA saw mover leave, groupB saw it join; after the switch it got "
            f"groupB's message only; log: {joins[0].split('] ', 2)[2]!r}")


def rejoining(ctx: Context) -> str:
    """
    A client leaves its room and rejoins: it does not see what was said
    while it was away (history is not kept), and sees what follows.
    """
    server = ctx.start_server()
    rita, sam = ctx.client("rita"), ctx.client("sam")
    for client in (rita, sam):
        client.send("/join groupA")
        client.out.wait_for(r"^\[ok\] joined groupA ", ctx.timeout)
    sam.send("before rita leaves")
    rita.out.wait_for(r"^\[groupA\] sam: before rita leaves$", ctx.timeout)
    rita.send("/leave")
    rita.out.wait_for(r"^\[ok\] left groupA$", ctx.timeout)
    sam.out.wait_for(r"^\[groupA\] \* rita left$", ctx.timeout)
    sam.send("said while rita is away")
    sam.out.wait_for(r"^\[groupA\] sam: said while rita is away$", ctx.timeout)
    mark = len(rita.out.lines)
    rita.send("/join groupA")
    rita.out.wait_for(r"^\[ok\] joined groupA \(2 here", ctx.timeout, start=mark)
    sam.out.wait_for(r"^\[groupA\] \* rita joined$", ctx.timeout)
    sam.send("after rita is back")
    rita.out.wait_for(r"^\[groupA\] sam: after rita is back$", ctx.timeout, start=mark)
    check(not rita.out.matching("while rita is away"),
          "rita was shown a message sent while she was away:\n" + rita.out.text)
    server.wait_log("LEAVE", r"rita left groupA \(1/15\)", ctx.timeout)
    server.wait_log("BROADCAST", r"sam -> groupA \(0 members\): said while rita is away",
                    ctx.timeout)
    joins = server.wait_log("JOIN", r"rita joined groupA", ctx.timeout, 2)
    ctx.finish(rita, sam)
    return ("rita left groupA and rejoined: got the message after her return, not the "
            f"one sent while away; log: LEAVE, {len(joins)} JOIN lines for rita, the message "
            "while away reached 0 members")
