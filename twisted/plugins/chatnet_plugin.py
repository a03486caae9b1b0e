"""
The twistd plugin: ``twistd -n chatnet --port 8080``.

This directory deliberately has no ``__init__.py``; it shares the
``twisted.plugins`` namespace with Twisted itself.
"""

from twisted.application.service import ServiceMaker

chatnet = ServiceMaker(
    "chatnet",
    "chatnet.tap",
    "A multi-user chat and file-sharing server (chatnet protocol v1).",
    "chatnet",
)
