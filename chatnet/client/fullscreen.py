"""
Full-screen mode: urwid's main loop on the Twisted reactor.

:func:`run_interactive` puts a :class:`~chatnet.client.chat_view.ChatView`
on the terminal and gives the terminal back when the user leaves (or on
SIGTERM or a reactor stop).  urwid's ``TwistedEventLoop`` lets the screen
and the chat connection share one reactor, so there are no threads.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import urwid
from twisted.internet.defer import Deferred

from chatnet.client import alerts, render
from chatnet.client.chat_view import ChatView
from chatnet.client.core import ClientCore
from chatnet.client.lines import EXIT_OK
from chatnet.client.link import Link
from chatnet.client.screen import PALETTE

__all__ = ["run_interactive"]


def run_interactive(
    reactor: Any, core: ClientCore, link: Link, username: str | None = None,
    password: str | None = None, bell: str = alerts.DEFAULT_BELL,
) -> Deferred[int]:
    """Take over the terminal until the user leaves; fires with the status."""
    done: Deferred[int] = Deferred()
    view: ChatView

    def finish(status: int) -> None:
        if done.called:
            return
        view.stop()
        loop.stop()
        reason = core.gone.reason if core.gone is not None else ""
        if status != EXIT_OK and reason:
            os.write(2, f"chatnet-client: {render.escape(reason)}\n".encode())
        done.callback(status)

    def restore() -> None:  # SIGTERM or a reactor stop: give the terminal back
        if not done.called:
            view.stop()
            loop.stop()

    view = ChatView(core, str(link.server), finish, username, password, bell=bell, link=link)
    screen = urwid.display.raw.Screen()
    loop = urwid.MainLoop(
        view.frame, PALETTE, screen=screen, handle_mouse=False,
        unhandled_input=view.keypress,
        event_loop=urwid.TwistedEventLoop(reactor=reactor, manage_reactor=False),
    )
    view.loop = loop
    loop.start()
    # After start: stop() restores the terminal settings saved by start().
    screen.tty_signal_keys(intr="undefined")  # Ctrl+C is a key: confirm first
    reactor.addSystemEventTrigger("before", "shutdown", restore)
    # SIGINT from outside the terminal (kill -INT) quits like Ctrl+C does.
    signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(view.keypress, "ctrl c"))
    view.tick()
    if core.gone is not None:
        view.on_event(core.gone)
    return done
