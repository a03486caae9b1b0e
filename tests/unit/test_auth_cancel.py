"""
A password check whose asker went away (chatnet.auth.AccountsChecker):
cancelled while it waits for a slot, it never runs; cancelled while it
runs, it keeps its slot until the work ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.internet.defer import CancelledError, Deferred

from chatnet import auth
from chatnet.testing import make_accounts


class ByHand:
    """A ``run`` whose checks end when the test says."""

    def __init__(self) -> None:
        self.running: list[tuple[Deferred[bool], tuple[Any, ...]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self.running.append((d, args))
        return d


def outcome(d: Deferred[Any]) -> list[Any]:
    seen: list[Any] = []
    d.addBoth(seen.append)
    return seen


def test_cancelled_while_queued_never_runs() -> None:
    run = ByHand()
    checker = auth.AccountsChecker(make_accounts({"alice": "pw"}), run, at_once=1)
    first = checker.requestAvatarId(UsernamePassword(b"alice", b"pw"))
    second = checker.requestAvatarId(UsernamePassword(b"alice", b"x"))
    assert len(run.running) == 1
    second_seen = outcome(second)
    second.cancel()
    assert second_seen[0].check(CancelledError)
    run.running[0][0].callback(True)
    assert outcome(first) == [b"alice"]
    assert len(run.running) == 1  # the cancelled one never ran


def test_cancelled_while_running_keeps_its_slot_until_done() -> None:
    run = ByHand()
    checker = auth.AccountsChecker(make_accounts({"alice": "pw"}), run, at_once=1)
    first = checker.requestAvatarId(UsernamePassword(b"alice", b"pw"))
    seen = outcome(first)
    first.cancel()
    assert seen[0].check(CancelledError)
    second = checker.requestAvatarId(UsernamePassword(b"alice", b"pw"))
    assert len(run.running) == 1  # the slot is still the cancelled check's
    run.running[0][0].callback(True)  # its answer finds nobody, and frees the slot
    assert len(run.running) == 2
    run.running[1][0].callback(True)
    assert outcome(second) == [b"alice"]
