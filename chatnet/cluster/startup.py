"""
A node's first registration, done before the reactor runs, so that a node
that cannot join its cluster refuses to start with one clear line (twistd
reports an exception from ``privilegedStartService``): Redis unreachable,
a refused password, or a live node with the same id.

It speaks just enough RESP over a blocking socket (with TLS for
``rediss://``) to ``AUTH``, ``SELECT`` and run :data:`.scripts.REGISTER`
once; everything after that goes through txredisapi on the reactor.
"""

from __future__ import annotations

import secrets
import socket
import ssl
from dataclasses import dataclass

from chatnet.cluster import scripts, timing, tls
from chatnet.cluster.keys import Address, Keys, NodeIdInUse


@dataclass(frozen=True)
class Registered:
    """A registration: the incarnation; where the inbox and ``~all`` stood (epoch, offset)."""

    incarnation: int
    inbox: tuple[str, int]
    everyone: tuple[str, int]


class Unreachable(Exception):
    """The cluster's Redis cannot be reached or refused us: the message says why."""


def _command(*args: str | int) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb")

    def reply(self) -> object:
        line = self._file.readline()
        if not line:
            raise Unreachable("Redis closed the connection")
        kind, rest = line[:1], line[1:-2].decode("utf-8", "replace")
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisRefused(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._file.read(n + 2)
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise Unreachable(f"not a Redis server (it answered {line[:40]!r})")


class RedisRefused(Exception):
    """An error reply."""


def register(address: Address, keys: Keys, node_id: str, lease: float,
             stream_length: int = 1000, timeout: float = 5.0, ca: str | None = None,
             token: str = "") -> Registered:
    """
    Register ``node_id``: its new incarnation, and where its inbox and the
    cluster events stand (to follow them from there).

    :raises NodeIdInUse: a live node has this id.
    :raises Unreachable: Redis cannot be reached, is not Redis, or refused
        the password or database.
    """
    answer = _session(address, timeout, ca, "EVAL", scripts.REGISTER.source, 0, keys.prefix, node_id,
                      timing.lease_ms(lease), stream_length, secrets.token_hex(8), token)
    where = str(address)
    if not isinstance(answer, list) or not answer:
        raise Unreachable(f"unexpected answer from the cluster's Redis at {where}: {answer!r}")
    if answer[0] == "in-use":
        raise NodeIdInUse(f"a live node of the cluster at {where} already has the id "
                          f"{node_id!r}: give this one another --node-id (or wait "
                          f"{lease:g}s if that node was just killed)")
    if len(answer) < 6:  # a registration repeated (its first answer lost)
        return Registered(int(str(answer[1])), ("", 0), ("", 0))
    return Registered(int(str(answer[1])), (str(answer[2]), int(str(answer[3]))),
                      (str(answer[4]), int(str(answer[5]))))


def deregister(address: Address, keys: Keys, node_id: str, timeout: float = 5.0,
               ca: str | None = None) -> None:
    """Take ``node_id`` out of the cluster at once (a start that failed after :func:`register`)."""
    _session(address, timeout, ca, "EVAL", _DEREGISTER_ANY, 0, keys.prefix, node_id)


#: DEREGISTER for whatever incarnation is live (the node never ran with it).
_DEREGISTER_ANY = scripts.DEREGISTER.source.replace(
    "local node, inc, maxlen, fresh = ARGV[2], ARGV[3], ARGV[4], ARGV[5]",
    "local node = ARGV[2]\nlocal inc = redis.call('GET', key('node', node, 'lease')) or ''\n"
    "local maxlen, fresh = 1000, 'e'")


def _session(address: Address, timeout: float, ca: str | None, *command: str | int) -> object:
    """Connect, authenticate, select the database, run ``command``: its answer."""
    where = str(address)
    try:
        sock: socket.socket = socket.create_connection((address.host, address.port), timeout)
    except OSError as e:
        raise Unreachable(f"cannot reach the cluster's Redis at {where}: "
                          f"{e.strerror or e}") from None
    try:
        if address.tls:
            context = tls.stdlib_context(ca)
            try:
                sock = context.wrap_socket(sock, server_hostname=address.host)
            except (ssl.SSLError, OSError) as e:
                raise Unreachable(f"TLS with the cluster's Redis at {where} failed: {e}") from None
        reader = _Reader(sock)

        def ask(*args: str | int) -> object:
            try:
                sock.sendall(_command(*args))
                answer = reader.reply()
            except (OSError, ValueError) as e:
                raise Unreachable(f"the cluster's Redis at {where} did not answer: {e}") from None
            return answer

        if address.password is not None:
            auth = ("AUTH", address.username, address.password) if address.username else (
                "AUTH", address.password)
            answer = ask(*auth)
            if isinstance(answer, RedisRefused):
                raise Unreachable(f"the cluster's Redis at {where} refused the password: {answer}")
        answer = ask("PING")
        if isinstance(answer, RedisRefused):
            raise Unreachable(f"the cluster's Redis at {where} refused us: {answer} "
                              "(a password is needed: in the URL or --cluster-password-file)")
        if address.db:
            answer = ask("SELECT", address.db)
            if isinstance(answer, RedisRefused):
                raise Unreachable(f"the cluster's Redis at {where} has no database "
                                  f"{address.db}: {answer}")

        answer = ask(*command)
        if isinstance(answer, RedisRefused):
            raise Unreachable(f"the cluster's Redis at {where} refused {command[0]}: "
                              f"{answer} (Redis 7 or later is needed)")
        return answer
    finally:
        sock.close()


assert _DEREGISTER_ANY != scripts.DEREGISTER.source, "DEREGISTER's arguments changed"
