"""
The full-screen view: what the screen shows and what typed lines do.

A scrolling message pane with timestamps and colours (and the room's
members beside it on a wide screen), a progress bar per transfer, a status
bar, and an input line with history and Tab completion; lines that mention
you and whispers are highlighted and ring the bell (``--bell``).
:class:`ChatView` is fed by a :class:`~chatnet.client.core.ClientCore`; the
core's events schedule a redraw (network events redraw without a key being
pressed).  Its parts live beside it: the widgets in
:mod:`chatnet.client.screen`, the input line in
:mod:`chatnet.client.input_line`, the login's questions in
:mod:`chatnet.client.login_prompts`, the questions about offered files in
:mod:`chatnet.client.offer_questions`; :mod:`chatnet.client.fullscreen`
runs it on the terminal.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Any

import urwid
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from chatnet import frames
from chatnet.client import alerts, render
from chatnet.client.commands import Exit, Help, ParseError, Reconnect, complete, parse
from chatnet.client.core import ClientCore
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
from chatnet.client.input_line import InputLine, file_paths
from chatnet.client.lines import EXIT_CONNECT, EXIT_LOST, EXIT_OK, EXIT_SHUTDOWN
from chatnet.client.link import Link
from chatnet.client.login import log_in
from chatnet.client.login_prompts import LoginPrompts
from chatnet.client.offer_questions import OfferQuestions
from chatnet.client.screen import (
    MENTION,
    WHISPER_TO_ME,
    MessagePane,
    StatusBar,
    TransferRows,
    key_help,
    message_row,
)
from chatnet.client.transfers import Transfer
from chatnet.errors import ChatError
from chatnet.validation import count

__all__ = ["KEEP_FINISHED", "REDRAW_DELAY", "ChatView", "InputLine"]

log = Logger()

#: Seconds a finished transfer's bar stays on screen.
KEEP_FINISHED = 5.0
#: Most redraws per second from network events.
REDRAW_DELAY = 0.05


class ChatView(OfferQuestions, LoginPrompts):
    """
    The widgets and what they show; fed by a :class:`ClientCore`.

    :param where: ``host:port`` for the status bar.
    :param finish: called with the exit status when the interface is done.
    :param bell: when the bell rings (:data:`chatnet.client.alerts.BELL_CHOICES`).
    :param ring: rings it (by default, a BEL written to the screen).
    :param link: restores a lost connection once logged in: the window stays,
        with its scrollback, and the status bar says it is disconnected.
    """

    def __init__(
        self,
        core: ClientCore,
        where: str,
        finish: Callable[[int], None],
        username: str | None = None,
        password: str | None = None,
        bell: str = alerts.DEFAULT_BELL,
        ring: Callable[[], None] | None = None,
        link: Link | None = None,
    ) -> None:
        self.core = core
        self.link = link
        self.bell = bell
        self.ring = ring or self._ring
        self.where = where
        self.finish = finish
        self.password = password
        #: The name whose password the input line is asking for.
        self.asking_password_for: str | None = None
        self.logged_in = False
        self.confirming = False
        #: Why the last attempt to reconnect failed, shown once: the same
        #: failure again only updates the status bar's countdown, so a long
        #: outage does not push the conversation out of the scrollback.
        self._failed_why: str | None = None
        #: Files offered to us, waiting for y or n (the first is asked).
        self.offers: deque[Transfer] = deque()
        self.loop: urwid.MainLoop | None = None
        self._draw_call: Any = None
        self._tick: Any = None
        self.pane = MessagePane()
        self.messages = self.pane.walker
        self.listbox = self.pane.listbox
        self.status = StatusBar(without_detail=self.pane.shows_nicks)
        self.hint = urwid.Text(("hint", ""), wrap="ellipsis")
        self.input = InputLine(self)
        # Transfer bars are rows of the body itself, under the messages (an
        # empty nested Pile is not a flow widget on older urwid).
        self.body = body = urwid.Pile([self.pane])
        footer = urwid.Pile([urwid.AttrMap(self.status, "status"), self.hint, self.input])
        self.frame: Any = urwid.Frame(body, footer=footer, focus_part="footer")
        self.bars = TransferRows()
        core.subscribe(self.on_event)
        self.add(render.Line(render.NOTICE, f"Connected to {where}. /help lists the commands."))
        self._lines: list[str] = []
        self._running = False
        if not username:
            self.add(render.Line(render.NOTICE, "Choose a username (1-16 letters or digits):"))
        #: Fires with the next line typed while the login flow asks.
        self._asking: Deferred[str | None] | None = None
        #: Fires when the login flow next asks or ends: typed lines wait for it.
        self._turn: Deferred[None] | None = Deferred()
        self._running = True
        self._turn.addBoth(self._after)
        if username:
            self.input.set_caption(("prompt", "Logging in... "))
        ensureDeferred(log_in(core, self, username, password)).addCallback(
            self._login_ended
        ).addErrback(lambda f: log.failure("login failed", f))
        self.update_status()

    # -- output -------------------------------------------------------------

    def add(self, line: render.Line | None) -> None:
        """Append a line to the message pane (it follows the end unless scrolled up)."""
        if line is None:
            return
        self.pane.add(message_row(line))
        self.redraw()

    def to_end(self) -> None:
        """Back to the newest message."""
        self.pane.to_end()
        self.update_status()

    def error(self, message: str) -> None:
        self.add(render.error_line(message))

    def redraw(self) -> None:
        """Draw soon: coalesces bursts of network events into one draw."""
        if self.loop is None:  # not on a screen (tests): just keep up to date
            self.update_status()
            self.update_transfers()
            return
        if self._draw_call is not None:
            return
        self._draw_call = self.core.clock.callLater(REDRAW_DELAY, self._draw)

    def _draw(self) -> None:
        self._draw_call = None
        self.update_status()
        self.update_transfers()
        if self.loop is not None:
            self.loop.draw_screen()

    def update_status(self) -> None:
        """The status bar and the member list."""
        c = self.core
        self.pane.set_nicks(c.room, c.members, c.username)
        ups = sum(1 for t in c.transfers if t.direction == "up")
        self.status.show(
            unseen=self.pane.unseen, user=c.username, room=c.room, members=c.members,
            ups=ups, downs=len(c.transfers) - ups, server=c.server or "chatnet", where=self.where,
            link=self.link.status() if self.link is not None else None,
        )

    def update_transfers(self) -> None:
        """One bar per transfer; finished ones linger a few seconds."""
        now = self.core.clock.seconds()
        shown: list[Transfer] = [
            t for t in list(self.core.uploads.values()) + list(self.core.downloads.values())
            if not t.finished or (t.finished_at is not None and now - t.finished_at < KEEP_FINISHED)
        ]
        shown.sort(key=lambda t: t.created_at)
        pack = self.body.options("pack")
        self.body.contents[1:] = [(row, pack) for row in self.bars.rows(shown, now)]

    # -- events -------------------------------------------------------------

    def on_event(self, event: ClientEvent) -> None:
        if isinstance(event, ServerEvent):
            self.said(event.frame)
        elif isinstance(event, TransferEvent):
            if event.kind == "progress":
                self.redraw()
            else:
                self.add(render.transfer_event(event.kind, event.transfer, event.frame))
                self._offer_changed(event.kind, event.transfer)
        elif isinstance(event, Reconnecting):
            if event.why == self._failed_why:
                self.redraw()
                return
            self._failed_why = event.why
            self.add(render.Line(render.ERROR, f"[disconnected] {event.text}"))
        elif isinstance(event, Reconnected):
            self._failed_why = None
            self.where = event.server
            self.add(render.Line(render.SUCCESS, f"[ok] {event.text}"))
            self.core.execute(parse("/users")).addErrback(lambda f: None)
        elif isinstance(event, GaveUp):
            self.add(render.error_line(f"{event.why}. /reconnect tries again; Ctrl+C leaves."))
        elif isinstance(event, Disconnected):
            if self.link is not None and (self.link.reconnecting or self.link.gave_up):
                self.redraw()  # the window stays; the status bar says disconnected
                return
            status = EXIT_OK if event.clean else EXIT_LOST
            if not event.clean and self.core.never_answered:
                status = EXIT_CONNECT
            if self.core.shutdown_message is not None:
                status = EXIT_SHUTDOWN
            self.finish(status)

    def said(self, frame: Any) -> None:
        """A server event's line, highlighted (and the bell rung) when it calls for you."""
        me = self.core.username
        line = render.server_event(frame, me)
        what = alerts.attention(*_what_was_said(frame), me)
        if line is not None and what in (alerts.MENTION, alerts.WHISPER):
            style = MENTION if what == alerts.MENTION else WHISPER_TO_ME
            line = dataclasses.replace(line, style=style)
        self.add(line)
        if alerts.rings(what, self.bell):
            self.ring()

    def _ring(self) -> None:
        """The terminal bell: a BEL written straight to the screen."""
        screen: Any = self.loop.screen if self.loop is not None else None
        if screen is not None and hasattr(screen, "write"):  # a raw terminal screen
            screen.write("\a")
            screen.flush()

    # -- input --------------------------------------------------------------

    def submit(self, text: str) -> None:
        self.hint.set_text(("hint", ""))
        if self.offers and self.logged_in and not self.confirming and self._answer_offer(text):
            return
        if self.confirming:
            self.confirming = False
            answer = text.strip().lower()
            if answer in ("y", "yes"):
                self.quit()
                return
            if answer in ("", "n", "no"):
                self.add(render.Line(render.NOTICE, "Staying."))
                return
            # Anything else is an ordinary line: the user moved on.
        self._lines.append(text)
        if not self._running:
            self._next()

    def _next(self) -> None:
        """Run queued lines one at a time: each waits for the last reply."""
        while self._lines:
            d = self._handle(self._lines.pop(0))
            if d is not None:
                self._running = True
                d.addBoth(self._after)
                return
        self._running = False

    def _after(self, _: Any) -> None:
        self._running = False
        self._next()

    def _handle(self, text: str) -> Deferred[Any] | None:
        """Carry out one line; a Deferred when it waits for the server."""
        if not self.logged_in:
            return self._answer_login(text)
        try:
            command = parse(text, self.core.limits)
        except ParseError as e:
            self.error(e.message)
            return None
        if isinstance(command, Exit):
            self.request_quit()
            return None
        if isinstance(command, Reconnect):
            self.reconnect_now()
            return None
        if isinstance(command, Help):
            try:
                for line in render.reply_lines(command, None):
                    self.add(line)
            except ParseError as e:
                self.error(e.message)
                return None
            if not command.topic:
                for text in key_help():
                    self.add(render.Line(render.NOTICE, text))
            return None
        if self.link is not None and self.link.reconnecting:
            self.error("Not sent: disconnected (/reconnect or Ctrl+R tries at once)")
            return None
        d = self.core.execute(command)
        return d.addCallbacks(self._done, self._failed, callbackArgs=(command,))

    def reconnect_now(self) -> None:
        """``/reconnect`` and Ctrl+R: try at once while disconnected."""
        if self.link is not None and self.link.retry_now():
            return
        if self.link is not None and self.link.reconnecting:
            self.error("/reconnect: already connecting")
        else:
            self.error("/reconnect: not disconnected")

    def _done(self, result: Any, command: Any) -> None:
        for line in render.reply_lines(command, result, self.core.username, self.core.room):
            self.add(line)
        self.update_status()

    def _failed(self, failure: Any) -> None:
        if failure.check(ChatError, LocalError, ConnectionClosed):
            self.error(failure.value.message)
        else:  # a bug: say so on screen, keep the details in the log
            log.failure("command failed", failure)
            self.error(f"internal error: {failure.getErrorMessage()}")

    def complete(self) -> None:
        text = self.input.edit_text[: self.input.edit_pos]
        rest = self.input.edit_text[self.input.edit_pos :]
        # Names from the server go into the line only when they are harmless.
        users = [u for u in self.core.users if render.escape(u) == u]
        rooms = [r for r in self.core.rooms if render.escape(r) == r]
        result = complete(text, users, rooms, file_paths)
        new = result.apply(text)
        self.input.set_edit_text(new + rest)
        self.input.set_edit_pos(len(new))
        if len(result.options) > 1:
            self.hint.set_text(("hint", render.escape("  ".join(result.options[:30]))))
        elif not result.options:
            self.hint.set_text(("hint", "no completions"))
        else:
            self.hint.set_text(("hint", ""))

    def request_quit(self) -> None:
        """Quit, asking first while transfers run."""
        if self.core.transfers and not self.confirming:
            self.confirming = True
            self.add(render.Line(
                render.ERROR,
                f"{count(len(self.core.transfers), 'transfer')} still running. Quit anyway? "
                "Type y and Enter, or press Ctrl+C again; n stays.",
            ))
            return
        self.quit()

    def quit(self) -> None:
        self.add(render.Line(render.NOTICE, "Leaving..."))
        if self.core.is_connected:
            self.core.exit()
            # A server that does not close within 3 s is left anyway.
            self.core.clock.callLater(3, self.core.close)
        else:
            if self.link is not None:
                self.link.stop()
            self.finish(EXIT_OK)

    def keypress(self, key: str | tuple[Any, ...]) -> None:
        """Keys nothing else handled (MainLoop ``unhandled_input``)."""
        if key == "ctrl c":
            if self.confirming:
                self.quit()
            else:
                self.request_quit()
        elif key in ("page up", "page down"):
            self.pane.scroll(key)
            self.update_status()
        elif key in ("end", "ctrl end"):
            self.to_end()
        elif key == "ctrl r":
            self.reconnect_now()
        elif key == "ctrl l":
            if self.loop is not None:
                self.loop.screen.clear()

    def tick(self) -> None:
        """Once a second: speeds and queue waits move on, finished bars go."""
        if self.core.transfers or self.bars or (self.link is not None and self.link.reconnecting):
            self.redraw()
        self._tick = self.core.clock.callLater(1, self.tick)

    def stop(self) -> None:
        for call in (self._tick, self._draw_call):
            if call is not None and call.active():
                call.cancel()
        self._tick = self._draw_call = None


def _what_was_said(frame: Any) -> tuple[str | None, str | None, str | None]:
    """A message's or whisper's type, sender and text; ``None`` for other events."""
    if isinstance(frame, frames.Message | frames.WhisperEvent):
        return frame.TYPE, frame.sender, frame.text
    return None, None, None
