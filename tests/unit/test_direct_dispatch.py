"""
Direct dispatch (:func:`chatnet.fastpath.dispatch_directly`): the epoll
reactor's loop without a log context per ready descriptor, driven by hand on
a reactor object of its own (not the one the tests run on).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from twisted.internet import epollreactor
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from chatnet import fastpath

pytestmark = pytest.mark.skipif(not fastpath.DIRECT_DISPATCH, reason="needs Twisted's epoll reactor")


@implementer(IReadDescriptor)
class Reader:
    """Reads one end of a socket pair; can be told to fail on disconnect."""

    def __init__(self, sock: socket.socket, fail_on_lost: bool = False) -> None:
        self.sock = sock
        self.read: list[bytes] = []
        self.fail_on_lost = fail_on_lost

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "Reader,7,here"

    def doRead(self) -> Failure | None:
        data = self.sock.recv(100)
        if not data:
            return Failure(ConnectionDone())
        self.read.append(data)
        return None

    def connectionLost(self, reason: Failure) -> None:
        if self.fail_on_lost:
            raise RuntimeError("broken connectionLost")


@pytest.fixture
def reactor() -> Any:
    made = epollreactor.EPollReactor()
    yield made
    made._poller.close()


def test_only_twisteds_epoll_reactor_itself() -> None:
    """Other reactors (and subclasses, which may loop their own way) are left alone."""

    class Mine(epollreactor.EPollReactor):
        pass

    other = Mine()
    try:
        assert not fastpath.dispatch_directly(other)
        assert not fastpath.dispatches_directly(other)
    finally:
        other._poller.close()
    assert not fastpath.dispatch_directly(Clock())


def test_ready_descriptors_are_read(reactor: Any) -> None:
    """The loop reads what is ready, like Twisted's, and is applied once however asked."""
    assert fastpath.dispatch_directly(reactor) and fastpath.dispatch_directly(reactor)
    assert fastpath.dispatches_directly(reactor)
    assert "direct dispatch on" in fastpath.describe(True, reactor)
    left, right = socket.socketpair()
    with left, right:
        reader = Reader(left)
        reactor.addReader(reader)
        right.sendall(b"hello")
        reactor.doIteration(1.0)
        assert reader.read == [b"hello"]
        reactor.doIteration(0)  # nothing ready: nothing read
        assert reader.read == [b"hello"]
        reactor.removeReader(reader)


def test_an_escaping_error_is_logged_with_the_descriptors_prefix(
    reactor: Any, observe_errors: list[dict[str, Any]]
) -> None:
    """
    What escapes Twisted's handling is logged under the descriptor's log
    prefix, as before, and the loop goes on to the next descriptor.
    """
    fastpath.dispatch_directly(reactor)
    left, right = socket.socketpair()
    other, peer = socket.socketpair()
    with left, other, peer:
        broken = Reader(left, fail_on_lost=True)
        fine = Reader(other)
        reactor.addReader(broken)
        reactor.addReader(fine)
        right.close()  # the broken reader sees the end, and its connectionLost raises
        peer.sendall(b"still here")
        reactor.doIteration(1.0)
        reactor.removeReader(fine)
    assert fine.read == [b"still here"]
    errors = list(observe_errors)
    observe_errors.clear()  # expected
    [failure] = errors
    logged: Failure = failure.get("log_failure") or failure["failure"]
    assert logged.check(RuntimeError)
    assert failure.get("log_system", failure.get("system")) == "Reader,7,here"


def test_the_check_fails_when_twisted_changes_its_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A doPoll that is not the loop it replaces (new names in it) is not replaced."""

    def doPoll(self: Any, timeout: float | None) -> None:
        self.somethingNew(timeout)

    monkeypatch.setattr(epollreactor.EPollReactor, "doPoll", doPoll)
    assert not fastpath._direct_dispatch_works()
