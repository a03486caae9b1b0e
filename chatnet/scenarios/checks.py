"""
The ten scenarios, in the C original's order, and :func:`run_scenario`, which
runs one against a fresh server of its own and turns its outcome into a
:class:`~chatnet.scenarios.context.Result`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatnet.scenarios import chat, failures, files
from chatnet.scenarios.context import Context, Result
from chatnet.scenarios.processes import ScenarioFailed


@dataclass(frozen=True)
class Scenario:
    """A numbered scenario: ``run(ctx)`` returns the evidence line."""

    number: int
    title: str
    run: Callable[[Context], str]

    @property
    def slug(self) -> str:
        return f"{self.number:02d}-" + "-".join(self.title.lower().split())


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(1, "Concurrent load", chat.concurrent_load),
    Scenario(2, "Duplicate username", chat.duplicate_username),
    Scenario(3, "Upload queue limit", files.upload_queue_limit),
    Scenario(4, "Unexpected disconnection", failures.unexpected_disconnection),
    Scenario(5, "Room switching", chat.room_switching),
    Scenario(6, "Oversized file", files.oversized_file),
    Scenario(7, "SIGINT shutdown", failures.sigint_shutdown),
    Scenario(8, "Rejoining rooms", chat.rejoining),
    Scenario(9, "Same filename collision", files.filename_collision),
    Scenario(10, "Queue wait duration", files.queue_wait_duration),
)


def run_scenario(scenario: Scenario, base: Path, timeout: float = 30.0, cluster: int = 0,
                 server_args: tuple[str, ...] = ()) -> Result:
    """
    Run ``scenario`` in ``base/<NN-title>``, stop its processes, and report.

    With ``cluster`` N it runs against a fresh Redis and N cluster nodes
    instead of one server, its clients spread over the nodes;
    ``server_args`` go to every server.

    A failure's :attr:`Result.details` hold the error and what every process
    printed; they are also written to ``failure.txt`` in the scenario folder.
    """
    workdir = base / scenario.slug
    ctx = Context(workdir, timeout=timeout, seed=scenario.number, cluster=cluster,
                  server_args=server_args)
    start = time.monotonic()
    try:
        evidence = scenario.run(ctx)
    except ScenarioFailed as e:
        result = Result(scenario.number, scenario.title, False, _first_line(str(e)),
                        details=f"{e}\n\n{ctx.diagnostics()}")
    except Exception as e:  # a bug in the scenario itself: report, go on
        result = Result(scenario.number, scenario.title, False,
                        f"{type(e).__name__}: {_first_line(str(e))}",
                        details=f"{traceback.format_exc()}\n{ctx.diagnostics()}")
    else:
        result = Result(scenario.number, scenario.title, True, evidence)
    finally:
        ctx.cleanup()
    result.seconds = time.monotonic() - start
    result.workdir = workdir
    if not result.passed:
        (workdir / "failure.txt").write_text(result.details, "utf-8")
    return result


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "failed"
