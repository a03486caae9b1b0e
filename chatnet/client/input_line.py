"""
The full screen's input line: Enter submits, Up/Down walk the history,
Tab completes (file paths from :func:`file_paths`), Ctrl+U clears to the
cursor.  What a submitted line does is the view's business
(:class:`~chatnet.client.chat_view.ChatView`).
"""

from __future__ import annotations

import glob
import os
from typing import Protocol

import urwid

__all__ = ["InputLine", "LineOwner", "file_paths"]


class LineOwner(Protocol):
    """What the input line needs of the view it types into."""

    @property
    def asking_password_for(self) -> str | None: ...

    def submit(self, text: str) -> None: ...

    def complete(self) -> None: ...

    def to_end(self) -> None: ...


class InputLine(urwid.Edit):
    """The input line: Enter submits, Up/Down walk history, Tab completes."""

    def __init__(self, view: LineOwner) -> None:
        super().__init__(("prompt", "Username: "))
        self.view = view
        self.history: list[str] = []
        self.position = 0
        self.draft = ""

    def keypress(self, size: tuple[()] | tuple[int] | tuple[int, int], key: str) -> str | None:
        if key == "enter":
            text = self.edit_text
            self.set_edit_text("")
            if text.strip() and self.view.asking_password_for is None:  # never a password
                self.history.append(text)
            self.position = len(self.history)
            self.view.submit(text)
            return None
        if key in ("up", "down"):
            self._walk(-1 if key == "up" else 1)
            return None
        if key == "tab":
            self.view.complete()
            return None
        if key in ("end", "ctrl end"):  # the newest message, and the line's end
            self.view.to_end()
        if key == "ctrl u":
            self.set_edit_text(self.edit_text[self.edit_pos :])
            self.set_edit_pos(0)
            return None
        assert len(size) == 1, "a flow widget"
        return super().keypress(size, key)

    def _walk(self, step: int) -> None:
        if not self.history:
            return
        if self.position == len(self.history):
            self.draft = self.edit_text
        self.position = min(max(self.position + step, 0), len(self.history))
        text = self.draft if self.position == len(self.history) else self.history[self.position]
        self.set_edit_text(text)
        self.set_edit_pos(len(text))


def file_paths(prefix: str) -> list[str]:
    """Paths starting with ``prefix`` (``~`` expanded), folders ending in ``/``."""
    expanded = os.path.expanduser(prefix)
    found = []
    for path in glob.glob(glob.escape(expanded) + "*")[:200]:
        shown = prefix + path[len(expanded):]
        found.append(shown + "/" if os.path.isdir(path) else shown)
    return found
