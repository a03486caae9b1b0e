"""
:class:`ChatService`: the chatnet server as a Twisted service.

It listens on an endpoint, owns the users, rooms and transfers (through the
factory's :class:`~chatnet.hub.Hub`), the spool folder and the audit log,
and stops gracefully (PROTOCOL.md section 7): stop accepting, tell every
connection, fail every unfinished transfer, let transports flush for the
grace period, abort what is left, remove spool files, log ``SHUTDOWN``.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatnet import auth, fastpath
from chatnet.accounts import Accounts, AccountsError, Changes
from chatnet.audit import Audit, open_observer
from chatnet.config import SERVER_NAME, Settings
from chatnet.hub import Hub
from chatnet.interfaces import Transfers
from chatnet.model import Directory
from chatnet.protocol import ChatServerFactory, describe_peer
from chatnet.spool import Spool
from chatnet.stats import Stats
from chatnet.transfers import TransferManager
from chatnet.upload_slots import UploadSlots
from chatnet.validation import format_size

if TYPE_CHECKING:
    from chatnet.cluster.shared import ClusterShared
    from chatnet.cluster.startup import Registered
    from chatnet.metrics import HealthCheck

log = Logger()

SHUTDOWN_MESSAGE = "The server is shutting down"


class CannotStart(Exception):
    """
    The server cannot start for a reason an operator can fix (a port in
    use, an audit log that cannot be opened); its message says which.

    An ``Exception``, not ``SystemExit``: twistd reports an ``Exception``
    from a daemon's start to the waiting parent (``An error has occurred``)
    and waits for ever on anything else.  :func:`quiet_cannot_start` keeps
    the traceback off the screen.
    """


def quiet_cannot_start() -> None:
    """Print a :class:`CannotStart` that ends the process as its one line, not a traceback."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if isinstance(value, CannotStart):
            print(value, file=sys.stderr)
        else:
            previous(kind, value, tb)

    sys.excepthook = hook


def cannot_listen(error: BaseException) -> str:
    """Why listening failed, in one line for an operator."""
    if isinstance(error, CannotListenError):
        where = f"{error.interface or '*'}:{error.port}"
        cause = error.socketError
        reason = getattr(cause, "strerror", None) or str(cause)
        return f"cannot listen on {where}: {reason}"
    if isinstance(error, ImportError):
        return (
            f"cannot listen: {error} (for ssl: endpoints install the tls extra: "
            "pip install 'chatnet[tls]')"
        )
    assert isinstance(error, OSError)
    path = error.filename2 or error.filename  # a lock file's symlink: (pid, path)
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    name = f" ({path})" if path else ""
    return f"cannot listen: {error.strerror or error}{name}"


class ChatService(Service):
    """
    :param endpoint: a server endpoint string (``tcp:8080``).
    :param audit_log: path of the audit log, opened for appending.
    :param spool_dir: folder for upload spool files; ``None``: a private
        temporary folder.
    :param reactor: the reactor (default: the global one).
    :param metrics: an endpoint string for the HTTP server of ``/metrics``
        and ``/healthz`` (:mod:`chatnet.metrics`); ``None``: none.
    :param audit_format: ``text`` (``[time] [CATEGORY] text`` lines) or
        ``json`` (JSON lines), see :mod:`chatnet.audit`.
    :param accounts_file: where ``settings.accounts`` came from, re-read by
        :meth:`reload`.
    :param handle_sighup: make ``SIGHUP`` call :meth:`reload` while running
        (``twistd`` sets it; tests in one process call :meth:`reload`).
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
        audit_format: str = "text",
        accounts_file: str | None = None,
        handle_sighup: bool = False,
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
        self.audit_format = audit_format
        self.accounts_file = accounts_file
        self.handle_sighup = handle_sighup
        self._previous_hup: Any = None
        self.metrics_port: IListeningPort | None = None
        #: With ``metrics``: the ``prometheus_client`` registry ``/metrics``
        #: serves; more collectors (a cluster's) may be registered on it.
        self.registry: Any = None
        self._stopping = False
        #: What ``/healthz`` asks, in order; see :class:`chatnet.metrics.HealthPage`.
        self.health_checks: list[HealthCheck] = [self._serving]
        self._sweeper: LoopingCall | None = None
        #: In cluster mode (``settings.cluster``): this node's view of the cluster.
        self.cluster: ClusterShared | None = None
        self._incarnation: Registered | None = None

    def privilegedStartService(self) -> None:
        """Open the spool and log, and listen (raising at once if we cannot)."""
        reactor = self._reactor
        # The spool first: a SpoolError (an unsafe folder) leaves nothing open.
        self.spool = Spool(self.spool_dir)
        try:
            self._observer = open_observer(self.audit_log, reactor, self.audit_format)
        except OSError as e:
            self.spool.close()
            raise CannotStart(
                f"chatnet: cannot open the audit log {self.audit_log}: {e.strerror or e}"
            ) from None
        except BaseException:
            self.spool.close()
            raise
        audit = Audit(self._observer, now=reactor.seconds)
        settings = self.settings
        stats = Stats(time_requests=self.metrics is not None)
        directory = Directory(settings.room_capacity)
        slots: UploadSlots | None = None
        if settings.cluster is not None:
            from chatnet.cluster.shared import ClusterShared

            self.cluster = ClusterShared(
                directory, settings, settings.cluster, settings.cluster.address(), reactor,
                audit, self._close_users,
            )
            slots = self.cluster.upload_slots(settings)
        transfers = TransferManager(settings, self.spool, reactor, audit, stats, slots=slots)
        self.hub = Hub(
            settings, directory, transfers, audit,
            now=reactor.seconds, stats=stats, audit_fields=self.audit_format == "json",
        )
        if self.cluster is not None:
            self.cluster.user_gone = transfers.user_gone
            self.hub.shared = self.cluster
        self._sweeper = (
            auth.install(self.hub, settings.accounts, reactor)
            if settings.accounts is not None else None
        )
        self.factory = ChatServerFactory(self.hub, reactor)
        if self.factory.fast_path:  # before listening, which logs whether it is on
            fastpath.dispatch_directly(reactor)
        try:
            if self.cluster is not None:  # first: a node refused by its cluster never listens
                self._incarnation = self._register(self.cluster)
            self._listen(with_backlog(self.endpoint), self.factory, self._listening)
            if self.metrics is not None:
                from chatnet.metrics import make_registry, make_site

                if self.cluster is not None:
                    from chatnet.metrics import cluster_health

                    self.health_checks.append(cluster_health(self.cluster))
                self.registry = make_registry(self.hub, self.cluster)
                site = make_site(self.registry, self.health_checks)
                self._listen(self.metrics, site, self._metrics_listening)
        except BaseException as e:
            if self._incarnation is not None:
                self._deregister(self.cluster)
            if self.port is not None:
                self.port.stopListening()
            if self.metrics_port is not None:
                self.metrics_port.stopListening()
            if self._sweeper is not None:
                self._sweeper.stop()
            self._close_files()
            self.spool.close()
            if isinstance(e, (CannotListenError, OSError, ImportError)):
                # An operator's mistake (port in use, no such interface or
                # folder, TLS extra missing): one line, not a traceback.
                raise CannotStart(f"chatnet: {cannot_listen(e)}") from None
            raise
        self._audit_spool(transfers)
        Service.privilegedStartService(self)

    def _register(self, cluster: ClusterShared) -> Registered:
        """
        Register this node in its cluster before serving anyone: its
        incarnation.  :raises CannotStart: the cluster cannot be reached or
        a live node has this id.
        """
        from chatnet.cluster import startup
        from chatnet.cluster.keys import Keys, NodeIdInUse

        settings = cluster.cluster
        try:
            registered = startup.register(
                settings.address(), Keys(settings.prefix), settings.node_id, settings.lease,
                ca=settings.ca, token=cluster.node.token)
        except (startup.Unreachable, NodeIdInUse) as e:
            raise CannotStart(f"chatnet: {e}") from None
        log.info("chatnet node {node} joined the cluster at {where} (incarnation {inc}, "
                 "lease {lease:g}s)", node=settings.node_id, where=str(settings.address()),
                 inc=registered.incarnation, lease=settings.lease)
        return registered

    @staticmethod
    def _deregister(cluster: ClusterShared | None) -> None:
        """Leave the cluster joined by :meth:`_register` when the start fails after it."""
        from chatnet.cluster import startup
        from chatnet.cluster.keys import Keys

        assert cluster is not None
        settings = cluster.cluster
        try:
            startup.deregister(settings.address(), Keys(settings.prefix), settings.node_id,
                               ca=settings.ca)
        except Exception as e:
            log.warn("chatnet could not leave the cluster ({error}); its lease runs out in "
                     "{lease:g}s", error=str(e), lease=settings.lease)

    def _close_users(self, keys: set[str] | None, reason: str) -> None:
        """Close the connections of the local users ``keys`` (``None``: every connection)."""
        assert self.hub is not None
        for session in list(self.hub.sessions):
            user = getattr(session, "user", None)
            if keys is None or (user is not None and user.key in keys):
                session.close(reason)

    def _audit_spool(self, transfers: TransferManager) -> None:
        """Say what was cleaned from the spool at start (audit log), and its bounds (twistd's log)."""
        assert self.hub is not None
        spool = self.spool
        files, size = spool.cleaned
        if files:
            text = (
                f"spool {spool.path}: removed {_count(files, 'file')} "
                f"({format_size(size)}) left by an earlier run"
            )
            self.hub.audit(
                "FILE", text, {"spool": str(spool.path), "removed_files": files, "removed_bytes": size}
            )
            log.warn("chatnet {text}", text=text)
        settings = self.settings
        total = transfers.budget.total
        how = "" if settings.spool_size is not None else " (half the free disk space, at most 1 GiB)"
        log.info(
            "chatnet spool {path}: at most {total} in all{how}, {files} files or "
            "{size} for one addressee",
            path=str(spool.path), total=format_size(total), how=how,
            files=settings.addressee_spool_files, size=format_size(settings.addressee_spool_bytes),
        )
        if total < settings.max_file_size:
            log.warn(
                "chatnet spool {path}: only {total} free for uploads, less than "
                "the largest file; larger files get queue-full until the disk has room",
                path=spool.path, total=format_size(total),
            )

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
        if self.cluster is not None:
            assert self.hub is not None
            manager = self.hub.transfers
            assert isinstance(manager, TransferManager)
            self.cluster.start(self._incarnation, manager).addCallbacks(
                self._cluster_started, self._cluster_failed)
        if self.handle_sighup and hasattr(signal, "SIGHUP"):
            self._previous_hup = signal.signal(signal.SIGHUP, self._sighup)

    def _cluster_started(self, transfers: Transfers[Any]) -> None:
        """The node is in the cluster and serves files to the others: its transfers."""
        assert self.hub is not None
        self.hub.transfers = transfers

    def _cluster_failed(self, failure: Failure) -> None:
        log.failure("chatnet could not join the cluster; stopping", failure)
        self._reactor.stop()

    def _sighup(self, signum: int, frame: object) -> None:
        # A signal handler runs between two bytecodes of whatever the reactor
        # was doing: only schedule the work, as twistd does for SIGUSR1.
        self._reactor.callFromThread(self.reload)

    def reload(self) -> None:
        """
        ``SIGHUP``: reopen the audit log (after logrotate moved it) and
        re-read the accounts file.  Nobody is disconnected: a user whose
        account went away stays logged in until it leaves.
        """
        try:
            self._observer.reopen()
        except OSError as e:
            log.error(
                "chatnet cannot reopen the audit log {path} ({error}); still writing "
                "to the file it had open", path=self.audit_log, error=e.strerror,
            )
        else:
            log.info("chatnet reopened the audit log {path}", path=self.audit_log)
        if self.accounts_file is not None and self.settings.accounts is not None:
            self._reload_accounts(self.accounts_file, self.settings.accounts)

    @staticmethod
    def _reload_accounts(path: str, accounts: Accounts) -> None:
        try:
            changes = accounts.reload()
        except AccountsError as e:
            log.error("chatnet kept its accounts: {error}", error=str(e))
            return
        log.info(
            "chatnet reloaded the accounts from {path}: {change}",
            path=path, change=changes.describe(),
        )

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = describe_peer(port.getHost())
        log.info("chatnet listening on {address}", address=address)
        if self.factory is not None:
            log.info("{fast}", fast=fastpath.describe(self.factory.fast_path, self._reactor))
        assert self.hub is not None
        self.hub.audit(
            "CONNECT", f"{SERVER_NAME} listening on {address}",
            {"server": SERVER_NAME, "address": address},
        )

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
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
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
        # A cluster node leaves at once: the others tell its users' rooms.
        leaving: Deferred[None] = self.cluster.stop() if self.cluster is not None else succeed(None)
        leaving.addErrback(lambda f: log.failure("while leaving the cluster", f))
        for session in sessions:
            session.close("disconnected by server shutdown")
        done: Deferred[None] = Deferred()
        clock: IReactorTime = self._reactor

        finishing: list[bool] = []

        def finish() -> None:
            if finishing:
                return
            finishing.append(True)
            if backstop.active():
                backstop.cancel()
            leaving.addCallback(lambda _: finished())

        def finished() -> None:
            self.spool.close()
            if self._sweeper is not None:
                self._sweeper.stop()
                hub.sweep(everything=True)
            hub.audit(
                "SHUTDOWN",
                f"server stopped: disconnected {_count(len(sessions), 'client')}, "
                f"failed {_count(failed, 'transfer')}",
                {"clients": len(sessions), "transfers_failed": failed},
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


#: The listen backlog of endpoints that do not give one.  Twisted's default,
#: 50, is too short for a burst of connects: 300 clients connecting at once
#: had only about 170 answered within a second (the others' SYNs were
#: dropped and retried after 1 s); with 1024 all were answered in 21 ms.
#: The kernel caps it at ``net.core.somaxconn`` (4096 on Linux since 5.4).
BACKLOG = 1024

#: Endpoint types that take a ``backlog`` argument.
_BACKLOG_TYPES = frozenset({"tcp", "tcp6", "ssl", "unix"})


def with_backlog(endpoint: str, backlog: int = BACKLOG) -> str:
    """
    ``endpoint`` with ``:backlog=N`` added when it is a listening socket
    type that takes one (``tcp``, ``tcp6``, ``ssl``, ``unix``) and gives none.
    """
    kind, _, rest = endpoint.partition(":")
    if kind.strip().lower() not in _BACKLOG_TYPES:
        return endpoint
    arguments = re.split(r"(?<!\\):", rest)
    if any(arg.partition("=")[0].strip() == "backlog" for arg in arguments):
        return endpoint
    return f"{endpoint}:backlog={backlog}"


def _count(n: int, noun: str) -> str:
    """``1 client``, ``3 clients``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def describe_accounts_change(old: dict[str, str], new: dict[str, str]) -> str:
    """``"added carol; removed bob; password changed for alice"``, or ``"no change"``."""
    return Changes.between(old, new).describe()
