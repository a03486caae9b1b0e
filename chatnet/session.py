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

from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar

from twisted.logger import Logger

from chatnet import frames
from chatnet.admission import RefusalLog
from chatnet.errors import ChatError, ErrorCode
from chatnet.frames import BadFrame, DataFrame, FromClient, Id, Request, UnknownRequest
from chatnet.session_base import State
from chatnet.session_files import FileRequests
from chatnet.session_login import LoginRequests
from chatnet.session_rooms import RoomRequests
from chatnet.validation import show

_log = Logger()


class Session(LoginRequests, RoomRequests, FileRequests):
    """
    The server side of one connection.

    :param outbox: this connection's outgoing side.
    :param peer: the peer's address, for the audit log.
    :param host: the peer's IP address, for the per-address limits.
    """

    __slots__ = ()

    def _timed(self, handler: Callable[[Session, Request], None], frame: Request) -> None:
        """Handle ``frame``, timed (see :attr:`Stats.sample_every`)."""
        stats = self.hub.stats
        self._untimed = stats.sample_every - 1
        started = perf_counter()
        try:
            handler(self, frame)
        finally:
            stats.request(frame.TYPE, perf_counter() - started)

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
        if self._held is not None:
            self._hold(frame)
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
        self._stop_waiting()  # an answer still to come finds nobody
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
