"""
Ended deliveries awaiting their receipts (PROTOCOL.md section 5, item 6).

After ``file-end`` the addressee's client may confirm what it saved
(``received``); the server must still know the delivery then, although the
transfer itself is over.  :class:`Receipts` remembers ended deliveries,
boundedly: at most :data:`RECEIPTS_KEPT` of them (the oldest is forgotten
first), each for :data:`RECEIPT_SECONDS`; and those whose addressee went
offline are forgotten at once (its receipt can no longer come).  A
``received`` for a delivery forgotten gets ``bad-transfer``.

Pure: imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from chatnet.model import User

#: Ended deliveries remembered at most, and for how long (seconds).  About
#: 200 bytes each (the transfer's record): a few hundred KB at most.
RECEIPTS_KEPT = 1000
RECEIPT_SECONDS = 600.0


class Ended(Protocol):
    """What :class:`Receipts` reads and writes of an ended delivery."""

    id: int
    sender: User
    recipient: User
    sender_gone: bool
    ended_at: float


E = TypeVar("E", bound=Ended)


class Receipts(Generic[E]):
    """
    Ended deliveries by transfer number, oldest first.

    :param now: the time in seconds (the reactor's ``seconds``).
    """

    def __init__(
        self, now: Callable[[], float], kept: int = RECEIPTS_KEPT,
        seconds: float = RECEIPT_SECONDS,
    ) -> None:
        self._now = now
        self.kept = kept
        self.seconds = seconds
        self._ended: dict[int, E] = {}
        #: The numbers in ``_ended`` by sender and by addressee.
        self._of: dict[User, set[int]] = {}

    def __len__(self) -> int:
        return len(self._ended)

    def remember(self, t: E) -> None:
        """Keep ``t``, which has just ended, for its receipt."""
        t.ended_at = self._now()
        self._ended[t.id] = t
        for user in (t.sender, t.recipient):
            self._of.setdefault(user, set()).add(t.id)
        self._forget_old()

    def get(self, number: int) -> E | None:
        """The ended delivery ``number``, unless it was forgotten."""
        self._forget_old()
        return self._ended.get(number)

    def forget(self, t: E) -> None:
        """Forget ``t`` (its receipt came)."""
        if self._ended.pop(t.id, None) is None:
            return
        for user in (t.sender, t.recipient):
            mine = self._of.get(user)
            if mine is not None:
                mine.discard(t.id)
                if not mine:
                    del self._of[user]

    def user_gone(self, user: User) -> None:
        """
        ``user`` went offline: forget what was delivered to it; what it sent
        is marked ``sender_gone`` (the receipt is taken, told to nobody).
        """
        for number in self._of.pop(user, set()):
            t = self._ended.get(number)
            if t is None:
                continue
            if t.recipient is user:
                self.forget(t)
            else:
                t.sender_gone = True

    def clear(self) -> None:
        self._ended.clear()
        self._of.clear()

    def _forget_old(self) -> None:
        ended = self._ended
        oldest = self._now() - self.seconds
        while ended:
            t = next(iter(ended.values()))
            if len(ended) <= self.kept and t.ended_at >= oldest:
                return
            self.forget(t)
