"""Tests for :mod:`chatnet.fairqueue`: round-robin by owner, order within one owner."""

from __future__ import annotations

import itertools
import random

import pytest

from chatnet.fairqueue import FairQueue


def drain(q: FairQueue[str, str]) -> list[str]:
    """Take every item, all of them startable."""
    out = []
    while (item := q.take(lambda _: True)) is not None:
        out.append(item)
    assert len(q) == 0
    return out


def test_every_owner_different_is_arrival_order() -> None:
    """With one item per owner the order is the order of arrival, positions 0, 1, 2 ..."""
    q: FairQueue[str, str] = FairQueue()
    assert [q.add(o, o + "1") for o in "cabd"] == [0, 1, 2, 3]
    assert drain(q) == ["c1", "a1", "b1", "d1"]


def test_round_robin_and_positions() -> None:
    """A flooder's items alternate with others'; positions are places in that order."""
    q: FairQueue[str, str] = FairQueue()
    assert [q.add("m", f"m{i}") for i in range(1, 5)] == [0, 1, 2, 3]
    assert q.add("a", "a1") == 1  # behind m1 only
    assert q.add("b", "b1") == 2
    assert q.add("a", "a2") == 4  # m1 a1 b1 m2 a2
    assert list(q) == ["m1", "a1", "b1", "m2", "a2", "m3", "m4"]
    assert [q.position(o, i) for o, i in [("m", "m2"), ("m", "m4"), ("b", "b1")]] == [3, 6, 2]
    assert drain(q) == ["m1", "a1", "b1", "m2", "a2", "m3", "m4"]


def test_taken_owner_goes_to_the_end_of_the_ring() -> None:
    """After its turn an owner waits for every other owner's turn; a newcomer joins at the end."""
    q: FairQueue[str, str] = FairQueue()
    for item in ["a1", "a2", "b1", "b2"]:
        q.add(item[0], item)
    assert q.take(lambda _: True) == "a1"
    q.add("c", "c1")
    assert list(q) == ["b1", "a2", "c1", "b2"]
    assert q.position("c", "c1") == 2


def test_skipped_items_keep_their_place() -> None:
    """Items that cannot start are passed over, keep their place, and go first once they can."""
    q: FairQueue[str, str] = FairQueue()
    for item in ["a1", "a2", "b1", "c1"]:
        q.add(item[0], item)
    blocked = {"a1", "b1"}
    can = lambda item: item not in blocked  # noqa: E731
    assert q.take(can) == "a2"  # a's first startable item; a1 keeps its place
    assert q.take(can) == "c1"  # b has none: its turn passes
    assert q.take(can) is None
    assert list(q) == ["b1", "a1"]
    blocked.clear()
    assert drain(q) == ["b1", "a1"]


def test_remove_keeps_the_others_turns() -> None:
    """Removing an item does not move its owner in the ring."""
    q: FairQueue[str, str] = FairQueue()
    for item in ["a1", "a2", "b1"]:
        q.add(item[0], item)
    q.remove("a", "a1")
    assert (len(q), q.count("a"), q.count("b"), q.count("z")) == (2, 1, 1, 0)
    assert list(q) == ["a2", "b1"]
    q.remove("a", "a2")
    assert q.count("a") == 0 and list(q) == ["b1"]


@pytest.mark.parametrize("seed", range(20))
def test_positions_match_the_order(seed: int) -> None:
    """Random adds, removes and takes: every position is the item's index in the order."""
    rng = random.Random(seed)
    q: FairQueue[str, str] = FairQueue()
    counter = itertools.count()
    for _ in range(200):
        order = list(q)
        if order and rng.random() < 0.3:
            item = rng.choice(order)
            q.remove(item[0], item)
        elif order and rng.random() < 0.3:
            expected = order[0]
            assert q.take(lambda _: True) == expected
        else:
            owner = rng.choice("abcd")
            item = f"{owner}{next(counter)}"
            assert q.add(owner, item) == list(q).index(item)
        order = list(q)
        assert len(order) == len(q)
        for position, item in enumerate(order):
            assert q.position(item[0], item) == position
