"""
chatnet: a multi-user chat and file-sharing server for the terminal, on Twisted.

The server runs as a twistd plugin (``twistd -n chatnet --port 8080``); the
terminal client is ``chatnet-client``.  The wire protocol is described in
``docs/protocol.rst``.
"""

from chatnet._version import __version__

__all__ = ["__version__"]
