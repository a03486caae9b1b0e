"""
:class:`ChatService`: the chatnet server as a Twisted service.

It listens on an endpoint, owns the users, rooms and transfers (through the
factory's :class:`~chatnet.session.Hub`), the spool folder and the audit log,
and stops gracefully (PROTOCOL.md section 7): stop accepting, tell every
connection, fail every unfinished transfer, let transports flush for the
grace period, abort what is left, remove spool files, log ``SHUTDOWN``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import fastpath
from chatnet.audit import Audit, AuditFileObserver
from chatnet.config import SERVER_NAME, Settings
from chatnet.model import Directory
from chatnet.protocol import ChatServerFactory, describe_peer
from chatnet.session import Hub
from chatnet.spool import Spool
from chatnet.stats import Stats
from chatnet.transfers import TransferManager

if TYPE_CHECKING:
    from chatnet.metrics import HealthCheck

log = Logger()

SHUTDOWN_MESSAGE = "The server is shutting down"


class ChatService(Service):
    """
    :param endpoint: a server endpoint string (``tcp:8080``).
    :param audit_log: path of the audit log, opened for appending.
    :param spool_dir: folder for upload spool files; ``None``: a private
        temporary folder.
    :param reactor: the reactor (default: the global one).
    :param metrics: an endpoint string for the HTTP server of ``/metrics``
        and ``/healthz`` (:mod:`chatnet.metrics`); ``None``: none.
    """

    name = "chatnet"

    def __init__(
        self,
        endpoint: str,
        settings: Settings,
        audit_log: str = "server.log",
        spool_dir: str | None = None,
        reactor: Any = None,
        metrics: str | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.endpoint = endpoint
        self.settings = settings
        self.audit_log = audit_log
        self.spool_dir = spool_dir
        self._reactor = reactor
        self.port: IListeningPort | None = None
        self.hub: Hub | None = None
        self.factory: ChatServerFactory | None = None
        self.metrics = metrics
        self.metrics_port: IListeningPort | None = None
        self._stopping = False
        #: What ``/healthz`` asks, in order; see :class:`chatnet.metrics.HealthPage`.
        self.health_checks: list[HealthCheck] = [self._serving]

    def privilegedStartService(self) -> None:
        """Open the log and spool, and listen (raising at once if we cannot)."""
        reactor = self._reactor
        self._audit_file = open(self.audit_log, "a", encoding="utf-8")
        self._observer = AuditFileObserver(self._audit_file, reactor)
        self.spool = Spool(self.spool_dir)
        audit = Audit(self._observer)
        settings = self.settings
        stats = Stats(time_requests=self.metrics is not None)
        transfers = TransferManager(settings, self.spool, reactor, audit, stats)
        self.hub = Hub(
            settings, Directory(settings.room_capacity), transfers, audit,
            now=reactor.seconds, stats=stats,
        )
        self.factory = ChatServerFactory(self.hub, reactor)
        try:
            self._listen(self.endpoint, self.factory, self._listening)
            if self.metrics is not None:
                from chatnet.metrics import make_registry, make_site

                site = make_site(make_registry(self.hub), self.health_checks)
                self._listen(self.metrics, site, self._metrics_listening)
        except BaseException:
            if self.port is not None:
                self.port.stopListening()
            self._close_files()
            raise
        Service.privilegedStartService(self)

    def _listen(
        self, endpoint: str, factory: IProtocolFactory,
        listening: Callable[[IListeningPort], None],
    ) -> None:
        """Listen on ``endpoint``; raise at once if that fails at once."""
        error: list[Failure] = []
        starting = True

        def failed(failure: Failure) -> None:
            if starting:
                error.append(failure)
            else:  # an endpoint that listens asynchronously
                log.failure("chatnet cannot listen on {endpoint}", failure, endpoint=endpoint)
                self._reactor.stop()

        serverFromString(self._reactor, endpoint).listen(factory).addCallbacks(listening, failed)
        starting = False
        if error:
            error[0].raiseException()

    def startService(self) -> None:
        # ``twist`` (python -m twisted chatnet) calls only startService.
        if self.factory is None:
            self.privilegedStartService()
        Service.startService(self)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = describe_peer(port.getHost())
        log.info("chatnet listening on {address}", address=address)
        if self.factory is not None:
            log.info("{fast}", fast=fastpath.describe(self.factory.fast_path))
        assert self.hub is not None
        self.hub.audit("CONNECT", f"{SERVER_NAME} listening on {address}")

    def _metrics_listening(self, port: IListeningPort) -> None:
        self.metrics_port = port
        address = describe_peer(port.getHost())
        log.info("chatnet metrics on http://{address}/metrics", address=address)

    def _serving(self) -> str | None:
        """The health check of this server itself."""
        if self._stopping:
            return "shutting down"
        if self.port is None:
            return "not listening"
        return None

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        self._stopping = True
        d: Deferred[Any] = maybeDeferred(self.port.stopListening) if self.port else Deferred()
        if not self.port:
            d.callback(None)
        d.addCallback(lambda _: self._shutdown())
        d.addErrback(lambda f: log.failure("while stopping chatnet", f))
        return d

    def _shutdown(self) -> Deferred[None]:
        hub = self.hub
        assert hub is not None
        hub.shutting_down = True
        sessions = list(hub.sessions)
        for session in sessions:
            session.shutdown(SHUTDOWN_MESSAGE)
        failed = hub.transfers.shutdown()
        for session in sessions:
            session.close("disconnected by server shutdown")
        done: Deferred[None] = Deferred()
        clock: IReactorTime = self._reactor

        def finish() -> None:
            if done.called:
                return
            if backstop.active():
                backstop.cancel()
            self.spool.close()
            hub.audit(
                "SHUTDOWN",
                f"server stopped: disconnected {_count(len(sessions), 'client')}, "
                f"failed {_count(failed, 'transfer')}",
            )
            self._close_files()
            if self.metrics_port is None:
                done.callback(None)
            else:  # /healthz said 503 until now
                stopped = maybeDeferred(self.metrics_port.stopListening)
                stopped.addErrback(lambda f: log.failure("while closing the metrics port", f))
                stopped.addCallback(lambda _: done.callback(None))

        # Outbound.close() aborts each connection after the grace period; the
        # backstop only guards against a transport that never reports loss.
        backstop = clock.callLater(self.settings.shutdown_grace + 0.5, finish)
        if hub.sessions:
            hub.when_empty.append(finish)
        else:
            finish()
        return done

    def _close_files(self) -> None:
        self._observer.close()


def _count(n: int, noun: str) -> str:
    """``1 client``, ``3 clients``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
