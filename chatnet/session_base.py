"""
What every part of a :class:`~chatnet.session.Session` builds on: its
state, the replies and errors it writes, the rate limit on its requests and
the waiting for an answer that cannot come at once (:meth:`SessionBase.wait`).

The requests are handled by mixins of :class:`SessionBase`, one module per
concern (:mod:`chatnet.session_login`, :mod:`chatnet.session_rooms`,
:mod:`chatnet.session_files`); :class:`~chatnet.session.Session` puts them
together and dispatches to them.

Pure: imports nothing from ``twisted.internet`` (it logs through
:mod:`twisted.logger`, which needs no reactor).
"""

from __future__ import annotations

import enum
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.logger import Logger

from chatnet.errors import ChatError, ErrorCode
from chatnet.frames import ErrorReply, FromClient, Id, Reply
from chatnet.hub import Hub
from chatnet.interfaces import Later, SessionOutbox
from chatnet.model import Left, User
from chatnet.ratelimit import TokenBucket
from chatnet.throttle import Record

_log = Logger()

T = TypeVar("T")


class State(enum.Enum):
    NEW = "new"
    ACTIVE = "active"
    CLOSED = "closed"


class _Wait:
    """One request waiting for its answer (see :meth:`Session.wait`)."""

    __slots__ = ("later", "cancel")

    def __init__(self) -> None:
        #: Whether the answer did not come at once.
        self.later = False
        #: Stops the question when the connection goes (a cancellable wait).
        self.cancel: Callable[[], object] | None = None


class SessionBase:
    """
    The state of one connection's session and the tools its request
    handlers share; see :class:`~chatnet.session.Session`.
    """

    __slots__ = (
        "hub", "outbox", "peer", "state", "user", "_exited", "_close_reason", "_online",
        "_bucket", "_refused", "_waiting", "_held",
        "_paused", "host", "_admitted", "_quiet", "_logins", "_untimed",
    )

    def __init__(
        self, hub: Hub, outbox: SessionOutbox, peer: str, host: str | None = None
    ) -> None:
        self.hub = hub
        self.outbox = outbox
        self.peer = peer
        #: The peer's address without the port, for the per-address limits
        #: (``None``: not an IP connection).
        self.host = host
        #: Whether :attr:`Hub.admission` counts this connection.
        self._admitted = False
        #: A refused connection the audit log does not show (see RefusalLog).
        self._quiet = False
        self.state = State.NEW
        self.user: User | None = None
        self._exited = False
        self._close_reason: str | None = None
        #: Whether ``user`` is still in the directory (until exit or loss).
        self._online = False
        settings = hub.settings
        self._bucket = (
            TokenBucket(settings.rate_limit, settings.burst(), hub.now())
            if settings.rate_limit > 0 else None
        )
        #: Requests refused in the current run of rate-limited ones.
        self._refused = 0
        #: The request waiting for an answer, if one is (:meth:`wait`).
        self._waiting: _Wait | None = None
        #: Frames received while a request waits, to handle after it, in
        #: order; ``None`` when nothing waits (the usual case).
        self._held: deque[FromClient] | None = None
        #: Whether this session paused its connection's reading.
        self._paused = False
        #: This connection's failed logins (with accounts only).
        self._logins: Record | None = None
        #: Requests to handle untimed before the next timed one; without
        #: timing (metrics off), more than will ever come.
        self._untimed = 0 if hub.stats.requests is not None else sys.maxsize

    def __repr__(self) -> str:
        return f"<Session {self.peer} {self.state.value} {self.user}>"

    @property
    def who(self) -> str:
        """``alice (127.0.0.1:5000)`` or the bare peer, for log lines."""
        return f"{self.user.name} ({self.peer})" if self.user else self.peer

    def _handle(self, frame: FromClient) -> None:
        """Handle one frame (:class:`~chatnet.session.Session` dispatches it)."""
        raise NotImplementedError

    def wait(
        self,
        later: Later[T],
        then: Callable[[T], None],
        ident: Any,
        undo: Callable[[T], None] | None = None,
        cancellable: bool = False,
        refused: Callable[[ChatError], None] | None = None,
    ) -> None:
        """
        Finish the request being handled when ``later`` gives its answer.

        A handler that needs an answer it cannot have at once (a password
        check in a thread, the cluster's shared state) calls this and
        returns.  Until the answer comes, frames from this connection are
        held: the first one held pauses the connection's reading, so they
        stay few (what came in the same read stays unparsed bytes).  Reading
        goes on until then, so a client that asked and went away is noticed
        at once.  ``then(result)`` finishes the request (a :class:`ChatError`
        it raises, or a failed ``later``, is the request's error reply, with
        ``ident``) and the held frames are handled in order.  Replies
        therefore keep the order of the requests, and nothing overtakes a
        waiting request.

        If the connection is closed or lost before the answer, ``then`` is
        never called: ``undo(result)``, if given, takes back whatever the
        answer did elsewhere (a name registered in the cluster), and a
        failure is dropped.  ``cancellable``: a question with no effect
        elsewhere (a password check) is cancelled instead (``later.cancel()``),
        so a client that went away costs no more work.  ``refused(error)``,
        if given, logs a :class:`ChatError` answer its own way (the error
        reply then writes no ``ERROR`` line).  One request waits at a time.
        """
        assert self._waiting is None, "one request waits at a time"
        waiting = self._waiting = _Wait()
        if self._held is None:
            self._held = deque()
        later.addCallbacks(
            lambda result: self._answered(waiting, then, undo, ident, result),
            lambda failure: self._answer_failed(waiting, ident, failure, refused),
        )
        if self._waiting is waiting:  # not answered at once
            waiting.later = True
            if cancellable:
                waiting.cancel = getattr(later, "cancel", None)

    def _hold(self, frame: FromClient) -> None:
        """Keep ``frame`` until the waiting request is answered; stop reading."""
        assert self._held is not None
        self._held.append(frame)
        if not self._paused and self.state is not State.CLOSED:
            self._paused = True
            self.outbox.pause_reading()

    def _stop_waiting(self) -> None:
        """The connection is gone: the answer finds nobody; cancel the question if it may be."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None and waiting.cancel is not None:
            try:
                waiting.cancel()
            except Exception:
                _log.failure("while cancelling a question for {who}", who=self.who)

    def _answered(
        self, waiting: _Wait, then: Callable[[T], None], undo: Callable[[T], None] | None,
        ident: Any, result: T,
    ) -> None:
        if self._waiting is not waiting or self.state is State.CLOSED:
            if undo is not None:
                try:
                    undo(result)
                except Exception:
                    _log.failure("while undoing an answer for {who}", who=self.who)
            return
        self._waiting = None
        try:
            then(result)
        except ChatError as e:
            self._error(ident, e)
        except Exception as e:
            _log.failure("while finishing a request from {who}", who=self.who)
            self._error(ident, ChatError(ErrorCode.INTERNAL, f"Internal server error ({type(e).__name__})"))
        if waiting.later:
            self._run_held()

    def _answer_failed(
        self, waiting: _Wait, ident: Any, failure: Any,
        refused: Callable[[ChatError], None] | None = None,
    ) -> None:
        if self._waiting is not waiting or self.state is State.CLOSED:
            return  # nobody to tell; consumed, not an unhandled error
        self._waiting = None
        error = getattr(failure, "value", failure)
        if isinstance(error, ChatError):
            if refused is not None:
                refused(error)
            self._error(ident, error, audit=refused is None)
        else:
            _log.failure("while waiting for an answer for {who}", failure, who=self.who)
            name = type(error).__name__
            self._error(ident, ChatError(ErrorCode.INTERNAL, f"Internal server error ({name})"))
        if waiting.later:
            self._run_held()

    def _run_held(self) -> None:
        """Handle held frames until one waits again; then read again."""
        held = self._held
        while held and self._waiting is None and self.state is not State.CLOSED:
            self._handle(held.popleft())
        if self._waiting is None:
            self._held = None
            if self._paused and self.state is not State.CLOSED:
                self._paused = False
                self.outbox.resume_reading()

    # replies, errors, the rate limit, closing

    def _user(self) -> User:
        user = self.user
        assert user is not None, "handler ran before login"
        return user

    def _reply(self, reply: Reply) -> None:
        """:raises FrameTooLarge: (an ``internal`` error for the caller)."""
        self.outbox.send(reply.wire())

    def _admit(self) -> bool:
        """
        Spend a token of the rate limit on a request.

        :returns: ``False`` when none is left: the caller refuses the
            request (:meth:`_refuse`).  Only the first refusal of a run is
            logged; the next admitted request logs how many followed it.
        """
        bucket = self._bucket
        assert bucket is not None
        hub = self.hub
        if bucket.take(hub.now()):
            self._log_refused()
            return True
        self._refused += 1
        return False

    def _log_refused(self) -> None:
        """Log how many refusals followed the first of a run, and end the run."""
        more = self._refused - 1
        if more > 0:
            plural = "s" if more > 1 else ""
            self.hub.audit(
                "ERROR", f"{self.who}: rate-limited: {more} more request{plural} refused",
                self._error_fields(ErrorCode.RATE_LIMITED, more=more),
            )
        self._refused = 0

    def _refuse(self, ident: Id) -> None:
        bucket = self._bucket
        assert bucket is not None
        error = ChatError(
            ErrorCode.RATE_LIMITED,
            f"Too many requests (at most {bucket.rate:g} a second, {bucket.burst} at once); "
            f"not done: try again in {bucket.retry_after():.2f}s",
            round(bucket.retry_after(), 3),
        )
        self._error(ident, error, audit=self._refused == 1)

    def _error(self, ident: Id, error: ChatError, audit: bool = True) -> None:
        reply = ErrorReply(ident, error.code.value, error.message, error.retry_after)
        self.outbox.send(reply.wire())
        self.hub.stats.error(error.code.value)
        if audit:
            self.hub.audit(
                "ERROR", f"{self.who}: {error.code.value}: {error.message}",
                self._error_fields(error.code),
            )

    def _error_fields(self, code: ErrorCode, **more: object) -> dict[str, object]:
        user = self.user
        return {"user": user.name if user else None, "peer": self.peer, "code": code.value, **more}

    def _close(self, reason: str | None) -> None:
        if reason is not None:
            self._close_reason = reason
        self.state = State.CLOSED
        self.outbox.close(self.hub.settings.shutdown_grace)


def room_fields(user: User, room: str, members: int) -> dict[str, object]:
    """The fields of a JOIN or LEAVE event."""
    return {"user": user.name, "room": room, "members": members}


def left_fields(user: User, left: Left) -> dict[str, object]:
    """The fields of a LEAVE event."""
    return room_fields(user, left.room, left.members)
