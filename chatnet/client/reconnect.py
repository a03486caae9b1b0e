"""
When and where to connect again after the connection went: the policy.

* :func:`parse_servers` reads the servers from the command line, in both
  forms: ``HOST PORT`` (the C original's) and ``host1:8080 host2:8081``.
* :class:`Backoff` is exponential with jitter, capped: about 1 s, doubling up
  to 30 s.
* :class:`Policy` says, after each thing that happens (connection lost, an
  attempt failed, the name still taken, "retry now"), which server to try
  next and after how long (an :class:`Attempt`), or that it is time to stop
  (:class:`GiveUp`).  A lost connection is tried again on the same server
  first; an attempt that fails moves on to the next server at once, and only
  a full round of failures makes the pause grow.  Success starts afresh.
* What is restored after a reconnect (the name, its password and the room)
  is :class:`Restore`; the words the front ends show are here too.

Time and chance are passed in (``now``, ``random``), so every state can be
tested without a reactor.  :mod:`chatnet.client.link` carries the policy
out.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import ipaddress
import random as _random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "FINAL_REFUSALS", "Attempt", "Backoff", "GiveUp", "Policy", "Restore", "Server", "Step",
    "RepeatFilter", "parse_servers", "reconnected_text", "waiting_text",
]


@dataclass(frozen=True)
class Server:
    """One server's address."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_servers(words: Sequence[str], default_host: str, default_port: int) -> list[Server]:
    """
    The servers named on the command line, in order.

    ``[]`` is the default server; ``HOST`` and ``HOST PORT`` are the old
    form; otherwise every word is ``host:port`` or ``host`` (the default
    port); IPv6 addresses with a port go in brackets (``[::1]:8080``).

    :raises ValueError: with a message for the user.
    """
    if not words:
        return [Server(default_host, default_port)]
    if len(words) == 2 and ":" not in words[1] and _port_of(words[0]) is None:
        if not words[1].isdigit():  # HOST PORT, the old form
            raise ValueError(f"port {words[1]!r} is not a number")
        return [Server(_host_of(words[0]), _check_port(int(words[1])))]
    servers = []
    for word in words:
        if word.isdigit():  # a port where a host belongs (it would resolve as 0.0.x.y)
            raise ValueError(
                f"{word!r} is a port, not a host: give several servers as host:port "
                "(HOST PORT is for one server)"
            )
        port = _port_of(word)
        servers.append(Server(_host_of(word), default_port if port is None else port))
    return servers


def _port_of(word: str) -> int | None:
    """The port in ``host:port`` or ``[v6]:port``; ``None`` when none is given."""
    if word.startswith("["):
        _, _, rest = word.partition("]")
        if not rest:
            return None
        if not rest.startswith(":"):
            raise ValueError(f"{word!r}: expected [address]:port")
        tail = rest[1:]
    elif word.count(":") == 1:
        tail = word.partition(":")[2]
    else:  # a bare host, or a bare IPv6 address
        return None
    if not tail.isdigit():
        raise ValueError(f"{word!r}: the port must be a number")
    return _check_port(int(tail))


def _host_of(word: str) -> str:
    if word.startswith("["):
        host = word[1:].partition("]")[0]
    elif word.count(":") == 1:
        host = word.partition(":")[0]
    else:
        host = word
    if not host:
        raise ValueError(f"{word!r}: no host")
    if ":" in host:  # only an IPv6 address has colons in it
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise ValueError(
                f"{word!r}: expected host:port, [IPv6 address]:port or an IPv6 address"
            ) from None
    return host


def _check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return port


@dataclass(frozen=True)
class Backoff:
    """
    Pauses that double from ``first`` up to ``cap`` seconds; each is drawn
    between ``1 - jitter`` and 1 times its nominal value, so that many
    clients cut off at once do not all come back in the same instant.
    """

    first: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5

    def delay(self, failures: int, chance: float) -> float:
        """The pause after ``failures`` failed rounds; ``chance`` in [0, 1)."""
        nominal = min(self.cap, self.first * self.factor ** min(failures, 64))
        return nominal * (1 - self.jitter * chance)


@dataclass(frozen=True)
class Attempt:
    """Connect to ``server`` in ``delay`` seconds; the ``number``-th try since the loss."""

    server: Server
    delay: float
    number: int


@dataclass(frozen=True)
class GiveUp:
    """Stop trying: ``why`` says since when nothing worked."""

    why: str


Step = Attempt | GiveUp


@dataclass(frozen=True)
class Restore:
    """What a reconnect brings back: the name, its password and the room."""

    username: str
    password: str | None
    room: str | None


class Policy:
    """
    Which server next, and when.

    :param servers: in the order they are tried; the first is the one the
        client connects to first.
    :param now: the time in seconds (``reactor.seconds`` or a ``Clock``'s).
    :param random: draws in [0, 1) for the jitter.
    :param give_up_after: seconds without a working connection after which
        the next failure gives up; ``None`` tries for ever.
    :param taken_wait: the least pause when the server still has our name
        (the old session, not yet noticed gone).
    """

    def __init__(
        self,
        servers: Sequence[Server],
        now: Callable[[], float],
        random: Callable[[], float] = _random.random,
        backoff: Backoff | None = None,
        give_up_after: float | None = None,
        taken_wait: float = 5.0,
    ) -> None:
        if not servers:
            raise ValueError("no server to connect to")
        self.servers = list(servers)
        self.now = now
        self.random = random
        self.backoff = backoff or Backoff()
        self.give_up_after = give_up_after
        self.taken_wait = taken_wait
        #: The server of the current (or last working) connection.
        self.index = 0
        #: Failed rounds over every server since the connection was lost.
        self.failures = 0
        #: Attempts since the loss; where this round started.
        self.attempts = 0
        self._round_start = 0
        #: When the connection was lost; ``None`` while it works.
        self.lost_at: float | None = None

    @property
    def server(self) -> Server:
        """The server being tried, or in use."""
        return self.servers[self.index]

    def connected(self) -> None:
        """A connection works (and we are logged in): start afresh next time."""
        self.failures = self.attempts = 0
        self._round_start = self.index
        self.lost_at = None

    def lost(self) -> Attempt:
        """The connection went: the same server again, after the first pause."""
        self.lost_at = self.now()
        self.failures = 0
        self._round_start = self.index
        return self._attempt(self.backoff.delay(0, self.random()))

    def failed(self) -> Step:
        """
        An attempt failed (refused, unreachable, no answer): the next server
        at once, or, after a full round, the first of the round after a
        longer pause.
        """
        self._started()
        self.index = (self.index + 1) % len(self.servers)
        if self.index != self._round_start:
            return self._unless_too_long(0.0)
        self.failures += 1
        return self._unless_too_long(self.backoff.delay(self.failures, self.random()))

    def name_taken(self) -> Step:
        """
        The server still has our name (the old session, most likely, until it
        notices that connection is gone): the same server, after a while.
        """
        self._started()
        self.failures += 1
        pause = max(self.taken_wait, self.backoff.delay(self.failures, self.random()))
        return self._unless_too_long(pause)

    def retry_now(self) -> Attempt:
        """The user asked: the current server, now (the pauses stay as they were)."""
        self._started()
        return self._attempt(0.0)

    def _started(self) -> None:
        if self.lost_at is None:
            self.lost_at = self.now()

    def _unless_too_long(self, delay: float) -> Step:
        assert self.lost_at is not None
        if self.give_up_after is not None and self.now() - self.lost_at >= self.give_up_after:
            return GiveUp(f"no working connection for {_seconds(self.now() - self.lost_at)}")
        return self._attempt(delay)

    def _attempt(self, delay: float) -> Attempt:
        self.attempts += 1
        return Attempt(self.server, delay, self.attempts)


#: Refusals of the login after a reconnect that no later try can cure: the
#: name or its password is no longer accepted.  ``username-taken`` waits
#: (:meth:`Policy.name_taken`); anything else (``rate-limited``,
#: ``server-full``, a cluster's ``unavailable``) counts as a failed attempt.
FINAL_REFUSALS = frozenset({"auth-failed", "invalid-username"})


def waiting_text(why: str, step: Attempt) -> str:
    """The line shown when an attempt is scheduled: ``why`` the last one went."""
    if step.delay < 0.05:
        return f"{why}; reconnecting to {step.server} now"
    return f"{why}; reconnecting to {step.server} in {_seconds(step.delay)} (/reconnect to try now)"


class RepeatFilter:
    """
    What a front end that cannot take ``/reconnect`` (line mode reading a
    pipe) says of each scheduled attempt: the first failure and every new
    reason in full, the same reason again only once the wait has doubled
    since it was last said, and nothing otherwise.
    """

    def __init__(self) -> None:
        self._why: str | None = None
        self._said_delay = 0.0

    def reset(self) -> None:
        """The connection is back: the next failure is new."""
        self._why = None
        self._said_delay = 0.0

    def text(self, why: str, server: str, delay: float) -> str | None:
        """The line to show for an attempt in ``delay`` seconds, or ``None``."""
        when = "now" if delay < 0.05 else f"in {_seconds(delay)}"
        if why != self._why:
            self._why, self._said_delay = why, delay
            return f"{why}; reconnecting to {server} {when}"
        if delay < 2 * self._said_delay or delay < 0.05:
            return None
        self._said_delay = delay
        still = f"still {why}" if why.startswith("cannot ") else f"again: {why}"
        return f"{still}; next try {when}"


def reconnected_text(server: Server, username: str, room: str | None, rejoined: str | None) -> str:
    """
    ``reconnected to host:port as alice, back in groupA``; ``rejoined`` is
    ``None`` when the room was rejoined, else why not.
    """
    text = f"reconnected to {server} as {username}"
    if room is None:
        return text
    if rejoined is None:
        return f"{text}, back in {room}"
    return f"{text}; could not rejoin {room}: {rejoined}"


def status_text(server: Server, due_in: float | None) -> str:
    """The status bar's mark while disconnected."""
    if due_in is None or due_in < 0.5:
        return f"DISCONNECTED, connecting to {server}..."
    return f"DISCONNECTED, retry in {_seconds(due_in)} (Ctrl+R now)"


def _seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"
