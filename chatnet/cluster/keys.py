"""
Where cluster mode keeps things in Redis, and the scripts' replies read
into values.

Every key and channel starts with a prefix (``chatnet`` unless told) so
that one Redis may hold several clusters.  The layout (the Lua in
:mod:`.scripts` builds the same names; docs/cluster.rst shows it)::

    P:nodes                       set: node ids that registered
    P:node:<id>:incarnation       counter: INCR on each registration
    P:node:<id>:lease             string: the live incarnation, PEXPIRE lease
    P:node:<id>:users             set: folded usernames the node holds
    P:users                       zset (score 0): folded usernames, for paging
    P:user:<user>                 hash: name, node, inc, room (folded)
    P:rooms                       zset (score 0): folded room names
    P:room:<room>                 hash: name (the spelling it was created with)
    P:room:<room>:members         zset (score 0): folded usernames
    P:room:<room>:epoch           string: the room's sequence epoch
    P:room:<room>:offset          counter: the room's last offset
    P:room:<room>:stream          stream, MAXLEN ~ N: ids <offset>-0, field d
    channel P:chan:room:<room>    pub/sub: "<epoch>:<offset>:<payload>"

Names are folded (:func:`chatnet.validation.fold`) here, in Python; the
scripts never fold.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from chatnet.validation import fold

DEFAULT_PREFIX = "chatnet"


class ClusterError(Exception):
    """An answer from Redis that the scripts never give (a bug, or foreign data)."""


class Fenced(ClusterError):
    """
    The node's incarnation is no longer the live one: its lease ran out (it
    was presumed dead, and may have been reaped).  It must drop its clients
    and register anew; nothing it asked for was done.
    """


class NameTaken(ClusterError):
    """Another node holds the name (found when re-asserting after Redis lost its state)."""


class NodeIdInUse(ClusterError):
    """A live node already has this id."""


@dataclass(frozen=True)
class Keys:
    """Key and channel names under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in " \r\n"):
            raise ValueError(f"bad cluster key prefix {self.prefix!r}")

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def nodes(self) -> str:
        return self.key("nodes")

    def lease(self, node: str) -> str:
        return self.key("node", node, "lease")

    def incarnation(self, node: str) -> str:
        return self.key("node", node, "incarnation")

    def node_users(self, node: str) -> str:
        return self.key("node", node, "users")

    def user(self, name: str) -> str:
        return self.key("user", fold(name))

    def room(self, name: str) -> str:
        return self.key("room", fold(name))

    def members(self, room: str) -> str:
        return self.key("room", fold(room), "members")

    def stream(self, room: str) -> str:
        return self.key("room", fold(room), "stream")

    def offset(self, room: str) -> str:
        return self.key("room", fold(room), "offset")

    def channel(self, room: str) -> str:
        return self.key("chan", "room", fold(room))

    def room_of_channel(self, channel: str) -> str | None:
        """The folded room a channel name is for, or None if it is not one of ours."""
        head = self.key("chan", "room", "")
        return channel[len(head):] if channel.startswith(head) and len(channel) > len(head) else None


@dataclass(frozen=True)
class Join:
    """
    A join's outcome: ``status`` is ``ok`` (joined), ``same`` (already
    there: an ok no-op) or ``room-full`` (nothing changed).  ``left`` is the
    room left in the same step, or None.
    """

    status: str
    room: str = ""
    members: tuple[str, ...] = ()
    left: str | None = None
    #: Members the room left still has.
    left_members: int = 0
    #: Where the room's sequence stood just after the join (its ``join``
    #: presence included): the joiner's node follows the room from there.
    epoch: str = ""
    offset: int = 0


@dataclass(frozen=True)
class Page:
    """A page of names (``users``), sorted case-insensitively; ``more`` if a later page exists."""

    names: tuple[str, ...]
    more: bool


@dataclass(frozen=True)
class RoomEntry:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class RoomsPage:
    rooms: tuple[RoomEntry, ...]
    more: bool


@dataclass(frozen=True)
class Vanished:
    """A user taken out by a reap or a node's clean stop, and the room it was in."""

    user: str
    room: str | None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ClusterError(f"unexpected value from Redis: {value!r}")


def _list(reply: object) -> list[object]:
    if not isinstance(reply, list):
        raise ClusterError(f"unexpected reply from Redis: {reply!r}")
    return reply


def status(reply: object) -> tuple[str, list[object]]:
    """A script's reply ``{status, ...}`` split; :class:`Fenced` for ``fenced``."""
    items = _list(reply)
    if not items:
        raise ClusterError("empty reply from a script")
    head = _text(items[0])
    if head == "fenced":
        raise Fenced("this node's incarnation is no longer live")
    return head, items[1:]


def integer(value: object) -> int:
    try:
        return int(_text(value))
    except ValueError:
        raise ClusterError(f"not an integer: {value!r}") from None


def names(values: Sequence[object]) -> tuple[str, ...]:
    return tuple(_text(v) for v in values)


def optional(value: object) -> str | None:
    text = _text(value)
    return text or None


def join(reply: object) -> Join:
    head, rest = status(reply)
    if head == "room-full":
        return Join(head)
    if head in ("ok", "same") and len(rest) >= 5:
        return Join(head, _text(rest[0]), names(rest[5:]), optional(rest[1]),
                    integer(rest[2]), _text(rest[3]), integer(rest[4]))
    raise ClusterError(f"unexpected join reply {reply!r}")


def page(reply: object) -> Page:
    items = _list(reply)
    if not items:
        raise ClusterError("empty page reply")
    return Page(names(items[1:]), integer(items[0]) == 1)


def rooms_page(reply: object) -> RoomsPage:
    items = _list(reply)
    if not items:
        raise ClusterError("empty rooms reply")
    entries = []
    for item in items[1:]:
        fields = _list(item)
        entries.append(RoomEntry(_text(fields[0]), names(fields[1:])))
    return RoomsPage(tuple(entries), integer(items[0]) == 1)


def vanished(values: Sequence[object]) -> tuple[Vanished, ...]:
    """Flat ``user, room`` pairs (room ``""`` for none)."""
    if len(values) % 2:
        raise ClusterError(f"odd vanished list {values!r}")
    return tuple(Vanished(_text(values[i]), optional(values[i + 1])) for i in range(0, len(values), 2))


@dataclass(frozen=True)
class Address:
    """
    Where Redis is: from ``redis://[[user]:password@]host[:port][/db]``, or
    ``rediss://`` for TLS.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    password: str | None = field(default=None, repr=False)
    #: TLS (``rediss://``): the server's certificate is checked against
    #: ``host`` and the system's trusted authorities.
    tls: bool = False
    #: The ACL user (Redis 6+) to ``AUTH`` as; ``None``: the default user.
    username: str | None = None

    def __str__(self) -> str:
        """The URL without the password (safe to log)."""
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.db}"


#: The URL schemes :func:`parse_url` takes, and whether each means TLS.
SCHEMES = {"redis": False, "rediss": True}


def parse_url(url: str) -> Address:
    """
    An :class:`Address` from a ``redis://`` or ``rediss://`` (TLS) URL:
    ``redis://[[user]:password@]host[:port][/db]``, the user and password
    percent-encoded where they need it.

    :raises ValueError: for another scheme, no host, a bad port or a bad
        database number, or a query or fragment (options that would be
        ignored).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"not a redis:// or rediss:// URL: {redact(url)!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"options in a Redis URL are not supported: {redact(url)!r}")
    path = parts.path.strip("/")
    try:
        port = 6379 if parts.port is None else parts.port
        db = int(path) if path else 0
    except ValueError:
        raise ValueError(f"bad port or database in {redact(url)!r}") from None
    if not 0 < port < 65536 or db < 0:
        raise ValueError(f"bad port or database in {redact(url)!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {redact(url)!r}")
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    return Address(parts.hostname, port, db, password, SCHEMES[scheme], username)


def redact(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
