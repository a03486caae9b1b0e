"""
One room's sequence of messages at one receiving node: what to deliver,
in which order, what is a duplicate, and what is a gap.

Redis pub/sub is at-most-once: a message can be missed (the subscriber's
link broke, or it was not subscribed yet).  So each room message carries
its room's *epoch* and *offset* (1, 2, 3... per epoch; see
:data:`.scripts.PUBLISH`), and is also kept in a capped stream.  A receiver
delivers offsets strictly one after the other; on a gap it asks for the
missing range from the stream (:class:`Fill`) and holds later messages
until the answer; what the stream no longer has is reported
(:class:`Lost`), never skipped silently.  A new epoch (the room was emptied
and made again, or Redis restarted empty) starts counting again and is
reported (:class:`Reset`).

The receiver learns where it starts from the room's *head* (the epoch and
offset read after the subscription is acknowledged): messages up to the
head are before its time.  The same :meth:`RoomSequence.head` call, made
again after a reconnection or now and then, finds messages missed at the
end, which no later message would reveal.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Deliver:
    """Hand this message to the room's local receivers."""

    offset: int
    data: str


@dataclass(frozen=True)
class Fill:
    """Read offsets ``first``..``last`` from the room's stream, then call :meth:`RoomSequence.filled`."""

    first: int
    last: int


@dataclass(frozen=True)
class Lost:
    """Offsets ``first``..``last`` were missed and the stream no longer has them."""

    first: int
    last: int


@dataclass(frozen=True)
class Reset:
    """The room's epoch changed: offsets start again (``old`` is the epoch left)."""

    old: str
    new: str


Action = Deliver | Fill | Lost | Reset


def parse(message: str) -> tuple[str, int, str] | None:
    """``"<epoch>:<offset>:<data>"`` split, or None when it is not one."""
    epoch, sep, rest = message.partition(":")
    offset, sep2, data = rest.partition(":")
    if not (sep and sep2 and epoch and offset.isdigit()):
        return None
    return epoch, int(offset), data


def entry_offset(entry_id: str) -> int | None:
    """The offset of a stream entry id ``<offset>-0``, or None for a foreign id."""
    head, sep, tail = entry_id.partition("-")
    return int(head) if sep and head.isdigit() and tail == "0" else None


class RoomSequence:
    """
    The state of one room's sequence at one node.  Feed it what arrives
    (:meth:`message`), the head when read (:meth:`head`) and the stream's
    answer to a :class:`Fill` (:meth:`filled`); do what the returned
    actions say, in their order.  At most one :class:`Fill` is outstanding.
    """

    def __init__(self) -> None:
        self.epoch: str | None = None  # None: not started (no head yet)
        self.last = 0
        self.filling: Fill | None = None
        self._early: list[tuple[str, int, str]] = []  # before the first head
        self._held: dict[int, str] = {}  # after a gap, waiting for a fill

    @property
    def started(self) -> bool:
        return self.epoch is not None

    def message(self, epoch: str, offset: int, data: str) -> list[Action]:
        """A message from pub/sub."""
        if self.epoch is None:
            self._early.append((epoch, offset, data))
            return []
        actions: list[Action] = []
        if epoch != self.epoch:
            actions += self._new_epoch(epoch)
        if offset <= self.last or offset in self._held:
            return actions  # a duplicate: delivered already, or held
        if self.filling is not None or offset != self.last + 1:
            self._held[offset] = data
            if self.filling is None:
                self.filling = Fill(self.last + 1, offset - 1)
                actions.append(self.filling)
            return actions
        self.last = offset
        actions.append(Deliver(offset, data))
        return actions

    def head(self, epoch: str, offset: int) -> list[Action]:
        """
        The room's head as read from Redis (``""`` and 0 when the room has
        no sequence yet).  The first one is where this receiver starts.
        """
        actions: list[Action] = []
        if self.epoch is None:
            self.epoch, self.last = epoch, offset
            early, self._early = self._early, []
            for e, o, d in early:
                actions += self.message(e, o, d)
            return actions
        if epoch and epoch != self.epoch:
            actions += self._new_epoch(epoch)
        if epoch == self.epoch and self.filling is None and offset > self.last:
            self.filling = Fill(self.last + 1, offset)
            actions.append(self.filling)
        return actions

    def filled(self, fill: Fill, entries: Iterable[tuple[int, str]]) -> list[Action]:
        """
        The stream's entries for ``fill`` (offset, data), in any order.  An
        answer to a fill that is no longer outstanding (the epoch changed
        meanwhile) is ignored.
        """
        if fill != self.filling:
            return []
        self.filling = None
        found = {o: d for o, d in entries if fill.first <= o <= fill.last}
        found.update(self._held)
        self._held = {}
        actions: list[Action] = []
        for offset in sorted(found):
            if offset <= self.last:
                continue
            if offset > self.last + 1:
                lost_to = min(offset - 1, fill.last)
                if lost_to > self.last:
                    actions.append(Lost(self.last + 1, lost_to))
                    self.last = lost_to
            if offset == self.last + 1:
                self.last = offset
                actions.append(Deliver(offset, found[offset]))
            else:  # a new gap past what was asked for: ask again, hold the rest
                self._held = {o: found[o] for o in found if o >= offset}
                self.filling = Fill(self.last + 1, offset - 1)
                actions.append(self.filling)
                return actions
        if self.last < fill.last:
            actions.append(Lost(self.last + 1, fill.last))
            self.last = fill.last
        return actions

    def _new_epoch(self, epoch: str) -> list[Action]:
        """Close the old epoch (what is held is delivered, what is missing reported) and start anew."""
        actions: list[Action] = []
        old = self.epoch or ""
        if self.filling is not None:
            fill, self.filling = self.filling, None
            held, self._held = self._held, {}
            for offset in sorted(held):
                if offset > self.last + 1:
                    actions.append(Lost(self.last + 1, offset - 1))
                self.last = offset
                actions.append(Deliver(offset, held[offset]))
            if self.last < fill.last:
                actions.append(Lost(self.last + 1, fill.last))
        if old:
            actions.append(Reset(old, epoch))
        self.epoch, self.last = epoch, 0
        return actions


def stream_entries(reply: object) -> list[tuple[int, str]]:
    """
    ``XRANGE``'s reply (``[[id, [field, value, ...]], ...]``) as (offset,
    data) pairs; entries that are not ours are left out.
    """
    found: list[tuple[int, str]] = []
    if not isinstance(reply, list):
        return found
    for entry in reply:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
            continue
        offset = entry_offset(str(entry[0]))
        fields = entry[1]
        values = dict(zip(fields[::2], fields[1::2], strict=False))
        if offset is not None and isinstance(values.get("d"), str):
            found.append((offset, values["d"]))
    return found
