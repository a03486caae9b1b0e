"""
Login throttling (PROTOCOL.md section 3): failed logins slow down per
connection, per address and per account, and their audit lines are summed.

Only ``auth-failed`` counts as a failure: a taken or invalid name is not a
password guess.  Each of the three keeps a count of failures; the first few
are free, each one past them makes the next attempt wait, twice as long each
time up to a ceiling.  An attempt made while any of the three waits is
refused unchecked (``rate-limited`` with ``retry_after``), and a connection
that keeps failing is closed.  Counts are forgotten some minutes after the
last failure, and each table holds a bounded number of keys (the least
recently failing go first), so an attacker with many names or addresses
cannot grow the server's memory.

Pure: imports nothing from Twisted; time is the ``now`` the caller passes.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """``free`` failures without delay, then ``first``, twice that ... up to ``longest`` seconds."""

    free: int
    first: float = 1.0
    longest: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds the next attempt waits after ``failures`` failures."""
        over = failures - self.free
        if over <= 0:
            return 0.0
        return min(self.longest, self.first * 2.0 ** min(over - 1, 40))


class Record:
    """Failures of one connection, address or account."""

    __slots__ = ("failures", "last", "until", "refused")

    def __init__(self) -> None:
        self.failures = 0
        #: When the last failure was.
        self.last = 0.0
        #: No attempt before this time.
        self.until = 0.0
        #: Attempts refused unchecked (connections only).
        self.refused = 0

    def fail(self, policy: Policy, now: float) -> None:
        self.failures += 1
        self.last = now
        self.until = now + policy.delay(self.failures)


class Table:
    """
    :class:`Record` by key, at most ``size`` of them, each forgotten
    ``expire`` seconds after its last failure.
    """

    def __init__(self, policy: Policy, size: int, expire: float) -> None:
        self.policy = policy
        self.size = size
        self.expire = expire
        #: Oldest last failure first.
        self._records: OrderedDict[str, Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def wait(self, key: str, now: float) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        record = self._records.get(key)
        return max(0.0, record.until - now) if record is not None else 0.0

    def fail(self, key: str, now: float) -> None:
        self._prune(now)
        records = self._records
        record = records.get(key)
        if record is None:
            if len(records) >= self.size:
                records.popitem(last=False)
            record = records[key] = Record()
        else:
            records.move_to_end(key)
        record.fail(self.policy, now)

    def forget(self, key: str) -> None:
        self._records.pop(key, None)

    def _prune(self, now: float) -> None:
        records = self._records
        while records:
            record = next(iter(records.values()))
            if record.last + self.expire > now:
                break
            records.popitem(last=False)


def address_key(peer: str) -> str:
    """
    The address a peer (``10.0.0.5:4000``, ``[2001:db8::1]:4000``) is
    throttled by: the IPv4 address, or the IPv6 /64 network (one host is
    usually given a whole /64).
    """
    host = peer
    if peer.startswith("["):
        host = peer[1:].partition("]")[0]
    elif peer.count(":") == 1:
        host = peer.partition(":")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """
    The server's login throttle (one per server).

    :param connection: policy for one connection.
    :param address: policy for one address (many people may share one).
    :param account: policy for one user name, from anywhere.
    :param close_after: failed attempts (wrong passwords, or attempts
        refused as too early) after which a connection is closed.
    :param size: most addresses, and most accounts, remembered.
    :param expire: seconds after its last failure that a count is forgotten.
    """

    def __init__(
        self,
        connection: Policy = Policy(3),
        address: Policy = Policy(20),
        account: Policy = Policy(5),
        close_after: int = 10,
        size: int = 10_000,
        expire: float = 900.0,
        window: float = 60.0,
    ) -> None:
        self.connection_policy = connection
        self.close_after = close_after
        self.addresses = Table(address, size, expire)
        self.accounts = Table(account, size, expire)
        self.digest = FailureDigest(window, size)

    def new_connection(self) -> Record:
        """The record a session keeps for its own connection."""
        return Record()

    def wait(self, conn: Record, address: str, account: str, now: float) -> float:
        """Seconds before this attempt would be allowed (0: check it now)."""
        return max(
            conn.until - now,
            self.addresses.wait(address, now),
            self.accounts.wait(account, now),
            0.0,
        )

    def refused(self, conn: Record) -> None:
        """An attempt was refused unchecked (made before ``retry_after``)."""
        conn.refused += 1

    def failed(self, conn: Record, address: str, account: str, now: float) -> None:
        """A password check failed."""
        conn.fail(self.connection_policy, now)
        self.addresses.fail(address, now)
        self.accounts.fail(account, now)

    def succeeded(self, conn: Record, account: str) -> None:
        """
        A login succeeded: the account's and the connection's counts start
        again.  The address's do not (a guesser could otherwise clear its
        address by logging in to an account of its own).
        """
        conn.failures = conn.refused = 0
        conn.until = 0.0
        self.accounts.forget(account)

    def exhausted(self, conn: Record) -> bool:
        """Whether the connection has failed too often and is to be closed."""
        return conn.failures + conn.refused >= self.close_after


class _Run:
    __slots__ = ("start", "more", "refused")

    def __init__(self, start: float) -> None:
        self.start = start
        self.more = 0
        self.refused = 0


class FailureDigest:
    """
    Sums failed logins for the audit log: the first failure of an account
    from an address is logged in full (by the caller, when :meth:`failed`
    says so); the next ones are counted, and :meth:`flush` gives one line
    per account and address per ``window`` seconds::

        41 more failed logins for alice from 10.0.0.5 in the last minute

    Refused attempts (too early) for an account with no run going are
    counted for the address alone, so a guesser cycling through names while
    refused adds one line per address per window, not one per name.
    """

    def __init__(self, window: float = 60.0, size: int = 10_000) -> None:
        self.window = window
        self.size = size
        #: Oldest start first.
        self._runs: OrderedDict[tuple[str, str], _Run] = OrderedDict()
        self._evicted: list[str] = []

    def __len__(self) -> int:
        return len(self._runs)

    def failed(self, account: str, address: str, now: float, refused: bool = False) -> bool:
        """
        Count a failure.

        :returns: whether to log this one in full (the first of a run).
        """
        runs = self._runs
        key = (account, address)
        run = runs.get(key)
        if run is None and refused:
            key = ("", address)
            run = runs.get(key)
        if run is None:
            if len(runs) >= self.size:
                old_key, old = runs.popitem(last=False)
                line = self._line(old_key, old)
                if line:
                    self._evicted.append(line)
            run = runs[key] = _Run(now)
            if not refused:
                return True
        run.more += 1
        run.refused += refused
        return False

    def flush(self, now: float, everything: bool = False) -> list[str]:
        """
        The summary lines of the runs whose window has ended (of every run
        when ``everything``, at shutdown).  A run with nothing more to say
        ends; the others start a new window.
        """
        lines, self._evicted = self._evicted, []
        runs = self._runs
        renewed = []
        while runs:
            key, run = next(iter(runs.items()))
            if not everything and run.start + self.window > now:
                break
            del runs[key]
            line = self._line(key, run)
            if line:
                lines.append(line)
                if not everything:
                    renewed.append(key)
        for key in renewed:
            runs[key] = _Run(now)
        return lines

    def _line(self, key: tuple[str, str], run: _Run) -> str | None:
        account, address = key
        more = run.more
        if not more:
            return None
        span = "the last minute" if self.window == 60 else f"the last {self.window:g}s"
        s = "s" if more != 1 else ""
        if not account:
            return f"{more} login{s} from {address} refused as rate-limited in {span}"
        text = f"{more} more failed login{s} for {account} from {address} in {span}"
        if run.refused:
            text += f" ({run.refused} refused as rate-limited)"
        return text
