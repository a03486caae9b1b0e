"""``--tls`` and ``--ca`` end to end against a TLS server (needs the tls extra)."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import CLIENT, Server, start_server
from support.tls import make_certificate

pytest.importorskip("OpenSSL", reason="the tls extra is not installed")
pytest.importorskip("service_identity", reason="the tls extra is not installed")

pytestmark = pytest.mark.scenario


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A server listening with TLS, and the certificate to trust."""
    key, cert = make_certificate(tmp_path)
    srv = start_server(tmp_path, "--port", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
    try:
        yield srv, cert
    finally:
        srv.stop()
        srv.kill()


def run(port: int, *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(CLIENT), "127.0.0.1", str(port), "-u", "tee", *args],
        input=b"/users\n", capture_output=True, cwd=cwd, timeout=30,
    )


def test_tls_with_ca(tls_server: tuple[Server, Path], tmp_path: Path) -> None:
    """With ``--ca`` the certificate is trusted and the session works."""
    server, cert = tls_server
    done = run(server.port, "--ca", str(cert), cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines()[1] == "[users] tee (1 online)"


def test_tls_untrusted_and_plain(tls_server: tuple[Server, Path], tmp_path: Path) -> None:
    """An untrusted certificate or a missing ``--tls`` fail with status 3 and advice."""
    server, _ = tls_server
    untrusted = run(server.port, "--tls", cwd=tmp_path)
    assert untrusted.returncode == 3
    assert "certificate is not trusted (give its CA with --ca FILE)" in untrusted.stderr.decode()
    plain = run(server.port, cwd=tmp_path)
    assert plain.returncode == 3
    assert "if it is a TLS server, use --tls" in plain.stderr.decode()
