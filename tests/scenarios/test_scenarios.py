"""
The C original's ten acceptance scenarios, one test each: real
``twistd -n chatnet`` and ``chatnet-client`` processes over loopback
(see ``docs/scenarios.rst``; ``chatnet-scenarios`` runs the same ten).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chatnet.scenarios.checks import SCENARIOS, Scenario, run_scenario

pytestmark = pytest.mark.scenario


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.slug for s in SCENARIOS])
def test_scenario(scenario: Scenario, tmp_path: Path) -> None:
    """Each scenario passes; on failure the message holds every process's output."""
    result = run_scenario(scenario, tmp_path, timeout=60.0)
    assert result.passed, f"{result.evidence}\n\n{result.details}"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.slug for s in SCENARIOS])
def test_scenario_cluster(scenario: Scenario, tmp_path: Path) -> None:
    """
    ``chatnet-scenarios --cluster 3``: the same checks against a real Redis
    and three nodes, the clients spread over them, every node's log read.
    """
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not found on PATH (Debian: apt-get install redis-server)")
    result = run_scenario(scenario, tmp_path, timeout=60.0, cluster=3)
    assert result.passed, f"{result.evidence}\n\n{result.details}"
