"""
The full-screen interface's widgets, apart from what they are fed.

* :class:`MessagePane`: the scrollback.  It follows the end as lines
  arrive (a long, wrapped line shows whole, its last row at the bottom);
  scrolled up, it stays put and counts what arrived below
  (:attr:`MessagePane.unseen`, shown as ``-- more --``); and when the window
  is wide enough the room's members are listed beside it.
* :class:`StatusBar`: one row, the most detailed of its variants that fits.
* :class:`TransferBar`: a progress bar whose text shrinks with its width.
* :func:`message_row`: a line under its time, wrapped rows indented under
  the text.

Everything shown here has been escaped by :mod:`chatnet.client.render`.
"""

from __future__ import annotations

from typing import Any

import urwid

from chatnet.client import render

#: The sizes urwid hands to ``render``: box ``(cols, rows)``, flow ``(cols,)``.
Size = tuple[()] | tuple[int] | tuple[int, int]

#: Styles of lines that call for attention (see :mod:`chatnet.client.alerts`).
MENTION, WHISPER_TO_ME = "mention", "whisper_to_me"

PALETTE = [
    ("status", "white", "dark blue"),
    ("status_key", "yellow,bold", "dark blue"),
    ("more", "black", "yellow"),
    ("time", "dark gray", ""),
    (render.OWN, "light cyan", ""),
    (render.OTHER, "", ""),
    (render.WHISPER, "light magenta", ""),
    (render.NOTICE, "brown", ""),
    (render.ERROR, "light red", ""),
    (render.SUCCESS, "light green", ""),
    (render.FILE, "light blue", ""),
    (render.SERVER, "yellow,bold", ""),
    (MENTION, "black", "yellow"),
    (WHISPER_TO_ME, "black", "light magenta"),
    ("nick_title", "white,bold", ""),
    ("nick_me", "light cyan", ""),
    ("nick", "", ""),
    ("bar_todo", "white", "dark gray"),
    ("bar_done", "black", "dark green"),
    ("prompt", "light green,bold", ""),
    ("hint", "dark gray", ""),
]

#: Keys, for ``/help`` and the docs.
KEYS = [
    ("Enter", "send the line"),
    ("Up, Down", "walk the input history"),
    ("Tab", "complete commands, rooms, users, files; a name at the start "
            "of the line becomes 'name: '"),
    ("Page Up, Page Down", "scroll the messages ('-- more --': new ones below)"),
    ("End", "back to the newest message (and the end of the line)"),
    ("Ctrl+U", "clear the line up to the cursor"),
    ("Ctrl+L", "redraw the screen"),
    ("Ctrl+R", "while disconnected: reconnect now (also /reconnect)"),
    ("Ctrl+C", "leave (asks first while transfers run)"),
]

#: Lines the message pane keeps; the oldest go first.
MAX_LINES = 5000
#: The member list shows beside the messages from this many columns on.
NICKS_MIN_COLS = 100
#: Its width: a 16-letter name and a margin.
NICKS_COLS = 18


def key_help() -> list[str]:
    """The keys, one a line, for ``/help``."""
    width = max(len(key) for key, _ in KEYS)
    return ["Keys:"] + [f"  {key:<{width}}  {what}" for key, what in KEYS]


def message_row(line: render.Line) -> urwid.Widget:
    """
    A line of the message pane: the time, then the text; rows the text wraps
    onto (or its own further rows) start under the text, not the time.
    """
    stamp = render.clock_time(line.ts) + " "
    return urwid.Columns([
        (len(stamp), urwid.Text(("time", stamp))),
        urwid.Text((line.style, line.text)),
    ])


class MessagePane(urwid.WidgetWrap[urwid.Widget]):
    """The scrollback, with the member list beside it when there is room."""

    def __init__(self) -> None:
        self.walker: Any = urwid.SimpleFocusListWalker([])
        self.listbox = urwid.ListBox(self.walker)
        self.nicks: Any = urwid.SimpleFocusListWalker([])
        self.nick_title = urwid.Text("", wrap="ellipsis")
        panel: urwid.Widget = urwid.Frame(urwid.ListBox(self.nicks), header=self.nick_title)
        self.wide = urwid.Columns([self.listbox, (NICKS_COLS, panel)], dividechars=1)
        #: Lines that arrived below while scrolled up.
        self.unseen = 0
        #: The message list's own size at the last draw (Page Up/Down use it).
        self.list_size = (80, 20)
        self._has_nicks = False
        super().__init__(self.listbox)

    def render(self, size: Size, focus: bool = False) -> Any:
        assert len(size) == 2, "a box widget"
        cols, rows = size
        wide = self._has_nicks and cols >= NICKS_MIN_COLS
        chosen = self.wide if wide else self.listbox
        if self._w is not chosen:
            self._w = chosen
        self.list_size = (cols - NICKS_COLS - 1 if wide else cols, rows)
        return super().render(size, focus)

    def shows_nicks(self, cols: int) -> bool:
        """Whether the member list is beside the messages at this width."""
        return self._has_nicks and cols >= NICKS_MIN_COLS

    @property
    def at_end(self) -> bool:
        """Whether the newest line has the focus (the pane follows the end)."""
        return not self.walker or self.listbox.focus_position == len(self.walker) - 1

    def add(self, widget: urwid.Widget) -> None:
        """Append a row; follow it when at the end, else count it as unseen."""
        following = self.at_end
        self.walker.append(widget)
        if len(self.walker) > MAX_LINES:  # a day's chat must not grow forever
            del self.walker[: len(self.walker) - MAX_LINES]
        if following:
            self.to_end()
        else:
            self.unseen += 1

    def to_end(self) -> None:
        """
        Show the newest line, whole, at the bottom.  (Focus moved by the
        walker alone keeps the list's old offset, so after scrolling back a
        long new line showed only its first rows.)
        """
        if self.walker:
            self.walker.set_focus(len(self.walker) - 1)
            self.listbox.set_focus_valign("bottom")
        self.unseen = 0

    def scroll(self, key: str) -> None:
        """Page Up or Page Down; back at the end, nothing is unseen."""
        self.listbox.keypress(self.list_size, key)
        if self.at_end:
            self.unseen = 0

    def set_nicks(self, room: str | None, members: list[str], me: str | None) -> None:
        """The member list: ``room`` and its members (``None``: not in a room)."""
        self._has_nicks = bool(room)
        if not room:
            self.nicks[:] = []
            return
        names = sorted(members, key=str.lower)
        self.nick_title.set_text(("nick_title", f"{render.escape(room)} ({len(names)})"))
        self.nicks[:] = [
            urwid.Text(("nick_me" if name == me else "nick", render.escape(name)), wrap="ellipsis")
            for name in names
        ]
        self._invalidate()


class StatusBar(urwid.Widget):
    """
    One row: the first of its variants (most detailed first) that fits.

    :param without_detail: whether, at a width, the detailed variant is
        left out (the member list beside the messages already shows it).
    """

    _sizing = frozenset([urwid.Sizing.FLOW])

    def __init__(self, without_detail: Any = lambda cols: False) -> None:
        super().__init__()
        self.without_detail = without_detail
        self.variants: list[Any] = [""]
        self.detailed: list[Any] = []

    def set_variants(self, variants: list[Any], detailed: list[Any] | None = None) -> None:
        """``variants``, shortest last; the ``detailed`` ones go first where they may."""
        self.variants = variants or [""]
        self.detailed = detailed or []
        self._invalidate()

    def show(
        self, unseen: int, user: str | None, room: str | None, members: list[str],
        ups: int, downs: int, server: str, where: str, link: str | None = None,
    ) -> None:
        """
        Most important first, so a narrow row cuts the least: ``-- more --``
        while lines wait below, you, your room (with its members' names
        where no member list is beside the messages), transfers, the server.
        When the row is short, the server goes, then the transfer count (the
        bars show transfers anyway), then the names.  While the connection
        is being restored, ``link`` says so before everything else.
        """
        esc = render.escape
        more = [("more", f" -- more ({unseen}) -- ")] if unseen else []
        if link:
            more = [("more", f" {link} "), *more]
        me = [("status_key", f" {esc(user) if user else 'not logged in'} ")]
        transfers = [f"| transfers: {ups} up, {downs} down "]
        tail = ["| ", ("status_key", esc(server)), f" {where}"]
        if not room:
            head = more + me + ["| no room (/join <room>) "]
            self.set_variants([head + transfers + tail, head + transfers, head])
            return
        shown = f"| room {esc(room)} ({len(members)}"
        names = ", ".join(esc(m) for m in members[:8]) + (" ..." if len(members) > 8 else "")
        head = more + me + [shown + ") "]
        named = more + me + [f"{shown}: {names}) "]
        self.set_variants(
            [head + transfers + tail, head + transfers, head],
            detailed=[named + transfers + tail, named + transfers, named],
        )

    def rows(self, size: tuple[int], focus: bool = False) -> int:
        return 1

    def render(self, size: Size, focus: bool = False) -> Any:
        assert len(size) == 1, "a flow widget"
        (cols,) = size
        variants = self.variants
        if self.detailed and not self.without_detail(cols):
            variants = [*self.detailed, *variants]
        chosen = variants[-1]
        for markup in variants:
            text = urwid.Text(markup).text
            if urwid.calc_width(text, 0, len(text)) <= cols:
                chosen = markup
                break
        return urwid.Text(chosen, wrap="ellipsis").render(size)


class TransferRows:
    """
    A row per transfer, a label and a :class:`TransferBar`, kept while the
    transfer is shown (so a redraw updates rather than rebuilds them).
    """

    def __init__(self) -> None:
        self._rows: dict[int, tuple[urwid.Widget, urwid.Text, TransferBar]] = {}

    def __bool__(self) -> bool:
        return bool(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, shown: list[Any], now: float) -> list[urwid.Widget]:
        """The rows for the transfers ``shown``, up to date; others are dropped."""
        out: list[urwid.Widget] = []
        for t in shown:
            key = id(t)
            if key not in self._rows:
                label, bar = urwid.Text("", wrap="ellipsis"), TransferBar()
                row: urwid.Widget = urwid.Columns([("weight", 2, label), ("weight", 3, bar)], dividechars=1)
                self._rows[key] = (row, label, bar)
            row, label, bar = self._rows[key]
            arrow = "up  " if t.direction == "up" else "down"
            peer = f"-> {t.peer}" if t.direction == "up" else f"<- {t.peer}"
            label.set_text(render.escape(f"{arrow} #{t.transfer} {t.name} {peer}"))
            bar.set_completion(t.percent() if t.state not in ("offered", "queued") else 0)
            bar.texts = render.progress_texts(t, now)
            bar._invalidate()
            out.append(row)
        live = {id(t) for t in shown}
        for key in [k for k in self._rows if k not in live]:
            del self._rows[key]
        return out


class TransferBar(urwid.ProgressBar):
    """A progress bar whose text is bytes, percent and speed."""

    def __init__(self) -> None:
        super().__init__("bar_todo", "bar_done", 0, 100)
        self.texts: list[str] = [""]
        self._width = 80

    def render(self, size: Size, focus: bool = False) -> Any:
        assert len(size) == 1, "a flow widget"
        self._width = size[0]
        return super().render(size, focus)

    def get_text(self) -> str:
        """The longest of the texts (most detailed first) that fits."""
        for text in self.texts:
            if len(text) <= self._width:
                return text
        return self.texts[-1][: self._width]
