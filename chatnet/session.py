"""
One connection's conversation with the server: the session state machine.

States::

    NEW --login ok--> ACTIVE --exit / lost / shutdown--> CLOSED
     \\______________________________________________________^

:class:`Session` takes decoded frames and decides everything: it validates,
asks the :class:`~chatnet.model.Directory` and the
:class:`~chatnet.transfers.TransferManager`, writes replies and events to
outboxes, and writes audit lines.  Every :class:`~chatnet.errors.ChatError`
becomes an ``error`` frame in one place, :meth:`Session.received`; any other
exception becomes ``internal`` and is logged.  The protocol only carries bytes.

Pure: imports nothing from ``twisted.internet`` (it logs through
:mod:`twisted.logger`, which needs no reactor).
"""

from __future__ import annotations

import enum
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Protocol, TypeVar

from twisted.logger import Logger

from chatnet import frames, paging
from chatnet.admission import Admission, RefusalLog
from chatnet.config import SERVER_NAME, Settings
from chatnet.errors import ChatError, ErrorCode, FailReason
from chatnet.frames import (
    BadFrame,
    DataFrame,
    ErrorReply,
    FromClient,
    Id,
    Ok,
    Reply,
    Request,
    UnknownRequest,
)
from chatnet.model import Directory, FileOutbox, Room, User
from chatnet.ratelimit import TokenBucket
from chatnet.stats import Stats
from chatnet.throttle import LoginThrottle, Record, address_key
from chatnet.validation import (
    check_extension,
    check_filename,
    check_room,
    check_size,
    check_text,
    check_username,
    count,
    fold,
    show,
)


class AuditFn(Protocol):
    """``audit(category, text)``, or with structured fields for ``--audit-format json``."""

    def __call__(
        self, category: str, text: str, fields: Mapping[str, object] | None = None, /
    ) -> None: ...

_log = Logger()

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Later(Protocol[T_co]):
    """
    An answer that arrives later: what a service returns when it cannot
    answer at once (a :class:`~twisted.internet.defer.Deferred` is one).
    Exactly one of the two callbacks is called, once, possibly at once.
    """

    def addCallbacks(
        self, callback: Callable[[T_co], object], errback: Callable[[Any], object]
    ) -> object:
        """Call ``callback(result)`` or ``errback(failure)`` when the answer comes."""


class State(enum.Enum):
    NEW = "new"
    ACTIVE = "active"
    CLOSED = "closed"


class Authenticator(Protocol):
    """Checks passwords when the operator configured accounts (:mod:`chatnet.auth`)."""

    def check(self, username: str, password: str) -> Later[bool]:
        """``True`` when ``password`` is ``username``'s, ``False`` otherwise."""


class SessionOutbox(FileOutbox, Protocol):
    """What a session needs of its own connection, beyond sending."""

    def close(self, grace: float) -> None:
        """Send what is queued, then close."""

    def pause_reading(self) -> None:
        """Read no more frames from the peer until :meth:`resume_reading`."""

    def resume_reading(self) -> None:
        """Read frames again (those already read come first)."""


class TransferTicket(Protocol):
    """What the session reads of a transfer it offered or found."""

    @property
    def id(self) -> int: ...

    @property
    def position(self) -> int: ...


Ticket = TypeVar("Ticket", bound=TransferTicket)


class Transfers(Protocol[Ticket]):
    """
    The file transfers of the server, as the session drives them
    (:class:`~chatnet.transfers.TransferManager` implements it, with
    Deferreds and timers the session does not see).
    """

    def offer(self, sender: User, recipient: User, name: str, size: int) -> Ticket:
        """
        Accept a ``sendfile``: queue it or start it.

        :raises ChatError: the sender or the server has too many waiting.
        """
        ...

    def receive(self, sender: User, frame: DataFrame) -> None:
        """
        Spool a data frame of one of ``sender``'s uploads.

        :raises ChatError: ``bad-transfer``.
        """

    def find_own(self, sender: User, number: object) -> Ticket:
        """:raises ChatError: ``bad-transfer`` unless ``number`` is ``sender``'s."""
        ...

    def find_offer(self, recipient: User, number: object) -> Ticket:
        """:raises ChatError: ``bad-transfer`` unless ``number`` is offered to ``recipient``."""
        ...

    def accept(self, t: Ticket) -> None:
        """Deliver the offered ``t`` (``file-start`` and the data follow)."""

    def receipt(self, recipient: User, number: object, sha256: object) -> bool:
        """
        Pass the addressee's receipt on to the sender; whether the hashes match.

        :raises ChatError: ``bad-transfer``.
        """
        ...

    def fail(self, t: Ticket, reason: FailReason, tell_recipient: bool = True) -> None:
        """End ``t`` unfinished, telling who needs to know."""

    def user_gone(self, user: User) -> None:
        """``user`` went offline: fail what it sends or receives."""

    def shutdown(self) -> int:
        """Fail every unfinished transfer; how many there were."""
        ...

    # counts, for chatnet.metrics

    @property
    def running(self) -> int:
        """Uploads holding a slot."""
        ...

    @property
    def waiting(self) -> int:
        """Accepted uploads waiting for a slot."""
        ...

    @property
    def delivering(self) -> int:
        """Files streaming to their addressees."""
        ...

    @property
    def deliveries_waiting(self) -> int:
        """Uploaded files waiting for their addressee's earlier deliveries."""
        ...

    @property
    def spool_used(self) -> int:
        """Bytes the spool holds (uploads with a slot by declared size, files not delivered)."""
        ...

    @property
    def spool_capacity(self) -> int:
        """Bytes the spool may hold in all."""
        ...


class _Wait:
    """One request waiting for its answer (see :meth:`Session.wait`)."""

    __slots__ = ("later",)

    def __init__(self) -> None:
        #: Whether the answer did not come at once (reading was paused).
        self.later = False


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
    sessions: set[Session] = field(default_factory=set)
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

    def __post_init__(self) -> None:
        self.admission = Admission(self.settings)

    def sweep(self, everything: bool = False) -> None:
        """
        Write the summed failed-login lines whose minute is over (all of
        them when ``everything``); the service calls this every few seconds.
        """
        for line in self.throttle.digest.flush(self.now(), everything):
            self.audit("LOGIN-FAILED", line)

    def forget(self, session: Session) -> None:
        self.sessions.discard(session)
        if not self.sessions and self.when_empty:
            waiters, self.when_empty = self.when_empty, []
            for waiter in waiters:
                waiter()


class Session:
    """
    The server side of one connection.

    :param outbox: this connection's outgoing side.
    :param peer: the peer's address, for the audit log.
    :param host: the peer's IP address, for the per-address limits.
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

    def _timed(self, handler: Callable[[Session, Request], None], frame: Request) -> None:
        """Handle ``frame``, timed (see :attr:`Stats.sample_every`)."""
        stats = self.hub.stats
        self._untimed = stats.sample_every - 1
        started = perf_counter()
        try:
            handler(self, frame)
        finally:
            stats.request(frame.TYPE, perf_counter() - started)

    def __repr__(self) -> str:
        return f"<Session {self.peer} {self.state.value} {self.user}>"

    @property
    def who(self) -> str:
        """``alice (127.0.0.1:5000)`` or the bare peer, for log lines."""
        return f"{self.user.name} ({self.peer})" if self.user else self.peer

    # inputs from the connection

    def connected(self) -> None:
        hub = self.hub
        hub.sessions.add(self)
        if len(hub.sessions) > hub.settings.max_clients:
            refusal: str | None = (
                f"The server is full ({hub.settings.max_clients} connections); try again later"
            )
        else:
            refusal = hub.admission.admit(self.host)
        if refusal is None:
            self._admitted = True
            hub.audit("CONNECT", f"connection from {self.peer}", {"peer": self.peer})
            return
        error = ChatError(ErrorCode.SERVER_FULL, refusal)
        unlogged = hub.refusals.note(self.host or "", hub.now())
        if unlogged is None:  # one of a flood from this address: told, not logged
            self._quiet = True
            self._error(None, error, audit=False)
        else:
            hub.audit("CONNECT", f"connection from {self.peer}", {"peer": self.peer})
            self._error(None, error)
            if unlogged:
                plural = "s" if unlogged > 1 else ""
                hub.audit(
                    "ERROR",
                    f"{self.host}: server-full: {unlogged} more connection{plural} refused in "
                    f"the last {RefusalLog.INTERVAL:g}s, not logged one by one",
                    self._error_fields(ErrorCode.SERVER_FULL, refused=unlogged),
                )
        self._close(f"refused: server full: {refusal}")

    def received(self, frame: FromClient) -> None:
        """
        Handle one decoded frame, or hold it while a request waits for its
        answer (:meth:`wait`).  Never raises.
        """
        if self.state is State.CLOSED:
            return
        held = self._held
        if held is not None:
            held.append(frame)
            return
        self._handle(frame)
        if self._held is not None and self._waiting is None:  # answered at once
            self._run_held()

    def _handle(self, frame: FromClient) -> None:
        ident: Id = None
        try:
            handler = _HANDLERS.get(type(frame))
            if handler is not None:  # a request
                request: Any = frame  # (no isinstance check on the hot path)
                ident = request.id
                if self._bucket is not None and type(frame) is not _EXIT and not self._admit():
                    self._refuse(ident)
                    return
                if self.state is State.NEW and type(frame) not in _BEFORE_LOGIN:
                    raise ChatError(ErrorCode.NOT_LOGGED_IN, "Log in first")
                untimed = self._untimed
                if untimed:
                    self._untimed = untimed - 1
                    handler(self, request)
                else:
                    self._timed(handler, request)
            elif isinstance(frame, UnknownRequest | Request):  # none this server answers
                ident = frame.id
                kind = frame.type if type(frame) is UnknownRequest else frame.TYPE
                raise ChatError(ErrorCode.UNKNOWN_TYPE, f"Unknown request type {show(kind)}")
            elif type(frame) is DataFrame:
                if self.user is None:
                    raise ChatError(
                        ErrorCode.BAD_TRANSFER,
                        f"Transfer {frame.transfer} is not an upload of yours",
                    )
                self.hub.transfers.receive(self.user, frame)
            else:
                assert isinstance(frame, BadFrame)
                raise ChatError(ErrorCode.BAD_FRAME, frame.message[:1].upper() + frame.message[1:])
        except ChatError as e:
            self._error(ident, e)
        except Exception as e:  # one place for the unexpected
            _log.failure("while handling {frame!r} from {who}", frame=frame, who=self.who)
            self._error(ident, ChatError(ErrorCode.INTERNAL, f"Internal server error ({type(e).__name__})"))

    def wait(
        self,
        later: Later[T],
        then: Callable[[T], None],
        ident: Any,
        undo: Callable[[T], None] | None = None,
    ) -> None:
        """
        Finish the request being handled when ``later`` gives its answer.

        A handler that needs an answer it cannot have at once (a password
        check in a thread, the cluster's shared state) calls this and
        returns.  Until the answer comes, frames from this connection are
        held, and the connection's reading is paused so they stay few; then
        ``then(result)`` finishes the request (a :class:`ChatError` it
        raises, or a failed ``later``, is the request's error reply, with
        ``ident``) and the held frames are handled in order.  Replies
        therefore keep the order of the requests, and nothing overtakes a
        waiting request.

        If the connection is closed or lost before the answer, ``then`` is
        never called: ``undo(result)``, if given, takes back whatever the
        answer did elsewhere (a name registered in the cluster), and a
        failure is dropped.  One request waits at a time.
        """
        assert self._waiting is None, "one request waits at a time"
        waiting = self._waiting = _Wait()
        if self._held is None:
            self._held = deque()
        later.addCallbacks(
            lambda result: self._answered(waiting, then, undo, ident, result),
            lambda failure: self._answer_failed(waiting, ident, failure),
        )
        if self._waiting is waiting:  # not answered at once
            waiting.later = True
            if not self._paused:
                self._paused = True
                self.outbox.pause_reading()

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

    def _answer_failed(self, waiting: _Wait, ident: Any, failure: Any) -> None:
        if self._waiting is not waiting or self.state is State.CLOSED:
            return  # nobody to tell; consumed, not an unhandled error
        self._waiting = None
        error = getattr(failure, "value", failure)
        if isinstance(error, ChatError):
            self._error(ident, error)
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

    def oversized(self, length: int) -> None:
        """The peer declared a frame longer than the contract allows."""
        if self.state is State.CLOSED:
            return
        self._error(
            None,
            ChatError(
                ErrorCode.FRAME_TOO_LARGE,
                f"Frame of {length} bytes exceeds the limit of {frames.MAX_PAYLOAD}",
            ),
        )
        self._close("frame too large")

    def frame_expired(self, seconds: float, buffered: int) -> None:
        """A frame begun ``seconds`` ago is still incomplete, ``buffered`` bytes of it held."""
        if self.state is not State.CLOSED:
            self._close(
                f"closed: a frame was left incomplete for {seconds:.1f}s "
                f"({buffered} bytes held; --frame-timeout "
                f"{self.hub.settings.frame_timeout:g}s)"
            )

    def flooding(self, rate: float, burst: int) -> None:
        """The connection passed the flood limit: its requests are now served more slowly."""
        self.hub.audit(
            "ERROR",
            f"{self.who}: flooding: past {burst} requests at once, served at most "
            f"{rate:g} a second (reading paused meanwhile; nothing refused)",
        )

    def login_expired(self) -> None:
        if self.state is State.NEW:
            self._close(f"no login within {self.hub.settings.login_timeout:g}s")

    def shutdown(self, message: str) -> None:
        """The server is stopping: tell this connection (see :meth:`close`)."""
        if self.state is not State.CLOSED:
            self.outbox.send(frames.Shutdown(message).wire())

    def close(self, reason: str) -> None:
        """Close this connection once what is queued has been sent."""
        if self.state is not State.CLOSED:
            self._close(reason)

    def lost(self, cause: str | None = None) -> None:
        """
        The connection is gone, for whatever reason.

        :param cause: what the transport said, for the log line of a
            connection lost without ``exit`` (``None``: nothing to add).
        """
        hub = self.hub
        if self not in hub.sessions:
            return
        self._waiting = None  # an answer still to come finds nobody
        self._held = None
        self._log_refused()
        if self._online:
            self._logout(clean=self._exited)
        how = self._close_reason or ("left cleanly" if self._exited else "connection lost")
        if cause and self._close_reason is None and not self._exited:
            how = f"{how} ({cause})"
        if not self._quiet:
            hub.audit("DISCONNECT", f"{self.who} {how}", {
                "user": self.user.name if self.user else None, "peer": self.peer, "reason": how,
            })
        if self._admitted:
            self._admitted = False
            hub.admission.gone(self.host, pending=self.user is None)
        self.state = State.CLOSED
        hub.forget(self)

    def slow_consumer(self, why: str) -> None:
        """The outbox gave up on this connection: its client does not keep up (``why``)."""
        self._close_reason = f"closed as a slow consumer ({why})"
        self.hub.stats.slow_consumers += 1
        self.state = State.CLOSED

    # session

    def _login(self, req: frames.Login) -> None:
        hub = self.hub
        if self.state is not State.NEW:
            raise ChatError(ErrorCode.ALREADY_LOGGED_IN, f"Already logged in as {self._user().name}")
        given = req.username
        try:
            name = check_username(given)
        except ChatError as e:
            self._login_failed(given, e)
            self._error(req.id, e, audit=False)  # the LOGIN-FAILED line says it all
            return
        auth = hub.auth
        if auth is None:
            self._enter(req, name)
            return
        # With accounts: throttled, then the password checked in a thread.
        throttle = hub.throttle
        record = self._logins
        if record is None:
            record = self._logins = throttle.new_connection()
        address, account = address_key(self.peer), fold(name)
        wait = throttle.wait(record, address, account, hub.now())
        if wait > 0:
            throttle.refused(record)
            self._login_refused(req, name, ChatError(
                ErrorCode.RATE_LIMITED,
                f"Too many failed logins; try again in {math.ceil(wait)}s",
                math.ceil(wait * 100) / 100,
            ), refused=True)
            return
        password = req.password
        if not isinstance(password, str):  # a client's first try; not a guess
            self._login_refused(req, name, _WRONG_PASSWORD)
            return

        def checked(right: bool) -> None:
            if right:
                throttle.succeeded(record, account)
                self._enter(req, name)
            else:
                throttle.failed(record, address, account, hub.now())
                self._login_refused(req, name, _WRONG_PASSWORD)

        self.wait(auth.check(name, password), checked, req.id)

    def _login_failed(self, given: object, error: ChatError) -> None:
        """The ``LOGIN-FAILED`` line of a refused login, and its count."""
        hub = self.hub
        hub.stats.login(error.code.value)
        hub.audit(
            "LOGIN-FAILED", f"{self.peer} as {show(given)}: {error.code.value}: {error.message}",
            {"peer": self.peer, "user": show(given), "code": error.code.value},
        )

    def _login_refused(
        self, req: frames.Login, name: str, error: ChatError, refused: bool = False
    ) -> None:
        """
        Answer a login refused for its password, or refused unchecked
        (``refused``): the audit lines are summed (:class:`~chatnet.throttle.FailureDigest`),
        and a connection that keeps failing is closed.
        """
        hub = self.hub
        throttle = hub.throttle
        if throttle.digest.failed(fold(name), address_key(self.peer), hub.now(), refused):
            self._login_failed(name, error)
        else:
            hub.stats.login(error.code.value)
        self._error(req.id, error, audit=False)
        record = self._logins
        if record is not None and throttle.exhausted(record):
            self._close(f"closed after {record.failures + record.refused} failed logins")

    def _enter(self, req: frames.Login, name: str) -> None:
        """Log in as ``name`` (valid, and the password right if one is needed)."""
        hub = self.hub
        try:
            user = User(name, self.outbox, self.peer)
            hub.directory.add_user(user)
        except ChatError as e:
            self._login_failed(name, e)
            self._error(req.id, e, audit=False)  # the LOGIN-FAILED line says it all
            return
        user.offers = req.offers is True
        user.notices = req.notices is True
        self.user = user
        self._online = True
        self.state = State.ACTIVE
        if self._admitted:
            hub.admission.logged_in(self.host)
        hub.stats.login("ok")
        hub.audit("LOGIN", f"{name} logged in from {self.peer}", {"user": name, "peer": self.peer})
        self._reply(frames.LoginOk(req.id, user.name, SERVER_NAME, hub.settings.limits()))

    def _ping(self, req: frames.Ping) -> None:
        self.outbox.send(Ok.encode(req.id))

    def _exit(self, req: frames.Exit) -> None:
        self._exited = True
        self.outbox.send(Ok.encode(req.id))
        if self._online:
            self._logout(clean=True)
        self._close(None)

    def _logout(self, clean: bool) -> None:
        user = self.user
        assert user is not None
        self._online = False
        hub = self.hub
        room = hub.directory.remove_user(user)
        if room is not None and not hub.shutting_down:
            self._presence(room, user, "leave" if clean else "disconnect")
            hub.audit("LEAVE", f"{user.name} left {room.name} ({room.occupancy()})",
                      _room_fields(user, room))
        hub.transfers.user_gone(user)

    # rooms and messages

    def _join(self, req: frames.Join) -> None:
        user = self._user()
        hub = self.hub
        name = check_room(req.room)
        before = user.room
        room, left = hub.directory.join(user, name)
        if room is before:  # already there: an ok no-op
            self._reply(frames.JoinOk(req.id, room.name, room.names()))
            return
        if left is not None:
            self._presence(left, user, "leave")
            switch = f", leaving {left.name} ({left.occupancy()})"
        else:
            switch = ""
        self._reply(frames.JoinOk(req.id, room.name, room.names()))
        self._presence(room, user, "join")
        fields = _room_fields(user, room)
        if left is not None:
            fields["left"] = left.name
        hub.audit("JOIN", f"{user.name} joined {room.name} ({room.occupancy()}){switch}", fields)

    def _leave(self, req: frames.Leave) -> None:
        user = self._user()
        room = self.hub.directory.leave(user)
        self._reply(frames.LeaveOk(req.id, room.name))
        self._presence(room, user, "leave")
        self.hub.audit(
            "LEAVE", f"{user.name} left {room.name} ({room.occupancy()})", _room_fields(user, room)
        )

    def _broadcast(self, req: frames.Broadcast) -> None:
        user = self._user()
        hub = self.hub
        text = check_text(req.text, hub.settings.max_text)
        room = user.room
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; /join one first")
        # The message event's encoder, without building the object: this is
        # the hottest frame there is.
        data = frames.message_wire(room.name, user.name, text, hub.now())
        delivered = room.send(data, exclude=user)
        self.outbox.send(frames.BroadcastOk.encode(req.id, delivered))
        stats = hub.stats
        stats.broadcasts += 1
        stats.deliveries += delivered
        hub.audit(
            "BROADCAST", f"{user.name} -> {room.name} ({count(delivered, 'member')}): {text}",
            {"user": user.name, "room": room.name, "delivered": delivered, "message": text}
            if hub.audit_fields else None,
        )

    def _whisper(self, req: frames.Whisper) -> None:
        user = self._user()
        hub = self.hub
        target = hub.directory.find_user(req.to)
        text = check_text(req.text, hub.settings.max_text)
        target.outbox.send(frames.WhisperEvent(user.name, text, hub.now()).wire())
        self.outbox.send(Ok.encode(req.id))
        stats = hub.stats
        stats.whispers += 1
        stats.deliveries += 1
        hub.audit(
            "WHISPER", f"{user.name} -> {target.name}",
            {"user": user.name, "to": target.name} if hub.audit_fields else None,
        )

    def _rooms(self, req: frames.Rooms) -> None:
        after, limit = paging.checked(req.after, req.limit, paging.ROOMS_PAGE, paging.ROOMS_PAGE_MAX)
        rooms, more = self.hub.directory.rooms_page(after, limit)
        infos = [frames.RoomInfo(r.name, r.names(), r.capacity) for r in rooms]
        self._reply(paging.fit_rooms(req.id, infos, more, self.hub.settings.room_capacity))

    def _who(self, req: frames.Who) -> None:
        user = self._user()
        name = req.room
        if name is None:
            room = user.room
            if room is None:
                raise ChatError(ErrorCode.NOT_IN_ROOM, "You are not in a room; name one: /who <room>")
        else:
            room = self.hub.directory.find_room(name)
        self._reply(frames.WhoOk(req.id, room.name, room.names()))

    def _users(self, req: frames.Users) -> None:
        after, limit = paging.checked(req.after, req.limit, paging.USERS_PAGE, paging.USERS_PAGE_MAX)
        users, more = self.hub.directory.users_page(after, limit)
        # 3,000 names of at most 16 ASCII characters always fit one frame.
        self._reply(frames.UsersOk(req.id, [u.name for u in users], more))

    # files

    def _sendfile(self, req: frames.Sendfile) -> None:
        user = self._user()
        hub = self.hub
        settings = hub.settings
        target = hub.directory.find_user(req.to)
        name = check_filename(req.name)
        check_extension(name, settings.allowed_extensions)
        size = check_size(req.size, settings.max_file_size)
        t = hub.transfers.offer(user, target, name, size)
        self._reply(frames.SendfileOk(req.id, t.id, t.position))

    def _cancel(self, req: frames.Cancel) -> None:
        user = self._user()
        transfers = self.hub.transfers
        t = transfers.find_own(user, req.transfer)
        self._reply(frames.CancelOk(req.id, t.id))
        transfers.fail(t, FailReason.CANCELLED)

    def _received(self, req: frames.Received) -> None:
        self.hub.transfers.receipt(self._user(), req.transfer, req.sha256)
        self._reply(Ok(req.id))

    def _accept(self, req: frames.Accept) -> None:
        transfers = self.hub.transfers
        t = transfers.find_offer(self._user(), req.transfer)
        self._reply(Ok(req.id))  # before file-start
        transfers.accept(t)

    def _decline(self, req: frames.Decline) -> None:
        transfers = self.hub.transfers
        t = transfers.find_offer(self._user(), req.transfer)
        self._reply(Ok(req.id))
        transfers.fail(t, FailReason.DECLINED, tell_recipient=False)

    # helpers

    def _user(self) -> User:
        user = self.user
        assert user is not None, "handler ran before login"
        return user

    def _presence(self, room: Room, user: User, event: str) -> None:
        room.send(frames.Presence(room.name, user.name, event).wire(), exclude=user)

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


_WRONG_PASSWORD = ChatError(ErrorCode.AUTH_FAILED, "Wrong username or password")


def _room_fields(user: User, room: Room) -> dict[str, object]:
    """The fields of a JOIN or LEAVE event."""
    return {"user": user.name, "room": room.name, "members": len(room.members)}


_R = TypeVar("_R", bound=Request)


def _handler(method: Callable[[Session, _R], None]) -> Callable[[Session, Request], None]:
    return method  # type: ignore[return-value]


#: Request class -> handler; a frame of any other class is no request.
_HANDLERS: dict[type, Callable[[Session, Request], None]] = {
    frames.Login: _handler(Session._login), frames.Ping: _handler(Session._ping),
    frames.Exit: _handler(Session._exit), frames.Join: _handler(Session._join),
    frames.Leave: _handler(Session._leave), frames.Broadcast: _handler(Session._broadcast),
    frames.Whisper: _handler(Session._whisper), frames.Rooms: _handler(Session._rooms),
    frames.Who: _handler(Session._who), frames.Users: _handler(Session._users),
    frames.Sendfile: _handler(Session._sendfile), frames.Cancel: _handler(Session._cancel),
    frames.Received: _handler(Session._received), frames.Accept: _handler(Session._accept),
    frames.Decline: _handler(Session._decline),
}
#: The requests answered before login.
_BEFORE_LOGIN = frozenset({frames.Login, frames.Ping, frames.Exit})
_EXIT = frames.Exit
