"""
A fixture of the file-pull tests: every grant a test makes is settled by
the test (see :func:`grants_settled`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chatnet.cluster.filepull import FileServer, Grant


@pytest.fixture(autouse=True)
def grants_settled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    After each test (and its server's stop), no grant's Deferred still holds
    a failure nobody took: its owner, the test, consumes what it ends with,
    a cancellation too.  (Left so, it is an "Unhandled error in Deferred"
    logged whenever the garbage collector gets to it, in some later test.)
    """
    made: list[Grant] = []
    grant = FileServer.grant

    def tracked(self: FileServer, *args: Any, **kwargs: Any) -> Grant:
        g = grant(self, *args, **kwargs)
        made.append(g)
        return g

    monkeypatch.setattr(FileServer, "grant", tracked)
    yield
    # what Deferred logs as unhandled once collected: a failure no callback took
    left = [g.transfer for g in made
            if getattr(g.deferred._debugInfo, "failResult", None) is not None]
    assert not left, f"grants failed with nobody consuming it: {left}"
