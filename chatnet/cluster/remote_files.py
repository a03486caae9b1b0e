"""
Files to users on other nodes (docs/cluster.rst, "Files between nodes").

A transfer lives on its sender's node (the *owning* node: upload, spool,
slots, the :class:`~chatnet.transfers.TransferManager`), whoever its
addressee is.  For an addressee on another node, a
:class:`~chatnet.cluster.routing.RemoteUser`, the manager runs unchanged:
its control frames (``file-offer``, ``file-start``, ``file-end``...) are
forwarded by the router, and its bytes go through :class:`RemoteFiles`,
the router's ``files``:

* on the owning node, :meth:`RemoteFiles.send_file` grants the addressee's
  node one pull of the spool file (:mod:`.filepull`) and sends it the grant
  (``files.pull``); the stream's Deferred fires once that node has written
  every byte to the addressee's connection, and fails with
  :class:`~chatnet.deliveries.StreamFailed` when the pull fails (the
  transfer then fails with ``recipient-offline``, the addressee told);
* on the addressee's node, ``files.pull`` starts a :class:`~.filepull.Pull`
  into the local user's connection.

The addressee's requests about a transfer of another node (``accept``,
``decline``, ``received``) reach :class:`ClusterTransfers`, the hub's
transfers on a cluster node: it knows those transfers from what the owning
node says as it tells the addressee (``files.told``, sent just before each
``file-offer``, ``file-pending``, ``file-start`` or ``file-aborted`` frame,
through the same ordered inbox) and forwards the request there
(``files.accept``, ``files.decline``, ``files.received``).

When the owning node goes away (lost or stopped), the addressee's node
tells its users of what was started or announced to them (``file-aborted``,
``sender-disconnected``) and forgets the offers; when an addressee goes
away, its node's users list does, and the owning node's manager fails the
transfer (``recipient-offline``) as for a local user.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import frames
from chatnet.cluster import routing
from chatnet.cluster.filepull import FileServer, Pull, PullFailed
from chatnet.deliveries import StreamFailed
from chatnet.errors import ChatError, ErrorCode, FailReason
from chatnet.frames import DataFrame, Event
from chatnet.model import User
from chatnet.names import free_name
from chatnet.transfer_state import State, Transfer
from chatnet.transfers import TransferManager

log = Logger()

#: Pulled deliveries remembered for their receipt: at most, and for how long.
RECEIPTS_KEPT = 1000
RECEIPT_SECONDS = 600.0
#: Seconds the addressee's node waits, after a pull failed, for the owning
#: node to fail the transfer (and tell the addressee) before it presumes that
#: node dead and tells the addressee itself: a lease (10 s) and some.
ORPHAN_TIMEOUT = 15.0
#: Seconds between two looks at the lease of a node whose pull was cut.
CHECK_INTERVAL = 0.5
#: Seconds the addressee's node waits, after the owning node left cleanly,
#: for the frames it sent while stopping before it tells what is left.
SETTLE = 5.0

_TOLD = {frames.FileOffer: "offer", frames.FilePending: "pending",
         frames.FileStart: "start", frames.FileAborted: "aborted", frames.FileEnd: "end"}


class Router(Protocol):
    """What :class:`RemoteFiles` needs of :class:`~chatnet.cluster.routing.Router`."""

    @property
    def node_id(self) -> str: ...

    def send(self, node: str, kind: str, body: dict[str, Any]) -> Deferred[None]: ...

    def handle(self, kind: str, handler: Callable[[str, dict[str, Any]], None]) -> None: ...


class Known:
    """A transfer of another node to a local user, as far as this node knows it."""

    __slots__ = ("number", "owner", "user", "state", "pull", "sha256", "ended_at", "orphan_call",
                 "shown", "end_sent")

    def __init__(self, number: int, owner: str, user: User, state: str) -> None:
        self.number = number
        self.owner = owner
        self.user = user
        #: ``offer``, ``pending`` or ``start`` (what the addressee was told last)
        self.state = state
        self.pull: Pull | None = None
        #: The hash of what was written to the user, once pulled whole.
        self.sha256: str | None = None
        self.ended_at = 0.0
        #: Whether the owning node has sent ``file-end`` (told first).
        self.end_sent = False
        #: When the addressee is told, should the owning node say nothing.
        self.orphan_call: Any = None
        #: The name the file was offered under (``file-offer``).
        self.shown: str | None = None


class RemoteTicket:
    """A transfer of another node offered to a local user (for ``accept``/``decline``)."""

    __slots__ = ("id", "owner", "user")

    def __init__(self, number: int, owner: str, user: User) -> None:
        self.id = number
        self.owner = owner
        self.user = user

    @property
    def position(self) -> int:
        return 0


async def serve(router: routing.Router, manager: TransferManager,
                local_user: Callable[[str], User | None], endpoint: str,
                advertise: str | None, reactor: Any,
                orphan_timeout: float = ORPHAN_TIMEOUT) -> RemoteFiles:
    """
    Serve this node's spool files to the other nodes on ``endpoint`` (a
    server endpoint string, ``--cluster-files``) and make the result the
    router's ``files``, watching ``manager``'s deliveries.

    :param advertise: the host other nodes connect to (``--cluster-advertise``);
        ``None``: the address listened on, which must then not be a wildcard.
    :raises ValueError: a wildcard address and nothing to advertise.
    """
    server = FileServer(reactor)
    host, port = await server.listen(reactor, endpoint)
    if advertise is None:
        if host in _WILDCARDS:
            await server.stop()
            raise ValueError(f"the files endpoint {endpoint!r} listens on every address; "
                             "say which one the other nodes use (--cluster-advertise)")
        advertise = host
    files = RemoteFiles(router, manager, local_user, server, (advertise, port), reactor,
                        orphan_timeout, alive=_lease_reader(router))
    files.install()
    router.files = files
    return files


_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def _lease_reader(router: routing.Router) -> Callable[[str], Deferred[bool]]:
    """``alive(node)``: whether ``node``'s lease key exists in Redis."""
    node = router.node

    def alive(other: str) -> Deferred[bool]:
        d: Deferred[bool] = node.redis.command("EXISTS", node.keys.lease(other))
        d.addCallback(lambda n: int(n) > 0)
        return d

    return alive


def _remote_node(user: User) -> str | None:
    node = getattr(user, "node", None)
    return node if isinstance(node, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class RemoteFiles:
    """
    One node's side of the files between nodes: the router's ``files`` (the
    owning side) and the pulls into local users (the addressee's side).

    :param router: the node's router; :meth:`install` registers the handlers.
    :param manager: the node's transfer manager (sizes and hashes of the
        files it streams, and the requests forwarded to it).
    :param local_user: the local user of a folded name, or None.
    :param server: serves this node's spool files to the others.
    :param advertise: ``(host, port)`` other nodes pull from (the server's).
    :param reactor: for connecting and timers.
    :param orphan_timeout: see :data:`ORPHAN_TIMEOUT`.
    :param alive: ``alive(node)``: whether ``node``'s lease is live (read in
        Redis), asked every ``check_interval`` seconds after a pull from it
        was cut, so that the addressee hears of a dead owning node within its
        lease; ``None``: only :meth:`node_gone` and the orphan timeout tell.
    """

    def __init__(self, router: Router, manager: TransferManager,
                 local_user: Callable[[str], User | None], server: FileServer,
                 advertise: tuple[str, int], reactor: Any,
                 orphan_timeout: float = ORPHAN_TIMEOUT,
                 alive: Callable[[str], Deferred[bool]] | None = None,
                 check_interval: float = CHECK_INTERVAL) -> None:
        self.orphan_timeout = orphan_timeout
        self.alive = alive
        self.check_interval = check_interval
        self.router = router
        self.manager = manager
        self.local_user = local_user
        self.server = server
        self.advertise = advertise
        self.reactor = reactor
        #: Transfers of other nodes to local users, by (folded user, number).
        self.known: dict[tuple[str, int], Known] = {}
        #: Of those, the ones pulled whole, oldest first (for receipts).
        self._pulled: OrderedDict[tuple[str, int], Known] = OrderedDict()

    def install(self) -> None:
        """Register the message handlers and watch the manager's deliveries."""
        handle = self.router.handle
        handle("files.pull", self._pull)
        handle("files.failed", self._failed)
        handle("files.told", self._told)
        handle("files.accept", self._accept)
        handle("files.decline", self._decline)
        handle("files.received", self._received)
        self.manager.watch = self

    @property
    def node_id(self) -> str:
        return self.router.node_id

    def listening(self, port: IListeningPort) -> None:
        """
        The file server listens on ``port`` (for a service that listens
        itself, with ``server.factory()``): advertise its port number, with
        the host given at construction.
        """
        self.server.port = port
        self.advertise = (self.advertise[0], int(cast(Any, port.getHost()).port))

    def stop(self) -> Deferred[None]:
        """
        Stop the pulls into local users and the serving (after the manager's
        ``shutdown``, which has cancelled every stream, telling each puller).
        """
        for key in list(self.known):
            self._forget(key)
        return self.server.stop()

    # the owning node: streams to remote addressees (routing.FileTransport)

    def send_file(self, node: str, user: str, transfer: int, file: BinaryIO) -> Deferred[bytes]:
        """Let ``node`` pull ``file`` for ``user``; fires once it wrote every byte."""
        t = self.manager.active.get(transfer)
        size = t.size if t is not None else 0
        sha256 = t.sha256 if t is not None else ""
        g = self.server.grant(transfer, user, node, file, size, sha256)
        host, port = self.advertise
        self.router.send(node, "files.pull", {**g.message(), "host": host, "port": port}) \
            .addErrback(lambda f: self.server.fail(
                transfer, f"the grant could not be sent: {f.getErrorMessage()}"))
        d: Deferred[bytes] = Deferred()

        def failed(f: Failure) -> None:
            if f.check(CancelledError):
                d.errback(f)
            else:
                d.errback(StreamFailed(FailReason.RECIPIENT_OFFLINE,
                                       f"to {user} on node {node}: {f.getErrorMessage()}"))

        g.deferred.addCallbacks(d.callback, failed)
        return d

    def cancel_file(self, node: str, user: str, transfer: int) -> None:
        self.server.cancel(transfer)

    def telling(self, user: User, event: Event) -> bool:
        """
        Before a file event goes to a remote addressee, tell its node first
        (``files.told``).  ``file-offer`` and ``file-start`` that node writes
        itself, naming the file against what its user already received
        (True: not to be forwarded).
        """
        node = _remote_node(user)
        what = _TOLD.get(type(event)) if node is not None else None
        if node is None or what is None:
            return False
        if isinstance(event, frames.FileOffer | frames.FileStart):
            self._tell(node, user, event.transfer, what, {
                "from": event.sender, "name": event.original or event.name,
                "size": event.size})
            return True
        self._tell(node, user, cast(Any, event).transfer, what)
        return False

    def names_elsewhere(self, user: User) -> bool:
        """A remote addressee's node names its files (collisions are per connection)."""
        return _remote_node(user) is not None

    def ended(self, t: Transfer, delivered: bool) -> None:
        """A delivery is over; if it failed without a word to its remote addressee, say so."""
        node = _remote_node(t.recipient)
        if node is not None and not delivered:
            self._tell(node, t.recipient, t.id, "over")

    def _tell(self, node: str, user: User, number: int, what: str,
              file: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"transfer": number, "user": user.key, "what": what}
        if file is not None:
            body["file"] = file
        self.router.send(node, "files.told", body).addErrback(self._lost, "files.told")

    def _failed(self, node: str, body: dict[str, Any]) -> None:
        number = _int(body.get("transfer"))
        g = self.server.grants.get(number) if number is not None else None
        if g is not None and g.node == node:
            self.server.fail(g.transfer, f"the pulling node: {body.get('why')}")

    def _owned(self, node: str, body: dict[str, Any], t: Transfer | None) -> Transfer | None:
        """``t`` if it is addressed to ``body``'s user on ``node``."""
        if t is None or t.recipient.key != body.get("user") or _remote_node(t.recipient) != node:
            return None
        return t

    def _accept(self, node: str, body: dict[str, Any]) -> None:
        number = _int(body.get("transfer"))
        t = self._owned(node, body, self.manager.active.get(number) if number is not None else None)
        if t is not None and t.state is State.OFFERED:
            self.manager.accept(t)

    def _decline(self, node: str, body: dict[str, Any]) -> None:
        number = _int(body.get("transfer"))
        t = self._owned(node, body, self.manager.active.get(number) if number is not None else None)
        if t is not None and t.state is State.OFFERED:
            self.manager.fail(t, FailReason.DECLINED, tell_recipient=False)

    def _received(self, node: str, body: dict[str, Any]) -> None:
        number = _int(body.get("transfer"))
        t = self._owned(node, body, self.manager.receipts.get(number) if number is not None else None)
        if t is None:
            log.info("cluster files: receipt of transfer {n} from {node}: no such delivery",
                     n=number, node=node)
            return
        try:
            self.manager.receipt(t.recipient, t.id, body.get("sha256"))
        except ChatError as e:
            log.info("cluster files: receipt of transfer {n}: {why}", n=number, why=e)

    # the addressee's node

    def _told(self, node: str, body: dict[str, Any]) -> None:
        number, what = _int(body.get("transfer")), body.get("what")
        user = self.local_user(str(body.get("user", "")))
        if number is None or user is None:
            return
        key = (user.key, number)
        if what in ("aborted", "over"):
            self._forget(key)
            return
        known = self.known.get(key)
        if what == "end":
            if known is not None and known.owner == node:
                known.end_sent = True
            return
        if known is None or known.owner != node or known.user is not user:
            self._forget(key)
            known = self.known[key] = Known(number, node, user, str(what))
        else:
            known.state = str(what)
        file = body.get("file")
        if isinstance(file, dict):
            self._show(known, file)

    def _show(self, known: Known, file: dict[str, Any]) -> None:
        """
        Write ``file-offer`` or ``file-start`` to the local addressee, the
        file named against the names it already received in this connection
        (and those offered to it), as a single server does.
        """
        user, number = known.user, known.number
        sender, base, size = str(file.get("from")), str(file.get("name")), file.get("size")
        if not isinstance(size, int):
            return
        taken = user.received_names
        if known.state == "offer":
            offered = {k.shown for k in self.known.values()
                       if k.user is user and k.state == "offer" and k is not known}
            name = free_name(base, lambda n: n in taken or n in offered)
            known.shown = name
            event: Event = frames.FileOffer(number, sender, name, size,
                                            base if name != base else None)
        else:
            name = known.shown if known.shown and known.shown not in taken else \
                free_name(base, taken.__contains__)
            taken.add(name)
            if name != base:
                self.manager.audit(
                    "FILE", f"name conflict: {user.name} already received {base}; "
                            f"transfer #{number} renamed to {name}",
                    {"transfer": number, "name": base, "from": sender, "to": user.name,
                     "renamed": name})
            event = frames.FileStart(number, sender, name, size, base if name != base else None)
        user.outbox.send(event.wire())

    def _pull(self, node: str, body: dict[str, Any]) -> None:
        number = _int(body.get("transfer"))
        user = self.local_user(str(body.get("addressee", "")))
        host, port = body.get("host"), _int(body.get("port"))
        if number is None:
            return
        key = (user.key if user is not None else "", number)
        known = self.known.get(key)
        if user is None or known is None or known.owner != node or not isinstance(host, str) \
                or port is None:
            why = "the addressee is not here" if user is None else "no such delivery here"
            self.router.send(node, "files.failed", {"transfer": number, "why": why}) \
                .addErrback(self._lost, "files.failed")
            return
        if known.pull is not None:
            known.pull.stop("pulled again")
        pull = known.pull = Pull(body, user.outbox)
        pull.start(self.reactor, host, port).addCallbacks(
            self._pulled_whole, self._pull_failed, callbackArgs=(key, pull),
            errbackArgs=(key, pull, node))

    def _pulled_whole(self, sha256: str, key: tuple[str, int], pull: Pull) -> None:
        known = self.known.get(key)
        if known is None or known.pull is not pull:
            return
        known.pull = None
        known.sha256 = sha256
        known.ended_at = self.reactor.seconds()
        self._pulled[key] = known
        self._forget_old()

    def _pull_failed(self, failure: Failure, key: tuple[str, int], pull: Pull, node: str) -> None:
        known = self.known.get(key)
        if known is not None and known.pull is pull:
            known.pull = None
        if failure.check(CancelledError):
            return  # the serving node cancelled (it tells the addressee), or we stopped it
        failure.trap(PullFailed)
        log.info("cluster files: pull of transfer {n} from {node} failed: {why}",
                 n=key[1], node=node, why=failure.getErrorMessage())
        # The owning node fails the transfer (the serving side saw the
        # connection end) and tells the addressee; if it is gone, node_gone
        # does, or, should nobody say it is gone, the orphan timer.
        self.router.send(node, "files.failed", {"transfer": key[1],
                                                "why": failure.getErrorMessage()}) \
            .addErrback(self._lost, "files.failed")
        if known is not None and known.pull is None and known.orphan_call is None:
            deadline = self.reactor.seconds() + self.orphan_timeout
            known.orphan_call = self.reactor.callLater(self.check_interval, self._check_owner,
                                                       key, known, deadline)

    def _check_owner(self, key: tuple[str, int], known: Known, deadline: float) -> None:
        """
        After a cut pull, while the owning node has not failed the transfer:
        is it alive (its lease)?  Gone: tell the addressee now, as the reap
        would; alive, or no answer: look again, until ``deadline``.
        """
        known.orphan_call = None
        if self.known.get(key) is not known or known.sha256 is not None:
            return
        if self.reactor.seconds() >= deadline:
            self._orphaned(key, known, f"no word from it {self.orphan_timeout:g}s after "
                                       "the pull failed")
            return
        if self.alive is None:
            self._again(key, known, deadline)
            return

        def answered(alive: bool) -> None:
            if self.known.get(key) is not known:
                return
            if alive:
                self._again(key, known, deadline)
            else:
                self._orphaned(key, known, "its lease ran out")

        def unanswered(failure: Failure) -> None:
            log.info("cluster files: lease of node {node} not read: {why}",
                     node=known.owner, why=failure.getErrorMessage())
            if self.known.get(key) is known:
                self._again(key, known, deadline)

        self.alive(known.owner).addCallbacks(answered, unanswered)

    def _again(self, key: tuple[str, int], known: Known, deadline: float) -> None:
        known.orphan_call = self.reactor.callLater(self.check_interval, self._check_owner,
                                                   key, known, deadline)

    def _orphaned(self, key: tuple[str, int], known: Known, why: str) -> None:
        log.info("cluster files: transfer {n} from node {node}: {why}; that node is "
                 "presumed gone", n=known.number, node=known.owner, why=why)
        self._abort(known)
        self._forget(key)

    def node_gone(self, node: str, clean: bool = False) -> None:
        """
        ``node`` left the cluster: tell local users of its transfers started
        or announced to them (``file-aborted``, ``sender-disconnected``) and
        forget its offers.  After a clean stop, wait :data:`SETTLE` seconds
        first: what it sent while stopping (``file-aborted``, ``shutdown``)
        comes through its inbox, which may be behind.
        """
        if clean:
            self.reactor.callLater(SETTLE, self.node_gone, node)
            return
        for key, known in list(self.known.items()):
            if known.owner != node:
                continue
            self._abort(known)
            self._forget(key)

    @staticmethod
    def _abort(known: Known) -> None:
        """Tell the addressee the sender's side is gone, if it was told of the file."""
        told = known.state in ("start", "accepted") or (
            known.state in ("pending", "offer") and known.user.notices)
        if told and not known.end_sent:  # (pulled whole or not: no file-end came)
            known.user.outbox.send(frames.FileAborted(
                known.number, FailReason.SENDER_DISCONNECTED.value).wire())

    def user_gone(self, user: User) -> None:
        """A local user went offline: stop its pulls, forget its transfers."""
        for key in [k for k, known in self.known.items() if known.user is user]:
            self._forget(key)

    def _forget(self, key: tuple[str, int]) -> None:
        known = self.known.pop(key, None)
        self._pulled.pop(key, None)
        if known is not None and known.orphan_call is not None:
            if known.orphan_call.active():
                known.orphan_call.cancel()
            known.orphan_call = None
        if known is not None and known.pull is not None:
            pull, known.pull = known.pull, None
            pull.stop("the delivery is over")

    def _forget_old(self) -> None:
        oldest = self.reactor.seconds() - RECEIPT_SECONDS
        pulled = self._pulled
        while pulled:
            key, known = next(iter(pulled.items()))
            if len(pulled) <= RECEIPTS_KEPT and known.ended_at >= oldest:
                return
            self._forget(key)

    # what ClusterTransfers asks

    def offered(self, user: User, number: int) -> Known | None:
        known = self.known.get((user.key, number))
        return known if known is not None and known.state == "offer" else None

    def forward(self, known: Known, kind: str, **fields: object) -> None:
        body = {"transfer": known.number, "user": known.user.key, **fields}
        self.router.send(known.owner, kind, body).addErrback(self._lost, kind)

    def receipt(self, user: User, number: int, sha256: object) -> bool | None:
        """
        A ``received`` for a transfer of another node: forwarded, and whether
        ``sha256`` matches what was written; None if none is known here.

        :raises ChatError: ``bad-transfer``: known, but not pulled whole yet.
        """
        key = (user.key, number)
        known = self.known.get(key)
        if known is None:
            return None
        if known.sha256 is None:
            raise ChatError(ErrorCode.BAD_TRANSFER,
                            f"Transfer {number} has not ended; confirm it after file-end")
        self.forward(known, "files.received", sha256=sha256)
        self._forget(key)
        return isinstance(sha256, str) and sha256.lower() == known.sha256

    def _lost(self, failure: Failure, what: str) -> None:
        log.info("cluster files: {what} not sent: {why}", what=what,
                 why=failure.getErrorMessage())


class ClusterTransfers:
    """
    The hub's transfers on a cluster node (:class:`~chatnet.interfaces.Transfers`):
    the local manager's, and the addressee's requests about transfers of
    other nodes, forwarded there.
    """

    def __init__(self, manager: TransferManager, files: RemoteFiles) -> None:
        self.manager = manager
        self.files = files

    def offer(
        self, sender: User, recipient: User, name: str, size: int,
    ) -> Transfer | Deferred[Transfer]:
        return self.manager.offer(sender, recipient, name, size)

    def receive(self, sender: User, frame: DataFrame) -> None:
        self.manager.receive(sender, frame)

    def find_own(self, sender: User, number: object) -> Transfer:
        return self.manager.find_own(sender, number)

    def find_offer(self, recipient: User, number: object) -> Transfer | RemoteTicket:
        try:
            return self.manager.find_offer(recipient, number)
        except ChatError:
            n = _int(number)
            known = self.files.offered(recipient, n) if n is not None else None
            if known is None:
                raise
            return RemoteTicket(known.number, known.owner, recipient)

    def accept(self, t: Transfer | RemoteTicket) -> None:
        if isinstance(t, Transfer):
            self.manager.accept(t)
            return
        known = self.files.offered(t.user, t.id)
        if known is not None:
            known.state = "accepted"
            self.files.forward(known, "files.accept")

    def receipt(self, recipient: User, number: object, sha256: object) -> bool:
        try:
            return self.manager.receipt(recipient, number, sha256)
        except ChatError:
            n = _int(number)
            verified = self.files.receipt(recipient, n, sha256) if n is not None else None
            if verified is None:
                raise
            return verified

    def fail(self, t: Transfer | RemoteTicket, reason: FailReason,
             tell_recipient: bool = True) -> None:
        if isinstance(t, Transfer):
            self.manager.fail(t, reason, tell_recipient)
            return
        known = self.files.offered(t.user, t.id)  # only its addressee declines it
        if known is not None and reason is FailReason.DECLINED:
            self.files.forward(known, "files.decline")
            self.files._forget((t.user.key, t.id))

    def user_gone(self, user: User) -> None:
        if _remote_node(user) is None:
            self.files.user_gone(user)
        self.manager.user_gone(user)

    def shutdown(self) -> int:
        return self.manager.shutdown()

    @property
    def running(self) -> int:
        return self.manager.running

    @property
    def waiting(self) -> int:
        return self.manager.waiting

    @property
    def delivering(self) -> int:
        return self.manager.delivering

    @property
    def deliveries_waiting(self) -> int:
        return self.manager.deliveries_waiting

    @property
    def spool_used(self) -> int:
        return self.manager.spool_used

    @property
    def spool_capacity(self) -> int:
        return self.manager.spool_capacity
