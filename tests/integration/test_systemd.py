"""
systemd: socket activation for real with ``systemd-socket-activate`` (Debian's
``systemd`` package; skipped without it), and the unit files in ``contrib/``.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import ROOT, TWISTD, Process
from support.wire import Wire

from chatnet.tap import Options

CONTRIB = ROOT / "contrib"
ACTIVATE = shutil.which("systemd-socket-activate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def socket_unit_listens_on() -> str:
    return unit("chatnet.socket")["Socket"]["ListenStream"]


@pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate is not installed "
                    "(Debian: apt-get install systemd)")
@pytest.mark.parametrize("family", ["INET", "INET6"])
def test_socket_activation(tmp_path: Path, family: str) -> None:
    """
    The server takes the socket systemd made (IPv4, or the unit's own
    ``[::]`` dual-stack one), answers on it, logs the peer's true address
    (the per-address limits key on it), and stops cleanly on SIGTERM.
    """
    assert ACTIVATE is not None
    if family == "INET6":
        assert socket_unit_listens_on().startswith("[::]:")
    for _attempt in range(3):  # the port picked may be taken by someone else meanwhile
        port = free_port()
        listen = f"127.0.0.1:{port}" if family == "INET" else f"[::]:{port}"
        listening = rf"127\.0\.0\.1:{port}" if family == "INET" else rf"\[::\]:{port}"
        # --fdname: systemd itself always names the sockets it passes, and
        # Twisted ignores unnamed ones (LISTEN_FDNAMES missing).
        # It hands the server only the environment it is told to.
        env = [f"--setenv={name}" for name in ("PYTHONPATH", "PATH", "HOME", "TMPDIR", "LANG")
               if name in os.environ]
        argv = [ACTIVATE, "-l", listen, "--fdname=chatnet", *env,
                "--setenv=PYTHONUNBUFFERED=1", sys.executable, "-c", TWISTD, "-n", "--pidfile=", "chatnet",
                "--port", f"systemd:domain={family}:index=0",
                "--audit-log", str(tmp_path / "server.log"), "--spool-dir", str(tmp_path / "spool")]
        proc = Process(argv, tmp_path, "socket-activated server", stdin=subprocess.DEVNULL)
        try:
            proc.err.wait_for(rf"Listening on {listening}", timeout=20)
        except AssertionError:
            proc.kill()
            continue
        break
    else:
        pytest.fail("systemd-socket-activate could not listen on a free port")
    try:
        wire = Wire(port)  # the first connection starts the server, which accepts it
        proc.out.wait_for(rf"chatnet listening on {listening}")
        wire.login("alice")
        wire.send(type="join", id="j", room="r")
        wire.until("ok", id="j")
        proc.proc.send_signal(signal.SIGTERM)
        assert {"type": "shutdown", "message": "The server is shutting down"} in wire.rest()
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM), proc.describe()
        log = (tmp_path / "server.log").read_text()
        assert "[SHUTDOWN]" in log
        if family == "INET":
            assert f"listening on 127.0.0.1:{port}" in log
            assert "connection from 127.0.0.1:" in log, log
        else:
            assert f"listening on [::]:{port}" in log, log
            assert "connection from [::ffff:127.0.0.1]:" in log, log
    finally:
        proc.kill()


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((CONTRIB / name).read_text().replace("\\\n", " "))
    return parser


def test_service_unit_is_hardened() -> None:
    """The unit runs as a dynamic user, read-only system, spool in its state folder, ..."""
    service = unit("chatnet.service")["Service"]
    for key, value in {
        "DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
        "StateDirectory": "chatnet", "LogsDirectory": "chatnet", "PrivateTmp": "yes",
        "ProtectHome": "yes", "CapabilityBoundingSet": "", "KillSignal": "SIGTERM",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }.items():
        assert service[key] == value, key
    assert "143" in service["SuccessExitStatus"]


def test_service_unit_options_are_chatnet_options() -> None:
    """Every chatnet option in ExecStart exists and takes its value (the socket aside)."""
    argv = shlex.split(unit("chatnet.service")["Service"]["ExecStart"])
    chatnet = argv[argv.index("chatnet") + 1:]
    assert chatnet[chatnet.index("--port") + 1] == "systemd:domain=INET6:index=0"
    chatnet[chatnet.index("--port") + 1] = "tcp:0"
    Options().parseOptions(chatnet)
    assert "--spool-dir" in chatnet and "/var/lib/chatnet/spool" in chatnet


def test_socket_unit() -> None:
    """The socket unit listens and activates chatnet.service."""
    sock = unit("chatnet.socket")
    assert sock["Socket"]["ListenStream"]
    assert sock["Install"]["WantedBy"] == "sockets.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts both units (with the twistd path made real)."""
    for name in ("chatnet.service", "chatnet.socket"):
        text = (CONTRIB / name).read_text().replace("/opt/chatnet/venv/bin/twistd", shutil.which("true") or "/bin/true")
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "chatnet.socket"),
                             str(tmp_path / "chatnet.service")], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "chatnet" in line]
    assert result.returncode == 0 and problems == [], result.stderr


def test_dockerfile_command_is_chatnet_options() -> None:
    """The image's default command parses as chatnet options (the image is not built here)."""
    text = (CONTRIB / "Dockerfile").read_text().replace("\\\n", " ")
    (cmd,) = [line for line in text.splitlines() if line.startswith("CMD ")]
    (entry,) = [line for line in text.splitlines() if line.startswith("ENTRYPOINT ")]
    assert json.loads(entry[len("ENTRYPOINT "):])[-1] == "chatnet"
    Options().parseOptions(json.loads(cmd[len("CMD "):]))
    assert "USER chatnet" in text and "STOPSIGNAL SIGTERM" in text
