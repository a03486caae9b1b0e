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

A call may carry structured ``fields`` too (``audit("JOIN", text, {"user":
"alice", "room": "groupA"})``): the text line ignores them, and
:class:`AuditJSONObserver` (``--audit-format json``) writes each event as a
JSON line of time, category, text and fields, for log shippers.  Both
observers can reopen their file (:meth:`AuditFileObserver.reopen`, on
``SIGHUP``) after logrotate has moved it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import ILogObserver, Logger, LogLevel
from zope.interface import implementer

from chatnet.validation import INVISIBLE

if TYPE_CHECKING:
    from collections.abc import Callable

    #: What takes events: an ``ILogObserver``, or any callable taking the
    #: event dict, which Twisted's logging accepts alike (``list.append``).
    Observer = ILogObserver | Callable[[dict[str, Any]], None]

#: The contract's categories (PROTOCOL.md section 8), and ``CLUSTER``,
#: chatnet's own: cluster mode's events (:mod:`chatnet.cluster.shared`
#: writes them; docs/operations.rst lists them with their fields).
CATEGORIES = frozenset(
    "CONNECT LOGIN LOGIN-FAILED JOIN LEAVE BROADCAST WHISPER SENDFILE "
    "FILE-QUEUE FILE ERROR DISCONNECT SHUTDOWN CLUSTER".split()
)

NAMESPACE = "chatnet.audit"

#: ``--audit-format`` values.
FORMATS = ("text", "json")

#: An event's structured fields: names to JSON-friendly values.
Fields = Mapping[str, object]

# C0, DEL, C1 (NEL among them) and the Unicode line and paragraph separators:
# everything a reader may take for the end of a line; and the invisible and
# text-direction characters, which can make a line read as another.
_UNPRINTABLE = re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{INVISIBLE}]")


def one_line(text: str) -> str:
    """
    ``text`` with control, invisible and text-direction characters escaped
    (``\x1b``, ``\u202e``), so an event stays one line and reads as written.
    """
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

    def __init__(self, observer: Observer, now: Callable[[], float] = time.time) -> None:
        #: The time of an event (the reactor's ``seconds``; a Clock's in tests).
        self._now = now
        self._observers: tuple[Observer, ...] = (observer,)
        self._logger = Logger(namespace=NAMESPACE, observer=cast(ILogObserver, observer))
        self._direct = observer.line if isinstance(observer, AuditFileObserver) else None

    def observe(self, observer: Observer) -> None:
        """Hand every later event to ``observer`` too (monitoring, tests)."""
        self._observers += (observer,)
        self._direct = None

    def __call__(self, category: str, text: str, fields: Fields | None = None) -> None:
        direct = self._direct
        if direct is not None:
            direct(category, text, self._now(), fields)
            return
        event = {
            "log_logger": self._logger,
            "log_level": LogLevel.info,
            "log_namespace": NAMESPACE,
            "log_source": None,
            "log_format": "[{audit_category}] {audit_text}",
            "log_time": self._now(),
            "audit_category": category,
            "audit_text": text,
            "audit_fields": fields,
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
    :param path: where ``file`` was opened, for :meth:`reopen`.
    """

    def __init__(self, file: IO[str], clock: IReactorTime, path: str | None = None) -> None:
        self._file = file
        self.path = path
        self._clock = clock
        self._pending: list[str] = []
        self._flush_call: IDelayedCall | None = None
        self._stamp_second = -1
        self._stamp = ""

    def __call__(self, event: dict[str, Any]) -> None:
        category = event.get("audit_category")
        if category is None:
            return
        self.line(
            category, event["audit_text"], event.get("log_time") or self._clock.seconds(),
            event.get("audit_fields"),
        )

    def line(self, category: str, text: str, when: float, fields: Fields | None = None) -> None:
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

    def reopen(self) -> None:
        """
        Write what is buffered to the file as it was, then open ``path``
        afresh: after logrotate renamed the file, later lines go to a new
        one, and none is lost in between.

        :raises OSError: the file cannot be opened; lines then keep going
            to the old one.
        """
        assert self.path is not None, "reopen needs the path"
        self.flush()
        new = open(self.path, "a", encoding="utf-8")
        old, self._file = self._file, new
        old.close()


class AuditJSONObserver(AuditFileObserver):
    """
    Write audit events as JSON lines::

        {"time": "2026-11-24T17:03:11.042Z", "category": "JOIN", "text": "alice joined groupA (3/15)", "fields": {"user": "alice", "room": "groupA", "members": 3}}

    ``time`` is UTC (RFC 3339, milliseconds); ``text`` is the text line's
    text; ``fields`` what the event carries (``{}`` for an event without).
    Non-ASCII is escaped, so a line is ASCII and never holds a character a
    reader might take for a line break.
    """

    def line(self, category: str, text: str, when: float, fields: Fields | None = None) -> None:
        second = int(when)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        millis = int((when - second) * 1000)
        record = {
            "time": f"{self._stamp}.{millis:03d}Z",
            "category": category,
            "text": text,
            "fields": fields or {},
        }
        self._pending.append(json.dumps(record, default=str) + "\n")
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)


def open_observer(path: str, clock: IReactorTime, format: str = "text") -> AuditFileObserver:
    """The observer for ``--audit-log path --audit-format format``, its file opened."""
    kind = AuditJSONObserver if format == "json" else AuditFileObserver
    return kind(open(path, "a", encoding="utf-8"), clock, path)
