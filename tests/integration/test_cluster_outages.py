"""
Cluster mode end to end, the harder cases (PROTOCOL.md section 9): Redis
away for longer than the lease (killed and back empty, or paused and back
with its data), a name raced while the nodes re-assert theirs, the
presence of a dead node's users in the room's one order, and a name or a
place freed by one node taken at once on another.

Real ``redis-server`` and ``twistd`` nodes (``tests/support/cluster_nodes.py``);
marked ``scenario``, and ``slow`` where a lease has to run out.  From a checkout::

    PYTHONPATH=$PWD python -m pytest -q tests/integration/test_cluster_outages.py
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from support.cluster_nodes import WAIT, Cluster, NodeClient, frame_is

pytestmark = pytest.mark.scenario

LEASE = 2.0


def code(reply: dict[str, Any]) -> str:
    """``ok``, or an error reply's code."""
    assert reply["type"] in ("ok", "error"), reply
    return "ok" if reply["type"] == "ok" else str(reply["code"])


def unavailable_until(client: NodeClient, until: float) -> list[dict[str, Any]]:
    """
    Ask ``users`` (which needs the cluster) again after each ``retry_after``
    until the monotonic time ``until``: every answer must be ``unavailable``.
    """
    replies = []
    while time.monotonic() < until:
        reply = client.request("users")
        replies.append(reply)
        assert code(reply) == "unavailable", replies
        assert isinstance(reply.get("retry_after"), int | float) and reply["retry_after"] > 0, reply
        time.sleep(min(reply["retry_after"], max(0.0, until - time.monotonic())))
    return replies


class Rival(threading.Thread):
    """
    Asks a node to log in as ``name`` again each time it answers
    ``unavailable`` (not waiting for ``retry_after``: the race is the
    point), until another answer comes; :attr:`reply` holds it.
    """

    def __init__(self, client: NodeClient, name: str, timeout: float = 15.0) -> None:
        super().__init__(daemon=True)
        self.client, self.name, self.timeout = client, name, timeout
        self.tries = 0
        self.reply: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                self.tries += 1
                reply = self.client.request("login", max(0.1, deadline - time.monotonic()),
                                            username=self.name)
                if code(reply) != "unavailable":
                    self.reply = reply
                    return
        except BaseException as e:  # reported by result()
            self.error = e

    def result(self) -> dict[str, Any]:
        self.join(self.timeout + WAIT)
        if self.error is not None:
            raise self.error
        assert self.reply is not None, f"login {self.name} still unavailable after {self.tries} tries"
        return self.reply


def everyone(client: NodeClient) -> list[str]:
    """
    Every name ``users`` gives, over all its pages (ten a page), asked again
    after ``retry_after`` while the node answers ``unavailable`` (a node
    may still be rebuilding after Redis came back).
    """
    names: list[str] = []
    fields: dict[str, Any] = {"limit": 10}
    while True:
        reply = client.request_served("users", **fields)
        assert code(reply) == "ok", reply
        names += reply["users"]
        if not reply["more"]:
            return names
        fields = {"limit": 10, "after": names[-1]}


@pytest.mark.slow
def test_redis_down_past_the_lease_and_back_empty_names_and_rooms_are_reasserted(
        cluster: Cluster) -> None:
    """
    Redis killed for longer than the lease, then restarted empty, while a
    client of node c keeps trying to take alice's name: nobody's connection
    closes, the name stays alice's (the rival gets username-taken), a full
    room spread over three nodes is still full for a newcomer, every name
    is listed once, and nobody saw a presence event for it.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    nodes = (a, b, c)
    alice, bob = a.client("alice", room="r"), b.client("bob", room="r")
    crowd = cluster.clients([(nodes[i % 3], f"f{i}") for i in range(15)], room="full")
    extra = b.client("extra")
    rival = c.client()
    down = time.monotonic()
    cluster.redis.kill9()
    unavailable_until(alice, down + LEASE + 1.0)
    racer = Rival(rival, "alice")
    racer.start()
    cluster.redis.restart()
    assert code(racer.result()) == "username-taken", (racer.result(), racer.tries)
    reply = alice.request_served("broadcast", timeout=15.0, text="back")
    assert code(reply) == "ok" and reply["delivered"] == 1, reply
    bob.expect_message("back", "alice")
    assert code(extra.request_served("join", room="full")) == "room-full"
    for member in crowd[:3]:
        assert len(member.request_served("who", timeout=15.0)["members"]) == 15
    names = everyone(bob)
    assert Counter(names) == Counter(["alice", "bob", "extra", *(f"f{i}" for i in range(15))]), names
    crowd[0].request_ok("broadcast", text="still full")
    for member in crowd[1:]:
        member.expect_message("still full", "f0")
    for client in (alice, bob, extra, rival, *crowd):
        assert not client.closed, client.label
    for member in crowd:
        assert member.events("presence", event="disconnect") == [], member.seen
        assert member.events("presence", event="leave") == [], member.seen
    assert bob.events("presence", user="alice") == []


@pytest.mark.slow
def test_redis_paused_past_the_lease_connections_stay_and_service_resumes(cluster: Cluster) -> None:
    """
    Redis paused (SIGSTOP) for longer than the lease, then resumed with its
    data: while paused, requests get unavailable and connections stay; after,
    service resumes by itself, alice and bob are still there, their names
    still taken, and nobody saw either of them go.
    """
    a, b = cluster.start(2, lease=LEASE)
    alice, bob = a.client("alice", room="r"), b.client("bob", room="r")
    alice.expect(frame_is("presence", user="bob", event="join"))
    seen = len(alice.seen), len(bob.seen)
    paused = time.monotonic()
    cluster.pause_redis()
    unavailable_until(alice, paused + LEASE + 1.0)
    bob.ping()
    cluster.resume_redis()
    reply = alice.request_served("broadcast", timeout=15.0, text="awake")
    assert code(reply) == "ok" and reply["delivered"] == 1, reply
    bob.expect_message("awake", "alice")
    assert not alice.closed and not bob.closed
    assert everyone(bob) == ["alice", "bob"]
    assert code(b.client().request_served("login", username="Alice")) == "username-taken"
    for client, before in zip((alice, bob), seen, strict=True):
        after = [f for f in client.seen[before:] if f.get("type") == "presence"]
        assert after == [], (client.label, after)


@pytest.mark.slow
def test_a_dead_nodes_presence_takes_one_place_in_the_room_order(cluster: Cluster) -> None:
    """
    talker (b) broadcasts while node a, with victim, is killed: the
    disconnect of victim comes at the same place among talker's messages at
    every receiver (b and c), and nothing is lost or doubled.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    a.client("victim", room="r")
    talker = b.client("talker", room="r")
    receivers = [b.client("rb", room="r"), c.client("rc", room="r")]
    a.kill9()
    sent = 0
    deadline = time.monotonic() + LEASE + 4.0
    gone = frame_is("presence", user="victim", event="disconnect")
    while not any(gone(f) for f in talker.seen) and time.monotonic() < deadline:
        talker.request_ok("broadcast", text=f"t{sent}")
        sent += 1
    for i in range(sent, sent + 5):
        talker.request_ok("broadcast", text=f"t{i}")
    sent += 5
    for receiver in receivers:
        receiver.collect(frame_is("message", room="r"), sent)
        receiver.expect(gone)

    def order(client: NodeClient) -> list[str]:
        return [f["text"] if f["type"] == "message" else f"<{f['user']} {f['event']}>"
                for f in client.seen if isinstance(f, dict) and f.get("room") == "r"
                and (f["type"] == "message" or f.get("user") == "victim")]

    expected_texts = [f"t{i}" for i in range(sent)]
    first = order(receivers[0])
    assert [x for x in first if not x.startswith("<")] == expected_texts
    assert first.count("<victim disconnect>") == 1
    assert order(receivers[1]) == first
    assert [x for x in order(talker) if x.startswith("<")] == ["<victim disconnect>"]


def test_a_name_or_a_place_freed_on_one_node_is_free_at_once_on_another(cluster: Cluster) -> None:
    """
    Once exit is answered on node a, the name can be taken on node b at
    once; once leave is answered, the room's freed place can be taken from
    node c at once.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    for round in range(5):
        alice = a.client(f"alice{round}")
        alice.exit()
        b.client(f"ALICE{round}")
    nodes = (a, b, c)
    crowd = cluster.clients([(nodes[i % 2], f"m{i}") for i in range(15)], room="full")
    waiting = [c.client(f"w{i}") for i in range(5)]
    for member, newcomer in zip(crowd, waiting, strict=False):
        member.request_ok("leave")
        assert newcomer.join("full")["members"], newcomer.seen


@pytest.mark.slow
def test_requests_a_paused_node_finds_after_its_lease_are_not_carried_out(cluster: Cluster) -> None:
    """
    While node a is paused past its lease, alice's broadcast, whisper and
    join wait in its socket; on SIGCONT they must not reach anyone (the
    node is fenced): bob sees none of them, and nobody is in alice's room.
    """
    a, b = cluster.start(2, lease=LEASE)
    alice = a.client("alice", room="r")
    bob = b.client("bob", room="r")
    carol = b.client("carol", room="elsewhere")
    a.stop()
    alice.send_request("broadcast", text="ghost")
    alice.send_request("whisper", to="bob", text="ghost whisper")
    alice.send_request("join", room="elsewhere")
    bob.expect(frame_is("presence", user="alice", event="disconnect"), timeout=LEASE + 2.0)
    a.cont()
    alice.expect_closed(timeout=LEASE + 5.0)
    erin = a.client()
    assert code(erin.request_served("login", timeout=10.0, username="erin")) == "ok"
    erin.name = "erin"
    erin.join("r")
    erin.request_ok("whisper", to="bob", text="after")
    bob.expect_event("whisper", text="after")
    erin.request_ok("broadcast", text="after")
    bob.expect_message("after", "erin")
    assert bob.events("message", text="ghost") == [] and bob.events("whisper", text="ghost whisper") == []
    assert carol.events("presence", user="alice") == []
    assert sorted(carol.request_ok("who")["members"]) == ["carol"]


@pytest.mark.slow
def test_users_gone_while_redis_is_away_are_not_brought_back(cluster: Cluster) -> None:
    """
    While Redis is away, alice exits and dave's connection drops: exit is
    still answered and the connection closed; once Redis is back (empty),
    neither is listed or held, both names can be taken, and bob stays.
    """
    a, b = cluster.start(2, lease=LEASE)
    alice, dave = a.client("alice", room="r"), a.client("dave", room="r")
    bob = b.client("bob", room="r")
    cluster.redis.kill9()
    alice.send_request("exit")
    alice.expect_closed()
    dave.close()
    cluster.redis.restart()
    reply = bob.request_served("broadcast", timeout=15.0, text="back")
    assert code(reply) == "ok" and reply["delivered"] == 0, reply
    assert everyone(bob) == ["bob"]
    assert bob.request_ok("who")["members"] == ["bob"]
    # (a node rebuilding the cluster answers unavailable for a moment: served = retried)
    assert code(b.client().request_served("login", timeout=15.0, username="alice")) == "ok"
    assert code(a.client().request_served("login", timeout=15.0, username="dave")) == "ok"
    assert not bob.closed


@pytest.mark.slow
def test_broadcasts_answered_unavailable_when_redis_dies_are_never_delivered(cluster: Cluster) -> None:
    """
    alice (a) sends a burst of broadcasts and Redis is killed meanwhile:
    each is answered ok or unavailable; bob (b) gets none answered
    unavailable ("nothing was done"), none twice, and the others in order.
    """
    a, b = cluster.start(2, lease=LEASE)
    alice, bob = a.client("alice", room="r"), b.client("bob", room="r")
    count = 40
    ids = [alice.send_request("broadcast", text=f"m{i}") for i in range(count)]
    early = {ident: alice.reply(ident) for ident in ids[:20]}  # the burst is being served
    cluster.redis.kill9()
    replies = [early[ident] if ident in early else alice.reply(ident) for ident in ids]
    outcome = Counter(code(r) for r in replies)
    assert set(outcome) <= {"ok", "unavailable"}, outcome
    refused = {f"m{i}" for i, r in enumerate(replies) if code(r) == "unavailable"}
    cluster.redis.restart()
    reply = alice.request_served("broadcast", timeout=15.0, text="end")
    assert code(reply) == "ok", reply
    bob.expect_message("end", "alice")
    got = [m["text"] for m in bob.events("message")][:-1]
    print(f"{outcome}; bob got {len(got)}")
    assert not refused & set(got), sorted(refused & set(got), key=lambda t: int(t[1:]))
    assert len(got) == len(set(got))
    assert got == sorted(got, key=lambda t: int(t[1:]))


@pytest.mark.slow
def test_while_redis_is_known_lost_requests_are_answered_unavailable_promptly(cluster: Cluster) -> None:
    """
    Once a node has found Redis gone, thirty requests that need it are all
    answered unavailable within 3 s (they fail promptly, not one command
    timeout after another), and a ping behind them too.
    """
    (a,) = cluster.start(1, lease=LEASE)
    alice = a.client("alice", room="r")
    mark = a.audit_mark()
    cluster.redis.kill9()
    a.wait_audit("CLUSTER", r"(?i)redis lost", since=mark)
    assert code(alice.request("users")) == "unavailable"
    started = time.monotonic()
    ids = [alice.send_request("users") for _ in range(30)]
    last = alice.send_request("ping")
    assert Counter(code(alice.reply(ident)) for ident in ids) == Counter({"unavailable": 30})
    assert code(alice.reply(last)) == "ok"
    elapsed = time.monotonic() - started
    assert elapsed <= 3.0, f"30 unavailable replies took {elapsed:.1f}s"


class Joiner(Rival):
    """:class:`Rival` for a ``join`` of ``room``: asked again on every ``unavailable``."""

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                self.tries += 1
                reply = self.client.request("join", max(0.1, deadline - time.monotonic()),
                                            room=self.name)
                if code(reply) != "unavailable":
                    self.reply = reply
                    return
        except BaseException as e:  # reported by result()
            self.error = e


@pytest.mark.slow
def test_a_full_room_stays_full_while_outsiders_race_redis_coming_back_empty(cluster: Cluster) -> None:
    """
    A room of fifteen spread over three nodes; Redis killed past the lease
    and restarted empty while one outsider per node keeps asking to join:
    every outsider gets room-full, the room lists fifteen from every node.
    """
    a, b, c = cluster.start(3, lease=LEASE)
    nodes = (a, b, c)
    crowd = cluster.clients([(nodes[i % 3], f"m{i}") for i in range(15)], room="full")
    outsiders = [node.client(f"out{node.node_id}") for node in nodes]
    down = time.monotonic()
    cluster.redis.kill9()
    unavailable_until(crowd[0], down + LEASE + 1.0)
    racers = [Joiner(outsider, "full") for outsider in outsiders]
    for racer in racers:
        racer.start()
    cluster.redis.restart()
    assert [code(racer.result()) for racer in racers] == ["room-full"] * 3, [r.result() for r in racers]
    for member in crowd[:3]:
        who = member.request_served("who")
        assert code(who) == "ok" and len(who["members"]) == 15, who
    for outsider in outsiders:
        assert code(outsider.request("who")) == "not-in-room"
