"""
:class:`ChatService`: the chatnet server as a Twisted service.

It listens on an endpoint, owns the users, rooms and transfers (through the
factory's :class:`~chatnet.session.Hub`), the spool folder and the audit log,
and stops gracefully (PROTOCOL.md section 7): stop accepting, tell every
connection, fail every unfinished transfer, let transports flush for the
grace period, abort what is left, remove spool files, log ``SHUTDOWN``.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import fastpath
from chatnet.audit import Audit, AuditFileObserver
from chatnet.config import SERVER_NAME, Settings
from chatnet.model import Directory
from chatnet.protocol import ChatServerFactory, describe_peer
from chatnet.session import Hub
from chatnet.spool import Spool
from chatnet.transfers import TransferManager

log = Logger()

SHUTDOWN_MESSAGE = "The server is shutting down"


class ChatService(Service):
    """
    :param endpoint: a server endpoint string (``tcp:8080``).
    :param audit_log: path of the audit log, opened for appending.
    :param spool_dir: folder for upload spool files; ``None``: a private
        temporary folder.
    :param reactor: the reactor (default: the global one).
    """

    name = "chatnet"

    def __init__(
        self,
        endpoint: str,
        settings: Settings,
        audit_log: str = "server.log",
        spool_dir: str | None = None,
        reactor: Any = None,
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

    def privilegedStartService(self) -> None:
        """Open the log and spool, and listen (raising at once if we cannot)."""
        reactor = self._reactor
        self._audit_file = open(self.audit_log, "a", encoding="utf-8")
        self._observer = AuditFileObserver(self._audit_file, reactor)
        self.spool = Spool(self.spool_dir)
        audit = Audit(self._observer)
        settings = self.settings
        transfers = TransferManager(settings, self.spool, reactor, audit)
        self.hub = Hub(
            settings, Directory(settings.room_capacity), transfers, audit,
            now=reactor.seconds,
        )
        self.factory = ChatServerFactory(self.hub, reactor)
        self._listen_error: Failure | None = None
        self._starting = True
        serverFromString(reactor, self.endpoint).listen(self.factory).addCallbacks(
            self._listening, self._listen_failed
        )
        self._starting = False
        if self._listen_error is not None:
            self._close_files()
            self._listen_error.raiseException()
        Service.privilegedStartService(self)

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

    def _listen_failed(self, failure: Failure) -> None:
        if self._starting:
            self._listen_error = failure
        else:  # an endpoint that listens asynchronously
            log.failure("chatnet cannot listen on {endpoint}", failure, endpoint=self.endpoint)
            self._reactor.stop()

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
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
            done.callback(None)

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
