"""
:class:`Hub`: what every session of one server shares (settings, the
directory, the transfers, the audit log, counters and login limits).

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chatnet.admission import Admission, RefusalLog
from chatnet.config import Settings
from chatnet.interfaces import AuditFn, Authenticator, SessionHandle, Shared, Transfers
from chatnet.model import Directory
from chatnet.shared_state import LocalShared
from chatnet.stats import Stats
from chatnet.throttle import LoginThrottle


@dataclass
class Hub:
    """What every session of one server shares."""

    settings: Settings
    directory: Directory
    #: the transfer manager; its tickets are opaque to the session
    transfers: Transfers[Any]
    audit: AuditFn
    now: Callable[[], float] = time.time
    #: Counters for :mod:`chatnet.metrics`.
    stats: Stats = field(default_factory=Stats)
    sessions: set[SessionHandle] = field(default_factory=set)
    shutting_down: bool = False
    #: Whether ``audit`` keeps structured fields (``--audit-format json``):
    #: on the hot paths, sessions build them only then.
    audit_fields: bool = False
    #: Called (then forgotten) once the last session is gone.
    when_empty: list[Callable[[], None]] = field(default_factory=list)
    #: Checks passwords; ``None`` when there are no accounts (any name goes).
    auth: Authenticator | None = None
    #: Slows down failed logins and sums their audit lines.
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    #: Connections per address and not yet logged in (the per-address limits).
    admission: Admission = field(init=False)
    #: Which refused connections are logged one by one.
    refusals: RefusalLog = field(init=False, default_factory=RefusalLog)
    #: The users and rooms every node shares: by default this server's
    #: ``directory`` alone (a cluster node sets its own).
    shared: Shared = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.admission = Admission(self.settings)
        if self.shared is None:
            self.shared = LocalShared(self.directory, self.settings.max_text)

    def sweep(self, everything: bool = False) -> None:
        """
        Write the summed failed-login lines whose minute is over (all of
        them when ``everything``); the service calls this every few seconds.
        """
        for line in self.throttle.digest.flush(self.now(), everything):
            self.audit("LOGIN-FAILED", line)

    def forget(self, session: SessionHandle) -> None:
        self.sessions.discard(session)
        if not self.sessions and self.when_empty:
            waiters, self.when_empty = self.when_empty, []
            for waiter in waiters:
                waiter()

