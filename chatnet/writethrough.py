"""
A TCP server transport that sends at once when it can.

Twisted's TCP transport buffers every ``write`` and sends it when the reactor
next reports the socket writable: for a lone write to an idle connection that
is an ``epoll_ctl`` to watch the socket, a turn of the loop, the ``send``,
and another ``epoll_ctl`` to stop watching.  When nothing is buffered, the
socket almost always has room, so :class:`WriteThroughServer` tries the
``send`` right away and falls back to the normal buffered path for whatever
the kernel did not take (or on any error, which the normal path then reports
the usual way).  Together with :class:`~chatnet.outbound.WriteBatch` a busy
connection costs one ``send`` per reactor turn and no ``epoll_ctl`` at all.
"""

from __future__ import annotations

from twisted.internet import tcp


class WriteThroughServer(tcp.Server):
    """:class:`twisted.internet.tcp.Server` with write-through when idle."""

    #: Read up to 256 KiB a ``recv`` (Twisted's default is 64 KiB): a file
    #: upload's 64 KiB data frames then cost a fraction of a read each.
    bufferSize = 256 * 1024

    def write(self, data: bytes) -> None:
        if (
            self.connected
            and not self.disconnecting
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
            and type(data) is bytes
        ):
            # socket.send itself, not writeSomeData: no memoryview, no
            # EINTR loop (Python retries EINTR), on the path of every frame.
            try:
                sent = self.socket.send(data)
            except OSError:
                sent = 0  # would block, or an error the buffered path reports
            if sent:
                if sent == len(data):
                    return
                data = data[sent:]
        super().write(data)

    def writeSequence(self, iovec: list[bytes]) -> None:
        if (
            self.connected
            and not self.disconnecting
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
        ):
            try:
                sent = self.socket.sendmsg(iovec)  # one gathered send, no join
            except OSError:
                sent = 0  # would block, or an error the buffered path reports
            if sent:
                rest: list[bytes] = []
                for part in iovec:
                    if sent >= len(part):
                        sent -= len(part)
                    else:
                        rest.append(part[sent:] if sent else part)
                        sent = 0
                if not rest:
                    return
                iovec = rest
        super().writeSequence(iovec)


def adopt(transport: object) -> None:
    """
    Make a plain accepted TCP connection a :class:`WriteThroughServer`.

    The listening port builds its connections from ``tcp.Server``; switching
    the class of the new connection (same layout, one method more) gives
    every endpoint string that ends up as plain TCP the faster path, while
    TLS and other transports are left exactly as they are.
    """
    if type(transport) is tcp.Server:
        transport.__class__ = WriteThroughServer
