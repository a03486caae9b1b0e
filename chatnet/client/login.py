"""
Logging in, once for both front ends.

:func:`log_in` sends ``login`` and handles the refusals of PROTOCOL.md
section 3: a taken or invalid name asks for another one, ``auth-failed``
asks for the password, and a front end that cannot ask (line mode with
``--username``, or without a terminal for a password) stops with the reason.
The front ends supply only how to ask and how to show
(:class:`LoginFront`) and turn the :data:`Outcome` into their exit status.

Pure: imports nothing from Twisted; the core and the front end are passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from chatnet import frames
from chatnet.client.events import ConnectionClosed, Disconnected, LocalError
from chatnet.errors import ChatError, ErrorCode

__all__ = [
    "Closed", "LoggedIn", "LoginCore", "LoginFront", "NoInput", "Outcome",
    "Rejected", "Then", "log_in",
]


class Then(enum.Enum):
    """What the flow does after a refusal."""

    USERNAME = "username"  #: asks for another username
    PASSWORD = "password"  #: asks for the password for the same name
    STOP = "stop"  #: gives up: the front end cannot ask


class LoginCore(Protocol):
    """What the flow needs of :class:`~chatnet.client.core.ClientCore`."""

    @property
    def gone(self) -> Disconnected | None: ...

    def login(self, username: str, password: str | None = None) -> Awaitable[frames.LoginOk]: ...


class LoginFront(Protocol):
    """How a front end asks and shows."""

    @property
    def asks_again(self) -> bool:
        """Whether a refused name may be followed by another one."""

    @property
    def asks_password(self) -> bool:
        """Whether the password can be asked for (unechoed)."""

    def ask_username(self) -> Awaitable[str | None]:
        """The next username typed; ``None`` when input ended."""

    def ask_password(self, username: str) -> Awaitable[str | None]:
        """The password for ``username``; empty to choose another username."""

    def refused(self, error: ChatError | LocalError, then: Then, username: str) -> None:
        """Show why ``username`` was refused and what comes next."""


@dataclass(frozen=True)
class LoggedIn:
    """The ``ok`` reply to ``login``; ``password`` is the one that worked."""

    reply: frames.LoginOk
    password: str | None


@dataclass(frozen=True)
class Rejected:
    """Refused, and the front end cannot ask again."""

    error: ChatError | LocalError

    @property
    def needs_password(self) -> bool:
        return isinstance(self.error, ChatError) and self.error.code == ErrorCode.AUTH_FAILED


@dataclass(frozen=True)
class NoInput:
    """Input ended before a name was accepted."""


@dataclass(frozen=True)
class Closed:
    """The connection went before a name was accepted (see ``core.gone``)."""


Outcome = LoggedIn | Rejected | NoInput | Closed


async def log_in(
    core: LoginCore,
    front: LoginFront,
    username: str | None = None,
    password: str | None = None,
) -> Outcome:
    """
    Log in as ``username`` (or a name the front end asks for), asking again
    after each refusal for as long as the front end can.
    """
    name = username
    while True:
        if name is None:
            typed = await front.ask_username()
            if typed is None:
                return Closed() if core.gone is not None else NoInput()
            name = typed.strip() or None
            continue
        try:
            reply = await core.login(name, password)
        except ConnectionClosed:
            return Closed()
        except (ChatError, LocalError) as error:
            then = _then(error, front)
            front.refused(error, then, name)
            if then is Then.STOP:
                return Rejected(error)
            if then is Then.PASSWORD:
                password = await front.ask_password(name)
                if password:
                    continue
                password = None
            name = None
            continue
        return LoggedIn(reply, password)


def _then(error: ChatError | LocalError, front: LoginFront) -> Then:
    if isinstance(error, ChatError) and error.code == ErrorCode.AUTH_FAILED:
        return Then.PASSWORD if front.asks_password else Then.STOP
    return Then.USERNAME if front.asks_again else Then.STOP
