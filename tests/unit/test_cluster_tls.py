"""What :mod:`chatnet.cluster.tls` builds for ``redis://`` and ``rediss://`` (the handshake itself: tests/integration/test_redis_tls.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.testing import MemoryReactor

from chatnet.cluster.keys import parse_url

tls = pytest.importorskip("chatnet.cluster.tls")


def test_plain_redis_has_no_tls() -> None:
    address = parse_url("redis://127.0.0.1:6380")
    assert tls.client_tls(address) is None
    assert isinstance(tls.endpoint(MemoryReactor(), address, 5.0), HostnameEndpoint)


def test_rediss_checks_the_certificate(tmp_path: Path) -> None:
    """rediss:// gets a checking creator, from the system's authorities or a given file."""
    from support.tls import make_certificate

    _, cert = make_certificate(tmp_path)
    address = parse_url("rediss://localhost:6380")
    assert IOpenSSLClientConnectionCreator.providedBy(tls.client_tls(address))
    assert IOpenSSLClientConnectionCreator.providedBy(tls.client_tls(address, str(cert)))
    assert not isinstance(tls.endpoint(MemoryReactor(), address, 5.0, str(cert)), HostnameEndpoint)
    assert len(tls.load_authorities(str(cert))) == 1
    with pytest.raises(tls.BadAuthority, match="cannot read"):
        tls.client_tls(address, str(tmp_path / "missing.pem"))
    assert tls.stdlib_context(str(cert)).check_hostname
