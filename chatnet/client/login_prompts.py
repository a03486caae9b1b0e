"""
The full screen's login prompts: how the view asks what the shared login
flow (:mod:`chatnet.client.login`) wants to know.

The flow asks for a username or a password; the prompt goes on the input
line, and the next line typed is the answer (a password unechoed and never
in the history).  Lines typed meanwhile wait their turn.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from chatnet.client import render
from chatnet.client.commands import parse
from chatnet.client.core import ClientCore
from chatnet.client.events import LocalError
from chatnet.client.input_line import InputLine
from chatnet.client.link import Link
from chatnet.client.login import LoggedIn, Outcome, Then
from chatnet.errors import ChatError

__all__ = ["LoginPrompts"]


class LoginPrompts:
    """A part of :class:`~chatnet.client.chat_view.ChatView`: the login's questions."""

    core: ClientCore
    link: Link | None
    input: InputLine
    password: str | None
    logged_in: bool
    #: The name whose password the input line is asking for.
    asking_password_for: str | None
    #: Fires with the next line typed while the login flow asks.
    _asking: Deferred[str | None] | None
    #: Fires when the login flow next asks or ends: typed lines wait for it.
    _turn: Deferred[None] | None

    #: The flow asks again after a refusal, and asks for a password.
    asks_again = True
    asks_password = True

    def add(self, line: render.Line | None) -> None:
        raise NotImplementedError  # the view shows lines

    def error(self, message: str) -> None:
        raise NotImplementedError

    def update_status(self) -> None:
        raise NotImplementedError

    def ask_username(self) -> Deferred[str | None]:
        self.input.set_caption(("prompt", "Username: "))
        return self._ask()

    def ask_password(self, username: str) -> Deferred[str | None]:
        # The server has accounts: ask for the password, unechoed.
        self.asking_password_for = username
        self.input.set_mask("*")
        self.input.set_caption(("prompt", f"Password for {username}: "))
        return self._ask()

    def refused(self, error: ChatError | LocalError, then: Then, username: str) -> None:
        if then is Then.PASSWORD:
            self.error(f"{error.message}. Type the password for {username} "
                       "(or just Enter to choose another username):")
        else:
            # The reason alone ("... is already taken; choose another"): the
            # prompt under it asks for the name.
            self.error(error.message)

    def _ask(self) -> Deferred[str | None]:
        self._asking = Deferred()
        self._next_turn()
        return self._asking

    def _next_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.callback(None)

    def _answer_login(self, text: str) -> Deferred[None] | None:
        """A line typed before login: the answer to what the flow asked."""
        asking, self._asking = self._asking, None
        if asking is None:
            return None
        if self.asking_password_for is not None:
            self.asking_password_for = None
            self.input.set_mask(None)
            if text:
                self.password = text
            else:
                self.add(render.Line(render.NOTICE, "Choose a username:"))
        if text.strip():
            self.input.set_caption(("prompt", "Logging in... "))
        self._turn = Deferred()
        asking.callback(text)
        return self._turn

    def _login_ended(self, outcome: Outcome) -> None:
        if isinstance(outcome, LoggedIn):
            reply = outcome.reply
            self.logged_in = True
            self.input.set_caption(("prompt", "> "))
            self.add(render.Line(
                render.SUCCESS,
                f"[ok] logged in as {reply.username} on {reply.server}. "
                "Try /rooms, /join <room>, /help.",
            ))
            if self.link is not None:
                self.link.logged_in(reply.username or self.core.username or "", outcome.password)
            self.core.execute(parse("/users")).addErrback(lambda f: None)
            self.update_status()
        self._next_turn()
