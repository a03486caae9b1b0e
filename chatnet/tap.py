"""
``twistd chatnet``: command-line options and the service they make.

Modelled on ``twisted/words/tap.py``: :class:`Options` parses and checks the
command line (every bad value is a :class:`~twisted.python.usage.UsageError`
with a clear message, never a traceback), :func:`makeService` builds the
:class:`~chatnet.service.ChatService`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import signal
import socket
import stat
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.logger import Logger
from twisted.python import usage

from chatnet import spool, validation
from chatnet._version import __version__
from chatnet.accounts import Accounts, AccountsError, mode_warning
from chatnet.audit import FORMATS
from chatnet.cluster.keys import parse_url, redact
from chatnet.config import (
    MAX_ROOM_CAPACITY,
    MAX_TEXT_LIMIT,
    MIB,
    MIN_LEASE,
    SLOT_SCOPES,
    ClusterSettings,
    Settings,
    check_host,
    check_node_id,
)
from chatnet.service import ChatService, quiet_cannot_start

_log = Logger()

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}


def parse_size(text: str) -> int:
    """``"3MiB"``, ``"512k"``, ``"3145728"`` -> bytes (binary units)."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a size (examples: 3145728, 512KiB, 3MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def endpoint_description(text: str) -> str:
    """A bare port number becomes ``tcp:PORT``; anything else is kept."""
    text = text.strip()
    if text.isdigit():
        if not 0 <= int(text) <= 65535:
            raise ValueError(f"port {text} is out of range (0-65535)")
        return f"tcp:{text}"
    if not text:
        raise ValueError("empty endpoint")
    return text


N = TypeVar("N", int, float)


def _number(kind: Callable[[str], N]) -> Callable[[str], N]:
    """``int`` or ``float`` with a message a user can read."""
    what = "a whole number" if kind is int else "a number"

    def convert(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected {what}, not {text!r}") from None
        if not math.isfinite(value):  # nan, inf: no timeout, rate or size
            raise ValueError(f"expected a finite number, not {text!r}")
        return value

    return convert


def _positive(kind: Callable[[str], N]) -> Callable[[str], N]:
    def coerce(text: str) -> N:
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be greater than 0, not {text}")
        return value

    coerce.coerceDoc = "Must be greater than 0."  # type: ignore[attr-defined]
    return coerce


def _non_negative_float(text: str) -> float:
    value = _number(float)(text)
    if value < 0 or value != value:
        raise ValueError(f"must be 0 or more, not {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _number(int)(text)
    if value < 0:
        raise ValueError(f"must be 0 or more, not {text}")
    return value


_positive_int = _positive(_number(int))
_positive_size = _positive(parse_size)
_positive_float = _positive(_number(float))


def _size_or_auto(text: str) -> int | None:
    """A size, or ``auto`` (``None``)."""
    return None if text.strip().lower() == "auto" else _positive_size(text)


def _lease(text: str) -> float:
    value = _positive_float(text)
    if value < MIN_LEASE:
        raise ValueError(
            f"at least {MIN_LEASE:g} second, not {text} (the lease is renewed every third "
            "of it, and one Redis reply may take half a second)")
    return value


_lease.coerceDoc = f"At least {MIN_LEASE:g}."  # type: ignore[attr-defined]


def _named(name: str, coerce: Callable[[str], Any]) -> Callable[[str], Any]:
    """``coerce`` whose errors name the option (``--max-clients: ...``)."""

    def named(text: str) -> Any:
        try:
            return coerce(text)
        except ValueError as e:
            raise ValueError(f"--{name}: {e}") from None

    named.coerceDoc = getattr(coerce, "coerceDoc", None)  # type: ignore[attr-defined]
    return named


class Options(usage.Options):
    """twistd chatnet [options]"""

    synopsis = "[options]"
    longdesc = (
        "Run the chatnet chat and file-sharing server. --port takes a port "
        "number or any Twisted server endpoint string, e.g. "
        "tcp:8080:interface=127.0.0.1 or "
        "ssl:8443:privateKey=key.pem:certKey=cert.pem. Sizes take binary "
        "units: 3MiB, 512KiB, or plain bytes. --cluster redis://HOST:6379/0 makes "
        "this server one node of a cluster (docs/cluster.rst); the options whose "
        "help starts with Cluster: need it."
    )

    # [long, short, default, doc, coerce]; the coercers are wrapped below so
    # that their errors name the option.
    _parameters: list[list[Any]] = [
        ["port", "p", "tcp:8080", "Port number or endpoint string to listen on.", endpoint_description],
        ["max-clients", None, 10_000, "Most connections held at once.", _positive_int],
        ["room-capacity", None, 15, "Most members in one room.", _positive_int],
        ["max-text", None, 4096, "Longest message text, in bytes of UTF-8.", _positive_int],
        ["max-file-size", None, 3 * MIB, "Largest file accepted, in bytes or with a unit (3MiB).", _positive_size],
        ["allow-ext", None, "*", "Allowed file extensions, comma-separated (e.g. txt,pdf,jpg,png); * allows every type."],
        ["upload-slots", None, 5, "Uploads running at once, server-wide (in a cluster: see --upload-slots-scope).", _positive_int],
        ["upload-queue", None, 100, "Accepted uploads that may wait for a slot (0: none wait).", _non_negative_int],
        ["upload-queue-per-user", None, 20, "Waiting uploads one user may have; more get queue-full (0: none wait).", _non_negative_int],
        ["addressee-spool-files", None, 16, "Files held in the spool for one addressee (uploading or not yet delivered); more uploads to it wait.", _positive_int],
        ["addressee-spool-size", None, 48 * MIB, "Bytes held in the spool for one addressee; more uploads to it wait (one file alone may pass it).", _positive_size],
        ["spool-size", None, None, "Bytes the spool may hold in all (uploading or not yet delivered); past it sendfile gets queue-full [default: auto, half the disk space free at start, at most 1GiB].", _size_or_auto],
        ["login-timeout", None, 30.0, "Seconds a connection may take to log in.", _positive_float],
        ["upload-idle-timeout", None, 60.0, "Seconds an upload may send no data before it fails and frees its slot.", _positive_float],
        ["offer-timeout", None, 300.0, "Seconds an addressee that asked to be offered files (login offers) has to accept or decline one before it fails with declined.", _positive_float],
        ["shutdown-grace", None, 5.0, "Seconds given to transports to flush on shutdown.", _non_negative_float],
        ["max-output", None, 8 * MIB, "Unsent output per connection (bytes or 8MiB) before it is closed as a slow consumer.", _positive_size],
        ["rate-limit", None, 0.0, "Requests a connection may make per second on average; more get rate-limited errors (0: no limit).", _non_negative_float],
        ["rate-burst", None, None, "Requests a connection may make at once under --rate-limit [default: twice the rate, at least 1]", _positive_int],
        ["flood-rate", None, 200.0, "Flood limit: past --flood-burst requests at once, a connection's requests are served at most this many a second by pausing its reading; nothing is refused (0: off).", _non_negative_float],
        ["flood-burst", None, 1000, "Requests a connection may make at once before the flood limit slows it.", _positive_int],
        ["max-per-address", None, 256, "Connections one peer address may hold at once (0: no limit).", _non_negative_int],
        ["max-pending-per-address", None, 64, "Connections from one address that have not logged in yet (0: no limit).", _non_negative_int],
        ["max-pending", None, 2000, "Connections that have not logged in yet, in total (0: no limit).", _non_negative_int],
        ["frame-timeout", None, 30.0, "Seconds a frame that has begun may take to arrive in full before the connection is closed (0: no limit).", _non_negative_float],
        ["stall-timeout", None, 60.0, "Seconds a client may read nothing while output waits for it before it is closed as a slow consumer (0: never).", _non_negative_float],
        ["audit-log", None, "server.log", "Audit log file (appended to; SIGHUP reopens it)."],
        ["audit-format", None, "text", "Audit log format: text ([time] [CATEGORY] text lines) or json (JSON lines)."],
        ["spool-dir", None, None, "Folder for uploads in progress [default: a private temporary folder]."],
        ["accounts", None, None, "File of username:HASH lines (argon2id hashes, written by chatnet-passwd); when given, login requires a password."],
        ["metrics", None, None, "Serve Prometheus /metrics and /healthz over HTTP on this endpoint (e.g. tcp:9108:interface=127.0.0.1) [default: off].", endpoint_description],
        ["cluster", None, None, "Run as one node of a cluster whose shared state is in this Redis: redis://[[user]:password@]host[:port][/db], or rediss://... for TLS (needs pip install 'chatnet[cluster]') [default: off, a single server]."],
        ["node-id", None, None, "Cluster: this node's name, unique among live nodes; 1-64 letters, digits, '_', '.' or '-' [default: the short host name].", check_node_id],
        ["cluster-lease", None, None, "Cluster: seconds after which a node that stopped renewing its lease (killed, paused, cut off) is presumed dead and its users taken out [default: 10].", _lease],
        ["cluster-password-file", None, None, "Cluster: file whose one line is the Redis password (read at start; keeps it out of the command line) [default: the --cluster URL's, or none]."],
        ["cluster-prefix", None, None, "Cluster: what every Redis key and channel of the cluster starts with, so that one Redis can hold several clusters [default: chatnet]."],
        ["upload-slots-scope", None, None, "Cluster: 'cluster' (--upload-slots and --upload-queue count for the whole cluster) or 'node' (each node has its own) [default: cluster]."],
        ["cluster-files", None, None, "Cluster: endpoint (tcp: or tcp6:) on which this node serves uploaded files to the other nodes [default: tcp:0:interface=127.0.0.1, any free port on loopback: nodes on one machine only].", endpoint_description],
        ["cluster-advertise", None, None, "Cluster: host name or address the other nodes connect to for --cluster-files [default: the interface it listens on].", check_host],
        ["cluster-ca", None, None, "Cluster, rediss:// only: PEM file of the authorities (or the self-signed certificate) Redis's certificate must be signed by [default: the system's trusted authorities]."],
    ]

    optParameters = [p[:4] + [_named(p[0], p[4])] if len(p) > 4 else p for p in _parameters]
    del _parameters

    optFlags = [
        ["no-fast-path", None, "Use only Twisted's public API: no zero-copy framing, no "
         "write-through TCP, no sendfile deliveries, no direct dispatch "
         "(slower; see chatnet.fastpath)."],
        ["nagle", None, "Leave Nagle's algorithm on for clients' connections (no TCP_NODELAY): "
         "less CPU under a steady load of many rooms, but up to 40 ms more latency "
         "for clients that delay their ACKs (docs/performance.rst)."],
    ]

    def opt_version(self) -> None:
        """Print the chatnet version and exit."""
        print(f"chatnet {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        try:
            extensions = validation.parse_extensions(self["allow-ext"])
        except ValueError as e:
            raise usage.UsageError(f"--allow-ext: {e}") from None
        accounts = None
        if self["accounts"]:
            try:
                accounts = Accounts.load(self["accounts"])
            except AccountsError as e:
                raise usage.UsageError(f"--accounts: {e}") from None
        if self["rate-burst"] is not None and not self["rate-limit"]:
            raise usage.UsageError("--rate-burst: needs --rate-limit")
        if self["room-capacity"] > MAX_ROOM_CAPACITY:
            raise usage.UsageError(
                f"--room-capacity: at most {MAX_ROOM_CAPACITY} (a room's member list must fit one frame)")
        if self["max-text"] > MAX_TEXT_LIMIT:
            raise usage.UsageError(
                f"--max-text: at most {MAX_TEXT_LIMIT} bytes (a message event must fit one frame)")
        if self["max-file-size"] > 2**32 - 1:
            raise usage.UsageError("--max-file-size: at most 4 GiB - 1 byte")
        if self["spool-dir"] is not None:
            try:
                spool.check_folder(self["spool-dir"])
            except spool.SpoolError as e:
                raise usage.UsageError(f"--spool-dir: {e}") from None
        if self["spool-size"] is not None and self["spool-size"] < self["max-file-size"]:
            raise usage.UsageError(
                "--spool-size: smaller than --max-file-size; the largest files could never be sent")
        if self["audit-format"] not in FORMATS:
            raise usage.UsageError(
                f"--audit-format: {self['audit-format']!r} is not one of {', '.join(FORMATS)}"
            )
        self.settings = Settings(
            max_clients=self["max-clients"],
            room_capacity=self["room-capacity"],
            max_text=self["max-text"],
            max_file_size=self["max-file-size"],
            allowed_extensions=extensions,
            upload_slots=self["upload-slots"],
            upload_queue=self["upload-queue"],
            upload_queue_per_user=self["upload-queue-per-user"],
            addressee_spool_files=self["addressee-spool-files"],
            addressee_spool_bytes=self["addressee-spool-size"],
            spool_size=self["spool-size"],
            login_timeout=self["login-timeout"],
            upload_idle_timeout=self["upload-idle-timeout"],
            offer_timeout=self["offer-timeout"],
            shutdown_grace=self["shutdown-grace"],
            max_output=self["max-output"],
            stall_timeout=self["stall-timeout"],
            frame_timeout=self["frame-timeout"],
            flood_rate=self["flood-rate"],
            flood_burst=self["flood-burst"],
            max_per_address=self["max-per-address"],
            max_pending_per_address=self["max-pending-per-address"],
            max_pending=self["max-pending"],
            rate_limit=self["rate-limit"],
            rate_burst=self["rate-burst"] or 0,
            accounts=accounts,
            fast_path=not self["no-fast-path"],
            nagle=bool(self["nagle"]),
        )
        self._check_endpoint("port")
        if self["cluster"] is not None:
            self.settings = dataclasses.replace(self.settings, cluster=self._cluster())
        else:
            given = [f"--{o}" for o in CLUSTER_OPTIONS if self[o] is not None]
            if given:
                raise usage.UsageError(
                    f"{', '.join(given)}: only for a cluster node; give --cluster URL too")
        if self["metrics"] is not None:
            self._check_endpoint("metrics")
            try:
                import prometheus_client  # noqa: F401
            except ImportError:
                raise usage.UsageError(
                    "--metrics: needs prometheus_client (pip install 'chatnet[metrics]')"
                ) from None

    def _cluster(self) -> ClusterSettings:
        """The cluster settings of ``--cluster`` and its options, each checked."""
        url = self["cluster"]
        try:
            address = parse_url(url)
        except ValueError as e:
            raise usage.UsageError(f"--cluster: {e}") from None
        node_id = self["node-id"]
        if node_id is None:
            host = socket.gethostname().split(".")[0]
            try:
                node_id = check_node_id(host)
            except ValueError:
                raise usage.UsageError(
                    f"--node-id: needed, since the host name {host!r} is not a valid node id "
                    "(1-64 letters, digits, '_', '.' or '-')") from None
        password = None
        if self["cluster-password-file"] is not None:
            if address.password is not None:
                raise usage.UsageError(
                    f"--cluster-password-file: the --cluster URL ({redact(url)}) carries a "
                    "password too; give it in one place only")
            password = read_password(self["cluster-password-file"])
        scope = self["upload-slots-scope"] or "cluster"
        if scope not in SLOT_SCOPES:
            raise usage.UsageError(
                f"--upload-slots-scope: {scope!r} is not one of {', '.join(SLOT_SCOPES)}")
        files = self["cluster-files"] or ClusterSettings.files
        fields: dict[str, Any] = {
            "url": url.strip(), "node_id": node_id, "password": password, "slots": scope,
            "files": files, "advertise": self["cluster-advertise"], "ca": self["cluster-ca"],
        }
        if self["cluster-lease"] is not None:
            fields["lease"] = self["cluster-lease"]
        if self["cluster-prefix"] is not None:
            fields["prefix"] = self["cluster-prefix"]
        try:
            cluster = ClusterSettings(**fields)
        except ValueError as e:
            name, _, why = str(e).partition(": ")
            option = _CLUSTER_FIELDS.get(name)
            if option == "cluster-advertise" and self["cluster-advertise"] is None:
                why = (f"needed, since --cluster-files {files} listens on every interface: "
                       "give the host name or address the other nodes reach this one at")
            raise usage.UsageError(f"--{option}: {why}" if option else str(e)) from None
        self["cluster-files"] = files
        self._check_endpoint("cluster-files")
        try:
            import txredisapi  # noqa: F401
        except ImportError as e:
            raise usage.UsageError(
                f"--cluster: needs txredisapi and pyOpenSSL ({e}): pip install 'chatnet[cluster]'"
            ) from None
        if cluster.ca is not None:
            from chatnet.cluster.tls import BadAuthority, load_authorities

            try:
                load_authorities(cluster.ca)
            except BadAuthority as e:
                raise usage.UsageError(f"--cluster-ca: {e}") from None
        return cluster

    def _check_endpoint(self, option: str) -> None:
        from twisted.internet import reactor
        from twisted.internet.endpoints import serverFromString

        try:
            serverFromString(reactor, self[option])
        except IndexError:  # systemd:...:index=N beyond the sockets passed
            raise usage.UsageError(
                f"--{option}: {self[option]!r}: no such socket was passed to the server "
                "(run it from a systemd socket unit, or with systemd-socket-activate "
                "--fdname=NAME)"
            ) from None
        except OSError as e:  # ssl: a key or certificate file that cannot be read
            raise usage.UsageError(
                f"--{option}: {self[option]!r}: cannot read {e.filename or 'a file it names'}: "
                f"{e.strerror or e}"
            ) from None
        except ImportError as e:  # ssl: without pyOpenSSL
            raise usage.UsageError(
                f"--{option}: {self[option]!r} needs a module that is not installed "
                f"({e}); for ssl: endpoints install the tls extra: pip install 'chatnet[tls]'"
            ) from None
        except (ValueError, TypeError, KeyError) as e:
            raise usage.UsageError(
                f"--{option}: {self[option]!r} is not a valid endpoint ({e}); "
                "use a port number or e.g. tcp:8080:interface=127.0.0.1"
            ) from None


#: The options that only a cluster node takes.
CLUSTER_OPTIONS = ("node-id", "cluster-lease", "cluster-password-file", "cluster-prefix",
                   "upload-slots-scope", "cluster-files", "cluster-advertise", "cluster-ca")
#: :class:`~chatnet.config.ClusterSettings` fields and the options that set them.
_CLUSTER_FIELDS = {
    "url": "cluster", "node_id": "node-id", "lease": "cluster-lease",
    "password": "cluster-password-file", "prefix": "cluster-prefix",
    "slots": "upload-slots-scope", "files": "cluster-files", "advertise": "cluster-advertise",
    "ca": "cluster-ca",
}


def read_password(path: str) -> str:
    """
    The password in the file at ``path``: its one line, without surrounding
    blanks.

    :raises usage.UsageError: the file cannot be read, is empty, or holds
        more than one line.
    """
    option = "--cluster-password-file"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(4097)
    except OSError as e:
        raise usage.UsageError(f"{option}: cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise usage.UsageError(f"{option}: {path} is not UTF-8 text") from None
    password = text.strip()
    if not password:
        raise usage.UsageError(f"{option}: {path} is empty; put the Redis password on its one line")
    if len(text) > 4096:
        raise usage.UsageError(f"{option}: {path} is too long for a password (over 4 KiB)")
    if "\n" in password or "\r" in password:
        raise usage.UsageError(
            f"{option}: {path} holds more than one line; put the Redis password alone on one line")
    return password


def _open_to_others(path: str) -> int | None:
    """The file's permission bits when group or others may use it, else ``None``."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & (stat.S_IRWXG | stat.S_IRWXO) else None


def _honour_sigint() -> None:
    """
    Make SIGINT stop the server even when it was started with SIGINT ignored.

    A shell starts background jobs with SIGINT ignored, and the reactor only
    takes over SIGINT when it has Python's default handler; an operator's
    ``kill -INT`` would then do nothing.  Since SIGINT is the documented way
    to stop the server cleanly, restore the default handler for the reactor
    to replace.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def warnings(options: Options) -> list[str]:
    """
    What an operator should hear about at start: accounts or the Redis
    password kept or sent unsafely.
    """
    found = []
    path = options["accounts"]
    if path:
        loose = mode_warning(path)
        if loose:
            found.append(loose)
        kind = options["port"].split(":", 1)[0].lower()
        if kind in ("tcp", "tcp6", "unix"):
            found.append(
                f"accounts are on over a plain {kind.upper()} port ({options['port']}): "
                "passwords travel in clear text; listen with TLS instead "
                "(--port ssl:8443:privateKey=server.key:certKey=server.crt)"
            )
    password_file = options["cluster-password-file"]
    if password_file:
        mode = _open_to_others(password_file)
        if mode is not None:
            found.append(
                f"the Redis password file {password_file} is open to other users (mode {mode:04o}); "
                f"make it readable by the server's user only: chmod 600 {password_file}"
            )
    cluster = options.settings.cluster
    if cluster is not None:
        address = cluster.address()
        if cluster.password is None and address.password is not None:
            found.append(
                "the Redis password is in the --cluster URL, which other users of this machine "
                "can see in the process list; use --cluster-password-file instead"
            )
        if not address.tls and not _loopback(address.host):
            found.append(
                f"the cluster's Redis at {address.host} is reached without TLS: its password and "
                "every message between the nodes travel in clear text; use rediss:// "
                "across machines"
            )
    return found


def _loopback(host: str) -> bool:
    """Whether ``host`` is this machine (a loopback address or ``localhost``)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def makeService(options: Options) -> ChatService:
    """Build the service for ``twistd chatnet``."""
    _honour_sigint()
    quiet_cannot_start()
    for warning in warnings(options):
        _log.warn("chatnet: warning: {warning}", warning=warning)
    return ChatService(
        options["port"],
        options.settings,
        audit_log=options["audit-log"],
        spool_dir=options["spool-dir"],
        metrics=options["metrics"],
        audit_format=options["audit-format"],
        accounts_file=options["accounts"],
        handle_sighup=True,
    )
