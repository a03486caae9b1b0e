"""
Why a connection went, in words that name the fix (``--ca``, ``--tls``).

Pure: imports nothing from Twisted; it reads the error's message only.
"""

from __future__ import annotations


def lost_text(message: str, asked: bool, answered: bool) -> str:
    """
    What to tell the user when the connection ended unasked.

    :param message: the connection error's message.
    :param asked: whether we had sent any request (a username).
    :param answered: whether the server had sent anything at all.
    """
    if "certificate verify failed" in message:
        return ("TLS handshake failed: the server's certificate is not trusted "
                "(give its CA with --ca FILE)")
    if "SSL routines" in message or "wrong version number" in message:
        return f"TLS handshake failed ({message}); is the server using TLS?"
    if not asked:
        return ("the server closed the connection before a username was given "
                "(it allows only so long to log in)")
    if not answered:
        return ("the server closed the connection without a word "
                "(if it is a TLS server, use --tls)")
    return f"Connection lost: {message}"
