"""Tests for :mod:`chatnet.client.link`: the reconnect glue on a Clock, in memory."""

from typing import Any

import pytest
from support import raw
from support.client_harness import result_of
from support.links import A, B, Net, opened
from twisted.internet.error import ConnectionDone

from chatnet.client.events import GaveUp, Reconnected, Reconnecting
from chatnet.client.link import CannotConnect


def test_open_tries_each_server_in_order(tmp_path: Any) -> None:
    """At start the first server that answers is used; none answering is CannotConnect."""
    net = Net(tmp_path, A, B)
    net.up = {B}
    opened(net)
    assert net.tried == [A, B] and net.link.server == B
    net = Net(tmp_path, A, B)
    net.up = set()
    with pytest.raises(CannotConnect) as info:
        opened(net)
    assert "cannot connect to b:2: connection refused" in info.value.message
    assert "every other server" in info.value.message


def test_reconnects_logs_in_and_rejoins(tmp_path: Any) -> None:
    """Lost: after the pause, connect, log in with the same name and password, rejoin."""
    net = Net(tmp_path, A)
    opened(net)
    net.login("alice", "pw")
    net.join("groupA")
    net.drop(ConnectionDone())
    assert net.link.reconnecting and net.link.state == "waiting"
    (waiting,) = net.of(Reconnecting)
    assert waiting.delay == 1.0 and "reconnecting to a:1 in 1.0 s" in waiting.text
    assert "the server closed the connection" in waiting.why
    assert net.link.status() == "DISCONNECTED, retry in 1.0 s (Ctrl+R now)"
    up = net.link.when_up()
    net.clock.advance(1.0)
    (login,) = net.requests()
    assert login == {"type": "login", "id": 1, "username": "alice", "password": "pw", "notices": True}
    net.protocol.dataReceived(raw.encode_frame(  # type: ignore[union-attr]
        {"type": "ok", "id": 1, "username": "alice", "server": "s", "limits": {}}))
    assert net.core.room is None  # until the join is answered
    net.answer("join", room="groupA", members=["alice", "bob"])
    (back,) = net.of(Reconnected)
    assert back.text == "reconnected to a:1 as alice, back in groupA"
    assert (net.core.room, net.core.members) == ("groupA", ["alice", "bob"])  # type: ignore[comparison-overlap]
    assert result_of(up) is True and net.link.state == "up" and net.link.status() is None


def test_refused_server_moves_to_the_next(tmp_path: Any) -> None:
    """Two servers, the first one gone: the second, without a pause."""
    net = Net(tmp_path, A, B)
    opened(net)
    net.login()
    net.up = {B}
    net.drop()
    net.clock.advance(1.0)
    assert net.tried == [A, A, B]
    assert "connection refused" in net.of(Reconnecting)[-1].why
    assert net.of(Reconnecting)[-1].delay == 0
    net.clock.advance(0)
    net.answer("login", username="alice", server="s", limits={})
    assert net.of(Reconnected)[0].text == "reconnected to b:2 as alice"


def test_name_still_taken_waits_and_says_so(tmp_path: Any) -> None:
    """The old session still has the name: close, say so, try again later."""
    net = Net(tmp_path, A)
    opened(net)
    net.login()
    net.drop()
    net.clock.advance(1.0)
    net.refuse("username-taken", "Username 'alice' is already taken")
    assert net.transport.disconnecting  # we close; the server then does
    net.drop(ConnectionDone())
    waiting = net.of(Reconnecting)[-1]
    assert "alice is still logged in on a:1" in waiting.why and waiting.delay == 5.0
    assert net.link.state == "waiting"
    net.clock.advance(5.0)
    net.answer("login", username="alice", server="s", limits={})
    assert net.link.state == "up"


def test_login_refused_gives_up(tmp_path: Any) -> None:
    """A password no longer accepted: give up, saying so."""
    net = Net(tmp_path, A)
    opened(net)
    net.login("alice", "pw")
    net.drop()
    up = net.link.when_up()
    net.clock.advance(1.0)
    net.refuse("auth-failed", "Wrong password")
    assert net.transport.disconnecting
    net.drop(ConnectionDone())
    (gave_up,) = net.of(GaveUp)
    assert gave_up.login_refused and "Wrong password" in gave_up.why
    assert result_of(up) is False and not net.link.reconnecting
    assert net.link.status() == "DISCONNECTED, gave up (/reconnect tries again)"

    # /reconnect after giving up tries again (the accounts may have been fixed)
    assert net.link.retry_now()
    net.clock.advance(0)
    status = net.link.status()
    assert status is not None and "gave up" not in status
    net.answer("login", username="alice", server="s", limits={})
    assert net.link.state == "up" and net.link.status() is None


def test_gives_up_after_the_limit(tmp_path: Any) -> None:
    net = Net(tmp_path, A, give_up_after=10.0)
    opened(net)
    net.login()
    net.up = set()
    net.drop()
    net.clock.pump([1, 2, 4, 8])
    (gave_up,) = net.of(GaveUp)
    assert "giving up: no working connection for" in gave_up.why and not gave_up.login_refused


def test_retry_now_and_stop(tmp_path: Any) -> None:
    """``/reconnect`` tries at once; stop() cancels the attempts."""
    net = Net(tmp_path, A)
    opened(net)
    net.login()
    assert not net.link.retry_now()  # connected: nothing to do
    net.up = set()
    net.drop()
    assert net.link.retry_now()
    net.clock.advance(0)
    assert net.tried == [A, A]
    net.link.stop()
    assert not net.link.reconnecting and not net.clock.getDelayedCalls()


def test_clean_exit_and_before_login_are_not_restored(tmp_path: Any) -> None:
    """Our own ``exit``, or a loss before logging in: no reconnect."""
    net = Net(tmp_path, A)
    opened(net)
    net.drop()
    assert not net.link.reconnecting and not net.of(Reconnecting)
    net = Net(tmp_path, A)
    opened(net)
    net.login()
    net.core.exit()
    net.answer("exit")
    net.drop(ConnectionDone())
    assert not net.link.reconnecting and not net.of(Reconnecting)


def test_no_reconnect(tmp_path: Any) -> None:
    net = Net(tmp_path, A)
    net.link.enabled = False
    opened(net)
    net.login()
    net.drop()
    assert not net.link.reconnecting and result_of(net.link.when_up()) is False


def test_upload_cut_is_failed_not_retried(tmp_path: Any) -> None:
    """An upload under way when the connection goes fails, and is not sent again."""
    net = Net(tmp_path, A)
    opened(net)
    net.login()
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    offered = net.core.send_file(str(path), "bob")
    net.answer("sendfile", transfer=7, position=0)
    upload = result_of(offered)
    net.drop()
    assert upload.state == "failed" and upload.reason == "connection lost"
    net.clock.advance(1.0)
    net.answer("login", username="alice", server="s", limits={})
    assert net.requests() == [] and net.link.state == "up"


def test_busy_server_is_tried_again(tmp_path: Any) -> None:
    """``rate-limited`` or ``server-full`` at the new login: a failed attempt, not the end."""
    net = Net(tmp_path, A, B)
    opened(net)
    net.login()
    net.drop()
    net.clock.advance(1.0)
    net.refuse("server-full", "The server is full")
    net.drop(ConnectionDone())
    waiting = net.of(Reconnecting)[-1]
    assert waiting.why == "logging in again was refused: The server is full"
    assert waiting.server == "b:2" and not net.of(GaveUp)


@pytest.mark.parametrize("host", ["a b", "x..y", "a" * 64 + ".example"])
def test_a_host_name_that_cannot_be_resolved_is_an_unknown_host(tmp_path: Any, host: str) -> None:
    """A malformed host name fails the connection as DNS would, so it is said, not a traceback."""
    from twisted.internet.error import DNSLookupError
    from twisted.internet.testing import MemoryReactorClock

    from chatnet.client.core import ClientCore
    from chatnet.client.link import cannot_connect
    from chatnet.client.protocol import connect
    from chatnet.client.reconnect import Server

    reactor = MemoryReactorClock()
    with pytest.raises(DNSLookupError) as info:
        result_of(connect(reactor, ClientCore(reactor, str(tmp_path / "dl")), host, 8080))
    assert cannot_connect(info.value, Server(host, 8080)) == (
        f"cannot connect to {host}:8080: unknown host {host!r}"
    )
