"""
:class:`chatnet.cluster.redis.Subscriber` asks again for a channel whose
``SUBSCRIBE`` was not acknowledged (Redis still loading, an error reply)
while the connection stays: otherwise the channel would stay deaf until the
next reconnection.  The protocol is a recording fake and time a Clock (the
reconnection itself is tested against a real Redis in
tests/integration/test_cluster_messages.py).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from chatnet.cluster.keys import Address
from chatnet.cluster.redis import Subscriber


class FakeProtocol:
    def __init__(self, answers: list[Deferred[Any]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def subscribe(self, channel: str) -> Deferred[Any]:
        self.asked.append(channel)
        return self.answers.pop(0)


def test_a_subscribe_not_acknowledged_is_asked_again() -> None:
    ready: list[str] = []
    clock = Clock()
    sub = Subscriber(Address(), clock, lambda c, m: None, ready.append)  # type: ignore[arg-type]
    sub._clock = clock
    protocol = FakeProtocol([fail(RuntimeError("LOADING Redis is loading")), succeed(None)])
    sub._protocol = protocol  # type: ignore[assignment]
    sub.subscribe(["room"])
    assert protocol.asked == ["room"] and ready == [] and sub.live == set()
    clock.advance(1.0)
    assert protocol.asked == ["room", "room"]
    assert ready == ["room"] and sub.live == {"room"}


def test_a_channel_given_up_meanwhile_is_not_asked_again() -> None:
    clock = Clock()
    sub = Subscriber(Address(), clock, lambda c, m: None, lambda c: None)  # type: ignore[arg-type]
    sub._clock = clock
    protocol = FakeProtocol([fail(RuntimeError("LOADING"))])
    sub._protocol = protocol  # type: ignore[assignment]
    sub.subscribe(["room"])
    sub.wanted.discard("room")  # (unsubscribe, without a protocol call)
    clock.advance(5.0)
    assert protocol.asked == ["room"]
