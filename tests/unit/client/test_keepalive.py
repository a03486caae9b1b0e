"""The client notices a server that stopped answering (chatnet.client.keepalive)."""

from __future__ import annotations

from typing import Any

from support.client_harness import connected
from twisted.internet.task import Clock

from chatnet.client.events import Disconnected
from chatnet.client.keepalive import Keepalive


class Recorder:
    def __init__(self) -> None:
        self.pings = 0
        self.dead: list[str] = []

    def ping(self) -> None:
        self.pings += 1

    def watch(self, clock: Clock) -> Keepalive:
        k = Keepalive(clock, self.ping, self.dead.append, idle=30, timeout=20)
        k.start()
        return k


def test_no_ping_while_the_server_talks() -> None:
    clock, r = Clock(), Recorder()
    k = r.watch(clock)
    for _ in range(10):
        clock.advance(25)
        k.heard()
    assert r.pings == 0 and r.dead == []
    assert len(clock.getDelayedCalls()) == 1


def test_ping_after_silence_then_answered() -> None:
    clock, r = Clock(), Recorder()
    k = r.watch(clock)
    clock.advance(30)
    assert r.pings == 1
    clock.advance(5)
    k.heard()  # the reply
    clock.advance(15)
    assert r.dead == []
    clock.advance(14.9)
    assert r.pings == 1
    clock.advance(0.1)  # 30 s after the reply: the next ping
    assert r.pings == 2 and r.dead == []


def test_no_answer_is_a_dead_server() -> None:
    clock, r = Clock(), Recorder()
    r.watch(clock)
    clock.advance(30)
    clock.advance(19.9)
    assert r.dead == []
    clock.advance(0.1)
    assert len(r.dead) == 1 and "stopped answering" in r.dead[0]
    assert clock.getDelayedCalls() == []


def test_stop_leaves_no_timer() -> None:
    clock, r = Clock(), Recorder()
    k = r.watch(clock)
    k.stop()
    assert clock.getDelayedCalls() == [] and not k.running


def test_core_pings_a_silent_server_and_hides_the_reply(tmp_path: Any) -> None:
    """Logged in, 30 s of silence: a ping; its reply is not shown (not even to --json)."""
    h = connected(str(tmp_path))
    seen: list[dict[str, Any]] = []
    h.core.on_frame(seen.append)
    before = len(h.requests())
    h.clock.advance(30)
    ping = h.requests()[before]
    assert ping["type"] == "ping"
    h.reply(ping)
    assert seen == [] and h.events == []
    h.clock.advance(25)
    assert h.core.gone is None


def test_core_gives_up_on_a_server_that_stopped_answering(tmp_path: Any) -> None:
    h = connected(str(tmp_path))
    h.clock.advance(30)
    h.clock.advance(20)
    assert h.transport.disconnecting
    h.protocol.connectionLost()
    gone = h.core.gone
    assert isinstance(gone, Disconnected) and "stopped answering" in gone.reason
