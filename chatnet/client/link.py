"""
The connection's life: connect (to the first server that answers), and,
once logged in, connect again when the connection goes, log in with the
same name and password and rejoin the room.

Glue only: :class:`~chatnet.client.reconnect.Policy` decides which server
and when; this module runs its steps on the reactor and tells the front
ends through the core's events (:class:`~chatnet.client.events.Reconnecting`,
:class:`~chatnet.client.events.Reconnected`,
:class:`~chatnet.client.events.GaveUp`).  Uploads cut by the loss are
failed and downloads discarded by the core, never retried.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import error as net_error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from chatnet import frames
from chatnet.client.core import ClientCore
from chatnet.client.events import (
    ClientEvent,
    ConnectionClosed,
    Disconnected,
    GaveUp,
    Reconnected,
    Reconnecting,
)
from chatnet.client.protocol import connect
from chatnet.client.reconnect import (
    FINAL_REFUSALS,
    Attempt,
    Policy,
    Restore,
    Server,
    Step,
    reconnected_text,
    status_text,
    waiting_text,
)
from chatnet.errors import ChatError, ErrorCode

__all__ = ["CannotConnect", "Link", "cannot_connect"]

log = Logger()

#: Seconds a reconnect attempt waits for the TCP (and TLS) connection.
CONNECT_TIMEOUT = 10.0

Connect = Callable[[Server], Deferred[Any]]


class CannotConnect(Exception):
    """No server could be reached at start; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def cannot_connect(error: BaseException, server: Server) -> str:
    """Why ``server`` could not be reached, naming the likely fix."""
    if isinstance(error, net_error.ConnectionRefusedError):
        return f"cannot connect to {server}: connection refused (is the server running?)"
    if isinstance(error, net_error.DNSLookupError):
        return f"cannot connect to {server}: unknown host {server.host!r}"
    if isinstance(error, net_error.TimeoutError):
        return f"cannot connect to {server}: timed out"
    return f"cannot connect to {server}: {error}"


class Link:
    """
    Keeps ``core`` connected.

    :param connect_to: connects the core to a server (default: TCP or TLS
        through :func:`chatnet.client.protocol.connect`); fires once
        connected, fails with the connection error.
    :param reconnect: whether a lost connection is restored at all.
    """

    def __init__(
        self,
        core: ClientCore,
        policy: Policy,
        connect_to: Connect,
        reconnect: bool = True,
    ) -> None:
        self.core = core
        self.policy = policy
        self.connect_to = connect_to
        self.enabled = reconnect
        #: ``idle`` (before login), ``up``, ``waiting``, ``connecting``,
        #: ``logging-in``, ``stopped``.
        self.state = "idle"
        self._restore: Restore | None = None
        self._timer: IDelayedCall | None = None
        self._due: float | None = None
        #: The next step (and why) decided for a connection we close ourselves.
        self._planned: tuple[Step, str] | None = None
        #: Why the attempts stopped, once they have.
        self.gave_up: GaveUp | None = None
        #: Whether the loss being restored was the server shutting down.
        self.shut_down = False
        self._waiters: list[Deferred[bool]] = []
        core.subscribe(self._event)

    @classmethod
    def over_tcp(
        cls, reactor: Any, core: ClientCore, policy: Policy, tls: bool = False,
        ca: str | None = None, reconnect: bool = True,
    ) -> Link:
        """A link that connects with :func:`~chatnet.client.protocol.connect`."""

        def connect_to(server: Server) -> Deferred[Any]:
            return connect(reactor, core, server.host, server.port, tls=tls, ca=ca,
                           timeout=CONNECT_TIMEOUT)

        return cls(core, policy, connect_to, reconnect)

    # -- what the front ends use ------------------------------------------

    @property
    def server(self) -> Server:
        """The server in use, or being tried."""
        return self.policy.server

    @property
    def reconnecting(self) -> bool:
        """Whether the connection is being restored (the front ends wait)."""
        return self.state in ("waiting", "connecting", "logging-in")

    @property
    def restores(self) -> bool:
        """Whether a loss of the connection now would be (or is being) restored."""
        return self.enabled and self._restore is not None and (
            self.state == "up" or self.reconnecting)

    def status(self) -> str | None:
        """The status bar's mark while disconnected, else ``None``."""
        if self.gave_up is not None and self.state == "stopped" and not self.core.is_connected:
            return "DISCONNECTED, gave up (/reconnect tries again)"
        if not self.reconnecting:
            return None
        due = None
        if self.state == "waiting" and self._due is not None:
            due = self._due - self.policy.now()
        return status_text(self.policy.server, due)

    async def open(self) -> None:
        """
        The first connection: each server in order until one answers.

        :raises CannotConnect: none did; the message names the last reason.
        """
        why = ""
        for index, server in enumerate(self.policy.servers):
            self.policy.index = index
            try:
                await self.connect_to(server)
            except (net_error.ConnectError, OSError) as e:
                why = cannot_connect(e, server)
                continue
            return
        if len(self.policy.servers) > 1:
            why = f"{why} (and every other server given)"
        raise CannotConnect(why)

    def logged_in(self, username: str, password: str | None) -> None:
        """The front end logged in: from now on a lost connection is restored."""
        self._restore = Restore(username, password, None)
        self.state = "up"
        self.policy.connected()

    def retry_now(self) -> bool:
        """
        ``/reconnect`` or Ctrl+R: try at once, also after giving up (the
        server may have been fixed); false when not disconnected.
        """
        if self.state == "stopped" and self.gave_up is not None and self._restore is not None:
            self.gave_up = None
        elif self.state != "waiting":
            return False
        self._schedule(self.policy.retry_now(), "asked to retry")
        return True

    def when_up(self) -> Deferred[bool]:
        """Fires true once reconnected, false when given up or stopped."""
        if self.state == "up" and self.core.is_connected:
            return succeed(True)
        if not self.restores:
            return succeed(False)
        d: Deferred[bool] = Deferred()
        self._waiters.append(d)
        return d

    def stop(self) -> None:
        """No more attempts (the user is leaving)."""
        self._cancel()
        if self.reconnecting:
            self.state = "stopped"
            self._wake(False)
        self.enabled = False

    # -- the steps ----------------------------------------------------------

    def _event(self, event: ClientEvent) -> None:
        if not isinstance(event, Disconnected):
            return
        if self.state == "up":
            if event.clean or not self.enabled or self._restore is None:
                self.state = "stopped"
                self._wake(False)
                return
            self.shut_down = self.core.shutdown_message is not None
            self._restore = Restore(self._restore.username, self._restore.password,
                                    self.core.room)
            # The server's message was shown with its ``shutdown`` event:
            # not again in each line about the reconnect.
            why = "the server shut down" if self.shut_down else event.reason
            self._schedule(self.policy.lost(), why)
        elif self.state == "logging-in":
            planned, self._planned = self._planned, None
            step, why = planned or (self.policy.failed(), event.reason)
            self._schedule(step, why)

    def _schedule(self, step: Step, why: str) -> None:
        self._cancel()
        if isinstance(step, Attempt):
            self.state = "waiting"
            self._due = self.policy.now() + step.delay
            self._timer = self.core.clock.callLater(step.delay, self._attempt)
            self.core.emit(Reconnecting(why, str(step.server), step.delay,
                                        waiting_text(why, step)))
        else:
            self._give_up(f"{why}; giving up: {step.why}")

    def _give_up(self, why: str, login_refused: bool = False) -> None:
        self.state = "stopped"
        self.gave_up = GaveUp(why, login_refused)
        self.core.emit(self.gave_up)
        self._wake(False)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._due = None

    def _attempt(self) -> None:
        self._timer = self._due = None
        self.state = "connecting"
        server = self.policy.server
        d = self.connect_to(server)
        d.addCallbacks(self._connected, self._not_connected, errbackArgs=(server,))
        d.addErrback(lambda f: log.failure("reconnect failed", f))

    def _not_connected(self, failure: Any, server: Server) -> None:
        if self.state != "connecting":  # stopped meanwhile
            return
        self._schedule(self.policy.failed(), cannot_connect(failure.value, server))

    def _connected(self, _: Any) -> None:
        if self.state != "connecting":  # stopped meanwhile: leave again
            self.core.close()
            return
        assert self._restore is not None
        self.state = "logging-in"
        restore = self._restore
        d = self.core.login(restore.username, restore.password)
        d.addCallbacks(self._relogged, self._login_refused)
        d.addErrback(lambda f: log.failure("login after reconnect failed", f))

    def _login_refused(self, failure: Any) -> None:
        if failure.check(ConnectionClosed):  # the Disconnected event decides
            return
        error = failure.value
        message = getattr(error, "message", str(error))
        if isinstance(error, ChatError) and error.code == ErrorCode.USERNAME_TAKEN:
            assert self._restore is not None
            why = (f"{self._restore.username} is still logged in on {self.policy.server} "
                   "(the old session, until the server notices it is gone)")
            self._planned = (self.policy.name_taken(), why)
            self.core.close()
            return
        code = getattr(error, "code", None)
        if code is not None and code not in FINAL_REFUSALS:  # busy, throttled: later
            self._planned = (self.policy.failed(), f"logging in again was refused: {message}")
            self.core.close()
            return
        self._planned = None
        self._give_up(f"logging in again was refused: {message}", login_refused=True)
        self.core.close()

    def _relogged(self, reply: frames.LoginOk) -> None:
        assert self._restore is not None
        room = self._restore.room
        self.core.roster.room, self.core.roster.members = None, []
        if room is None:
            self._back(reply, None, None)
            return
        d = self.core.request(frames.Join(room=room))
        d.addCallback(lambda joined: self.core.roster.replied(frames.Join(room=room), joined))
        d.addCallbacks(lambda _: self._back(reply, room, None),
                       lambda f: self._back(reply, room, _message(f)))

    def _back(self, reply: frames.LoginOk, room: str | None, refused: str | None) -> None:
        if self.state != "logging-in" or not self.core.is_connected:
            return  # the connection went meanwhile: its event decides
        self.state = "up"
        self.policy.connected()
        username = reply.username or (self._restore.username if self._restore else "")
        self.core.emit(Reconnected(
            str(self.policy.server), username, room,
            reconnected_text(self.policy.server, username, room, refused),
        ))
        self._wake(True)

    def _wake(self, up: bool) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(up)


def _message(failure: Any) -> str:
    return str(getattr(failure.value, "message", failure.getErrorMessage()))
