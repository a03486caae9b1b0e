"""
The node-to-node file transport (chatnet.cluster.filepull) over real
loopback sockets: a grant pulled once, intact, with backpressure; wrong,
replayed and expired grants refused; a cut or a cancel fails both sides.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
from support import grants
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock

from chatnet import codec
from chatnet.cluster.filepull import FileServer, Pull, PullFailed

WAIT = 10.0


grants_settled = grants.grants_settled  # autouse: no grant left failed unconsumed


class Outbox:
    """A connection's outgoing side: records frames; writes them at once or when told."""

    def __init__(self, hold: bool = False) -> None:
        self.frames: list[bytes] = []
        self.hold = hold
        self.held: list[Callable[[], None]] = []
        self.closed = False
        self.grew: Deferred[None] | None = None

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        self.frames.append(data)
        if on_written is not None:
            if self.hold:
                self.held.append(on_written)
            else:
                on_written()
        self.wake()

    def wake(self) -> None:
        """Wake :meth:`more_than` on the next turn, once the pull acted on what it got."""
        if self.grew is not None:
            d, self.grew = self.grew, None
            reactor.callLater(0, d.callback, None)

    def send_file(self, transfer: int, file: Any) -> Deferred[bytes]:
        raise NotImplementedError

    def cancel_file(self, transfer: int) -> None:
        raise NotImplementedError

    def release(self) -> None:
        held, self.held = self.held, []
        for on_written in held:
            on_written()

    def data(self) -> bytes:
        out = b""
        for frame in self.frames:
            assert int.from_bytes(frame[:4], "big") == len(frame) - 4
            assert frame[4] == 0
            out += frame[4 + codec.DATA_HEADER:]
        return out

    async def changed(self) -> None:
        """Until the next frame (or :meth:`wake`), bounded."""
        self.grew = Deferred()
        await self.grew.addTimeout(WAIT, reactor)

    async def more_than(self, count: int) -> None:
        while len(self.frames) <= count:
            await self.changed()


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[tuple[FileServer, int]]:
    s = FileServer(reactor)
    _, port = await s.listen(reactor, "tcp:0:interface=127.0.0.1")
    yield s, port
    await s.stop()


def content(size: int) -> tuple[io.BytesIO, bytes, str]:
    data = os.urandom(size)
    return io.BytesIO(data), data, hashlib.sha256(data).hexdigest()


async def outcome(d: Deferred[Any]) -> Any:
    """What ``d`` fires with, or the exception it fails with (bounded wait)."""
    try:
        return await d.addTimeout(WAIT, reactor)
    except Exception as e:
        return e


@pytest_twisted.ensureDeferred
async def test_pull_intact(server: tuple[FileServer, int]) -> None:
    """A 1 MiB file arrives whole, as data frames of its transfer; both sides succeed."""
    s, port = server
    file, data, sha = content(1024 * 1024 + 123)
    g = s.grant(7, "bob", "b", file, len(data), sha)
    out = Outbox()
    digest = await outcome(Pull(g.message(), out).start(reactor, "127.0.0.1", port))
    assert digest == sha
    assert await outcome(g.deferred) == b""
    assert out.data() == data
    assert {int.from_bytes(f[5:9], "big") for f in out.frames} == {7}
    assert s.grants == {}


@pytest_twisted.ensureDeferred
async def test_empty_file(server: tuple[FileServer, int]) -> None:
    """An empty file: no data frame, both sides succeed."""
    s, port = server
    file, data, sha = content(0)
    g = s.grant(1, "bob", "b", file, 0, sha)
    out = Outbox()
    assert await outcome(Pull(g.message(), out).start(reactor, "127.0.0.1", port)) == sha
    assert await outcome(g.deferred) == b""
    assert out.frames == []


@pytest_twisted.ensureDeferred
async def test_wrong_token_refused_and_grant_kept(server: tuple[FileServer, int]) -> None:
    """A wrong token is refused; the grant stays for the right one."""
    s, port = server
    file, data, sha = content(1000)
    g = s.grant(3, "bob", "b", file, len(data), sha)
    forged = {**g.message(), "token": "0" * 64}
    failed = await outcome(Pull(forged, Outbox()).start(reactor, "127.0.0.1", port))
    assert isinstance(failed, PullFailed) and "wrong token" in str(failed)
    for field, value in (("addressee", "mallory"), ("node", "c"), ("expires", g.expires + 60)):
        bent = {**g.message(), field: value}
        failed = await outcome(Pull(bent, Outbox()).start(reactor, "127.0.0.1", port))
        assert isinstance(failed, PullFailed), field
    assert s.refused == 4
    assert not g.deferred.called
    out = Outbox()
    assert await outcome(Pull(g.message(), out).start(reactor, "127.0.0.1", port)) == sha
    assert out.data() == data
    assert await outcome(g.deferred) == b""  # the puller's "written" reached the server


@pytest_twisted.ensureDeferred
async def test_grant_is_single_use(server: tuple[FileServer, int]) -> None:
    """Once pulled, the same grant is refused."""
    s, port = server
    file, data, sha = content(5000)
    g = s.grant(4, "bob", "b", file, len(data), sha)
    assert await outcome(Pull(g.message(), Outbox()).start(reactor, "127.0.0.1", port)) == sha
    again = await outcome(Pull(g.message(), Outbox()).start(reactor, "127.0.0.1", port))
    assert isinstance(again, PullFailed) and "no such grant" in str(again)


@pytest_twisted.ensureDeferred
async def test_grant_unpulled_expires() -> None:
    """A grant nobody pulls fails when it expires, and is refused afterwards."""
    clock = Clock()
    s = FileServer(clock, ttl=30)
    _, port = await s.listen(reactor, "tcp:0:interface=127.0.0.1")
    try:
        file, data, sha = content(10)
        g = s.grant(5, "bob", "b", file, len(data), sha)
        clock.advance(29)
        assert not g.deferred.called
        clock.advance(2)
        failed = await outcome(g.deferred)
        assert isinstance(failed, PullFailed) and "not pulled" in str(failed)
        late = await outcome(Pull(g.message(), Outbox()).start(reactor, "127.0.0.1", port))
        assert isinstance(late, PullFailed)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_backpressure_stops_reading(server: tuple[FileServer, int]) -> None:
    """
    While the addressee's connection writes nothing, the pull takes about a
    window and stops; once written, the rest follows, intact.
    """
    s, port = server
    file, data, sha = content(8 * 1024 * 1024)
    g = s.grant(9, "bob", "b", file, len(data), sha)
    out = Outbox(hold=True)
    pull = Pull(g.message(), out, window=2 * codec.MAX_DATA)
    d = pull.start(reactor, "127.0.0.1", port)
    await out.more_than(2)
    assert pull.protocol is not None and pull.protocol.paused
    assert len(out.frames) == 3  # past the window of two: paused, and no frame more
    assert pull.unwritten == 3 * codec.MAX_DATA
    # The server read no more than the sockets could buffer, far short of the file.
    assert file.tell() < len(data) // 2

    def ended(result: object) -> object:
        out.wake()
        return result

    d.addBoth(ended)
    while not d.called:
        if out.held:
            out.release()
        else:
            await out.changed()
    assert await outcome(d) == sha
    assert out.data() == data
    assert await outcome(g.deferred) == b""


@pytest_twisted.ensureDeferred
async def test_cut_connection_fails_both_sides(server: tuple[FileServer, int]) -> None:
    """The serving side's connection cut midway: the pull fails, and so does the grant."""
    s, port = server
    file, data, sha = content(2 * 1024 * 1024)
    g = s.grant(11, "bob", "b", file, len(data), sha)
    out = Outbox(hold=True)
    d = Pull(g.message(), out).start(reactor, "127.0.0.1", port)
    await out.more_than(0)
    assert g.protocol is not None
    g.protocol.link.abortConnection()
    failed = await outcome(d)
    assert isinstance(failed, PullFailed) and "lost" in str(failed)
    assert isinstance(await outcome(g.deferred), PullFailed)


@pytest_twisted.ensureDeferred
async def test_puller_gone_fails_grant(server: tuple[FileServer, int]) -> None:
    """The addressee goes away (the pull is stopped): the grant fails."""
    s, port = server
    file, data, sha = content(2 * 1024 * 1024)
    g = s.grant(12, "bob", "b", file, len(data), sha)
    out = Outbox(hold=True)
    pull = Pull(g.message(), out)
    d = pull.start(reactor, "127.0.0.1", port)
    await out.more_than(0)
    pull.stop("the addressee left")
    assert isinstance(await outcome(d), CancelledError)
    failed = await outcome(g.deferred)
    assert isinstance(failed, PullFailed) and "lost" in str(failed)


@pytest_twisted.ensureDeferred
async def test_cancel_tells_the_puller(server: tuple[FileServer, int]) -> None:
    """The serving node cancels midway: the puller is told (cancelled), not cut."""
    s, port = server
    file, data, sha = content(2 * 1024 * 1024)
    g = s.grant(13, "bob", "b", file, len(data), sha)
    out = Outbox(hold=True)
    d = Pull(g.message(), out).start(reactor, "127.0.0.1", port)
    await out.more_than(0)
    s.cancel(13)
    assert isinstance(await outcome(g.deferred), CancelledError)
    failed = await outcome(d)
    assert isinstance(failed, CancelledError)
    assert "serving node" in str(failed)


@pytest_twisted.ensureDeferred
async def test_hash_mismatch_fails(server: tuple[FileServer, int]) -> None:
    """Bytes that do not hash to the spool's sha256 fail the pull and the grant."""
    s, port = server
    file, data, _ = content(100_000)
    g = s.grant(14, "bob", "b", file, len(data), "0" * 64)
    failed = await outcome(Pull(g.message(), Outbox()).start(reactor, "127.0.0.1", port))
    assert isinstance(failed, PullFailed) and "sha256 mismatch" in str(failed)
    refused = await outcome(g.deferred)
    assert isinstance(refused, PullFailed) and "sha256 mismatch" in str(refused)


@pytest_twisted.ensureDeferred
async def test_nobody_listening() -> None:
    """No server at the address: the pull fails, saying where it tried."""
    s = FileServer(reactor)
    _, port = await s.listen(reactor, "tcp:0:interface=127.0.0.1")
    await s.stop()
    failed = await outcome(Pull({"transfer": 1, "addressee": "bob", "node": "b", "expires": 0,
                                 "token": "", "size": 1}, Outbox()).start(
        reactor, "127.0.0.1", port))
    assert isinstance(failed, PullFailed) and f"127.0.0.1:{port}" in str(failed)


pytestmark = pytest.mark.filterwarnings("error")
