"""
The session's own requests: ``login`` (with or without accounts), ``ping``
and ``exit``, and logging out.

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from chatnet import frames
from chatnet.config import SERVER_NAME
from chatnet.errors import ChatError, ErrorCode
from chatnet.frames import Ok
from chatnet.model import Left, User
from chatnet.session_base import SessionBase, State, left_fields
from chatnet.shared_state import answered_now, when
from chatnet.throttle import address_key
from chatnet.validation import check_username, fold, show


class LoginRequests(SessionBase):
    """``login``, ``ping``, ``exit`` (a mixin of :class:`~chatnet.session.Session`)."""

    __slots__ = ()

    def _login(self, req: frames.Login) -> None:
        hub = self.hub
        if self.state is not State.NEW:
            raise ChatError(ErrorCode.ALREADY_LOGGED_IN, f"Already logged in as {self._user().name}")
        given = req.username
        try:
            name = check_username(given)
        except ChatError as e:
            self._login_failed(given, e)
            self._error(req.id, e, audit=False)  # the LOGIN-FAILED line says it all
            return
        auth = hub.auth
        if auth is None:
            self._enter(req, name)
            return
        # With accounts: throttled, then the password checked in a thread.
        throttle = hub.throttle
        record = self._logins
        if record is None:
            record = self._logins = throttle.new_connection()
        address, account = address_key(self.peer), fold(name)
        wait = throttle.wait(record, address, account, hub.now())
        if wait > 0:
            throttle.refused(record)
            self._login_refused(req, name, ChatError(
                ErrorCode.RATE_LIMITED,
                f"Too many failed logins; try again in {math.ceil(wait)}s",
                math.ceil(wait * 100) / 100,
            ), refused=True)
            return
        password = req.password
        if not isinstance(password, str):  # a client's first try; not a guess
            self._login_refused(req, name, _WRONG_PASSWORD)
            return

        def checked(right: bool) -> None:
            if right:
                throttle.succeeded(record, account)
                self._enter(req, name)
            else:
                throttle.failed(record, address, account, hub.now())
                self._login_refused(req, name, _WRONG_PASSWORD)

        self.wait(auth.check(name, password), checked, req.id, cancellable=True)

    def _login_failed(self, given: object, error: ChatError) -> None:
        """The ``LOGIN-FAILED`` line of a refused login, and its count."""
        hub = self.hub
        hub.stats.login(error.code.value)
        hub.audit(
            "LOGIN-FAILED", f"{self.peer} as {show(given)}: {error.code.value}: {error.message}",
            {"peer": self.peer, "user": show(given), "code": error.code.value},
        )

    def _login_refused(
        self, req: frames.Login, name: str, error: ChatError, refused: bool = False
    ) -> None:
        """
        Answer a login refused for its password, or refused unchecked
        (``refused``): the audit lines are summed (:class:`~chatnet.throttle.FailureDigest`),
        and a connection that keeps failing is closed.
        """
        hub = self.hub
        throttle = hub.throttle
        if throttle.digest.failed(fold(name), address_key(self.peer), hub.now(), refused):
            self._login_failed(name, error)
        else:
            hub.stats.login(error.code.value)
        self._error(req.id, error, audit=False)
        record = self._logins
        if record is not None and throttle.exhausted(record):
            self._close(f"closed after {record.failures + record.refused} failed logins")

    def _enter(self, req: frames.Login, name: str) -> None:
        """Log in as ``name`` (valid, and the password right if one is needed)."""
        user = User(name, self.outbox, self.peer)
        user.offers = req.offers is True
        user.notices = req.notices is True
        try:
            answer = self.hub.shared.enter(user)
        except ChatError as e:
            self._login_failed(name, e)
            self._error(req.id, e, audit=False)  # the LOGIN-FAILED line says it all
            return
        if answer is None:
            self._entered(req, user)
        else:  # a cluster: the name is held once the cluster says so
            self.wait(answer, lambda _: self._entered(req, user), req.id,
                      undo=lambda _: self._abandon(user), refused=self._login_failed_as(name))

    def _login_failed_as(self, name: str) -> Callable[[ChatError], None]:
        return lambda e: self._login_failed(name, e)

    def _abandon(self, user: User) -> None:
        """The connection went while its name was being held: give the name back."""
        self.hub.shared.exit(user, clean=False, quiet=True)

    def _entered(self, req: frames.Login, user: User) -> None:
        hub = self.hub
        name = user.name
        self.user = user
        self._online = True
        self.state = State.ACTIVE
        if self._admitted:
            hub.admission.logged_in(self.host)
        hub.stats.login("ok")
        hub.audit("LOGIN", f"{name} logged in from {self.peer}", {"user": name, "peer": self.peer})
        self._reply(frames.LoginOk(req.id, user.name, SERVER_NAME, hub.settings.limits()))

    def _ping(self, req: frames.Ping) -> None:
        self.outbox.send(Ok.encode(req.id))

    def _exit(self, req: frames.Exit) -> None:
        self._exited = True
        out = self._logout(clean=True) if self._online else None
        if out is None or answered_now(out):
            self._bye(req)
        else:  # a cluster: answered once the name is free everywhere
            self.wait(out, lambda _: self._bye(req), req.id)

    def _bye(self, req: frames.Exit) -> None:
        self.outbox.send(Ok.encode(req.id))
        self._close(None)

    def _logout(self, clean: bool) -> Any:
        """Take the user out: what the shared state answered (a value, or a Later of it)."""
        user = self.user
        assert user is not None
        self._online = False
        hub = self.hub
        quiet = hub.shutting_down
        out = hub.shared.exit(user, clean, quiet)
        when(out, lambda left: self._left(user, left, quiet), self._failed_quietly)
        hub.transfers.user_gone(user)
        return out

    def _left(self, user: User, left: Left | None, quiet: bool) -> None:
        if left is not None and not quiet:
            self.hub.audit("LEAVE", f"{user.name} left {left.room} ({left.occupancy})",
                           left_fields(user, left))

    def _failed_quietly(self, failure: Any) -> None:
        _log.failure("while taking {who} out", failure, who=self.who)


_log = Logger()
_WRONG_PASSWORD = ChatError(ErrorCode.AUTH_FAILED, "Wrong username or password")
