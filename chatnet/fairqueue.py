"""
The order in which waiting uploads get a free slot (PROTOCOL.md section 5,
"Fairness"): round-robin by sender, acceptance order within one sender.

Owners (senders) take turns in a ring.  An owner joins the ring at its end
when it adds its first item; when one of its items is taken it moves to the
end of the ring, or leaves it with nothing left.  So with every item from a
different owner the order is the order they were added, and one owner with
many items waiting gets every other turn when a second owner waits too,
never all of them.

:meth:`FairQueue.take` skips items the caller cannot start yet (their
addressee's spool is full): they keep their place, and the turn goes to the
next item that can start.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class FairQueue(Generic[K, T]):
    """Items waiting their turn, each owned by one owner (``K``)."""

    __slots__ = ("_queues", "_length")

    def __init__(self) -> None:
        #: The ring: owners in turn order (a dict keeps insertion order),
        #: each with its items in the order they were added.
        self._queues: dict[K, deque[T]] = {}
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[T]:
        """Every item, in the order they would be taken if all could start."""
        queues = list(self._queues.values())
        depth = 0
        while queues:
            for q in queues:
                yield q[depth]
            depth += 1
            queues = [q for q in queues if len(q) > depth]

    def count(self, owner: K) -> int:
        """How many items ``owner`` has waiting."""
        q = self._queues.get(owner)
        return len(q) if q is not None else 0

    def add(self, owner: K, item: T) -> int:
        """Queue ``item`` behind ``owner``'s others; :returns: its position."""
        q = self._queues.get(owner)
        if q is None:
            q = self._queues[owner] = deque()
        q.append(item)
        self._length += 1
        return self.position(owner, item)

    def position(self, owner: K, item: T) -> int:
        """
        How many items come before ``item`` in turn order: in each earlier
        round, one item of every owner that has that many; in its own round,
        one of every owner ahead of ``owner`` in the ring.
        """
        depth = self._queues[owner].index(item)
        ahead = 0
        before = True
        for other, q in self._queues.items():
            if other == owner:
                before = False
                ahead += depth
            else:
                ahead += min(len(q), depth + 1 if before else depth)
        return ahead

    def remove(self, owner: K, item: T) -> None:
        """Take ``item`` out of the queue; the others keep their turns."""
        q = self._queues[owner]
        q.remove(item)
        self._length -= 1
        if not q:
            del self._queues[owner]

    def take(self, can_start: Callable[[T], bool]) -> T | None:
        """
        The next item that ``can_start``, removed from the queue: the first
        such of the first owner in the ring that has one.  That owner moves
        to the end of the ring.  :returns: ``None`` when no item can start.
        """
        for owner, q in self._queues.items():
            for item in q:
                if can_start(item):
                    # Both loops end here, so changing what they walk is safe.
                    q.remove(item)
                    self._length -= 1
                    del self._queues[owner]
                    if q:
                        self._queues[owner] = q  # to the end of the ring
                    return item
        return None
