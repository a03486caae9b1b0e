"""
The client's protocol: frames between the socket and a
:class:`~chatnet.client.core.ClientCore`, and :func:`connect`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone, DNSLookupError
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from chatnet import fastpath, frames
from chatnet.client.core import ClientCore

_DONE = Failure(ConnectionDone())


class ClientProtocol(Int32StringReceiver):
    """Carry frames between the socket and a :class:`ClientCore`. Decide nothing."""

    MAX_LENGTH = frames.MAX_PAYLOAD
    #: Set by ``makeConnection`` before anything else runs.
    transport: ITransport

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def connectionMade(self) -> None:
        # A small unsent backlog: a chat line or /cancel typed during an
        # upload is not stuck behind megabytes of file data.
        fastpath.limit_backlog(self.transport)
        self.core.connected(self.transport)

    def stringReceived(self, payload: bytes) -> None:
        self.core.received(frames.decode_from_server(payload))

    def lengthLimitExceeded(self, length: int) -> None:
        self.core.oversized(length)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        self.core.lost(reason)


class ClientFactory(Factory):
    """Builds the one protocol for a core."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def buildProtocol(self, addr: Any) -> ClientProtocol:
        return ClientProtocol(self.core)


def connect(
    reactor: Any,
    core: ClientCore,
    host: str,
    port: int,
    tls: bool = False,
    ca: str | None = None,
    timeout: float = 10,
) -> Deferred[ClientProtocol]:
    """
    Connect ``core`` to ``host:port`` (TLS when ``tls``, trusting ``ca`` or
    the platform's roots).

    :returns: fires with the protocol once connected; fails with the
        connection error (``ConnectionRefusedError`` and friends).
    """
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

    try:
        name = host.encode("idna")
    except UnicodeError:  # an empty label (x..y), one over 63 characters
        return fail(DNSLookupError(f"{host!r} is not a valid host name"))
    endpoint: Any = HostnameEndpoint(reactor, name, port, timeout=timeout)
    if tls:
        from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust

        if ca is not None:
            with open(ca, "rb") as f:
                trust: Any = Certificate.loadPEM(f.read())
        else:
            trust = platformTrust()
        endpoint = wrapClientTLS(optionsForClientTLS(host, trustRoot=trust), endpoint)
    connected: Deferred[ClientProtocol] = endpoint.connect(ClientFactory(core))
    return connected.addErrback(_bad_host_name, host)


def _bad_host_name(failure: Failure, host: str) -> ClientProtocol:
    """The endpoint refuses a name it cannot resolve (``a b``) with a bare ValueError."""
    failure.trap(ValueError)
    raise DNSLookupError(f"{host!r} is not a valid host name")
