"""
The full screen's questions about offered files (``--offers``): one at a
time on the input line, ``y`` accepts, ``n`` or Enter declines; a file
that went meanwhile is no longer asked about.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from chatnet.client import render
from chatnet.client.core import ClientCore
from chatnet.client.input_line import InputLine
from chatnet.client.transfers import Transfer
from chatnet.validation import format_size

__all__ = ["OfferQuestions"]


class OfferQuestions:
    """A part of :class:`~chatnet.client.chat_view.ChatView`: asks about offered files."""

    core: ClientCore
    input: InputLine
    logged_in: bool
    #: Files offered to us, waiting for y or n (the first is asked).
    offers: deque[Transfer]

    def _failed(self, failure: Any) -> None:
        raise NotImplementedError  # the view says what failed

    def _offer_changed(self, kind: str, t: Transfer) -> None:
        """Ask about offered files one at a time; forget those that went."""
        if kind == "offered" and self.core.offers:
            self.offers.append(t)
            if len(self.offers) == 1:
                self._ask_offer()
        elif t in self.offers and t.state != "offered":
            first = self.offers[0] is t
            self.offers.remove(t)
            if first:
                self._ask_offer()

    def _ask_offer(self) -> None:
        """Put the question about the first offered file on the input line."""
        if not self.offers:
            self.input.set_caption(("prompt", "> " if self.logged_in else "Username: "))
            return
        t = self.offers[0]
        question = (f"{render.escape(t.peer)} offers {render.escape(t.name)} "
                    f"({format_size(t.size)}): accept? [y/N] ")
        self.input.set_caption(("prompt", question))

    def _answer_offer(self, text: str) -> bool:
        """A line typed while a file is offered: y accepts, n or nothing declines."""
        answer = text.strip().lower()
        if answer not in ("y", "yes", "n", "no", ""):
            return False  # an ordinary line: the question stays
        t = self.offers.popleft()
        assert t.transfer is not None
        if answer in ("y", "yes"):
            self.core.accept(t.transfer).addErrback(self._failed)
        else:
            self.core.decline(t.transfer).addErrback(self._failed)
        self._ask_offer()
        return True
