"""
Chat stays live during an upload over a slow link: the client's real core
through a throttling proxy (:mod:`support.slowlink`, about 200 KB/s) to a
live server.  A chat line typed during the upload reaches the others, and a
``/cancel`` takes effect, within 0.5 s; upload progress counts bytes that
left the machine, not bytes handed to the socket.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest_twisted
from support.slowlink import RATE, SlowLink
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from chatnet.client.commands import parse
from chatnet.client.core import ClientCore
from chatnet.client.events import ClientEvent, TransferEvent
from chatnet.client.protocol import connect
from integration.helpers import LiveServer

#: The contract's target for chat and cancel during an upload over the link.
LIVE = 0.5


def when(core: ClientCore, condition: Callable[[ClientEvent], bool], timeout: float = 20) -> Deferred[float]:
    """Fires with the reactor's time at the first event of ``core`` meeting ``condition``."""
    d: Deferred[float] = Deferred()

    def listener(event: ClientEvent) -> None:
        if not d.called and condition(event):
            d.callback(reactor.seconds())

    core.subscribe(listener)
    return d.addTimeout(timeout, reactor)


@pytest_twisted.ensureDeferred
async def test_chat_and_cancel_stay_live_during_an_upload(tmp_path: Path) -> None:
    server = LiveServer(tmp_path)
    link = SlowLink(reactor, server.port)
    link.listen()
    core = ClientCore(reactor, str(tmp_path / "dl"))
    try:
        bob = await server.client("bob", room="r")
        await connect(reactor, core, "127.0.0.1", link.port)
        await core.login("alice")
        await core.execute(parse("/join r"))
        path = tmp_path / "big.bin"
        path.write_bytes(os.urandom(3 * 1024 * 1024))  # 15 s over the link
        upload = await core.send_file(str(path), "bob")
        # Well into the upload: the kernel and Twisted would have swallowed
        # the whole file by now without the small backlog.
        await when(core, lambda e: isinstance(e, TransferEvent) and e.transfer is upload
                   and upload.done_bytes > 2 * RATE)
        (up,) = [link_.up for link_ in link.links]
        assert up is not None
        # Progress is bytes that left alice's machine: what the link took,
        # give or take what its socket buffer holds (no megabytes).
        assert -16_384 < upload.done_bytes - up.taken < 64 * 1024, (upload.done_bytes, up.taken)
        assert upload.done_bytes < upload.size / 2

        said = reactor.seconds()
        await core.execute(parse("hello during the upload"))
        await bob.event("message", text="hello during the upload")
        chat = reactor.seconds() - said

        asked = reactor.seconds()
        failed = when(core, lambda e: isinstance(e, TransferEvent) and e.kind == "failed")
        core.cancel(upload.transfer or 0)
        cancel = await failed - asked
        print(f"over {RATE} B/s: chat line {chat:.3f}s, cancel {cancel:.3f}s "
              f"(after {upload.done_bytes} of {upload.size} bytes)")
        assert chat < LIVE, chat
        assert cancel < LIVE, cancel
        assert upload.reason == "cancelled"
    finally:
        core.close()
        await server.stop()
        await link.stop()




@pytest_twisted.ensureDeferred
async def test_chat_stays_live_during_a_download(tmp_path: Path) -> None:
    """
    The other way: the server's data frames to a client behind the slow link.
    The server keeps 64 KiB frames and Twisted's 64 KiB buffer (loopback file
    speed needs them), so a chat line waits about 1 s here (3 s without the
    low-water mark, and megabytes' worth before the kernel's buffer was
    bounded); the bound guards that.
    """
    server = LiveServer(tmp_path)
    link = SlowLink(reactor, server.port)
    link.listen()
    core = ClientCore(reactor, str(tmp_path / "dl"))
    try:
        alice = await server.client("alice", room="r")
        await connect(reactor, core, "127.0.0.1", link.port)
        await core.login("bob")
        await core.execute(parse("/join r"))
        data = os.urandom(3 * 1024 * 1024)
        reply = await alice.request("sendfile", to="bob", name="big.bin", size=len(data))
        t = reply["transfer"]
        await alice.event("upload-start", transfer=t)
        for i in range(0, len(data), 65536):
            alice.send_data(t, data[i:i + 65536])
        await when(core, lambda e: isinstance(e, TransferEvent) and e.kind == "progress"
                   and e.transfer.done_bytes > 2 * RATE)
        said = reactor.seconds()
        heard = when(core, lambda e: getattr(getattr(e, "frame", None), "text", None) == "psst")
        alice.send(type="broadcast", id="m", text="psst")
        chat = await heard - said
        print(f"download over {RATE} B/s: chat line {chat:.3f}s")
        assert chat < 1.5, chat
    finally:
        core.close()
        await server.stop()
        await link.stop()
