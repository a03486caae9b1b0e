"""
Password checks through :mod:`twisted.cred`, off the reactor thread.

:class:`AccountsChecker` is an :class:`~twisted.cred.checkers.ICredentialsChecker`
for :class:`~twisted.cred.credentials.IUsernamePassword` over
:class:`~chatnet.accounts.Accounts`: the argon2 check runs in a thread
(:func:`~twisted.internet.threads.deferToThread`), a few at a time, so a
login storm cannot stall chat nor take all the memory argon2 asks for.
:class:`PortalAuthenticator` is what the session calls
(:class:`chatnet.interfaces.Authenticator`): a :class:`~twisted.cred.portal.Portal`
with that checker and a realm whose avatar is the account's name, answering
``True`` or ``False`` later.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, DeferredSemaphore, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from chatnet.accounts import Accounts
from chatnet.hub import Hub
from chatnet.validation import fold

_log = Logger()

#: Password checks running at once.  Each argon2 check takes its hash's
#: memory (64 MiB with argon2-cffi's defaults) and a core for its time.
CHECKS_AT_ONCE = 2

RunInThread = Callable[..., "Deferred[Any]"]
_T = TypeVar("_T")


class IAccount(Interface):
    """The avatar of a chatnet login: the account's folded name (a ``str``)."""


@implementer(ICredentialsChecker)
class AccountsChecker:
    """
    Checks a user name and password against :class:`~chatnet.accounts.Accounts`.

    :param run: how to run the blocking check (default: in the reactor's
        thread pool); tests pass one that runs it at once.
    :param at_once: checks running at once; the rest wait their turn.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(
        self, accounts: Accounts, run: RunInThread = deferToThread, at_once: int = CHECKS_AT_ONCE
    ) -> None:
        self.accounts = accounts
        self._run = run
        self._slots = DeferredSemaphore(at_once)

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[bytes | tuple[()]]:
        username = _text(credentials.username)
        password = _text(credentials.password)

        def check(_: object) -> Deferred[bool]:
            # The check runs to its end and holds its slot until then, even if
            # the one who asked is gone (its Deferred cancelled): a thread
            # cannot be stopped, and freeing the slot early would let more
            # checks run at once than CHECKS_AT_ONCE.
            work = maybeDeferred(self._run, in_background, self.accounts.verify, username, password)
            answer: Deferred[bool] = Deferred()

            def settle(result: bool | Failure) -> None:
                self._slots.release()
                if answer.called:  # cancelled: nobody wants it
                    return
                if isinstance(result, Failure):
                    answer.errback(result)
                else:
                    answer.callback(result)

            work.addBoth(settle)
            return answer

        # Cancelled while it waits for a slot, the check never runs.
        d = self._slots.acquire().addCallback(check)

        def decide(right: bool) -> bytes | tuple[()]:
            if not right:
                raise UnauthorizedLogin("Wrong username or password")
            return fold(username).encode("utf-8")

        return d.addCallback(decide)


@implementer(IRealm)
class AccountRealm:
    """Hands out the account's name as the avatar; logging out does nothing."""

    def requestAvatar(
        self, avatarId: Any, mind: object, *interfaces: Any
    ) -> tuple[Any, str, Callable[[], None]]:
        if IAccount not in interfaces:
            raise NotImplementedError("only IAccount avatars")
        return IAccount, _text(avatarId), lambda: None


class PortalAuthenticator:
    """
    What the session asks whether a password is right.

    :param portal: a portal for :class:`IAccount` avatars (see :func:`portal_for`).
    """

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def check(self, username: str, password: str) -> Deferred[bool]:
        """Fires ``True`` (right), ``False`` (wrong), or fails (something broke)."""
        credentials = UsernamePassword(
            username.encode("utf-8"), password.encode("utf-8", "surrogatepass")
        )
        d = maybeDeferred(self.portal.login, credentials, None, IAccount)
        return d.addCallbacks(lambda _: True, _wrong)


def portal_for(accounts: Accounts, run: RunInThread = deferToThread) -> Portal:
    """A :class:`Portal` checking ``accounts`` with :class:`AccountsChecker`."""
    return Portal(AccountRealm(), [AccountsChecker(accounts, run)])


def authenticator(accounts: Accounts, run: RunInThread = deferToThread) -> PortalAuthenticator:
    """The session's authenticator for ``accounts``."""
    return PortalAuthenticator(portal_for(accounts, run))


def run_now(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """Run ``f`` at once, in this thread (for tests and examples)."""
    return maybeDeferred(f, *args)


#: Niceness added to a thread that checks passwords (Linux only).
NICENESS = 10
_niced = threading.local()


def in_background(f: Callable[..., _T], *args: Any) -> _T:
    """
    Call ``f(*args)`` at a lower CPU priority than the reactor's thread.

    On Linux the priority belongs to the thread, and the threads argon2
    starts for its lanes inherit it: while checks use every core, the
    reactor still gets one when it has chat to move.  Elsewhere ``f`` just
    runs.
    """
    if sys.platform.startswith("linux") and not getattr(_niced, "done", False):
        _niced.done = True
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICENESS))
        except OSError as e:  # e.g. a seccomp filter (systemd's @resources)
            _log.warn(
                "password checks run at the server's own priority: cannot lower it ({why})",
                why=e.strerror,
            )
    return f(*args)


def _wrong(failure: Failure) -> bool:
    failure.trap(UnauthorizedLogin)
    return False


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


#: Seconds between two looks for summed failed-login lines to write.
SWEEP_INTERVAL = 5.0


def install(
    hub: Hub, accounts: Accounts, clock: IReactorTime, run: RunInThread = deferToThread
) -> LoopingCall:
    """
    Make ``hub`` check passwords against ``accounts`` and write its summed
    failed-login lines every few seconds.

    :returns: the running sweep; stop it at shutdown (then ``hub.sweep(True)``).
    """
    hub.auth = authenticator(accounts, run)
    sweeper = LoopingCall(hub.sweep)
    sweeper.clock = clock
    sweeper.start(SWEEP_INTERVAL, now=False)
    return sweeper
