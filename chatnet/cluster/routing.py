"""
Frames and messages between nodes: each node has an inbox, the
pseudo-room ``~<node id>``, sequenced and gap-filled like a room
(:mod:`.messages`), so what one node sends another arrives exactly once and
in order while Redis is reachable.

* :class:`RemoteUser` stands, on this node, for a user connected to another
  node; its :class:`RemoteOutbox` forwards frames to that node (and file
  streams to :attr:`Router.files`), so the transfer manager serves a remote
  addressee exactly as a local one.
* :class:`Router` sends ``(kind, body)`` messages to a node's inbox and
  hands those arriving here to the handler registered for their kind.

An inbox entry is ``<kind>\\n<rest>``: ``frame\\n<user>\\n<ack>\\n<frame
JSON>`` for a frame to a user of the node (``ack``: ``<node>:<number>`` to
report once written, or empty), otherwise ``<kind>\\n<JSON body>`` with the
sender's node id as ``from``.

Thin: Redis I/O through :class:`.state.Node`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.logger import Logger

from chatnet.model import User
from chatnet.validation import fold

if TYPE_CHECKING:
    from chatnet.cluster.state import Node

log = Logger()

_LENGTH = struct.Struct(">I")

#: ``handler(from_node, body)`` for a message of one kind.
Handler = Callable[[str, dict[str, Any]], None]


def inbox(node_id: str) -> str:
    """The pseudo-room of ``node_id``'s inbox (no room name has a ``~``)."""
    return "~" + fold(node_id)


#: The pseudo-room every node follows: names freed, nodes come and gone.
EVERYONE = "~all"


def framed(frame: str) -> bytes:
    """A frame's JSON text as the length-prefixed bytes a connection sends."""
    payload = frame.encode()
    return _LENGTH.pack(len(payload)) + payload


class FileTransport(Protocol):
    """How file bytes go to an addressee on another node (:mod:`.remote_files`)."""

    def send_file(self, node: str, user: str, transfer: int, file: BinaryIO) -> Deferred[bytes]:
        """Stream ``file`` to ``user`` on ``node`` as data frames of ``transfer``."""
        ...

    def cancel_file(self, node: str, user: str, transfer: int) -> None:
        """Stop streaming ``transfer`` to ``user`` on ``node``."""


class Router:
    """Messages and frames from this node to others, and the handlers of those arriving."""

    def __init__(self, node: Node, local_user: Callable[[str], User | None]) -> None:
        self.node = node
        self._local_user = local_user
        self._handlers: dict[str, Handler] = {}
        #: The file transport between nodes (``None``: files to users on
        #: other nodes fail with ``recipient-offline``).
        self.files: FileTransport | None = None
        #: Called with a folded username whenever a user anywhere in the
        #: cluster goes offline (logout, or its node reaped).
        self.on_user_gone: list[Callable[[str], None]] = []
        self._acks: dict[int, Callable[[], None]] = {}
        self._next_ack = 1
        self.handle("written", self._written)

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def handle(self, kind: str, handler: Handler) -> None:
        """Call ``handler(from_node, body)`` for each ``kind`` message arriving here."""
        self._handlers[kind] = handler

    def send(self, node: str, kind: str, body: dict[str, Any]) -> Deferred[None]:
        """
        Put ``{kind, body}`` in ``node``'s inbox (after everything this node
        put there before).  Fails with ``Unavailable`` or ``Fenced``.
        """
        payload = f"{kind}\n" + json.dumps({**body, "from": self.node_id})
        return self._publish(node, payload)

    def send_frame(
        self, node: str, user: str, data: bytes, on_written: Callable[[], None] | None = None
    ) -> Deferred[None]:
        """Forward complete frames ``data`` to ``user`` on ``node``."""
        ack = ""
        if on_written is not None:
            number = self._next_ack
            self._next_ack += 1
            self._acks[number] = on_written
            ack = f"{self.node_id}:{number}"
        frames = []
        view = memoryview(data)
        while view:  # one inbox entry per frame: each is JSON text
            (length,) = _LENGTH.unpack_from(view)
            frames.append(bytes(view[4:4 + length]).decode())
            view = view[4 + length:]
        last = len(frames) - 1
        sent = [
            self._publish(node, f"frame\n{fold(user)}\n{ack if i == last else ''}\n{frame}")
            for i, frame in enumerate(frames)
        ]
        done: Deferred[None] = gatherResults(sent, consumeErrors=True).addCallback(lambda _: None)
        return done

    def _publish(self, node: str, payload: str) -> Deferred[None]:
        async def publish() -> None:
            await self.node.publish(inbox(node), payload)

        d = Deferred.fromCoroutine(publish())
        return d

    def received(self, data: str) -> None:
        """An entry of this node's inbox, in order."""
        kind, _, rest = data.partition("\n")
        if kind == "frame":
            user_key, _, rest = rest.partition("\n")
            ack, _, frame = rest.partition("\n")
            user = self._local_user(user_key)
            on_written = self._acknowledge(ack) if ack else None
            if user is not None:
                user.outbox.send(framed(frame), on_written)
            return
        handler = self._handlers.get(kind)
        if handler is None:
            log.warn("cluster: inbox message of unknown kind {kind!r}", kind=kind)
            return
        try:
            body = json.loads(rest)
        except ValueError:
            log.warn("cluster: unreadable inbox message {data!r}", data=data[:200])
            return
        try:
            handler(str(body.pop("from", "")), body)
        except Exception:
            log.failure("cluster: while handling a {kind} message", kind=kind)

    def _acknowledge(self, ack: str) -> Callable[[], None]:
        node, _, number = ack.rpartition(":")

        def written() -> None:
            self.send(node, "written", {"ack": int(number)}).addErrback(
                lambda f: log.info("cluster: write receipt to {node} lost: {why}",
                                   node=node, why=f.getErrorMessage()))
        return written

    def _written(self, node: str, body: dict[str, Any]) -> None:
        callback = self._acks.pop(int(body.get("ack", 0)), None)
        if callback is not None:
            callback()

    def user_gone(self, user_key: str) -> None:
        for callback in list(self.on_user_gone):
            try:
                callback(user_key)
            except Exception:
                log.failure("cluster: while telling that {user} went", user=user_key)


class RemoteOutbox:
    """The outbox of a :class:`RemoteUser`: frames to its node, files through the router."""

    def __init__(self, router: Router, node: str, user: str) -> None:
        self.router = router
        self.node = node
        self.user = user

    def send(self, data: bytes, on_written: Callable[[], None] | None = None) -> None:
        self.router.send_frame(self.node, self.user, data, on_written).addErrback(
            lambda f: log.info("cluster: frames for {user} on {node} lost: {why}",
                               user=self.user, node=self.node, why=f.getErrorMessage()))

    def send_file(self, transfer: int, file: BinaryIO) -> Deferred[bytes]:
        files = self.router.files
        if files is None:
            return fail(ConnectionError(f"no file transport to node {self.node}"))
        return files.send_file(self.node, self.user, transfer, file)

    def cancel_file(self, transfer: int) -> None:
        files = self.router.files
        if files is not None:
            files.cancel_file(self.node, self.user, transfer)


class RemoteUser(User):
    """A user connected to another node, as this node sees it."""

    __slots__ = ("node",)

    def __init__(self, name: str, node: str, router: Router, flags: str = "") -> None:
        super().__init__(name, RemoteOutbox(router, node, fold(name)), peer=f"node {node}")
        self.node = node
        self.offers = "o" in flags
        self.notices = "n" in flags

    def __repr__(self) -> str:
        return f"<RemoteUser {self.name} on {self.node}>"
