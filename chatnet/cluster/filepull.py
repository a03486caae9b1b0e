"""
Files between nodes: the node that spooled an upload serves the file, once,
to the node of its addressee, which pulls it over a TCP connection of its
own and streams it into the addressee's connection as data frames
(docs/cluster.rst, "Files between nodes").

The bytes never pass through Redis.  What passes through Redis (the
router's messages) is a *grant*: the serving node's files address, the
transfer, the addressee, the pulling node, an expiry and a token,
``HMAC-SHA256(secret, "transfer|addressee|node|expires")``.  The token is
made and checked by the serving node alone, with a secret that never leaves
its process (:func:`new_secret`), so nothing secret is kept in Redis; a
grant is single-use (the first pull that presents it takes it) and expires.

The wire, over one connection per pull (32-bit length-prefixed frames, as
the client protocol; section 1 of PROTOCOL.md)::

    puller -> server  {"transfer", "addressee", "node", "expires", "token"}
    server -> puller  {"size", "sha256"}    or {"error": why}, then close
    server -> puller  data frames of the transfer, exactly as a client gets
                      them (0x00, transfer number, up to 64 KiB), then
                      {"end": true}         or {"cancelled": true}, then close
    puller -> server  {"written": true}     (every byte handed to the
                      addressee's connection, sha256 matching)
                      or {"error": why}

Backpressure all the way: the server reads the spool file only when its
TCP transport asks for more (a :class:`~chatnet.outbound.ChunkSender`, a
pull producer); the puller stops reading its connection while more than a
window of data frames waits unwritten in the addressee's connection (it
hands them over with ``send(data, on_written)``), so a slow addressee
slows the spool reads on the other node, and no node holds more than a
window plus the sockets' buffers of one file in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any, BinaryIO, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint, serverFromString
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from chatnet import codec
from chatnet.model import FileOutbox
from chatnet.outbound import ChunkSender

log = Logger()

#: Seconds a grant may wait for its pull.
GRANT_TTL = 60.0
#: Seconds a pulling connection may take to present its grant.
HANDSHAKE_TIMEOUT = 10.0
#: Bytes of data frames a pull may leave unwritten in the addressee's
#: connection before it stops reading (four frames).
WINDOW = 4 * codec.MAX_DATA
#: The longest control frame either side sends.
MAX_CONTROL = 4096


class PullFailed(Exception):
    """A pull did not hand every byte to the addressee's connection; the message says why."""


def new_secret() -> bytes:
    """A node's own token key (32 random bytes)."""
    return secrets.token_bytes(32)


def sign(secret: bytes, transfer: int, addressee: str, node: str, expires: int) -> str:
    """The token of a grant: ``transfer`` to ``addressee`` (folded) at ``node`` until ``expires``."""
    message = f"{transfer}|{addressee}|{node}|{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _control(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Framed(Int32StringReceiver):
    """Length-prefixed frames, with the typed calls this module makes."""

    paused: bool

    @property
    def link(self) -> Any:
        """The transport (a TCP one: a consumer and a push producer too)."""
        return self.transport

    def send(self, payload: bytes) -> None:
        self.link.write(len(payload).to_bytes(4, "big") + payload)

    def pause(self) -> None:
        self.paused = True
        self.link.pauseProducing()

    def resume(self) -> None:
        self.paused = False
        self.link.resumeProducing()
        cast(Any, self).dataReceived(b"")  # replays what was read while paused


def _parse(payload: bytes) -> dict[str, Any] | None:
    """A control frame's object, or None if it is none."""
    if not payload.startswith(b"{"):
        return None
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# ---------------------------------------------------------------- serving


class Grant:
    """One file a node may pull, once, before ``expires``."""

    __slots__ = ("transfer", "addressee", "node", "expires", "token", "file", "size",
                 "sha256", "deferred", "protocol", "expiry_call")

    def __init__(self, transfer: int, addressee: str, node: str, expires: int, token: str,
                 file: BinaryIO, size: int, sha256: str) -> None:
        self.transfer = transfer
        self.addressee = addressee
        self.node = node
        self.expires = expires
        self.token = token
        self.file = file
        self.size = size
        self.sha256 = sha256
        #: Fires when the puller reports every byte written; fails otherwise.
        self.deferred: Deferred[bytes] = Deferred()
        #: The connection serving it, once taken.
        self.protocol: _Serve | None = None
        self.expiry_call: IDelayedCall | None = None

    def message(self) -> dict[str, Any]:
        """What the pulling node needs (besides the server's address)."""
        return {"transfer": self.transfer, "addressee": self.addressee, "node": self.node,
                "expires": self.expires, "token": self.token, "size": self.size}


class FileServer:
    """
    The files one node serves to the others, and the listener serving them.

    :param clock: for expiries (``seconds()`` is compared with a grant's
        ``expires``, so give the reactor, or a Clock in tests).
    :param secret: the token key; a new random one by default.
    """

    def __init__(self, clock: IReactorTime, secret: bytes | None = None,
                 ttl: float = GRANT_TTL, handshake_timeout: float = HANDSHAKE_TIMEOUT) -> None:
        self.clock = clock
        self._secret = secret if secret is not None else new_secret()
        self.ttl = ttl
        self.handshake_timeout = handshake_timeout
        #: Grants not yet ended, by transfer number.
        self.grants: dict[int, Grant] = {}
        self.port: IListeningPort | None = None
        #: Refused pulls (for the audit and the tests).
        self.refused = 0

    # the grants

    def grant(self, transfer: int, addressee: str, node: str, file: BinaryIO, size: int,
              sha256: str) -> Grant:
        """
        Let ``node`` pull ``file`` (``size`` bytes hashing to ``sha256``) once,
        for the addressee ``addressee`` (folded), within the grant's life.
        """
        self.cancel(transfer)  # one delivery per transfer at a time
        expires = int(self.clock.seconds() + self.ttl) + 1
        token = sign(self._secret, transfer, addressee, node, expires)
        g = Grant(transfer, addressee, node, expires, token, file, size, sha256)
        self.grants[transfer] = g
        g.expiry_call = self.clock.callLater(expires - self.clock.seconds(), self._expired, g)
        return g

    def cancel(self, transfer: int) -> None:
        """Stop serving ``transfer``: the puller is told (``cancelled``); the grant's Deferred fails."""
        g = self.grants.get(transfer)
        if g is not None:
            self._end(g, Failure(CancelledError(f"transfer {transfer} cancelled")))

    def fail(self, transfer: int, why: str) -> None:
        """The pulling node says the pull failed (e.g. it could not connect)."""
        g = self.grants.get(transfer)
        if g is not None:
            self._end(g, Failure(PullFailed(why)))

    def stop(self) -> Deferred[None]:
        """Cancel every grant and stop listening."""
        for transfer in list(self.grants):
            self.cancel(transfer)
        port, self.port = self.port, None
        d = port.stopListening() if port is not None else None
        return d if d is not None else _done()

    def check(self, request: dict[str, Any]) -> Grant:
        """
        The grant ``request`` presents, taken (single use).

        :raises PullFailed: no such grant, already taken, expired, or a wrong token.
        """
        transfer = request.get("transfer")
        g = self.grants.get(transfer) if isinstance(transfer, int) else None
        if g is None:
            raise PullFailed("no such grant (unknown, used or expired)")
        fields = (request.get("addressee"), request.get("node"), request.get("expires"))
        token = request.get("token")
        if (fields != (g.addressee, g.node, g.expires) or not isinstance(token, str)
                or not hmac.compare_digest(token, sign(self._secret, g.transfer, g.addressee,
                                                       g.node, g.expires))):
            raise PullFailed("wrong token")
        if g.protocol is not None:
            raise PullFailed("grant already used")
        if self.clock.seconds() >= g.expires:
            raise PullFailed("grant expired")
        return g

    def _expired(self, g: Grant) -> None:
        g.expiry_call = None
        if g.protocol is None and self.grants.get(g.transfer) is g:
            self._end(g, Failure(PullFailed(f"not pulled within {self.ttl:g}s")))

    def _end(self, g: Grant, result: bytes | Failure) -> None:
        """Forget ``g`` and fire its Deferred with ``result`` (once)."""
        if self.grants.get(g.transfer) is g:
            del self.grants[g.transfer]
        if g.expiry_call is not None and g.expiry_call.active():
            g.expiry_call.cancel()
        g.expiry_call = None
        protocol, g.protocol = g.protocol, None
        if protocol is not None:
            protocol.ended(cancelled=isinstance(result, Failure)
                           and result.check(CancelledError) is not None)
        if not g.deferred.called:
            g.deferred.callback(result) if isinstance(result, bytes) else g.deferred.errback(result)

    # listening

    def factory(self) -> Factory:
        return Factory.forProtocol(lambda: _Serve(self))

    async def listen(self, reactor: Any, endpoint: str) -> tuple[str, int]:
        """Listen on ``endpoint`` (a server endpoint string): the host and port it got."""
        port = await serverFromString(reactor, endpoint).listen(self.factory())
        self.port = port
        address = port.getHost()
        return str(address.host), int(address.port)


def _done() -> Deferred[None]:
    d: Deferred[None] = Deferred()
    d.callback(None)
    return d


class _Serve(_Framed):
    """One pull, served: the request, then the file, then the puller's answer."""

    MAX_LENGTH = MAX_CONTROL

    def __init__(self, server: FileServer) -> None:
        self.server = server
        self.grant: Grant | None = None
        self.sender: ChunkSender | None = None
        self.done = False
        self._timeout: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._timeout = self.server.clock.callLater(
            self.server.handshake_timeout, self._refuse, "no request in time")

    def stringReceived(self, payload: bytes) -> None:
        obj = _parse(payload)
        if self.done:
            return
        if self.grant is None:
            self._request(obj or {})
        elif obj is not None:  # the puller's answer (or its refusal midway)
            self._answer(obj)

    def _request(self, request: dict[str, Any]) -> None:
        self._stop_timeout()
        server = self.server
        try:
            g = server.check(request)
        except PullFailed as e:
            server.refused += 1
            log.info("cluster files: pull of transfer {t} refused: {why}",
                     t=request.get("transfer"), why=e)
            self._refuse(str(e))
            return
        g.protocol = self
        self.grant = g
        if g.expiry_call is not None and g.expiry_call.active():
            g.expiry_call.cancel()
        g.expiry_call = None
        self.send(_control({"size": g.size, "sha256": g.sha256}))
        g.file.seek(0)
        self.sender = sender = ChunkSender(g.transfer)
        d = sender.beginFileTransfer(g.file, self.link)
        d.addCallbacks(self._sent, lambda _: None)

    def _sent(self, _: object) -> None:
        self.sender = None
        if not self.done:
            self.send(_control({"end": True}))

    def _answer(self, answer: dict[str, Any]) -> None:
        g = self.grant
        assert g is not None
        if answer.get("written") is True:
            self.server._end(g, b"")
        else:
            self.server._end(g, Failure(PullFailed(f"the pulling node: {answer.get('error')}")))

    def ended(self, cancelled: bool) -> None:
        """The grant ended (the server's call): say so if cancelled, and close."""
        if self.done:
            return
        self.done = True
        self._stop_sender()
        if cancelled:
            self.send(_control({"cancelled": True}))
        self.link.loseConnection()

    def _refuse(self, why: str) -> None:
        self._timeout = None
        self.done = True
        self.send(_control({"error": why}))
        self.link.loseConnection()

    def _stop_sender(self) -> None:
        sender, self.sender = self.sender, None
        if sender is not None:
            self.link.unregisterProducer()
            cast(Any, sender).stopProducing()

    def _stop_timeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def lengthLimitExceeded(self, length: int) -> None:
        self._refuse(f"frame of {length} bytes")

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._stop_timeout()
        self.sender = None  # the transport stopped it
        g = self.grant
        if g is not None and not self.done:
            self.done = True
            g.protocol = None
            sent = g.file.tell() if not g.file.closed else 0
            self.server._end(g, Failure(PullFailed(
                f"the pulling node's connection was lost ({sent} of {g.size} bytes sent)")))


# ---------------------------------------------------------------- pulling


class Pull:
    """
    One file pulled from another node into a local user's connection.

    :param outbox: the addressee's connection (data frames go to its
        ``send(data, on_written)``).
    :param window: bytes handed to ``outbox`` and not yet written past which
        the pull stops reading.

    :attr:`deferred` fires with the sha256 of what was written once every
    byte was handed to ``outbox`` (and the server told); it fails with
    :class:`PullFailed` (refused, cut, short, a hash mismatch) or
    :class:`~twisted.internet.defer.CancelledError` (the serving node
    cancelled it, or :meth:`stop`).
    """

    def __init__(self, grant: dict[str, Any], outbox: FileOutbox, window: int = WINDOW) -> None:
        self.grant = grant
        self.transfer = int(grant["transfer"])
        self.outbox = outbox
        self.window = window
        self.deferred: Deferred[str] = Deferred()
        self.protocol: _Pull | None = None
        self.size = -1
        self.received = 0
        self.unwritten = 0
        self.expected = ""
        self.hasher = hashlib.sha256()
        self.ended = False  # the server sent "end"
        self.stopped = False

    def start(self, reactor: Any, host: str, port: int, timeout: float = 10.0) -> Deferred[str]:
        """Connect to the serving node and pull; :returns: :attr:`deferred`."""
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
        d = endpoint.connect(Factory.forProtocol(lambda: _Pull(self)))
        d.addErrback(lambda f: self.finish(Failure(PullFailed(
            f"cannot connect to {host}:{port}: {f.getErrorMessage()}"))))
        return self.deferred

    def stop(self, why: str = "stopped") -> None:
        """Stop pulling (the addressee went away): close the connection, fail :attr:`deferred`."""
        self.finish(Failure(CancelledError(why)))

    def finish(self, result: str | Failure) -> None:
        """End the pull with ``result`` (once); close the connection."""
        if self.stopped:
            return
        self.stopped = True
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            if isinstance(result, Failure) and not self.ended:
                protocol.link.abortConnection()
            else:
                protocol.link.loseConnection()
        if isinstance(result, Failure):
            self.deferred.errback(result)
        else:
            self.deferred.callback(result)

    # what the connection reads

    def header(self, obj: dict[str, Any]) -> None:
        size, sha256 = obj.get("size"), obj.get("sha256")
        if obj.get("error") is not None or not isinstance(size, int) or not isinstance(sha256, str):
            self.finish(Failure(PullFailed(f"refused by the serving node: {obj.get('error')}")))
            return
        if size != self.grant.get("size", size):
            self.finish(Failure(PullFailed(f"serving {size} bytes, not {self.grant['size']}")))
            return
        self.size, self.expected = size, sha256

    def data(self, payload: bytes) -> None:
        n = len(payload) - codec.DATA_HEADER
        transfer = int.from_bytes(payload[1:codec.DATA_HEADER], "big")
        if transfer != self.transfer or n <= 0 or self.received + n > self.size:
            self.refuse(f"unexpected data ({n} bytes of transfer {transfer} after "
                        f"{self.received} of {self.size})")
            return
        if getattr(self.outbox, "closed", False):
            self.finish(Failure(PullFailed("the addressee's connection is closed")))
            return
        self.received += n
        self.hasher.update(memoryview(payload)[codec.DATA_HEADER:])
        self.unwritten += n
        self.outbox.send(len(payload).to_bytes(4, "big") + payload, lambda: self._written(n))
        if self.unwritten > self.window and self.protocol is not None:
            self.protocol.pause()

    def end(self) -> None:
        self.ended = True
        if self.received != self.size:
            self.refuse(f"the file ended after {self.received} of {self.size} bytes")
            return
        self._maybe_done()

    def _written(self, n: int) -> None:
        self.unwritten -= n
        protocol = self.protocol
        if protocol is not None and protocol.paused and self.unwritten <= self.window // 2:
            protocol.resume()
        self._maybe_done()

    def _maybe_done(self) -> None:
        if not self.ended or self.unwritten or self.stopped:
            return
        digest = self.hasher.hexdigest()
        if digest != self.expected:
            self.refuse(f"sha256 mismatch ({digest}, not {self.expected})")
            return
        if self.protocol is not None:
            self.protocol.send(_control({"written": True}))
        self.finish(digest)

    def refuse(self, why: str) -> None:
        """Tell the serving node why the pull failed, and fail it."""
        if self.protocol is not None and not self.stopped:
            self.protocol.send(_control({"error": why}))
        self.ended = True  # close cleanly, so the reason reaches the server
        self.finish(Failure(PullFailed(why)))

    def lost(self) -> None:
        self.protocol = None
        if not self.stopped:
            self.finish(Failure(PullFailed(
                f"the serving node's connection was lost after {self.received} of "
                f"{max(self.size, 0)} bytes")))


class _Pull(_Framed):
    MAX_LENGTH = codec.MAX_PAYLOAD

    def __init__(self, pull: Pull) -> None:
        self.pull = pull
        self.got_header = False

    def connectionMade(self) -> None:
        pull = self.pull
        if pull.stopped:
            self.link.loseConnection()
            return
        pull.protocol = self
        g = pull.grant
        self.send(_control({k: g[k] for k in ("transfer", "addressee", "node",
                                                    "expires", "token")}))

    def stringReceived(self, payload: bytes) -> None:
        pull = self.pull
        if pull.stopped:
            return
        if payload[:1] == b"\x00" and self.got_header:
            pull.data(payload)
            return
        obj = _parse(payload) or {"error": f"unexpected frame of {len(payload)} bytes"}
        if not self.got_header:
            self.got_header = True
            pull.header(obj)
        elif obj.get("end") is True:
            pull.end()
        elif obj.get("cancelled") is True:
            pull.finish(Failure(CancelledError("cancelled by the serving node")))
        else:
            pull.finish(Failure(PullFailed(f"the serving node: {obj.get('error')}")))

    def lengthLimitExceeded(self, length: int) -> None:
        self.pull.refuse(f"frame of {length} bytes")

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.pull.protocol is self:
            self.pull.lost()


