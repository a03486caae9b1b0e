"""``chatnet-scenarios``: options, report, exit status, and running from anywhere."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from chatnet.scenarios import cli
from chatnet.scenarios.checks import SCENARIOS, Scenario
from chatnet.scenarios.context import Context, ScenarioFailed


def fake(number: int, outcome: str) -> Scenario:
    def run(ctx: Context) -> str:
        """Pretend to check something."""
        if outcome == "fail":
            raise ScenarioFailed("expected 5, got 6\nmore details")
        if outcome == "crash":
            raise KeyError("oops")
        return "all good"

    return Scenario(number, f"Fake {outcome}", run)


def test_report_and_exit_status(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One line per scenario; status 1 when any fails; failures keep their logs."""
    scenarios = (fake(1, "pass"), fake(2, "fail"), fake(3, "crash"))
    monkeypatch.setattr(cli, "SCENARIOS", scenarios)
    out = io.StringIO()
    status = cli.main(["--workdir", str(tmp_path)], out=out)
    report = out.getvalue()
    assert status == 1
    assert " 1. Fake pass " in report and "PASSED" in report.splitlines()[2]
    assert "FAILED" in report and "expected 5, got 6" in report
    assert "KeyError: 'oops'" in report
    assert "1 passed, 2 failed in " in report
    details = (tmp_path / "02-fake-fail" / "failure.txt").read_text()
    assert "more details" in details


def test_only_and_all_passing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--only`` picks scenarios; all passing is status 0 and the folder goes."""
    monkeypatch.setattr(cli, "SCENARIOS", (fake(1, "pass"), fake(2, "fail")))
    out = io.StringIO()
    assert cli.main(["--only", "1"], out=out) == 0
    folder = Path(out.getvalue().splitlines()[1].split(": ", 1)[1])
    assert not folder.exists()
    assert "1 passed, 0 failed" in out.getvalue()


def test_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--only", "11"])
    assert e.value.code == 2
    assert "there is no scenario 11" in capsys.readouterr().err


def test_every_scenario_documented() -> None:
    """``--step`` shows each scenario's docstring summary."""
    assert [s.number for s in SCENARIOS] == list(range(1, 11))
    for scenario in SCENARIOS:
        assert len(cli.summary(scenario)) > 40, scenario.title


@pytest.mark.scenario
def test_console_script_from_another_folder(tmp_path: Path) -> None:
    """
    Runs a real scenario from an unrelated working folder: the installed
    ``chatnet-scenarios`` script when there is one, else ``-m``.
    """
    script = Path(sys.executable).parent / "chatnet-scenarios"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "chatnet.scenarios"]
    done = subprocess.run(
        [*argv, "--only", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 2. Duplicate username " in done.stdout and "PASSED" in done.stdout
    assert list(tmp_path.iterdir()) == []
