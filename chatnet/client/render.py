"""
Events and replies to readable lines: ``[groupA] alice: hello``.

Both front ends use these: line mode prints :attr:`Line.text`, the
full-screen interface colours it by :attr:`Line.style`.

Every string that came from the network (message text, user and room
names, file names, error and shutdown messages) reaches the terminal only
through a :class:`Line` or the functions here, which show it escaped
(:func:`escape`): a server that forwards terminal escape sequences, bidi
overrides or newlines cannot clear a screen, set a window title, or forge a
line that seems to come from someone else.

Pure: imports nothing from Twisted (transfer objects are read, not driven).
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatnet import frames
from chatnet.client.commands import Exit, Help, Nothing, Send, SendFile, help_lines
from chatnet.validation import format_size

#: Styles, one per kind of line; the interface maps each to colours.
OWN, OTHER, WHISPER, NOTICE, ERROR, SUCCESS, FILE, SERVER = (
    "own", "other", "whisper", "notice", "error", "success", "file", "server",
)

REASONS = {
    "recipient-offline": "the recipient went offline",
    "sender-disconnected": "the sender disconnected",
    "size-mismatch": "the size did not match",
    "cancelled": "cancelled",
    "shutdown": "the server shut down",
    "declined": "declined",
}


#: Unicode categories never written raw: controls (C0, DEL, C1), format
#: characters (bidi overrides and isolates, zero-width characters, the byte
#: order mark, tags), lone surrogates, line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Everything but printable ASCII: the candidates, checked one by one.
_SUSPECT = re.compile(r"[^\x20-\x7e]")
#: Columns a continuation row is indented by when nothing better is known.
CONTINUATION = "    "


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if unicodedata.category(char) not in _HIDDEN:
        return char
    code = ord(char)
    named = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}.get(char)
    if named is not None:
        return named
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(value: Any) -> str:
    """
    ``value`` as one line of harmless text: control characters (newline and
    tab included), invisible formatting and bidi characters written as
    ``\\x1b``, ``\\n``, ``\\u202e`` (the audit log's notation).
    """
    text = value if isinstance(value, str) else str(value)
    return _SUSPECT.sub(_shown, text)


def escape_text(text: Any, indent: int = len(CONTINUATION)) -> str:
    """
    A message body: escaped like :func:`escape`, except that its own
    newlines stay, each further row indented by ``indent`` spaces (under the
    first row's text, after the sender), and tabs become spaces.
    """
    rows = (text if isinstance(text, str) else str(text)).split("\n")
    pad = "\n" + " " * max(indent, 1)
    return pad.join(escape(row.expandtabs(8)) for row in rows)


def terminal_safe(text: str) -> str:
    """
    The last guard before text reaches a terminal: everything :func:`escape`
    hides is hidden, except newlines; a row after a newline that does not
    start with a space is indented, so it can never pass for a new line
    (``[server] ...``) of its own.
    """
    rows = text.split("\n")
    out = [escape(rows[0])]
    for row in rows[1:]:
        row = escape(row)
        out.append(row if row.startswith(" ") else CONTINUATION + row)
    return "\n".join(out)


def json_line(obj: Any) -> str:
    """
    ``obj`` as one line of JSON that decodes to the same value and is safe on
    a terminal: besides the C0 controls JSON always escapes, DEL, C1,
    invisible and bidi characters and lone surrogates are written as
    ``\\uXXXX`` (other text stays readable, not ``ensure_ascii``).
    """
    return _SUSPECT.sub(_json_escape, json.dumps(obj, ensure_ascii=False))


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if unicodedata.category(char) not in _HIDDEN:
        return char
    return json.dumps(char)[1:-1]  # \uXXXX, a surrogate pair beyond the BMP


@dataclass(frozen=True)
class Line:
    """
    One line of output: a style and the text (without timestamp).

    The text is made :func:`terminal_safe` on construction, so no line
    built anywhere can carry raw control characters to a terminal.
    """

    style: str
    text: str
    ts: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", terminal_safe(self.text))


def clock_time(ts: float | None = None) -> str:
    """``HH:MM:SS`` in local time."""
    return time.strftime("%H:%M:%S", time.localtime(ts if ts is not None else time.time()))


def _members(members: Sequence[str]) -> str:
    if not members:
        return "nobody"
    return ", ".join(escape(m) for m in members)


def said(prefix: str, text: Any) -> str:
    """``prefix`` and a message body whose further rows line up under it."""
    return prefix + escape_text(text, len(prefix))


def server_event(
    frame: frames.Event | frames.ErrorReply, me: str | None = None
) -> Line | None:
    """A server event (not a transfer one) or an unanswering error as a line."""
    if isinstance(frame, frames.Message):
        style = OWN if me and frame.sender == me else OTHER
        prefix = f"[{escape(frame.room)}] {escape(frame.sender)}: "
        return Line(style, said(prefix, frame.text), frame.ts)
    if isinstance(frame, frames.WhisperEvent):
        prefix = f"[whisper] {escape(frame.sender)}: "
        return Line(WHISPER, said(prefix, frame.text), frame.ts)
    if isinstance(frame, frames.Presence):
        verb = {"join": "joined", "leave": "left", "disconnect": "disconnected"}.get(
            frame.event, escape(frame.event)
        )
        return Line(NOTICE, f"[{escape(frame.room)}] * {escape(frame.user)} {verb}")
    if isinstance(frame, frames.Shutdown):
        message = frame.message or "no reason given"
        return Line(SERVER, f"[server] shutting down: {escape(message)}")
    if isinstance(frame, frames.ErrorReply):
        return Line(ERROR, f"[error] {escape(frame.message or frame.code)}")
    fields = frame.to_json()
    return Line(NOTICE, f"[server] {escape(frame.TYPE)}: " + ", ".join(
        f"{escape(k)}={escape(v)}" for k, v in fields.items() if k != "type"
    ))


def unconfirmed_line(peer: str, name: str, waited: float) -> Line:
    """
    A sent file whose receipt never came: all its bytes reached the
    addressee's connection (``file-delivered``), no more is known.
    """
    return Line(FILE, f"[file] {escape(peer)} has not confirmed receiving {escape(name)}: "
                      f"no receipt came within {waited:.0f} s (it was sent in full)")


def transfer_event(kind: str, t: Any, frame: frames.Control | None = None) -> Line | None:
    """
    A :class:`~chatnet.client.events.TransferEvent` as a line (``None`` for
    progress, which the front ends show as bars).
    """
    size = format_size(t.size)
    name, peer = escape(t.name), escape(t.peer)
    if kind == "queued":
        where = "next" if t.position == 0 else f"queued, {t.position} ahead"
        return Line(FILE, f"[file] {name} ({size}) to {peer}: transfer {t.transfer}, {where}")
    if kind == "started":
        waited = frame.waited if isinstance(frame, frames.UploadStart) else 0.0
        after = f" after waiting {waited:.1f}s" if waited >= 0.05 else ""
        return Line(FILE, f"[file] sending {name} to {peer}{after}")
    if kind == "uploaded":
        return Line(FILE, f"[file] {name} uploaded ({size}), delivering to {peer}")
    if kind == "delivered":
        # All bytes written to the addressee's connection: not yet its receipt.
        return Line(FILE, f"[file] {name} sent to {peer}")
    if kind == "received":
        if t.verified:
            return Line(SUCCESS, f"[file] {peer} received {name}, sha256 verified")
        return Line(ERROR, f"[error] {peer} received {name} but its sha256 did NOT match: "
                           "the file was damaged on the way; send it again")
    if kind == "pending":
        return Line(FILE, f"[file] {peer} is sending you {name} ({size}): {_pending(t)}")
    if kind == "offered":
        original = getattr(t, "original", None)
        renamed = f" (sent as {escape(original)})" if original else ""
        number = t.transfer
        return Line(FILE, f"[file] {peer} offers {name} ({size}){renamed}: "
                          f"/accept {number} or /decline {number}")
    if kind == "withdrawn":  # announced or offered, never started
        if t.reason == "declined":  # not by us (that is "declined"): unanswered
            return Line(NOTICE, f"[file] {name} from {peer} will not come: "
                                "the offer expired unanswered")
        reason = escape(REASONS.get(t.reason or "", t.reason))
        return Line(ERROR, f"[file] {name} from {peer} will not come: {reason}")
    if kind == "declined":
        return Line(NOTICE, f"[file] declined {name} from {peer}")
    if kind == "failed" and t.reason == "cancelled":  # our own /cancel: no error
        return Line(NOTICE, f"[file] {name} to {peer} cancelled")
    if kind == "failed" and t.reason == "declined":  # an answer, not an error
        return Line(NOTICE, f"[file] {peer} declined {name} (or did not answer in time)")
    if kind == "failed":
        reason = escape(REASONS.get(t.reason or "", t.reason))
        return Line(ERROR, f"[error] sending {name} to {peer} failed: {reason}")
    if kind == "receiving":
        original = getattr(t, "original", None)
        renamed = f" (sent as {escape(original)})" if original else ""
        return Line(FILE, f"[file] receiving {name} from {peer} ({size}){renamed}")
    if kind == "saved":
        return Line(SUCCESS, f"[file] received {name} from {peer} ({size}), sha256 matched "
                             f"-> {escape(t.path)}")
    if kind == "discarded":
        reason = escape(REASONS.get(t.reason or "", t.reason))
        return Line(ERROR, f"[error] {name} from {peer} discarded: {reason}")
    return None


def reply_lines(
    command: Any, result: Any, me: str | None = None, room: str | None = None
) -> list[Line]:
    """
    What to show once a command succeeded.

    :param me: our username; :param room: the room we are in (for broadcasts).
    """
    if isinstance(command, Help):
        return [Line(NOTICE, line) for line in help_lines(command.topic)]
    if isinstance(command, Nothing | SendFile) or result is None:
        return []  # SendFile: the "queued" transfer event says it
    if isinstance(command, Exit):
        return [Line(NOTICE, "[ok] bye")]
    if not isinstance(command, Send) or not isinstance(result, frames.Reply):
        return []
    kind = command.type
    if isinstance(result, frames.JoinOk):
        members = result.members
        shown = f"{escape(result.room)} ({len(members)} here: {_members(members)})"
        return [Line(SUCCESS, f"[ok] joined {shown}")]
    if isinstance(result, frames.LeaveOk):
        return [Line(SUCCESS, f"[ok] left {escape(result.room)}")]
    if kind == "broadcast":
        prefix = f"[{escape(room or 'room')}] {escape(me)}: "
        return [Line(OWN, said(prefix, command.fields["text"]), time.time())]
    if kind == "whisper":
        prefix = f"[whisper to {escape(command.fields['to'])}] {escape(me)}: "
        return [Line(WHISPER, said(prefix, command.fields["text"]), time.time())]
    if isinstance(result, frames.RoomsOk):
        if not result.rooms:
            return [Line(NOTICE, "[rooms] no rooms yet; /join <room> creates one")]
        shown = ", ".join(
            f"{escape(r.name)} ({len(r.members)}/{r.capacity})" for r in result.rooms
        )
        return [Line(NOTICE, f"[rooms] {shown}")]
    if isinstance(result, frames.WhoOk):
        members = result.members
        return [Line(NOTICE, f"[who] {escape(result.room)}: {_members(members)} ({len(members)})")]
    if isinstance(result, frames.UsersOk):
        users = result.users
        return [Line(NOTICE, f"[users] {_members(users)} ({len(users)} online)")]
    if kind == "cancel":
        return [Line(NOTICE, f"[ok] cancelling transfer {command.fields['transfer']}")]
    if kind in ("accept", "decline"):
        return []  # the transfer's own lines say it
    return [Line(SUCCESS, f"[ok] {kind}")]


def error_line(message: Any) -> Line:
    """An error or refusal; ``message`` may come from the server."""
    return Line(ERROR, f"[error] {escape(message)}")


def _pending(t: Any) -> str:
    """Where a file on its way to us is (``file-pending``)."""
    state = getattr(t, "pending", None)
    if state == "queued":
        return "queued" if not t.position else f"queued, {t.position} ahead"
    if state == "waiting":
        return "uploaded, waiting for your earlier files"
    return "uploading to the server"


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_texts(t: Any, now: float) -> list[str]:
    """
    What a transfer's progress bar says, most detailed first, so a narrow
    bar can drop detail: ``40% 1.2 MiB/3.0 MiB 800.0 KiB/s``, ``40%
    1.2 MiB/3.0 MiB``, ``40%``; while queued, its place and wait.
    """
    if t.state == "pending":
        where = _pending(t)
        waited = f"for {now - t.created_at:.0f}s"
        return [f"{where} {waited}", where, where.split(",")[0]]
    if t.state == "offered" and t.direction == "down":
        return ["offered: accept? (y/N, /accept, /decline)", "offered", "offered"]
    if t.state in ("offered", "queued"):
        place = "next" if t.position == 0 else f"{t.position} ahead"
        waited = f"waiting {now - t.created_at:.0f}s"
        return [f"queued ({place}), {waited}", f"queued, {waited}", "queued"]
    pct = f"{t.percent():.0f}%"
    sizes = f"{format_size(t.done_bytes)}/{format_size(t.size)}"
    speed = f"{format_size(t.speed(now))}/s"
    eta = t.eta(now) if hasattr(t, "eta") else None
    if eta is not None and not t.finished and t.state != "uploaded":
        speed += f" ETA {_duration(eta)}"
    state = {"uploaded": "delivering", "delivered": "sent", "received": "received",
             "saved": "saved", "failed": "failed", "discarded": "discarded"}.get(t.state, "")
    if t.state == "received" and getattr(t, "verified", None) is False:
        state = "received, sha256 MISMATCH"
    tail = f" {state}" if state else ""
    return [f"{pct} {sizes} {speed}{tail}", f"{pct} {sizes}{tail}", f"{pct}{tail}", pct]
