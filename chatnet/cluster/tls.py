"""
TLS to the cluster's Redis (``rediss://``), for both of a node's links.

The server's certificate is checked against the host the URL names (a
name, or an IP address in the certificate's subject alternative names)
and the system's trusted authorities, or only those of ``--cluster-ca``
(a PEM file of one or more certificates: a private authority, or Redis's
self-signed certificate).

txredisapi (>= 1.6) takes the check as its ``ssl_context_factory``:
any ``IOpenSSLClientConnectionCreator`` works there, since it wraps its
endpoint with ``TLSMemoryBIOFactory``.  Its own ``ssl_context_factory=True``
would check nothing (an old ``ClientContextFactory``) and is never used.
"""

from __future__ import annotations

import re
import ssl as stdlib_ssl
from pathlib import Path

from twisted.internet import ssl
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTCP,
    IStreamClientEndpoint,
)

from chatnet.cluster.keys import Address

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class BadAuthority(ValueError):
    """``--cluster-ca`` cannot be read or holds no certificate: the message says why."""


def load_authorities(path: str) -> list[ssl.Certificate]:
    """
    The certificates of the PEM file at ``path``.

    :raises BadAuthority: the file cannot be read, or holds no certificate
        that parses.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadAuthority(f"cannot read {path}: {e.strerror or e}") from None
    blocks = _PEM.findall(data)
    if not blocks:
        raise BadAuthority(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        return [ssl.Certificate.loadPEM(block) for block in blocks]
    except Exception as e:  # OpenSSL.crypto.Error, ValueError: a broken block
        raise BadAuthority(f"{path}: a certificate does not parse ({e})") from None


def client_tls(address: Address, ca: str | None = None) -> IOpenSSLClientConnectionCreator | None:
    """
    The TLS check for ``address`` (``None`` unless it is ``rediss://``): the
    ``ssl_context_factory`` of ``txredisapi.lazyConnection``.

    :raises BadAuthority: ``ca`` cannot be used.
    """
    if not address.tls:
        return None
    trust = (ssl.trustRootFromCertificates(load_authorities(ca)) if ca is not None
             else ssl.platformTrust())
    return ssl.optionsForClientTLS(address.host, trustRoot=trust)


def endpoint(
    reactor: IReactorTCP, address: Address, timeout: float, ca: str | None = None
) -> IStreamClientEndpoint:
    """
    A client endpoint to Redis (IPv4 or IPv6, by name or address), wrapped
    in TLS for ``rediss://``: for ``SubscriberFactory().startConnecting``.
    """
    plain = HostnameEndpoint(reactor, address.host, address.port, timeout=timeout)
    creator = client_tls(address, ca)
    return wrapClientTLS(creator, plain) if creator is not None else plain


def stdlib_context(ca: str | None = None) -> stdlib_ssl.SSLContext:
    """The same check for a blocking socket (:mod:`.startup`): ``wrap_socket(server_hostname=host)``."""
    return stdlib_ssl.create_default_context(cafile=ca)
