"""Fixtures shared by every chatnet test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher


@pytest.fixture(autouse=True)
def observe_errors() -> Iterator[list[dict[str, Any]]]:
    """
    Fail the test if anything logs a failure or a critical event through
    :mod:`twisted.logger` (an unhandled error in a Deferred, an exception in
    a handler).  A test that expects one clears the list it yields.
    """
    errors: list[dict[str, Any]] = []

    def observer(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None or event.get("log_level") is LogLevel.critical:
            errors.append(event)

    globalLogPublisher.addObserver(cast(ILogObserver, observer))
    try:
        yield errors
    finally:
        globalLogPublisher.removeObserver(cast(ILogObserver, observer))
    if errors:
        from twisted.logger import formatEvent

        details = "\n".join(
            formatEvent(e) + ("\n" + e["log_failure"].getTraceback() if e.get("log_failure") else "")
            for e in errors
        )
        pytest.fail(f"errors were logged during the test:\n{details}")

# a real redis-server for the cluster tests (tests/support/redis.py), and
# real twistd nodes on it (tests/support/cluster_nodes.py)
pytest_plugins = ["support.redis", "support.cluster_nodes"]
