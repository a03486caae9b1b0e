"""
Files between two in-process nodes (chatnet.cluster.remote_files): each
node has its own transfer manager, spool and file server on real loopback
sockets; the router between them is an in-memory one that keeps each
destination's order, as the real one does.  The sender is on node a, the
addressee on node b.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed

from chatnet import codec
from chatnet.cluster.filepull import FileServer
from chatnet.cluster.remote_files import (
    ClusterTransfers,
    RemoteFiles,
    RemoteTicket,
    serve,
)
from chatnet.cluster.routing import FileTransport, RemoteUser, Router
from chatnet.config import Settings
from chatnet.errors import ChatError, FailReason
from chatnet.frames import DataFrame
from chatnet.interfaces import Transfers
from chatnet.model import User
from chatnet.spool import Spool
from chatnet.transfers import TransferManager

WAIT = 10.0


class Outbox:
    """A local connection: frames decoded as they are written; writes held on request."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.data = bytearray()
        self.hold = False
        self.held: list[Callable[[], None]] = []
        self.closed = False
        self._waiting: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        view = memoryview(data)
        while view:
            n = int.from_bytes(view[:4], "big")
            payload = bytes(view[4:4 + n])
            view = view[4 + n:]
            if payload[:1] == b"\x00":
                self.data += payload[codec.DATA_HEADER:]
            else:
                self.events.append(json.loads(payload))
        if on_written is not None:
            if self.hold:
                self.held.append(on_written)
            else:
                on_written()
        self._check()

    def send_file(self, transfer: int, file: Any) -> Deferred[bytes]:
        """A local delivery (a sender on this node): written at once."""
        self.data += file.read()
        return succeed(b"")

    def cancel_file(self, transfer: int) -> None:
        pass

    def release(self) -> None:
        self.hold = False
        held, self.held = self.held, []
        for on_written in held:
            on_written()

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def _check(self) -> None:
        for item in list(self._waiting):
            check, d = item
            if check():
                self._waiting.remove(item)
                reactor.callLater(0, d.callback, None)

    async def until(self, check: Callable[[], bool], what: str) -> None:
        if check():
            return
        d: Deferred[None] = Deferred()
        self._waiting.append((check, d))
        try:
            await d.addTimeout(WAIT, reactor)
        except Exception:
            raise AssertionError(f"timed out waiting for {what}; got {self.types()}") from None

    async def event(self, kind: str) -> dict[str, Any]:
        await self.until(lambda: kind in self.types(), kind)
        return next(e for e in self.events if e["type"] == kind)


class Net:
    """In-memory routers of several nodes: each destination's messages in order."""

    def __init__(self) -> None:
        self.routers: dict[str, FakeRouter] = {}
        self.cut: set[str] = set()  # nodes that are gone: nothing reaches or leaves them


class FakeRouter:
    def __init__(self, net: Net, node_id: str, users: Mapping[str, User]) -> None:
        self.net = net
        self._node_id = node_id
        self.users = users
        self.handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {}
        self.files: FileTransport | None = None
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        net.routers[node_id] = self

    @property
    def node_id(self) -> str:
        return self._node_id

    def handle(self, kind: str, handler: Callable[[str, dict[str, Any]], None]) -> None:
        self.handlers[kind] = handler

    def _deliver(self, node: str, action: Callable[[FakeRouter], None]) -> None:
        def run() -> None:
            if node not in self.net.cut and self._node_id not in self.net.cut:
                action(self.net.routers[node])
        reactor.callLater(0, run)  # calls of one turn run in order: each destination's order

    def send(self, node: str, kind: str, body: dict[str, Any]) -> Deferred[None]:
        body = json.loads(json.dumps(body))  # what Redis would carry
        self.sent.append((node, kind, body))
        me = self._node_id
        self._deliver(node, lambda r: r.handlers[kind](me, body))
        return succeed(None)

    def send_frame(self, node: str, user: str, data: bytes,
                   on_written: Callable[[], None] | None = None) -> Deferred[None]:
        def write(r: FakeRouter) -> None:
            local = r.users.get(user)
            if local is None:
                return
            ack = None if on_written is None else (
                lambda: r._deliver(self._node_id, lambda _: on_written()))
            local.outbox.send(data, ack)
        self._deliver(node, write)
        return succeed(None)


class Node:
    def __init__(self, net: Net, node_id: str, folder: Path, settings: Settings) -> None:
        self.id = node_id
        self.users: dict[str, User] = {}
        self.audit: list[str] = []
        self.spool = Spool(folder)
        self.manager = TransferManager(settings, self.spool, reactor,
                                       lambda c, t, f=None: self.audit.append(f"[{c}] {t}"))
        self.router = FakeRouter(net, node_id, self.users)
        self.server = FileServer(reactor)

    async def start(self) -> None:
        address = await self.server.listen(reactor, "tcp:0:interface=127.0.0.1")
        self.files = RemoteFiles(self.router, self.manager, self.users.get, self.server,
                                 address, reactor)
        self.files.install()
        self.router.files = self.files
        self.transfers = ClusterTransfers(self.manager, self.files)
        check: Transfers[Any] = self.transfers  # the session's interface
        assert check is self.transfers

    def local(self, name: str, offers: bool = False) -> tuple[User, Outbox]:
        out = Outbox()
        user = User(name, out)
        user.offers = offers
        self.users[user.key] = user
        return user, out

    def remote(self, name: str, node: str, flags: str = "") -> User:
        return RemoteUser(name, node, cast(Router, self.router), flags)

    def leave(self, user: User) -> None:
        del self.users[user.key]
        self.transfers.user_gone(user)

    async def stop(self) -> None:
        self.manager.shutdown()
        await self.server.stop()
        self.spool.close()


class Pair:
    def __init__(self, net: Net, a: Node, b: Node) -> None:
        self.net, self.a, self.b = net, a, b
        self.alice, self.alice_out = a.local("alice")

    def bob(self, offers: bool = False) -> tuple[User, Outbox, User]:
        """bob on node b, and as node a sees him."""
        bob, out = self.b.local("bob", offers)
        return bob, out, self.a.remote("bob", "b", "o" if offers else "")

    async def upload(self, to: User, data: bytes) -> int:
        t = self.a.manager.offer(self.alice, to, "f.bin", len(data))
        assert not isinstance(t, Deferred)  # local slots answer at once
        await self.alice_out.until(lambda: any(
            e["type"] == "upload-start" and e["transfer"] == t.id for e in self.alice_out.events),
            "upload-start")
        for i in range(0, len(data), codec.MAX_DATA):
            self.a.manager.receive(self.alice, DataFrame(t.id, data[i:i + codec.MAX_DATA]))
        return t.id


@pytest_twisted.async_yield_fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    net = Net()
    settings = Settings(offer_timeout=30)
    a = Node(net, "a", tmp_path / "a", settings)
    b = Node(net, "b", tmp_path / "b", settings)
    await a.start()
    await b.start()
    yield Pair(net, a, b)
    await a.stop()
    await b.stop()


def content(size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, hashlib.sha256(data).hexdigest()


@pytest_twisted.ensureDeferred
async def test_file_to_another_node_intact_then_receipt(pair: Pair) -> None:
    """file-start, the bytes, file-end with the hash; file-delivered; the receipt goes back."""
    bob, bob_out, remote_bob = pair.bob()
    data, sha = content(3 * 1024 * 1024 - 7)
    number = await pair.upload(remote_bob, data)
    end = await bob_out.event("file-end")
    assert bob_out.types() == ["file-start", "file-end"]
    assert bob_out.events[0]["transfer"] == number and bob_out.events[0]["from"] == "alice"
    assert end == {"type": "file-end", "transfer": number, "sha256": sha}
    assert bytes(bob_out.data) == data
    delivered = await pair.alice_out.event("file-delivered")
    assert delivered["to"] == "bob"
    assert pair.b.transfers.receipt(bob, number, sha) is True
    received = await pair.alice_out.event("file-received")
    assert received == {"type": "file-received", "transfer": number, "to": "bob",
                        "verified": True}
    assert pair.a.manager.active == {} and pair.a.server.grants == {}
    with pytest_raises_bad_transfer():
        pair.b.transfers.receipt(bob, number, sha)  # once


@pytest_twisted.ensureDeferred
async def test_receipt_before_the_bytes_is_refused(pair: Pair) -> None:
    """received while the file is still streaming: bad-transfer (has not ended)."""
    bob, bob_out, remote_bob = pair.bob()
    bob_out.hold = True
    data, sha = content(1024 * 1024)
    number = await pair.upload(remote_bob, data)
    await bob_out.until(lambda: len(bob_out.data) > 0, "data")
    with pytest_raises_bad_transfer("has not ended"):
        pair.b.transfers.receipt(bob, number, sha)
    bob_out.release()
    await bob_out.event("file-end")
    assert bytes(bob_out.data) == data


@pytest_twisted.ensureDeferred
async def test_offer_accepted_across_nodes(pair: Pair) -> None:
    """An offer to a user on another node; its accept goes to the owning node; the file follows."""
    bob, bob_out, remote_bob = pair.bob(offers=True)
    data, sha = content(200_000)
    number = await pair.upload(remote_bob, data)
    offer = await bob_out.event("file-offer")
    assert offer["transfer"] == number
    ticket = pair.b.transfers.find_offer(bob, number)
    assert isinstance(ticket, RemoteTicket) and ticket.owner == "a"
    pair.b.transfers.accept(ticket)
    end = await bob_out.event("file-end")
    assert end["sha256"] == sha and bytes(bob_out.data) == data
    await pair.alice_out.event("file-delivered")


@pytest_twisted.ensureDeferred
async def test_offer_declined_across_nodes(pair: Pair) -> None:
    """decline goes to the owning node: the sender gets file-failed declined; no file-aborted."""
    bob, bob_out, remote_bob = pair.bob(offers=True)
    data, _ = content(1000)
    number = await pair.upload(remote_bob, data)
    await bob_out.event("file-offer")
    ticket = pair.b.transfers.find_offer(bob, number)
    pair.b.transfers.fail(ticket, FailReason.DECLINED, tell_recipient=False)
    failed = await pair.alice_out.event("file-failed")
    assert failed["reason"] == "declined"
    with pytest_raises_bad_transfer():
        pair.b.transfers.find_offer(bob, number)
    assert "file-aborted" not in bob_out.types()
    assert pair.a.manager.active == {}


@pytest_twisted.ensureDeferred
async def test_unknown_numbers_stay_bad_transfer(pair: Pair) -> None:
    """accept and received for a number nobody offered: bad-transfer, as on one node."""
    bob, _, _ = pair.bob()
    with pytest_raises_bad_transfer():
        pair.b.transfers.find_offer(bob, 99)
    with pytest_raises_bad_transfer():
        pair.b.transfers.receipt(bob, 99, "00")


@pytest_twisted.ensureDeferred
async def test_sender_cancels_midway(pair: Pair) -> None:
    """The sender cancels while bytes flow: the addressee gets file-aborted cancelled, once."""
    bob, bob_out, remote_bob = pair.bob()
    bob_out.hold = True
    data, _ = content(2 * 1024 * 1024)
    number = await pair.upload(remote_bob, data)
    await bob_out.until(lambda: len(bob_out.data) > 0, "data")
    t = pair.a.transfers.find_own(pair.alice, number)
    pair.a.transfers.fail(t, FailReason.CANCELLED)
    bob_out.release()
    aborted = await bob_out.event("file-aborted")
    assert aborted["reason"] == "cancelled"
    assert len(bob_out.data) < len(data)
    assert (await pair.alice_out.event("file-failed"))["reason"] == "cancelled"
    await bob_out.until(lambda: not pair.b.files.known, "node b to forget the transfer")
    assert bob_out.types().count("file-aborted") == 1


@pytest_twisted.ensureDeferred
async def test_cut_link_fails_the_transfer_and_tells_both(pair: Pair) -> None:
    """The node-to-node connection cut midway: file-failed and file-aborted, recipient-offline."""
    bob, bob_out, remote_bob = pair.bob()
    bob_out.hold = True
    data, _ = content(2 * 1024 * 1024)
    number = await pair.upload(remote_bob, data)
    await bob_out.until(lambda: len(bob_out.data) > 0, "data")
    grant = pair.a.server.grants[number]
    assert grant.protocol is not None
    grant.protocol.link.abortConnection()
    aborted = await bob_out.event("file-aborted")
    assert aborted["reason"] == "recipient-offline"
    assert (await pair.alice_out.event("file-failed"))["reason"] == "recipient-offline"
    assert pair.a.manager.active == {}


@pytest_twisted.ensureDeferred
async def test_addressee_leaves_midway(pair: Pair) -> None:
    """The addressee logs out on its node: its pull stops; the owning node fails the transfer."""
    bob, bob_out, remote_bob = pair.bob()
    bob_out.hold = True
    data, _ = content(2 * 1024 * 1024)
    await pair.upload(remote_bob, data)
    await bob_out.until(lambda: len(bob_out.data) > 0, "data")
    pair.b.leave(bob)
    pair.a.transfers.user_gone(remote_bob)  # what the cluster's "gone" does on node a
    failed = await pair.alice_out.event("file-failed")
    assert failed["reason"] == "recipient-offline"
    assert pair.a.server.grants == {} and pair.b.files.known == {}


@pytest_twisted.ensureDeferred
async def test_sender_node_lost_midway(pair: Pair) -> None:
    """The owning node dies midway: the addressee's node says sender-disconnected, once."""
    bob, bob_out, remote_bob = pair.bob()
    bob_out.hold = True
    data, _ = content(2 * 1024 * 1024)
    number = await pair.upload(remote_bob, data)
    await bob_out.until(lambda: len(bob_out.data) > 0, "data")
    [known] = pair.b.files.known.values()
    assert known.pull is not None
    pulling = known.pull.deferred  # its failure is handled: it fires with None
    pair.net.cut.add("a")  # nothing from a any more...
    grant = pair.a.server.grants[number]
    assert grant.protocol is not None
    grant.protocol.link.abortConnection()  # ...and its sockets die
    await pulling.addTimeout(WAIT, reactor)
    assert known.pull is None and known.sha256 is None
    assert "file-aborted" not in bob_out.types()  # not yet: a may still say why
    pair.b.files.node_gone("a")
    aborted = await bob_out.event("file-aborted")
    assert aborted == {"type": "file-aborted", "transfer": number,
                       "reason": "sender-disconnected"}
    pair.b.files.node_gone("a")
    assert bob_out.types().count("file-aborted") == 1 and pair.b.files.known == {}


@pytest_twisted.ensureDeferred
async def test_sender_node_lost_after_every_byte_but_before_file_end(pair: Pair) -> None:
    """
    Every byte pulled and written, then the owning node dies before its
    file-end came: the addressee is told file-aborted (sender-disconnected),
    not left waiting for a file-end that will never come.
    """
    bob, bob_out, remote_bob = pair.bob()
    data, _ = content(512 * 1024)
    number = await pair.upload(remote_bob, data)
    await bob_out.until(lambda: len(bob_out.data) > 0, "data")
    pair.net.cut.add("a")  # nothing from a any more: its file-end is lost
    [known] = pair.b.files.known.values()
    if known.pull is not None:
        await known.pull.deferred.addTimeout(WAIT, reactor)
    assert known.sha256 is not None and not known.end_sent  # pulled whole, no file-end
    assert len(bob_out.data) == len(data)
    pair.b.files.node_gone("a")
    aborted = await bob_out.event("file-aborted")
    assert aborted == {"type": "file-aborted", "transfer": number,
                       "reason": "sender-disconnected"}
    assert "file-end" not in bob_out.types()


@pytest_twisted.ensureDeferred
async def test_sender_node_lost_after_file_end_says_nothing_more(pair: Pair) -> None:
    """The owning node dies after its file-end: the addressee hears nothing more."""
    bob, bob_out, remote_bob = pair.bob()
    data, _ = content(64 * 1024)
    await pair.upload(remote_bob, data)
    await bob_out.event("file-end")
    pair.b.files.node_gone("a")
    assert bob_out.types() == ["file-start", "file-end"]


@pytest_twisted.ensureDeferred
async def test_sender_node_silent_after_a_cut(pair: Pair) -> None:
    """
    The pull is cut and the owning node says nothing (dead, and not yet
    reaped): after the orphan timeout the addressee is told, once.
    """
    bob, bob_out, remote_bob = pair.bob()
    bob_out.hold = True
    pair.b.files.orphan_timeout = 0.05
    pair.b.files.check_interval = 0.01
    data, _ = content(2 * 1024 * 1024)
    number = await pair.upload(remote_bob, data)
    await bob_out.until(lambda: len(bob_out.data) > 0, "data")
    pair.net.cut.add("a")
    grant = pair.a.server.grants[number]
    assert grant.protocol is not None
    grant.protocol.link.abortConnection()
    aborted = await bob_out.event("file-aborted")
    assert aborted["reason"] == "sender-disconnected"
    assert pair.b.files.known == {}
    pair.b.files.node_gone("a")  # the reap, later: nothing more
    assert bob_out.types().count("file-aborted") == 1


@pytest_twisted.ensureDeferred
async def test_sender_node_lease_run_out_after_a_cut(pair: Pair) -> None:
    """
    The pull is cut; the owning node's lease is read until it has run out:
    then the addressee is told (before the orphan timeout).
    """
    bob, bob_out, remote_bob = pair.bob()
    bob_out.hold = True
    asked: list[str] = []

    def alive(node: str) -> Deferred[bool]:
        asked.append(node)
        return succeed(len(asked) < 3)  # the lease runs out at the third look

    files = pair.b.files
    files.alive, files.check_interval, files.orphan_timeout = alive, 0.01, 60.0
    data, _ = content(2 * 1024 * 1024)
    number = await pair.upload(remote_bob, data)
    await bob_out.until(lambda: len(bob_out.data) > 0, "data")
    pair.net.cut.add("a")
    grant = pair.a.server.grants[number]
    assert grant.protocol is not None
    grant.protocol.link.abortConnection()
    aborted = await bob_out.event("file-aborted")
    assert aborted["reason"] == "sender-disconnected"
    assert asked == ["a", "a", "a"] and files.known == {}


@pytest_twisted.ensureDeferred
async def test_sender_node_lost_forgets_offers(pair: Pair) -> None:
    """An offer from a node that dies is forgotten: accept is then bad-transfer."""
    bob, bob_out, remote_bob = pair.bob(offers=True)
    data, _ = content(1000)
    number = await pair.upload(remote_bob, data)
    await bob_out.event("file-offer")
    pair.b.files.node_gone("a")
    with pytest_raises_bad_transfer():
        pair.b.transfers.find_offer(bob, number)
    assert "file-aborted" not in bob_out.types()


class pytest_raises_bad_transfer:
    """``with pytest_raises_bad_transfer(): ...`` expects ChatError bad-transfer."""

    def __init__(self, text: str = "") -> None:
        self.text = text

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: object) -> bool:
        assert isinstance(value, ChatError), f"expected bad-transfer, got {value!r}"
        assert value.code.value == "bad-transfer" and self.text in str(value)
        return True


@pytest_twisted.ensureDeferred
async def test_serve_wires_the_router(tmp_path: Path) -> None:
    """serve() listens, advertises the address (or the one given), and becomes router.files."""
    spool = Spool(tmp_path / "s")
    manager = TransferManager(Settings(), spool, reactor, lambda c, t, f=None: None)
    router = Router(cast(Any, SimpleNamespace(node_id="a")), lambda key: None)
    files = await serve(router, manager, lambda key: None, "tcp:0:interface=127.0.0.1", None,
                        reactor)
    try:
        assert router.files is files and manager.watch is files
        assert files.advertise[0] == "127.0.0.1" and files.advertise[1] > 0
    finally:
        await files.stop()
    try:
        await serve(router, manager, lambda key: None, "tcp:0", None, reactor)
    except ValueError as e:
        assert "--cluster-advertise" in str(e)
    else:
        raise AssertionError("a wildcard address without --cluster-advertise was taken")
    files = await serve(router, manager, lambda key: None, "tcp:0", "10.1.2.3", reactor)
    assert files.advertise[0] == "10.1.2.3"
    await files.stop()
    spool.close()


@pytest_twisted.ensureDeferred
async def test_names_collide_across_nodes_as_on_one(pair: Pair) -> None:
    """
    f.bin from a user of the addressee's node, then twice from another
    node: f.bin, f_1.bin, f_2.bin, renamed (and logged) by the addressee's node.
    """
    bob, bob_out, remote_bob = pair.bob()
    carol, carol_out = pair.b.local("carol")
    t = pair.b.manager.offer(carol, bob, "f.bin", 3)
    assert not isinstance(t, Deferred)
    await carol_out.event("upload-start")
    pair.b.manager.receive(carol, DataFrame(t.id, b"abc"))
    for i in (1, 2):
        number = await pair.upload(remote_bob, b"x" * (10 * i))
        await bob_out.until(lambda n=number: any(  # type: ignore[misc]
            e["type"] == "file-end" and e["transfer"] == n for e in bob_out.events), "file-end")
    starts = [(e["name"], e.get("original")) for e in bob_out.events if e["type"] == "file-start"]
    assert starts == [("f.bin", None), ("f_1.bin", "f.bin"), ("f_2.bin", "f.bin")]
    conflicts = [line for line in pair.b.audit if "name conflict" in line]
    assert len(conflicts) == 2 and "bob already received f.bin" in conflicts[0]
    assert not [line for line in pair.a.audit if "name conflict" in line]


@pytest_twisted.ensureDeferred
async def test_offers_named_by_the_addressee_node(pair: Pair) -> None:
    """Two offers of f.bin from another node: f.bin and f_1.bin; accepted, started so."""
    bob, bob_out, remote_bob = pair.bob(offers=True)
    first = await pair.upload(remote_bob, b"one")
    second = await pair.upload(remote_bob, b"two")
    await bob_out.until(lambda: bob_out.types().count("file-offer") == 2, "two offers")
    offers = [(e["name"], e.get("original")) for e in bob_out.events if e["type"] == "file-offer"]
    assert offers == [("f.bin", None), ("f_1.bin", "f.bin")]
    for number in (second, first):
        pair.b.transfers.accept(pair.b.transfers.find_offer(bob, number))
    await bob_out.until(lambda: bob_out.types().count("file-end") == 2, "both files")
    starts = {e["transfer"]: e["name"] for e in bob_out.events if e["type"] == "file-start"}
    assert starts == {first: "f.bin", second: "f_1.bin"}
