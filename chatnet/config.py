"""
The server's settings, with the contract's defaults.

Pure: imports nothing from Twisted.  :mod:`chatnet.tap` fills one
:class:`Settings` from the command line.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from chatnet import validation
from chatnet._version import __version__
from chatnet.cluster.keys import DEFAULT_PREFIX, Address, Keys, parse_url, redact

if TYPE_CHECKING:
    from chatnet.accounts import Accounts

SERVER_NAME = f"chatnet/{__version__}"

MIB = 1024 * 1024

#: The most ``--room-capacity`` may be: a ``join`` or ``who`` reply lists
#: every member (up to 19 bytes each), and must fit one 65,541-byte frame.
MAX_ROOM_CAPACITY = 3000
#: The most ``--max-text`` may be: JSON may double a text's bytes (every
#: ``"``, ``\\``, tab or newline takes two), and a ``message`` event must
#: still fit one frame.
MAX_TEXT_LIMIT = 32_000


#: What a node id may be: the name other nodes, the audit log and the
#: metrics call the node, and part of its Redis keys.
NODE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: ``--upload-slots-scope``: the upload slots and queue are shared by the
#: whole cluster, or each node has its own.
SLOT_SCOPES = ("cluster", "node")
#: The shortest lease a node may have: a beat comes every third of it, and
#: one Redis reply may take half a second before the link is presumed dead.
MIN_LEASE = 1.0
#: The wildcard interfaces: listening on every address, which no other
#: node can connect to as such.
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


def check_node_id(text: str) -> str:
    """``text`` if it is a valid node id, else :class:`ValueError` saying why."""
    if NODE_ID.fullmatch(text) is None:
        raise ValueError(
            f"{text!r} is not a node id: 1-64 letters, digits, '_', '.' or '-'"
        )
    return text


def check_host(text: str) -> str:
    """``text`` if it is a host name or an IP address, else :class:`ValueError`."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        labels = text.rstrip(".").split(".")
        if not text or len(text) > 253 or not all(
            re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in labels
        ):
            raise ValueError(f"{text!r} is not a host name or an IP address") from None
    return text


def endpoint_parts(description: str) -> tuple[str, list[str], dict[str, str]]:
    """
    A Twisted endpoint string split as ``serverFromString`` splits it: its
    kind (lower case), positional and keyword arguments, with ``\\:``
    escapes undone (``tcp6:0:interface=\\:\\:1``).
    """
    tokens: list[str] = []
    current: list[str] = []
    chars = iter(description)
    for c in chars:
        if c == "\\":
            current.append(next(chars, ""))
        elif c == ":":
            tokens.append("".join(current))
            current = []
        else:
            current.append(c)
    tokens.append("".join(current))
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for token in tokens[1:]:
        name, eq, value = token.partition("=")
        if eq:
            kwargs[name] = value
        else:
            args.append(token)
    return tokens[0].lower(), args, kwargs


@dataclass(frozen=True, repr=False)
class ClusterSettings:
    """
    Cluster mode (``--cluster``; docs/cluster.rst): where the shared state
    is and how this node takes part.  Checked when made: a bad value is a
    :class:`ValueError` naming the field.
    """

    #: The shared state: ``redis://[[user]:password@]host[:port][/db]``,
    #: or ``rediss://`` for TLS.
    url: str
    #: This node's name in the cluster (:data:`NODE_ID`); unique among live nodes.
    node_id: str
    #: Seconds after which a node that stopped renewing its lease is dead.
    lease: float = 10.0
    #: The Redis password, from ``--cluster-password-file``; the URL may
    #: carry one instead, never both.  :meth:`address` has the one to use.
    password: str | None = None
    #: What every Redis key and channel of the cluster starts with.
    prefix: str = DEFAULT_PREFIX
    #: :data:`SLOT_SCOPES`: ``cluster``, the upload slots and queue are
    #: cluster-wide (``upload_slots`` running in the whole cluster), or
    #: ``node``, each node has ``upload_slots`` of its own.
    slots: str = "cluster"
    #: The server endpoint on which this node serves its spooled files to
    #: the other nodes (``tcp:`` or ``tcp6:``).
    files: str = "tcp:0:interface=127.0.0.1"
    #: The host other nodes connect to for :attr:`files`; ``None``: the
    #: interface it listens on (which must then not be a wildcard).
    advertise: str | None = None
    #: For ``rediss://``: a PEM file of the authorities that Redis's
    #: certificate must be signed by; ``None``: the system's.
    ca: str | None = None

    def __post_init__(self) -> None:
        try:
            address = parse_url(self.url)
        except ValueError as e:
            raise ValueError(f"url: {e}") from None
        if self.password is not None and address.password is not None:
            raise ValueError("password: given twice, in the URL and on its own")
        if self.password is not None and (not self.password or "\n" in self.password):
            raise ValueError("password: empty, or more than one line")
        try:
            check_node_id(self.node_id)
        except ValueError as e:
            raise ValueError(f"node_id: {e}") from None
        if not math.isfinite(self.lease) or self.lease < MIN_LEASE:
            raise ValueError(f"lease: at least {MIN_LEASE:g} second, not {self.lease!r}")
        try:
            Keys(self.prefix)
        except ValueError as e:
            raise ValueError(f"prefix: {e}") from None
        if self.slots not in SLOT_SCOPES:
            raise ValueError(f"slots: {self.slots!r} is not one of {', '.join(SLOT_SCOPES)}")
        kind, _, _ = endpoint_parts(self.files)
        if kind not in ("tcp", "tcp6"):
            raise ValueError(f"files: {self.files!r} is not a tcp: or tcp6: endpoint")
        if self.ca is not None and not address.tls:
            raise ValueError("ca: only for a rediss:// URL (TLS)")
        if self.advertise is not None:
            try:
                check_host(self.advertise)
            except ValueError as e:
                raise ValueError(f"advertise: {e}") from None
        elif self.files_interface() is None:
            raise ValueError(
                f"advertise: needed, since files ({self.files!r}) listens on every "
                "interface: say which host the other nodes should connect to"
            )

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["url"] = redact(self.url)
        if self.password is not None:
            shown["password"] = "***"
        return f"ClusterSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def address(self) -> Address:
        """Where Redis is, with the password to use (from the URL or :attr:`password`)."""
        address = parse_url(self.url)
        if self.password is not None:
            address = Address(address.host, address.port, address.db, self.password,
                              address.tls, address.username)
        return address

    def files_interface(self) -> str | None:
        """The address :attr:`files` listens on, or ``None`` for every interface."""
        _, args, kwargs = endpoint_parts(self.files)
        interface = kwargs.get("interface", args[1] if len(args) > 1 else "")
        return None if interface in _WILDCARDS else interface

    def files_host(self) -> str:
        """The host other nodes connect to for this node's files."""
        host = self.advertise or self.files_interface()
        assert host is not None, "checked when made"
        return host


@dataclass(frozen=True)
class Settings:
    """Every limit the server enforces; the defaults are the contract's."""

    max_clients: int = 10_000
    room_capacity: int = 15
    max_text: int = 4096
    max_file_size: int = 3 * MIB
    #: Lower-case extensions without the dot, or ``None`` for every type.
    allowed_extensions: frozenset[str] | None = None
    upload_slots: int = 5
    upload_queue: int = 100
    #: Waiting queue places one sender may hold (PROTOCOL.md section 5,
    #: "Fairness").  20: five senders are needed to fill the default queue,
    #: and a client that sends a batch of up to 20 files while every slot is
    #: busy (or 25 to an idle server) is never refused.
    upload_queue_per_user: int = 20
    #: Files and bytes the spool may hold for one addressee (uploads to it in
    #: progress, by declared size, and files not yet delivered to it); more
    #: uploads to it wait in the queue without starting.  16 files and
    #: 48 MiB (16 files of the default largest size) hold back nobody who
    #: reads what is sent, and bound what a receiver that never reads costs.
    addressee_spool_files: int = 16
    addressee_spool_bytes: int = 48 * MIB
    #: Bytes the spool may hold in all; ``None``: half the free space of the
    #: spool's file system at start, at most 1 GiB.
    spool_size: int | None = None
    login_timeout: float = 30.0
    #: Seconds an upload may go without a data frame before it fails
    #: (``size-mismatch``), so a stalled sender cannot hold a slot forever.
    upload_idle_timeout: float = 60.0
    #: Files streamed to one addressee at once; later ones wait, uploaded,
    #: for their turn.  Each one streaming holds its spool file open.
    deliveries_per_user: int = 4
    #: Seconds an addressee that logged in with ``offers`` has to accept or
    #: decline a file before the offer fails with ``declined``.
    offer_timeout: float = 300.0
    shutdown_grace: float = 5.0
    max_output: int = 8 * MIB
    #: Seconds a connection's output may stay blocked, its client reading
    #: nothing, before it is closed as a slow consumer (0: never).
    stall_timeout: float = 60.0
    #: Requests a connection may make per second on average (0: no limit),
    #: and how many it may make at once (0: twice the rate, at least 1).
    rate_limit: float = 0.0
    rate_burst: int = 0
    #: Seconds a frame that has begun may take to complete (0: no limit).
    frame_timeout: float = 30.0
    #: The flood limit ("fakelag"): past ``flood_burst`` requests at once, a
    #: connection's requests are served at most ``flood_rate`` a second by
    #: pausing its reading; nothing is refused (0: off).
    flood_rate: float = 200.0
    flood_burst: int = 1000
    #: Connections one peer address may hold at once, and of those, how
    #: many may be not logged in yet; and connections not logged in yet in
    #: total (0: no limit).  See docs/operations.rst, "Security".
    max_per_address: int = 256
    max_pending_per_address: int = 64
    max_pending: int = 2000
    #: The accounts (``--accounts``), when the operator configured them:
    #: then every login needs its password.
    accounts: Accounts | None = field(default=None, repr=False)
    #: Zero-copy framing and write-through TCP where the installed Twisted
    #: allows them (:mod:`chatnet.fastpath`); ``--no-fast-path`` turns them off.
    fast_path: bool = True
    #: Leave Nagle's algorithm on for clients' connections (``--nagle``): the
    #: kernel then holds a small write while an earlier one is
    #: unacknowledged.  Less CPU under a steady load of many quiet rooms;
    #: up to a delayed ACK (40 ms) more latency for a client whose ACKs are
    #: delayed.  Off by default: every frame leaves at once (``TCP_NODELAY``).
    nagle: bool = False
    #: Cluster mode (``--cluster``), or ``None`` for a single server.
    cluster: ClusterSettings | None = None

    def burst(self) -> int:
        """Requests a connection may make at once under the rate limit."""
        return self.rate_burst or max(1, round(2 * self.rate_limit))

    def limits(self) -> dict[str, Any]:
        """
        The ``limits`` object of the ``login`` reply (integers, as the
        contract says).  In a cluster, ``upload_per_node`` says whether
        ``upload_slots`` and ``upload_queue`` are the whole cluster's (0)
        or this node's own (1).
        """
        limits: dict[str, Any] = {
            "username": validation.MAX_USERNAME,
            "room": validation.MAX_ROOM,
            "room_capacity": self.room_capacity,
            "text": self.max_text,
            "file_size": self.max_file_size,
            "upload_slots": self.upload_slots,
            "upload_queue": self.upload_queue,
        }
        if self.cluster is not None:
            limits["upload_per_node"] = int(self.cluster.slots == "node")
        return limits
