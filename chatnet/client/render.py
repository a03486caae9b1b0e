"""
Events and replies to readable lines: ``[groupA] alice: hello``.

Both front ends use these: line mode prints :attr:`Line.text`, the
full-screen interface colours it by :attr:`Line.style`.

Pure: imports nothing from Twisted (transfer objects are read, not driven).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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
}


@dataclass(frozen=True)
class Line:
    """One line of output: a style and the text (without timestamp)."""

    style: str
    text: str
    ts: float | None = None


def clock_time(ts: float | None = None) -> str:
    """``HH:MM:SS`` in local time."""
    return time.strftime("%H:%M:%S", time.localtime(ts if ts is not None else time.time()))


def _members(members: Any) -> str:
    if not isinstance(members, list) or not members:
        return "nobody"
    return ", ".join(str(m) for m in members)


def _count(members: Any) -> Any:
    """``members`` may be a count or a list of names."""
    return len(members) if isinstance(members, list) else members


def _ts(frame: dict[str, Any]) -> float | None:
    ts = frame.get("ts")
    return float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None


def server_event(frame: dict[str, Any], me: str | None = None) -> Line | None:
    """A server event frame (not a transfer one) as a line."""
    kind = frame.get("type")
    if kind == "message":
        sender = frame.get("from")
        style = OWN if me and sender == me else OTHER
        return Line(style, f"[{frame.get('room')}] {sender}: {frame.get('text')}", _ts(frame))
    if kind == "whisper":
        return Line(WHISPER, f"[whisper] {frame.get('from')}: {frame.get('text')}", _ts(frame))
    if kind == "presence":
        verb = {"join": "joined", "leave": "left", "disconnect": "disconnected"}.get(
            str(frame.get("event")), str(frame.get("event"))
        )
        return Line(NOTICE, f"[{frame.get('room')}] * {frame.get('user')} {verb}")
    if kind == "shutdown":
        message = frame.get("message") or "no reason given"
        return Line(SERVER, f"[server] shutting down: {message}")
    if kind == "error":
        return Line(ERROR, f"[error] {frame.get('message') or frame.get('code')}")
    return Line(NOTICE, f"[server] {kind}: " + ", ".join(
        f"{k}={v}" for k, v in frame.items() if k != "type"
    ))


def transfer_event(kind: str, t: Any, frame: dict[str, Any] | None = None) -> Line | None:
    """
    A :class:`~chatnet.client.core.TransferEvent` as a line (``None`` for
    progress, which the front ends show as bars).
    """
    size = format_size(t.size)
    if kind == "queued":
        where = "next" if t.position == 0 else f"queued, {t.position} ahead"
        return Line(FILE, f"[file] {t.name} ({size}) to {t.peer}: transfer {t.transfer}, {where}")
    if kind == "started":
        waited = (frame or {}).get("waited")
        after = f" after waiting {float(waited):.1f}s" if isinstance(waited, int | float) and waited >= 0.05 else ""
        return Line(FILE, f"[file] sending {t.name} to {t.peer}{after}")
    if kind == "uploaded":
        return Line(FILE, f"[file] {t.name} uploaded ({size}), delivering to {t.peer}")
    if kind == "delivered":
        return Line(SUCCESS, f"[file] {t.name} delivered to {t.peer}")
    if kind == "failed":
        reason = REASONS.get(t.reason or "", t.reason)
        return Line(ERROR, f"[error] sending {t.name} to {t.peer} failed: {reason}")
    if kind == "receiving":
        renamed = f" (sent as {t.original})" if getattr(t, "original", None) else ""
        return Line(FILE, f"[file] receiving {t.name} from {t.peer} ({size}){renamed}")
    if kind == "saved":
        return Line(SUCCESS, f"[file] received {t.name} from {t.peer} ({size}) -> {t.path}")
    if kind == "discarded":
        reason = REASONS.get(t.reason or "", t.reason)
        return Line(ERROR, f"[error] {t.name} from {t.peer} discarded: {reason}")
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
    if not isinstance(command, Send) or not isinstance(result, dict):
        return []
    kind = command.type
    if kind == "join":
        members = result.get("members", [])
        count = len(members) if isinstance(members, list) else 0
        return [Line(SUCCESS, f"[ok] joined {result.get('room')} ({count} here: {_members(members)})")]
    if kind == "leave":
        return [Line(SUCCESS, f"[ok] left {result.get('room')}")]
    if kind == "broadcast":
        return [Line(OWN, f"[{room or 'room'}] {me}: {command.fields['text']}", time.time())]
    if kind == "whisper":
        return [Line(WHISPER, f"[whisper to {command.fields['to']}] {me}: {command.fields['text']}", time.time())]
    if kind == "rooms":
        rooms = result.get("rooms") or []
        if not rooms:
            return [Line(NOTICE, "[rooms] no rooms yet; /join <room> creates one")]
        shown = ", ".join(
            f"{r.get('name')} ({_count(r.get('members'))}/{r.get('capacity')})"
            for r in rooms if isinstance(r, dict)
        )
        return [Line(NOTICE, f"[rooms] {shown}")]
    if kind == "who":
        members = result.get("members") or []
        return [Line(NOTICE, f"[who] {result.get('room')}: {_members(members)} ({len(members)})")]
    if kind == "users":
        users = result.get("users") or []
        return [Line(NOTICE, f"[users] {_members(users)} ({len(users)} online)")]
    if kind == "cancel":
        return [Line(NOTICE, f"[ok] cancelling transfer {command.fields['transfer']}")]
    return [Line(SUCCESS, f"[ok] {kind}")]


def error_line(message: str) -> Line:
    return Line(ERROR, f"[error] {message}")


def progress_texts(t: Any, now: float) -> list[str]:
    """
    What a transfer's progress bar says, most detailed first, so a narrow
    bar can drop detail: ``40% 1.2 MiB/3.0 MiB 800.0 KiB/s``, ``40%
    1.2 MiB/3.0 MiB``, ``40%``; while queued, its place and wait.
    """
    if t.state in ("offered", "queued"):
        place = "next" if t.position == 0 else f"{t.position} ahead"
        waited = f"waiting {now - t.created_at:.0f}s"
        return [f"queued ({place}), {waited}", f"queued, {waited}", "queued"]
    pct = f"{t.percent():.0f}%"
    sizes = f"{format_size(t.done_bytes)}/{format_size(t.size)}"
    speed = f"{format_size(t.speed(now))}/s"
    state = {"uploaded": "delivering", "delivered": "delivered", "saved": "saved",
             "failed": "failed", "discarded": "discarded"}.get(t.state, "")
    tail = f" {state}" if state else ""
    return [f"{pct} {sizes} {speed}{tail}", f"{pct} {sizes}{tail}", f"{pct}{tail}", pct]
