"""A room's sequence at one node: order, duplicates, gaps, fills, losses, epochs."""

from __future__ import annotations

from chatnet.cluster.sequence import (
    Deliver,
    Fill,
    Lost,
    Reset,
    RoomSequence,
    entry_offset,
    parse,
    stream_entries,
)


def started(epoch: str = "e1", offset: int = 0) -> RoomSequence:
    seq = RoomSequence()
    assert seq.head(epoch, offset) == []
    return seq


def test_in_order_exactly_once() -> None:
    seq = started()
    assert seq.message("e1", 1, "a") == [Deliver(1, "a")]
    assert seq.message("e1", 2, "b") == [Deliver(2, "b")]
    assert seq.message("e1", 2, "b") == []  # duplicate
    assert seq.message("e1", 1, "a") == []
    assert seq.last == 2


def test_messages_before_the_head_wait_for_it_and_older_ones_are_dropped() -> None:
    seq = RoomSequence()
    assert seq.message("e1", 5, "x") == [] and not seq.started
    assert seq.message("e1", 6, "y") == []
    # the head was read after the subscription: 5 is before our time
    assert seq.head("e1", 5) == [Deliver(6, "y")]


def test_a_gap_is_filled_from_the_stream_and_later_messages_wait() -> None:
    seq = started("e1", 2)
    assert seq.message("e1", 5, "e") == [Fill(3, 4)]
    assert seq.message("e1", 6, "f") == []  # held while filling
    assert seq.message("e1", 5, "e") == []  # duplicate of a held one
    assert seq.head("e1", 6) == []  # a fill is outstanding already
    actions = seq.filled(Fill(3, 4), [(4, "d"), (3, "c")])
    assert actions == [Deliver(3, "c"), Deliver(4, "d"), Deliver(5, "e"), Deliver(6, "f")]
    assert seq.filling is None and seq.last == 6


def test_what_the_stream_lost_is_reported_never_skipped_silently() -> None:
    seq = started("e1", 0)
    assert seq.message("e1", 5, "e") == [Fill(1, 4)]
    assert seq.filled(Fill(1, 4), [(3, "c")]) == [
        Lost(1, 2), Deliver(3, "c"), Lost(4, 4), Deliver(5, "e")]
    assert seq.message("e1", 9, "i") == [Fill(6, 8)]
    assert seq.filled(Fill(6, 8), []) == [Lost(6, 8), Deliver(9, "i")]


def test_a_second_gap_among_held_messages_is_filled_in_turn() -> None:
    seq = started("e1", 0)
    assert seq.message("e1", 3, "c") == [Fill(1, 2)]
    assert seq.message("e1", 6, "f") == []
    assert seq.filled(Fill(1, 2), [(1, "a"), (2, "b")]) == [
        Deliver(1, "a"), Deliver(2, "b"), Deliver(3, "c"), Fill(4, 5)]
    assert seq.filled(Fill(4, 5), [(4, "d"), (5, "e"), (99, "not asked")]) == [
        Deliver(4, "d"), Deliver(5, "e"), Deliver(6, "f")]


def test_a_stale_fill_answer_is_ignored() -> None:
    seq = started("e1", 0)
    assert seq.message("e1", 2, "b") == [Fill(1, 1)]
    assert seq.filled(Fill(7, 8), [(7, "x")]) == []
    assert seq.filling == Fill(1, 1)


def test_the_head_finds_messages_lost_at_the_end() -> None:
    seq = started("e1", 0)
    seq.message("e1", 1, "a")
    assert seq.head("e1", 1) == []
    assert seq.head("e1", 3) == [Fill(2, 3)]
    assert seq.filled(Fill(2, 3), [(2, "b"), (3, "c")]) == [Deliver(2, "b"), Deliver(3, "c")]


def test_a_new_epoch_is_reported_and_counts_again() -> None:
    seq = started("e1", 0)
    seq.message("e1", 1, "a")
    assert seq.message("e2", 1, "x") == [Reset("e1", "e2"), Deliver(1, "x")]
    # a new epoch seen by the head: what was missed of it is filled
    assert seq.head("e3", 2) == [Reset("e2", "e3"), Fill(1, 2)]


def test_a_new_epoch_during_a_fill_closes_the_old_one() -> None:
    seq = started("e1", 0)
    assert seq.message("e1", 3, "c") == [Fill(1, 2)]
    assert seq.message("e2", 1, "x") == [
        Lost(1, 2), Deliver(3, "c"), Reset("e1", "e2"), Deliver(1, "x")]
    assert seq.filled(Fill(1, 2), [(1, "a")]) == []  # the old fill's answer is stale


def test_a_room_without_a_sequence_yet_starts_without_a_reset() -> None:
    seq = started("", 0)
    assert seq.message("e1", 1, "a") == [Deliver(1, "a")]
    assert seq.head("", 0) == []  # the room was emptied meanwhile: nothing to do


def test_wire_formats() -> None:
    assert parse("e1:12:hello: world") == ("e1", 12, "hello: world")
    assert parse("e1:12:") == ("e1", 12, "")
    for bad in ("e1", "e1:x:y", ":1:y", "e1:12"):
        assert parse(bad) is None
    assert entry_offset("12-0") == 12 and entry_offset("12-1") is None
    assert entry_offset("x-0") is None
    reply = [["1-0", ["d", "a"]], ["2-0", ["x", "y"]], "junk", ["3-0", ["d", "c"]]]
    assert stream_entries(reply) == [(1, "a"), (3, "c")]
    assert stream_entries("nope") == []
