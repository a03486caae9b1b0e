"""
A small typed wrapper around txredisapi (which has no annotations): the
only module that touches it.

Commands go through one ``lazyConnection`` (txredisapi >= 1.6: reconnection
is a ClientService; our backoff is :func:`.timing.backoff`).  Every command
is bounded: txredisapi's ``replyTimeout`` drops a link that stopped
answering (a dead socket nobody noticed otherwise), and a command issued
while there is no connection at all fails after ``timeout`` instead of
waiting for one forever.  Both come back as :class:`Unavailable`.

The subscriber side is :class:`Subscriber`: its own connection (a
connection in subscribe mode can run nothing else), re-subscribed on each
reconnect, with a PING every few seconds so that a dead link is noticed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet.cluster import timing, tls
from chatnet.cluster.keys import Address, ClusterError
from chatnet.cluster.scripts import Script
from chatnet.errors import ChatError, ErrorCode

log = Logger()

Arg = str | int | bytes


class Unavailable(ClusterError):
    """Redis could not be reached, or did not answer in time: nothing can be assumed done."""


#: What ``unavailable`` tells a client to wait before asking again (seconds).
RETRY_AFTER = 1.0


def as_unavailable(failure: Failure, what: str = "The cluster state") -> Failure:
    """Redis unreachable or this node fenced: the client's ``unavailable`` (else ``failure``)."""
    from chatnet.cluster.keys import Fenced

    if failure.check(Unavailable, Fenced):
        raise ChatError(
            ErrorCode.UNAVAILABLE,
            f"{what} cannot be reached just now; nothing was done: try again",
            RETRY_AFTER,
        )
    return failure


#: Error replies that mean "not now" rather than "never".
_TRANSIENT = frozenset({"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY"})


def _unavailable(failure: Failure) -> Failure:
    if failure.check(txredisapi.ConnectionError, defer.TimeoutError, defer.CancelledError,
                     ConnectionError):
        raise Unavailable(failure.getErrorMessage() or "Redis did not answer in time")
    if failure.check(txredisapi.ResponseError):
        message = failure.getErrorMessage()
        if message.split(" ", 1)[0] in _TRANSIENT:  # loading after a restart, a busy script
            raise Unavailable(f"Redis is not ready: {message}")
        raise ClusterError(f"Redis answered with an error: {message}")
    return failure


class _CommandProtocol(txredisapi.RedisProtocol):  # type: ignore[misc]
    """
    txredisapi's protocol, except that nothing that goes wrong while
    connecting (``AUTH`` or ``SELECT`` timing out, the link lost, even a
    password refused after a change at the server) stops the
    reconnection for good: txredisapi calls ``factory.stopTrying()`` then,
    and that link would never come back.  Here it is dropped and made again
    with the usual backoff; the node logs the failure each time.
    """

    def connectionMade(self) -> Any:
        factory = self.factory
        if "stopTrying" in factory.__dict__:  # (another connection of this factory is connecting)
            return super().connectionMade()
        factory.stopTrying = _keep_trying
        d: defer.Deferred[Any] = super().connectionMade()

        def restore(result: object) -> object:
            factory.__dict__.pop("stopTrying", None)
            return result

        return d.addBoth(restore)


def _keep_trying() -> defer.Deferred[None]:
    log.info("cluster: connecting to Redis failed; trying again")
    return defer.succeed(None)


class Redis:
    """Commands and scripts on one reconnecting connection."""

    def __init__(
        self, address: Address, reactor: IReactorTime, timeout: float = 2.0,
        ca: str | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._reactor = reactor
        self._handler: Any = txredisapi.lazyConnection(
            address.host, address.port, dbid=address.db, reconnect=True,
            password=address.password, username=address.username,
            ssl_context_factory=tls.client_tls(address, ca) or False,
            replyTimeout=timeout, convertNumbers=False,
        )
        self._handler._factory.retryDelay = timing.backoff
        self._handler._factory.protocol = _CommandProtocol

    def command(self, *args: Arg) -> defer.Deferred[Any]:
        """One Redis command; its reply as txredisapi gives it (str, int, list, None)."""
        d: defer.Deferred[Any] = self._handler.execute_command(*args)
        d.addTimeout(self.timeout, self._reactor)
        d.addErrback(_unavailable)
        return d

    def run(self, script: Script, *args: Arg) -> defer.Deferred[Any]:
        """
        ``EVALSHA`` of the script's precomputed hash, falling back to
        ``EVAL`` when Redis does not know the script yet (txredisapi's
        ``eval`` would hash the whole script on every call).
        """
        d: defer.Deferred[Any] = self._handler.execute_command("EVALSHA", script.sha1, 0, *args)
        d.addErrback(self._unknown_script, script, args)
        d.addTimeout(self.timeout, self._reactor)
        d.addErrback(_unavailable)
        return d

    def _unknown_script(self, failure: Failure, script: Script, args: tuple[Arg, ...]) -> Any:
        if failure.check(txredisapi.ResponseError) and str(failure.value).startswith("NOSCRIPT"):
            return self._handler.execute_command("EVAL", script.source, 0, *args)
        return failure

    def disconnect(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = self._handler.disconnect()
        return d


class _SubscriberProtocol(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    owner: Subscriber

    def connectionMade(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = super().connectionMade()
        self.whenConnected().addCallback(lambda _: self.owner._connected(self))
        return d

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self.owner._lost(self)

    def messageReceived(self, pattern: object, channel: object, message: object) -> None:
        self.owner._message(_str(channel), _str(message))


def _str(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class Subscriber:
    """
    One subscriber connection that keeps the wanted channels subscribed.

    ``on_message(channel, data)`` gets each message; ``on_ready(channel)``
    is called each time a channel's ``SUBSCRIBE`` has been acknowledged (on
    the first subscription and again after every reconnection), so that the
    owner can catch up on what it missed meanwhile.  Only then is the
    channel live: the owner must not assume anything was received before.
    """

    def __init__(
        self,
        address: Address,
        reactor: IReactorTCP,
        on_message: Callable[[str, str], None],
        on_ready: Callable[[str], None],
        timeout: float = 2.0,
        ping_interval: float = 2.0,
        ca: str | None = None,
    ) -> None:
        self._ca = ca
        self.wanted: set[str] = set()
        self.live: set[str] = set()
        self._on_message = on_message
        self._on_ready = on_ready
        self._protocol: _SubscriberProtocol | None = None
        self._reactor = reactor
        self._clock: IReactorTime = reactor  # type: ignore[assignment]
        factory: Any = txredisapi.SubscriberFactory()
        factory.protocol = self._build
        factory.password = address.password
        factory.username = address.username
        factory.replyTimeout = timeout
        factory.convertNumbers = False
        factory.retryDelay = timing.backoff
        self._factory = factory
        self._address = address
        self._pinger = LoopingCall(self._ping)
        self._pinger.clock = reactor  # type: ignore[assignment]
        self._ping_interval = ping_interval

    def _build(self, *args: Any, **kwargs: Any) -> _SubscriberProtocol:
        protocol = _SubscriberProtocol(*args, **kwargs)
        protocol.owner = self
        return protocol

    def start(self) -> None:
        self._factory.startConnecting(tls.endpoint(self._reactor, self._address, 5, self._ca))
        self._pinger.start(self._ping_interval, now=False)

    def stop(self) -> defer.Deferred[None]:
        if self._pinger.running:
            self._pinger.stop()
        d: defer.Deferred[None] = self._factory.disconnect()
        return d

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    def subscribe(self, channels: Iterable[str]) -> None:
        for channel in channels:
            if channel not in self.wanted:
                self.wanted.add(channel)
                self._subscribe(channel)

    def unsubscribe(self, channels: Iterable[str]) -> None:
        for channel in channels:
            self.wanted.discard(channel)
            self.live.discard(channel)
            if self._protocol is not None:
                # One channel per command: each gets exactly one acknowledgement,
                # so replies never land on another command's Deferred.
                self._protocol.unsubscribe(channel).addErrback(self._failed, "UNSUBSCRIBE")

    def _subscribe(self, channel: str) -> None:
        protocol = self._protocol
        if protocol is None:
            return  # done by _connected

        def acknowledged(_: object) -> None:
            if protocol is self._protocol and channel in self.wanted:
                self.live.add(channel)
                self._on_ready(channel)

        def refused(failure: Failure) -> None:
            # Not acknowledged (a timeout, Redis still loading): the channel
            # would stay deaf until the next reconnection; ask again.
            self._failed(failure, "SUBSCRIBE")
            if protocol is self._protocol and channel in self.wanted:
                self._clock.callLater(timing.backoff(1), self._resubscribe, protocol, channel)

        protocol.subscribe(channel).addCallbacks(acknowledged, refused)

    def _resubscribe(self, protocol: _SubscriberProtocol, channel: str) -> None:
        if protocol is self._protocol and channel in self.wanted and channel not in self.live:
            self._subscribe(channel)

    def _connected(self, protocol: _SubscriberProtocol) -> None:
        self._protocol = protocol
        for channel in sorted(self.wanted):
            self._subscribe(channel)

    def _lost(self, protocol: _SubscriberProtocol) -> None:
        if protocol is self._protocol:
            self._protocol = None
            self.live.clear()

    def _message(self, channel: str, data: str) -> None:
        if channel in self.wanted:
            self._on_message(channel, data)

    def _ping(self) -> None:
        # Keeps the link alive, and notices a dead one: an unanswered PING
        # times out (replyTimeout), which aborts the connection, and the
        # factory connects again.
        if self._protocol is not None:
            self._protocol.ping().addErrback(self._failed, "PING")

    def _failed(self, failure: Failure, what: str) -> None:
        log.info("cluster: Redis subscriber {what} failed: {why}", what=what,
                 why=failure.getErrorMessage())
