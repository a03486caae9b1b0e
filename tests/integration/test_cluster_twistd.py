"""
Cluster mode end to end (PROTOCOL.md section 9): two or three real
``twistd -n chatnet --cluster redis://...`` nodes on one real
``redis-server``, driven by wire clients connected to chosen nodes.  Each
test states a promise of the contract across nodes: the whole contract
holds as if the nodes were one server, and the loss of a node or of Redis
loses nothing it promises.

Every test here starts real processes, so the module is marked
``scenario`` (the quick run, ``-m "not scenario"``, leaves it out); those
that wait for leases or restarts are also marked ``slow``.  It needs
``redis-server`` on the ``PATH`` and skips, saying so, without it.  From a
checkout::

    PYTHONPATH=$PWD python -m pytest -q tests/integration/test_cluster_twistd.py
    PYTHONPATH=$PWD python -m pytest -q -m "not slow" tests/integration/test_cluster_twistd.py

The harness (nodes, signals, clients with bounded waits) is
``tests/support/cluster_nodes.py``; its own tests, which need no Redis,
are in ``test_cluster_harness.py``.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from support.cluster_nodes import Cluster, NodeClient, frame_is

pytestmark = pytest.mark.scenario

#: --cluster-lease for the tests (seconds); the contract's bound on noticing
#: a dead node is the lease, plus 2 s of slack for the check and delivery.
LEASE = 2.0
NOTICED = LEASE + 2.0


def code(reply: dict[str, Any]) -> str:
    """``ok``, or an error reply's code."""
    assert reply["type"] in ("ok", "error"), reply
    return "ok" if reply["type"] == "ok" else str(reply["code"])


def folded(names: Sequence[str]) -> list[str]:
    """Names sorted the contract's way: case-insensitively."""
    return sorted(names, key=str.lower)


def all_pages(client: NodeClient, type: str, key: str, limit: int) -> list[list[Any]]:
    """Every page of ``rooms`` or ``users``, asking with ``after`` = the last name got."""
    pages: list[list[Any]] = []
    after: str | None = None
    while True:
        fields: dict[str, Any] = {"limit": limit} if after is None else {"limit": limit, "after": after}
        reply = client.request_ok(type, **fields)
        page = reply[key]
        assert len(page) <= limit, reply
        pages.append(page)
        if not reply["more"]:
            return pages
        assert page, f"{type}: an empty page says there is more: {reply}"
        last = page[-1]
        after = last["name"] if isinstance(last, dict) else last
        assert len(pages) < 100, "paging does not end"


def presence_of(user: str, *events: str) -> Any:
    """A predicate: a presence event about ``user``, one of ``events``."""

    def check(frame: Any) -> bool:
        return (isinstance(frame, dict) and frame.get("type") == "presence"
                and frame.get("user") == user and frame.get("event") in events)

    check.__doc__ = f"presence {'/'.join(events)} of {user}"
    return check


def marker(sender: NodeClient, receivers: Sequence[NodeClient], text: str) -> None:
    """
    ``sender`` broadcasts ``text`` and every receiver waits for it: what the
    room had before it has reached them (one order per room).
    """
    sender.request_ok("broadcast", text=text)
    for receiver in receivers:
        receiver.expect_message(text, sender.name)


# names, rooms and lists


def test_one_name_at_the_same_moment_on_two_nodes_exactly_one_gets_it(cluster: Cluster) -> None:
    """
    Two logins of one name (in two spellings) on two nodes at once, for
    several names and node pairs: exactly one ok, the other username-taken
    (logged LOGIN-FAILED); a third node refuses the name too; users lists it once.
    """
    nodes = cluster.start(3, lease=LEASE)
    names = ["alice", "Bob", "carol", "dave7", "Erin", "frank", "G", "hank99", "ivy", "judy"]
    winners: list[NodeClient] = []
    for i, name in enumerate(names):
        first, second = nodes[i % 3], nodes[(i + 1) % 3]
        x, y = first.client(), second.client()
        ids = (x.send_request("login", username=name), y.send_request("login", username=name.swapcase()))
        replies = (x.reply(ids[0]), y.reply(ids[1]))
        assert sorted(code(r) for r in replies) == ["ok", "username-taken"], (name, replies)
        winner, loser, lost_on = (x, y, second) if code(replies[0]) == "ok" else (y, x, first)
        winner.name = replies[0 if winner is x else 1]["username"]
        winners.append(winner)
        lost_on.wait_audit("LOGIN-FAILED", re.escape(name.swapcase() if loser is y else name))
        third = nodes[(i + 2) % 3].client()
        assert code(third.request("login", username=name.upper())) == "username-taken"
    everyone = winners[0].request_ok("users")["users"]
    assert folded(everyone) == everyone and [n.lower() for n in everyone] == [n.lower() for n in folded(names)]


def test_users_rooms_and_who_list_the_whole_cluster_in_pages(cluster: Cluster) -> None:
    """
    Users spread over three nodes, in rooms spread over them too: from every
    node, users and rooms (paged, sorted case-insensitively, more/after) and
    who list the whole cluster with members on every node.
    """
    nodes = cluster.start(3, lease=LEASE)
    names = ["amy", "Ben", "cat", "Dan", "eve", "Fay", "gus", "Hal", "ian", "Joe", "kim", "Lou"]
    rooms = {"Red": names[0:5], "blue": names[5:8], "Green": names[8:10]}  # Kim and Lou in none
    clients = {name: nodes[i % 3].client(name) for i, name in enumerate(names)}
    for room, members in rooms.items():
        for name in members:
            clients[name].join(room)
    for i in range(len(nodes)):
        asker = clients[names[i]]  # on node i
        pages = all_pages(asker, "users", "users", limit=5)
        assert [len(p) for p in pages] == [5, 5, 2], pages
        assert sum(pages, []) == folded(names)
        room_pages = all_pages(asker, "rooms", "rooms", limit=2)
        listed = sum(room_pages, [])
        assert [r["name"] for r in listed] == folded(list(rooms)), room_pages
        for entry in listed:
            assert sorted(entry["members"]) == sorted(rooms[entry["name"]]), entry
            assert entry["capacity"] == 15
        for room, members in rooms.items():
            who = asker.request_ok("who", room=room.lower())
            assert who["room"] == room and sorted(who["members"]) == sorted(members), who
        assert code(asker.request("who", room="nowhere")) == "no-such-room"
    # kim's node (b) has no member of Green: it still lists it whole
    assert sorted(clients["kim"].request_ok("who", room="green")["members"]) == sorted(rooms["Green"])
    assert sorted(clients["Ben"].request_ok("who")["members"]) == sorted(rooms["Red"])


def test_join_leave_and_presence_across_nodes(cluster: Cluster) -> None:
    """
    join replies list members on every node; the others, wherever they are,
    get presence join, leave (leave, exit) and disconnect (connection lost);
    nobody gets its own.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    bob = b.client("bob", room="lobby")
    alice = a.client("alice")
    assert sorted(alice.join("Lobby")["members"]) == ["alice", "bob"]
    assert bob.expect_event("presence", room="lobby", user="alice", event="join")
    carol = c.client("carol")
    assert sorted(carol.join("lobby")["members"]) == ["alice", "bob", "carol"]
    for other in (alice, bob):
        other.expect_event("presence", room="lobby", user="carol", event="join")
    assert alice.request_ok("leave")["room"] == "lobby"
    for other in (bob, carol):
        other.expect_event("presence", room="lobby", user="alice", event="leave")
    assert code(alice.request("leave")) == "not-in-room"
    carol.exit()
    bob.expect_event("presence", room="lobby", user="carol", event="leave")
    dave = c.client("dave", room="lobby")
    bob.expect_event("presence", room="lobby", user="dave", event="join")
    dave.close()
    bob.expect_event("presence", room="lobby", user="dave", event="disconnect")
    assert bob.request_ok("who")["members"] == ["bob"]
    for client in (alice, bob):
        assert client.events("presence", user=client.name) == [], client.seen


def test_room_capacity_counts_members_on_every_node(cluster: Cluster) -> None:
    """
    Sixteen clients spread over three nodes join one room at the same moment:
    exactly fifteen get ok and one room-full (and stays out); every node
    lists fifteen; once one leaves, the refused one gets in.
    """
    nodes = cluster.start(3, lease=LEASE)
    clients = [nodes[i % 3].client(f"p{i}") for i in range(16)]
    ids = [client.send_request("join", room="crowd") for client in clients]
    replies = [client.reply(ident) for client, ident in zip(clients, ids, strict=True)]
    codes = Counter(code(r) for r in replies)
    assert codes == Counter({"ok": 15, "room-full": 1}), replies
    refused = next(c for c, r in zip(clients, replies, strict=True) if code(r) == "room-full")
    inside = [c for c in clients if c is not refused]
    assert code(refused.request("who")) == "not-in-room"
    for member in inside[:3]:
        assert len(member.request_ok("who")["members"]) == 15
        (room,) = member.request_ok("rooms")["rooms"]
        assert len(room["members"]) == 15 and room["capacity"] == 15
    refused_node = refused.node
    other = next(c for c in inside if c.node is not refused_node)
    other.request_ok("leave")
    assert len(refused.join("crowd")["members"]) == 15


def test_a_switch_of_rooms_is_a_leave_in_the_old_room_and_a_join_in_the_new(cluster: Cluster) -> None:
    """
    alice (node a) moves from one to two: bob (node b, in one) sees leave,
    carol (node c, in two) sees join; the JOIN audit line counts members of
    every node and names the room left.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    alice = a.client("alice", room="one")
    bob = b.client("bob", room="one")
    carol = c.client("carol", room="two")
    mark = a.audit_mark()
    assert sorted(alice.join("two")["members"]) == ["alice", "carol"]
    bob.expect_event("presence", room="one", user="alice", event="leave")
    carol.expect_event("presence", room="two", user="alice", event="join")
    assert bob.request_ok("who")["members"] == ["bob"]
    assert bob.events("presence", user="alice", event="join", room="two") == []
    a.wait_audit("JOIN", r"alice joined two \(2/15\), leaving one \(1/15\)", since=mark)
    # a failed switch leaves alice where she was
    cluster.clients([((b, c)[i % 2], f"f{i}") for i in range(15)], room="full")
    assert code(alice.request("join", room="full")) == "room-full"
    assert sorted(alice.request_ok("who")["members"]) == ["alice", "carol"]


# messages


def room_sequence(client: NodeClient, room: str) -> list[tuple[str, ...]]:
    """The room's messages and presence events as this client saw them, in order."""
    out: list[tuple[str, ...]] = []
    for f in client.seen:
        if isinstance(f, dict) and f.get("room") == room:
            if f["type"] == "message":
                out.append(("message", f["from"], f["text"]))
            elif f["type"] == "presence":
                out.append(("presence", f["user"], f["event"]))
    return out


def test_broadcasts_reach_every_node_once_in_one_order(cluster: Cluster) -> None:
    """
    Three senders on three nodes broadcast at once, and someone joins
    meanwhile: every member on every node gets each message exactly once,
    and all see the room's messages and presence in one order (each sender's
    in the order sent); the late joiner sees exactly the part after its join.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    nodes = (a, b, c)
    senders = [node.client(f"s{node.node_id}", room="r") for node in nodes]
    listeners = [node.client(f"l{node.node_id}", room="r") for node in nodes]
    late = b.client("late")
    count = 40
    ids: list[tuple[NodeClient, str]] = []
    for i in range(count):
        for sender in senders:
            ids.append((sender, sender.send_request("broadcast", text=f"m-{sender.name}-{i}")))
        if i == count // 2:
            ids.append((late, late.send_request("join", room="r")))
    for sender, ident in ids:
        reply = sender.reply(ident)
        assert code(reply) == "ok" and (sender is late or reply["delivered"] in (5, 6)), reply
    for sender in senders:  # what each sent before its marker is before it everywhere
        marker(sender, [*listeners, late, *(s for s in senders if s is not sender)], f"end-{sender.name}")

    def relevant(client: NodeClient) -> list[tuple[str, ...]]:
        return [e for e in room_sequence(client, "r")
                if (e[0] == "message") or e[1] == "late"]

    reference = relevant(listeners[0])
    texts = [e[2] for e in reference if e[0] == "message"]
    assert len(texts) == len(set(texts)) == 3 * count + 3, reference
    assert reference.count(("presence", "late", "join")) == 1
    for listener in listeners[1:]:
        assert relevant(listener) == reference, f"{listener.label} saw another order"
    for sender in senders:
        own = [e for e in reference if not (e[0] == "message" and e[1] == sender.name)]
        assert relevant(sender) == own, f"{sender.label} saw another order"
        sent = [e[2] for e in reference if e[0] == "message" and e[1] == sender.name]
        assert sent == [f"m-{sender.name}-{i}" for i in range(count)] + [f"end-{sender.name}"]
    after_join = reference[reference.index(("presence", "late", "join")) + 1:]
    assert relevant(late) == after_join
    for client in (*listeners, late):
        for f in client.events("message"):
            assert isinstance(f["ts"], float) and f["room"] == "r"


def test_delivered_counts_receivers_on_every_node(cluster: Cluster) -> None:
    """One member on a, two on b, three on c: delivered is 5 from each; 4 once one has left; 0 alone."""
    a, b, c = cluster.start(3, lease=LEASE)
    spread = [(a, "x1"), (b, "y1"), (b, "y2"), (c, "z1"), (c, "z2"), (c, "z3")]
    members = cluster.clients(spread, room="hall")
    for sender in members:
        assert sender.request_ok("broadcast", text=f"from {sender.name}")["delivered"] == 5
    for receiver in members:
        others = {s.name for s in members} - {receiver.name}
        got = receiver.collect(frame_is("message", room="hall"), 5)
        assert {m["from"] for m in got} == others
    members[3].request_ok("leave")
    assert members[0].request_ok("broadcast", text="four")["delivered"] == 4
    alone = a.client("solo", room="empty")
    assert alone.request_ok("broadcast", text="nobody")["delivered"] == 0


def test_whispers_cross_nodes_in_order_per_sender(cluster: Cluster) -> None:
    """
    alice (a) and carol (c) whisper to bob (b) at once: bob gets every
    whisper, each sender's in order; names match case-insensitively across
    nodes; an absent user is no-such-user; whisper text is not logged.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    alice, bob, carol = a.client("alice"), b.client("bob"), c.client("carol")
    count = 30
    ids = []
    for i in range(count):
        ids.append((alice, alice.send_request("whisper", to="BOB", text=f"secret-a{i}")))
        ids.append((carol, carol.send_request("whisper", to="Bob", text=f"secret-c{i}")))
    for sender, ident in ids:
        assert code(sender.reply(ident)) == "ok"
    got = bob.collect(frame_is("whisper"), 2 * count)
    for sender, tag in ((alice, "a"), (carol, "c")):
        assert [w["text"] for w in got if w["from"] == sender.name] == [f"secret-{tag}{i}" for i in range(count)]
    assert set(got[0]) == {"type", "from", "text", "ts"}
    assert code(alice.request("whisper", to="nobody", text="hi")) == "no-such-user"
    bob.exit()
    assert code(alice.request("whisper", to="bob", text="gone")) == "no-such-user"
    for node in (a, b, c):
        assert not any("secret" in line for line in node.audit_lines()), node.audit_lines()


# nodes coming and going


@pytest.mark.slow
def test_kill9_of_a_node_others_see_disconnect_within_the_lease(cluster: Cluster) -> None:
    """
    kill -9 of node a: its users' roommates on b and c get presence
    disconnect (once) within the lease + 2 s; the names are free again and
    gone from users and who; node a, restarted with its id, serves again.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    alice = a.client("alice", room="r")
    a.client("dave", room="r")
    bob, carol = b.client("bob", room="r"), c.client("carol", room="r")
    killed = time.monotonic()
    a.kill9()
    alice.expect_closed()
    for watcher in (bob, carol):
        for user in ("alice", "dave"):
            left = killed + NOTICED - time.monotonic()
            watcher.expect(presence_of(user, "disconnect"), timeout=max(0.0, left))
    marker(carol, [bob], "after the kill")
    for watcher in (bob, carol):
        for user in ("alice", "dave"):
            assert len(watcher.events("presence", user=user)) == 1, watcher.seen
    assert sorted(bob.request_ok("who")["members"]) == ["bob", "carol"]
    assert bob.request_ok("users")["users"] == ["bob", "carol"]
    c.client("alice")  # the name is free again
    a.restart()
    again = a.client("dave", room="r")
    assert sorted(again.request_ok("who")["members"]) == ["bob", "carol", "dave"]
    bob.expect(presence_of("dave", "join"))


@pytest.mark.slow
def test_a_node_paused_past_its_lease_drops_its_clients_and_does_not_bring_them_back(
        cluster: Cluster) -> None:
    """
    SIGSTOP of node a past the lease: b sees alice disconnect, and the name
    can be taken on b; SIGCONT: a closes its old clients' connections, its
    old alice never reappears (users, who, presence), and it serves new clients.
    """
    a, b = cluster.start(2, lease=LEASE)
    alice = a.client("alice", room="r")
    bob = b.client("bob", room="r")
    stopped = time.monotonic()
    a.stop()
    bob.expect(presence_of("alice", "disconnect"), timeout=NOTICED)
    assert time.monotonic() - stopped <= NOTICED
    new_alice = b.client("alice")
    a.cont()
    alice.expect_closed(timeout=LEASE + 5.0)
    erin = a.client()
    assert code(erin.request_served("login", timeout=10.0, username="erin")) == "ok"
    erin.name = "erin"
    erin.join("r")
    bob.expect(presence_of("erin", "join"))
    assert bob.request_ok("users")["users"] == ["alice", "bob", "erin"]
    assert sorted(bob.request_ok("who")["members"]) == ["bob", "erin"]
    assert code(a.client().request("login", username="alice")) == "username-taken"
    marker(erin, [bob], "after the pause")
    assert bob.events("presence", user="alice", event="join") == []
    assert len(bob.events("presence", user="alice")) == 1
    new_alice.ping()


@pytest.mark.slow
def test_redis_killed_and_restarted_connections_stay_and_service_resumes(cluster: Cluster) -> None:
    """
    kill -9 of Redis: connections stay open (ping answers), requests needing
    the cluster get unavailable with retry_after and do nothing; after the
    restart (empty) service resumes by itself within seconds: a broadcast
    reaches the other node, names are still taken, and a CLUSTER audit line
    says Redis was lost and is back.
    """
    a, b = cluster.start(2, lease=LEASE)
    alice = a.client("alice", room="r")
    bob = b.client("bob", room="r")
    marks = {node.node_id: node.audit_mark() for node in (a, b)}
    cluster.redis.kill9()
    newcomer = b.client()
    requests: list[tuple[NodeClient, str, dict[str, Any]]] = [
        (alice, "join", {"room": "other"}),
        (alice, "broadcast", {"text": "while down"}),
        (bob, "users", {}),
        (newcomer, "login", {"username": "carol"}),
    ]
    for client, type, fields in requests:
        reply = client.request(type, **fields)
        assert code(reply) == "unavailable", (type, reply)
        assert isinstance(reply.get("retry_after"), int | float) and reply["retry_after"] > 0, reply
        client.ping()  # still connected
    assert not alice.closed and not bob.closed
    cluster.redis.restart()
    resumed = time.monotonic()
    reply = alice.request_served("broadcast", timeout=15.0, text="back")
    assert code(reply) == "ok" and reply["delivered"] == 1, reply
    print(f"service resumed {time.monotonic() - resumed:.2f}s after Redis restarted")
    bob.expect_message("back", "alice")
    assert bob.events("message", text="while down") == []
    assert alice.request_ok("who")["room"] == "r"  # the failed join did nothing
    assert code(newcomer.request_served("login", username="ALICE")) == "username-taken"
    assert newcomer.request_ok("login", username="carol")["username"] == "carol"
    assert bob.request_ok("users")["users"] == ["alice", "bob", "carol"]
    assert bob.events("presence", user="alice") == []
    for node in (a, b):
        node.wait_audit("CLUSTER", r"(?i)redis", since=marks[node.node_id])
        lines = node.audit_lines("CLUSTER", since=marks[node.node_id])
        assert any(re.search(r"(?i)\b(back|again|returned|reconnected|restored|resumed|reachable)\b", line)
                   for line in lines), lines


@pytest.mark.slow
def test_a_clean_sigint_of_one_node_takes_its_users_out_at_once(cluster: Cluster) -> None:
    """
    SIGINT to node a (lease 10 s): bob and carol see alice's leave or
    disconnect within 3 s, well within the lease; alice hears shutdown and
    the close; a exits cleanly; b and c go on and the name is free.
    """
    lease = 10.0
    a, b, c = cluster.start(3, lease=lease, extra_args=["--shutdown-grace", "2"])
    alice = a.client("alice", room="r")
    bob, carol = b.client("bob", room="r"), c.client("carol", room="r")
    signalled = time.monotonic()
    a.signal(signal.SIGINT)
    for watcher in (bob, carol):
        watcher.expect(presence_of("alice", "leave", "disconnect"),
                       timeout=max(0.0, signalled + 3.0 - time.monotonic()))
    assert any(frame_is("shutdown")(f) for f in alice.expect_closed()), alice.seen
    assert a.wait_exit(timeout=5.0) in (0, -signal.SIGINT), a.describe()
    assert bob.request_ok("broadcast", text="still here")["delivered"] == 1
    carol.expect_message("still here", "bob")
    assert bob.request_ok("users")["users"] == ["bob", "carol"]
    c.client("alice", room="r")
    bob.expect(presence_of("alice", "join"))


# starting


def test_a_node_refuses_to_start_when_its_id_is_live_or_redis_is_away(cluster: Cluster) -> None:
    """A second node with a live node's id, and a node whose Redis does not answer, exit saying why."""
    (a,) = cluster.start(1, lease=LEASE)
    twin = cluster.node("a", lease=LEASE)
    # it exits by itself (not killed at the timeout: that would be exit -9)
    with pytest.raises(AssertionError, match=r"(?s)node a did not start.*\(exit [1-9]"):
        twin.start(timeout=15.0)
    assert not twin.running
    a.client("alice")  # the live one is untouched
    lost = Cluster(cluster.root / "away", cluster.redis)
    port = cluster.redis.port
    cluster.redis.kill9()
    with pytest.raises(AssertionError, match=rf"(?s)did not start.*\(exit [1-9].*{port}"):
        lost.start(1, timeout=15.0)
    lost.close()



def test_a_room_keeps_its_first_spelling_on_every_node_and_goes_when_empty(cluster: Cluster) -> None:
    """
    GroupA created on node a is GroupA for joiners on b and c (replies,
    presence, messages, rooms); once its last member anywhere leaves, it is
    gone, and a new join creates it with the new spelling.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    alice = a.client("alice")
    assert alice.join("GroupA")["room"] == "GroupA"
    bob, carol = b.client("bob"), c.client("carol")
    assert bob.join("groupa")["room"] == "GroupA"
    assert carol.join("GROUPA")["room"] == "GroupA"
    alice.expect_event("presence", room="GroupA", user="carol", event="join")
    carol.request_ok("broadcast", text="spelling")
    assert bob.expect_message("spelling", "carol")["room"] == "GroupA"
    assert [r["name"] for r in bob.request_ok("rooms")["rooms"]] == ["GroupA"]
    assert carol.request_ok("who", room="groupA")["room"] == "GroupA"
    for client in (alice, bob, carol):
        client.request_ok("leave")
    assert carol.request_ok("rooms")["rooms"] == []
    assert code(alice.request("who", room="groupa")) == "no-such-room"
    assert bob.join("GROUPa")["room"] == "GROUPa"
    assert alice.join("groupa")["room"] == "GROUPa"


def test_a_broadcast_sent_after_a_join_is_answered_reaches_the_joiner(cluster: Cluster) -> None:
    """
    Twenty times: alice (a) is in a room, bob (b) joins it, and as soon as
    bob's join is answered alice broadcasts: bob gets the message (his node
    follows the room from the moment it answers), and none from before.
    """
    a, b = cluster.start(2, lease=LEASE)
    alice, bob = a.client("alice"), b.client("bob")
    for i in range(20):
        room = f"room{i}"
        alice.join(room)
        alice.request_ok("broadcast", text=f"before {i}")
        bob.join(room)
        alice.request_ok("broadcast", text=f"after {i}")
        bob.expect_message(f"after {i}", "alice", timeout=5.0)
    assert [m["text"] for m in bob.events("message")] == [f"after {i}" for i in range(20)]
