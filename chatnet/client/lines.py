"""
Line mode: commands from stdin one line at a time, one readable line per
event on stdout (or one JSON object per server frame with ``--json``).

Used when stdin is not a terminal or with ``--plain``.  The first line is the
username unless ``--username`` was given.  At end of input the client waits
for its replies and its own transfers, says ``exit`` and stops.

Once logged in, a lost connection is restored by the
:class:`~chatnet.client.link.Link` (unless ``--no-reconnect``): lines wait
until it is back, and the status says why it gave up when it does.

Lines run one after another, each waiting for its reply, so a server with a
rate limit (``rate-limited``: the request was not carried out) only slows a
pipe down: the refused line is sent again after a pause, in its place.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, TextIO

from twisted.internet.defer import Deferred, DeferredQueue, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater

from chatnet.client import render
from chatnet.client.commands import Exit, Help, ParseError, Reconnect, parse
from chatnet.client.core import ClientCore
from chatnet.client.core_connection import RECEIPT_WAIT
from chatnet.client.events import (
    ClientEvent,
    ConnectionClosed,
    Disconnected,
    GaveUp,
    LocalError,
    Reconnected,
    Reconnecting,
    ServerEvent,
    TransferEvent,
)
from chatnet.client.link import Link
from chatnet.client.login import Closed, LoggedIn, NoInput, Then, log_in
from chatnet.client.reconnect import RepeatFilter
from chatnet.errors import ChatError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONNECT = 3
EXIT_LOGIN = 4
EXIT_SHUTDOWN = 5
EXIT_LOST = 6
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

#: Put in the line queue when the connection closes.
CLOSED = object()

#: Pauses before sending a rate-limited line again: doubling, then steady,
#: about a minute in all before the refusal is shown.
RATE_LIMIT_PAUSES = (0.1, 0.2, 0.4, 0.8, 1.6) + (2.0,) * 28


def read_lines(reactor: Any, queue: DeferredQueue[Any], fd: int = 0) -> threading.Thread:
    """
    Read lines from ``fd`` in a thread and put them (``str``, newline
    stripped) into ``queue``, then ``None`` at end of input.

    Raw ``os.read`` rather than ``sys.stdin``: a daemon thread blocked inside
    a buffered reader would make the interpreter abort at exit; it also works
    for pipes, terminals and regular files alike.
    """

    def run() -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                reactor.callFromThread(queue.put, raw.decode("utf-8", "replace").rstrip("\r"))
        if pending:
            reactor.callFromThread(queue.put, pending.decode("utf-8", "replace").rstrip("\r"))
        reactor.callFromThread(queue.put, None)

    thread = threading.Thread(target=run, name="stdin", daemon=True)
    thread.start()
    return thread


class LineMode:
    """
    Drive a connected :class:`ClientCore` from lines.

    :param lines: ``str`` lines, then ``None`` at end of input.
    :param out: where readable lines (or JSON) go; ``err`` gets diagnostics.
    """

    def __init__(
        self,
        core: ClientCore,
        lines: DeferredQueue[Any],
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        as_json: bool = False,
        username: str | None = None,
        password: str | None = None,
        link: Link | None = None,
        terminal: bool = True,
    ) -> None:
        self.core = core
        #: Whether stdin is a terminal: a pipe cannot type ``/reconnect``, so
        #: it is not offered, and a repeated failure is said once.
        self.terminal = terminal
        self._repeats = RepeatFilter()
        self.link = link
        self.lines = lines
        self.out = out
        self.err = err
        self.as_json = as_json
        self.username = username
        self.password = password
        #: Whether the user stopped the client (Ctrl+C, SIGTERM): the end of
        #: the connection is then neither a loss nor restored.
        self.interrupted = False
        self._leave_status = EXIT_INTERRUPTED
        self._cut_off: IDelayedCall | None = None
        core.subscribe(self._event)
        if as_json:
            core.on_frame(self._print_json)
        if core.gone is not None:
            lines.put(CLOSED)

    # -- output -------------------------------------------------------------

    def _print(self, text: str, stream: TextIO | None = None) -> None:
        """Write one line; whatever it carries is shown escaped."""
        stream = stream or self.out
        try:
            stream.write(render.terminal_safe(text) + "\n")
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def show(self, line: render.Line | None) -> None:
        if line is None:
            return
        if self.as_json:
            if line.style == render.ERROR:
                self._print(line.text, self.err)
            return
        self._print(line.text)

    def _print_json(self, frame: dict[str, Any]) -> None:
        self._print(render.json_line(frame))

    def _event(self, event: ClientEvent) -> None:
        if isinstance(event, ServerEvent):
            if not self.as_json:
                self.show(render.server_event(event.frame, self.core.username))
        elif isinstance(event, TransferEvent):
            if self.as_json:
                t = event.transfer
                if event.kind in ("saved", "discarded"):
                    self._print_json({
                        "type": f"download-{event.kind}", "transfer": t.transfer,
                        "name": t.name, "from": t.peer, "size": t.size,
                        "path": getattr(t, "path", None), "reason": t.reason,
                    })
            else:
                self.show(render.transfer_event(event.kind, event.transfer, event.frame))
        elif isinstance(event, Disconnected):
            if self.link is None or not self.link.reconnecting:
                self.lines.put(CLOSED)
        elif isinstance(event, Reconnecting):
            if self.as_json:
                self._print_json({"type": "reconnecting", "why": event.why,
                                  "server": event.server, "delay": round(event.delay, 3)})
            text: str | None = event.text
            if not self.terminal:
                text = self._repeats.text(event.why, event.server, event.delay)
            if text is not None:
                self.show(render.Line(render.ERROR, f"[disconnected] {text}"))
        elif isinstance(event, Reconnected):
            self._repeats.reset()
            if self.as_json:
                self._print_json({"type": "reconnected", "server": event.server,
                                  "username": event.username, "room": event.room})
            self.show(render.Line(render.SUCCESS, f"[ok] {event.text}"))
        elif isinstance(event, GaveUp):
            self.lines.put(CLOSED)

    def error(self, message: str) -> None:
        self.show(render.error_line(message))

    # -- input --------------------------------------------------------------

    async def _next(self) -> Any:
        return await self.lines.get()

    # -- login (the flow is chatnet.client.login's; this says how to ask) --

    @property
    def asks_again(self) -> bool:
        return self.username is None

    @property
    def asks_password(self) -> bool:
        return False  # no terminal to ask on: $CHATNET_PASSWORD

    async def ask_username(self) -> str | None:
        line = await self._next()
        return None if line is CLOSED else line

    async def ask_password(self, username: str) -> str | None:
        return None  # never called: asks_password is false

    def refused(self, error: ChatError | LocalError, then: Then, username: str) -> None:
        self.error(error.message)
        if then is Then.USERNAME:
            self.error("Type another username on the next line")

    async def login(self) -> int | None:
        """Log in; ``None`` when logged in, else the exit status."""
        outcome = await log_in(self.core, self, self.username, self.password)
        if isinstance(outcome, LoggedIn):
            reply = outcome.reply
            self.show(render.Line(
                render.SUCCESS,
                f"[ok] logged in as {reply.username} on {reply.server}",
            ))
            if self.link is not None:
                self.link.logged_in(reply.username or self.core.username or "", outcome.password)
            return None
        if isinstance(outcome, Closed):
            return self._gone_status()
        if isinstance(outcome, NoInput):
            self._print("chatnet-client: end of input before a username was accepted", self.err)
        elif outcome.needs_password:
            how = "a wrong one" if self.password else "none"
            self._print(
                f"chatnet-client: the server has accounts and {how} was given: "
                "put the password for this name in $CHATNET_PASSWORD", self.err)
        else:
            self._print(f"chatnet-client: login rejected: {outcome.error.message}", self.err)
        return EXIT_LOGIN

    async def run(self) -> int:
        """Log in, then run every line; returns the exit status."""
        status = await self.login()
        if status is not None:
            return status
        while True:
            line = await self._next()
            if line is CLOSED:
                return self._gone_status()
            if line is None:
                break
            try:
                command = parse(line, self.core.limits)
            except ParseError as e:
                self.error(e.message)
                continue
            if isinstance(command, Reconnect):
                if self.link is None or not self.link.retry_now():
                    self.error("/reconnect: not disconnected")
                continue
            if not self.core.is_connected and self.link is not None:
                # Lost: the line waits until the connection is back.
                if not await self.link.when_up():
                    return self._gone_status()
            if isinstance(command, Exit):
                await self.core.exit()
                self.show(render.Line(render.NOTICE, "[ok] bye"))
                return EXIT_OK
            try:
                result = await self._execute(command)
                lines = render.reply_lines(command, result, self.core.username, self.core.room)
            except (ChatError, LocalError, ParseError) as e:  # ParseError: /help <unknown>
                self.error(e.message)
                continue
            except ConnectionClosed as e:
                if self.link is not None and self.link.restores:
                    self.error(f"{e.message}: not known whether {line!r} was carried out")
                    continue
                return self._gone_status()
            for item in lines:
                if not self.as_json:
                    self.show(item)
                elif isinstance(command, Help):
                    self._print(item.text, self.err)
        # End of input: let our own work finish, then leave cleanly.
        ended = self.core.clock.seconds()
        await self.core.when_idle()
        if not self.core.is_connected:
            return self._gone_status()
        self._unconfirmed(ended)
        await self.core.exit()
        return EXIT_OK

    def _unconfirmed(self, since: float) -> None:
        """
        Say which files waited for at the end of input were delivered (every
        byte written to the addressee's connection) but never confirmed
        (``file-received``).
        """
        for upload in self.core.uploads.values():
            if upload.state != "delivered" or upload.delivered_at is None:
                continue
            if upload.delivered_at + RECEIPT_WAIT <= since:
                continue  # long done: it was not waited for
            line = render.unconfirmed_line(upload.peer, upload.name, RECEIPT_WAIT)
            if self.as_json:
                self._print(line.text, self.err)
            else:
                self.show(line)

    async def _execute(self, command: Any) -> Any:
        """Run ``command``; a ``rate-limited`` refusal is retried after a pause."""
        for pause in RATE_LIMIT_PAUSES:
            try:
                return await self.core.execute(command)
            except ChatError as e:
                if e.code != "rate-limited":
                    raise
            await deferLater(self.core.clock, pause, lambda: None)
        return await self.core.execute(command)

    def leave(self, how: str = "interrupted", status: int = EXIT_INTERRUPTED) -> None:
        """
        The user stops the client (Ctrl+C, SIGTERM): say ``exit`` and end
        with ``status`` once the server closed the connection (or after 2 s);
        the end of the connection is then no loss, and is not restored.  A
        second time drops the connection at once.
        """
        if self.interrupted:
            self.core.close()
            return
        self.interrupted = True
        self._leave_status = status
        if self.link is not None:
            self.link.stop()
        self._print(f"chatnet-client: {how}, leaving", self.err)
        if not self.core.is_connected:  # reconnecting: that stopped, leave now
            self.lines.put(CLOSED)
            return
        self.core.exit()
        self._cut_off = self.core.clock.callLater(2, self.core.close)

    def _gone_status(self) -> int:
        gone = self.core.gone
        if self.link is not None:
            self.link.stop()
        if self.interrupted:
            if self._cut_off is not None and self._cut_off.active():
                self._cut_off.cancel()
            return self._leave_status
        gave_up = self.link.gave_up if self.link is not None else None
        if gave_up is not None:
            self._print(f"chatnet-client: {gave_up.why}", self.err)
            if gave_up.login_refused:
                return EXIT_LOGIN
            return EXIT_SHUTDOWN if self.link is not None and self.link.shut_down else EXIT_LOST
        if self.core.shutdown_message is not None:
            self._print(f"chatnet-client: server shut down: {self.core.shutdown_message}", self.err)
            return EXIT_SHUTDOWN
        if gone is not None and gone.clean:
            return EXIT_OK
        reason = gone.reason if isinstance(gone, Disconnected) else "connection lost"
        self._print(f"chatnet-client: {reason}", self.err)
        # Nothing ever came back (TLS mismatch, not a chatnet server): we
        # never really connected.
        return EXIT_CONNECT if self.core.never_answered else EXIT_LOST


def run_line_mode(reactor: Any, core: ClientCore, **options: Any) -> Deferred[int]:
    """
    Start the stdin reader and a :class:`LineMode`; fires with the status.

    Ctrl+C (SIGINT) leaves cleanly with ``exit`` and status 130, SIGTERM
    with status 143; a second one, or a server that does not answer within
    2 s, drops the connection.
    """
    queue: DeferredQueue[Any] = DeferredQueue()
    read_lines(reactor, queue)
    if sys.stdin.isatty() and options.get("username") is None:
        sys.stderr.write("Username: ")
        sys.stderr.flush()
    mode = LineMode(core, queue, terminal=sys.stdin.isatty(), **options)

    def stopping() -> None:  # the reactor stops: the connection's end is no loss
        link = options.get("link")
        if link is not None:
            link.stop()

    signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(mode.leave))
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(
        mode.leave, "stopped (SIGTERM)", EXIT_TERMINATED))
    reactor.addSystemEventTrigger("before", "shutdown", stopping)
    return ensureDeferred(mode.run())
