"""
Accounts the documented way: a file written by ``chatnet-passwd``, a real
``twistd`` listening with TLS, ``chatnet-client`` with ``$CHATNET_PASSWORD``;
and the warnings a careless setup gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import CLIENT, start_server
from support.tls import make_certificate

import twisted

pytest.importorskip("OpenSSL", reason="the tls extra is not installed")
pytest.importorskip("service_identity", reason="the tls extra is not installed")

pytestmark = pytest.mark.scenario

PASSWD = Path(__file__).resolve().parents[2] / "bin" / "chatnet-passwd"

TWISTED = tuple(int(part) for part in twisted.__version__.split(".")[:2])


def accounts_file(folder: Path, **passwords: str) -> Path:
    path = folder / "accounts.txt"
    for name, password in passwords.items():
        subprocess.run([sys.executable, str(PASSWD), str(path), name], input=password + "\n",
                       text=True, check=True, capture_output=True, timeout=60)
    return path


def client(port: int, password: str, cert: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CHATNET_PASSWORD=password)
    return subprocess.run(
        [sys.executable, str(CLIENT), "--ca", str(cert), "127.0.0.1", str(port), "-u", "alice"],
        input="/users\n", capture_output=True, text=True, cwd=cwd, env=env, timeout=30,
    )


def test_accounts_over_tls(tmp_path: Path) -> None:
    """The documented setup: logins over TLS, no warning at start."""
    key, cert = make_certificate(tmp_path)
    path = accounts_file(tmp_path, alice="correct horse", bob="battery")
    server = start_server(
        tmp_path, "--accounts", str(path),
        "--port", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
    )
    try:
        ok = client(server.port, "correct horse", cert, tmp_path)
        assert ok.returncode == 0, ok.stderr
        assert "[users] alice (1 online)" in ok.stdout
        wrong = client(server.port, "wrong", cert, tmp_path)
        assert wrong.returncode != 0
        assert "Wrong username or password" in wrong.stdout + wrong.stderr
    finally:
        server.stop()
        server.kill()
    assert "warning" not in server.out.text
    log = server.log_path.read_text()
    assert "[LOGIN] alice logged in" in log and "[LOGIN-FAILED]" in log


def test_careless_setup_is_warned_about(tmp_path: Path) -> None:
    """A file others can read, over plain TCP: two warnings in twistd's log."""
    path = accounts_file(tmp_path, alice="pw")
    path.chmod(0o644)
    server = start_server(tmp_path, "--accounts", str(path))
    try:
        server.out.wait_for(r"warning: the accounts file .*mode 0644.*chmod 600")
        server.out.wait_for(r"warning: accounts are on over a plain TCP port .* ssl:")
    finally:
        server.stop()
        server.kill()


def test_clear_text_file_refused_at_start(tmp_path: Path) -> None:
    """An old clear-text file stops twistd with the command that converts it."""
    path = tmp_path / "accounts.txt"
    path.write_text("alice:s3cret\n")
    done = subprocess.run(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
         "--pidfile=", "chatnet", "--accounts", str(path), "--port", "tcp:0"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    # It ended (with -n a server that started would still run) without
    # listening.  Twisted 24.7's twistd prints a usage error and exits 0;
    # later ones exit 1.
    assert done.returncode != 0 or TWISTED < (25,)
    assert "listening" not in done.stderr + done.stdout
    assert "chatnet-passwd --convert FILE" in done.stderr + done.stdout
    assert "s3cret" not in done.stderr + done.stdout
