"""Tests for the pure parts of the cluster's upload slots: replies read, the Lua assembled."""

from __future__ import annotations

import pytest

from chatnet.cluster import scripts, slot_scripts
from chatnet.cluster.keys import ClusterError, Fenced
from chatnet.cluster.slot_scripts import Answer, answer, states


def test_an_answer_is_read() -> None:
    a = answer(["queued", [7, b"9"], 5, "3", 0, 2])
    assert a == Answer("queued", (7, 9), 5, 3, (0, 2))
    assert a.number(1) == 2


def test_an_answer_without_grants() -> None:
    assert answer(["ok", [], 0, 0]) == Answer("ok", (), 0, 0, ())


def test_fenced_is_raised() -> None:
    with pytest.raises(Fenced):
        answer(["fenced"])


@pytest.mark.parametrize("reply", [[], ["ok"], ["ok", 1, 2, 3], "ok", ["ok", [], "x", 0]])
def test_replies_no_script_gives_are_errors(reply: object) -> None:
    with pytest.raises(ClusterError):
        answer(reply)


def test_a_short_answer_is_an_error() -> None:
    with pytest.raises(ClusterError):
        answer(["started", [], 1, 0]).number(0)


def test_states_by_number() -> None:
    assert states(("3", "queued", 4, "running")) == {3: "queued", 4: "running"}
    with pytest.raises(ClusterError):
        states(("3",))


def test_every_script_can_reap_uploads() -> None:
    """The reaping of a dead node (scripts.REAP, DEREGISTER) frees its uploads in the same step."""
    assert "reap_uploads(node, current)" in scripts.REAP.source
    for script in slot_scripts.ALL:
        assert "local function up_dispatch" in script.source
    assert len({s.sha1 for s in slot_scripts.ALL}) == len(slot_scripts.ALL)
