"""One timer for many deadlines: chatnet.deadlines.Deadlines."""

from __future__ import annotations

from twisted.internet.task import Clock

from chatnet.deadlines import Deadlines


def test_one_timer_for_many_keys() -> None:
    """However many keys are timed, one delayed call is pending."""
    clock = Clock()
    deadlines: Deadlines[str] = Deadlines(clock, 10)
    for key in "abc":
        deadlines.start(key, lambda _: None)
        clock.advance(1)
    assert len(deadlines) == 3
    assert len(clock.getDelayedCalls()) == 1


def test_keys_expire_in_start_order_with_their_age() -> None:
    clock = Clock()
    deadlines: Deadlines[str] = Deadlines(clock, 10)
    expired: list[tuple[str, float]] = []
    deadlines.start("a", lambda age: expired.append(("a", age)))
    clock.advance(4)
    deadlines.start("b", lambda age: expired.append(("b", age)))
    clock.advance(6)
    assert expired == [("a", 10)]
    clock.advance(3.9)
    assert expired == [("a", 10)]
    clock.advance(0.1)
    assert expired == [("a", 10), ("b", 10)]
    assert len(deadlines) == 0 and clock.getDelayedCalls() == []


def test_stop_the_last_key_cancels_the_timer() -> None:
    clock = Clock()
    deadlines: Deadlines[str] = Deadlines(clock, 10)
    deadlines.start("a", lambda _: None)
    deadlines.stop("a")
    deadlines.stop("never-started")
    assert clock.getDelayedCalls() == [] and "a" not in deadlines


def test_start_again_keeps_or_restarts_the_clock() -> None:
    """A key started again keeps its first start, unless asked to restart."""
    clock = Clock()
    deadlines: Deadlines[str] = Deadlines(clock, 10)
    expired: list[str] = []
    deadlines.start("kept", lambda _: expired.append("kept"))
    deadlines.start("moved", lambda _: expired.append("moved"))
    clock.advance(5)
    deadlines.start("kept", lambda _: expired.append("kept again"))
    deadlines.start("moved", lambda _: expired.append("moved again"), restart=True)
    clock.advance(5)
    assert expired == ["kept"]
    clock.advance(5)
    assert expired == ["kept", "moved again"]


def test_a_key_started_while_one_expires() -> None:
    """A callback that starts another key leaves exactly one timer, for it."""
    clock = Clock()
    deadlines: Deadlines[str] = Deadlines(clock, 10)
    expired: list[str] = []

    def first(_: float) -> None:
        expired.append("a")
        deadlines.start("b", lambda _: expired.append("b"))

    deadlines.start("a", first)
    clock.advance(10)
    assert expired == ["a"] and len(clock.getDelayedCalls()) == 1
    clock.advance(10)
    assert expired == ["a", "b"] and clock.getDelayedCalls() == []
