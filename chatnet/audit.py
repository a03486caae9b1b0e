"""
The audit log, ``server.log`` (PROTOCOL.md section 8).

Events go through :mod:`twisted.logger`: :class:`Audit` emits one event per
line, carrying ``audit_category`` and ``audit_text``, to an observer of its own
(not the global publisher, so twistd's own log stays as twistd makes it).
:class:`AuditFileObserver` writes them as::

    [2026-11-24 18:03:11] [JOIN] alice joined groupA (3/15)

Lines are buffered and written once per reactor iteration, so a burst of
broadcasts costs one ``write`` rather than one per line, and every line is on
disk before the reactor next waits for I/O.
"""

from __future__ import annotations

import re
import time
from typing import IO, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import ILogObserver, Logger, LogLevel
from zope.interface import implementer

CATEGORIES = frozenset(
    "CONNECT LOGIN LOGIN-FAILED JOIN LEAVE BROADCAST WHISPER SENDFILE "
    "FILE-QUEUE FILE ERROR DISCONNECT SHUTDOWN".split()
)

NAMESPACE = "chatnet.audit"

# C0, DEL, C1 (NEL among them) and the Unicode line and paragraph separators:
# everything a reader may take for the end of a line.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with control characters escaped, so an event stays one line."""
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


class Audit:
    """
    Emit audit events: ``audit("JOIN", "alice joined groupA (3/15)")``.

    Each call hands ``observer`` (and any added with :meth:`observe`) one :mod:`twisted.logger` event, the same
    dictionary :meth:`twisted.logger.Logger.emit` would build (so any
    ``ILogObserver`` can take it, and :func:`twisted.logger.formatEvent`
    renders it), without ``emit``'s per-call level validation, which costs
    more than the rest of a broadcast's bookkeeping.  While an
    :class:`AuditFileObserver` is the only observer, it is handed the line
    directly and no event is built at all.
    """

    def __init__(self, observer: ILogObserver) -> None:
        self._observers: tuple[ILogObserver, ...] = (observer,)
        self._logger = Logger(namespace=NAMESPACE, observer=observer)
        self._direct = observer.line if isinstance(observer, AuditFileObserver) else None

    def observe(self, observer: ILogObserver) -> None:
        """Hand every later event to ``observer`` too (monitoring, tests)."""
        self._observers += (observer,)
        self._direct = None

    def __call__(self, category: str, text: str) -> None:
        direct = self._direct
        if direct is not None:
            direct(category, text, time.time())
            return
        event = {
            "log_logger": self._logger,
            "log_level": LogLevel.info,
            "log_namespace": NAMESPACE,
            "log_source": None,
            "log_format": "[{audit_category}] {audit_text}",
            "log_time": time.time(),
            "audit_category": category,
            "audit_text": text,
        }
        for observer in self._observers:
            observer(event)


@implementer(ILogObserver)
class AuditFileObserver:
    """
    Write audit events to a file as ``[YYYY-MM-DD HH:MM:SS] [CATEGORY] text``
    lines, in local time.

    :param file: a text file opened for appending.
    :param clock: schedules the flush at the end of the current reactor
        iteration.
    """

    def __init__(self, file: IO[str], clock: IReactorTime) -> None:
        self._file = file
        self._clock = clock
        self._pending: list[str] = []
        self._flush_call: IDelayedCall | None = None
        self._stamp_second = -1
        self._stamp = ""

    def __call__(self, event: dict[str, Any]) -> None:
        category = event.get("audit_category")
        if category is None:
            return
        self.line(category, event["audit_text"], event.get("log_time") or time.time())

    def line(self, category: str, text: str, when: float) -> None:
        """Buffer the line of one audit event that happened at ``when``."""
        second = int(when)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        self._pending.append(
            f"[{self._stamp}] [{category}] {one_line(text)}\n"
        )
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def flush(self) -> None:
        """Write every buffered line now."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        if self._pending and not self._file.closed:
            self._file.write("".join(self._pending))
            self._file.flush()
        self._pending.clear()

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        if not self._file.closed:
            self._file.close()
