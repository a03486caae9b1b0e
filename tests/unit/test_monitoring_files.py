"""The Prometheus alert rules and the Grafana dashboard in ``contrib/`` use metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from prometheus_client import generate_latest

from chatnet.metrics import make_registry
from chatnet.testing import make_server

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
METRIC = re.compile(r"\b((?:chatnet|process|python)_[a-z_]+)\b")


class _Cluster:
    """A cluster node's status, so that the cluster's metrics are exposed too."""

    up = True
    why = ""


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    """Every sample name a real scrape of a cluster node shows after a login (so a request was timed)."""
    server = make_server()
    server.connect().login("alice")
    text = generate_latest(make_registry(server.hub, cluster=_Cluster())).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((CONTRIB / "prometheus-alerts.yml").read_text())
    (group,) = data["groups"]
    assert group["name"] == "chatnet"
    return list(group["rules"])


def test_alert_rules_are_well_formed() -> None:
    """Each rule has a unique name, an expression, a severity and a summary."""
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    assert {"ChatnetDown", "ChatnetSlowConsumersRising", "ChatnetUploadQueueFull",
            "ChatnetErrorsRising"} <= set(names)
    for rule in rules():
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alert_rules_use_exposed_metrics(exposed: set[str]) -> None:
    """No rule names a metric the server does not expose."""
    for rule in rules():
        for name in METRIC.findall(rule["expr"]):
            assert name in exposed, f"{rule['alert']}: {name}"


def dashboard_panels() -> list[dict[str, Any]]:
    return list(json.loads((CONTRIB / "grafana-dashboard.json").read_text())["panels"])


def test_dashboard_is_well_formed() -> None:
    """Unique panel ids, panels inside the 24-column grid, the data source a variable."""
    dashboard = json.loads((CONTRIB / "grafana-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "instance"} <= variables


def test_dashboard_uses_exposed_metrics(exposed: set[str]) -> None:
    """Every panel query names metrics the server exposes, and the issue's metrics all have a panel."""
    used = set()
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            for name in METRIC.findall(target["expr"]):
                assert name in exposed, f"{panel['title']}: {name}"
                used.add(name)
    for name in ("chatnet_connections", "chatnet_users_online", "chatnet_rooms", "chatnet_messages_total",
                 "chatnet_deliveries_total", "chatnet_errors_total", "chatnet_logins_total",
                 "chatnet_file_bytes_total", "chatnet_transfers_total", "chatnet_slow_consumers_total",
                 "chatnet_uploads_running", "chatnet_uploads_queued", "chatnet_deliveries_waiting",
                 "chatnet_output_buffered_bytes", "chatnet_upload_wait_seconds_bucket",
                 "chatnet_request_seconds_bucket"):
        assert name in used, name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_checks_rules() -> None:
    """promtool, where installed, accepts the rules."""
    promtool = shutil.which("promtool")
    assert promtool is not None
    result = subprocess.run([promtool, "check", "rules", str(CONTRIB / "prometheus-alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
