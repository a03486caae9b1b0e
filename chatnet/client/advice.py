"""
Why a connection went, in words that name the fix (``--ca``, ``--tls``).

Pure: imports nothing from Twisted; it reads the error's message only.
"""

from __future__ import annotations

from chatnet.codec import MAX_PAYLOAD

#: What a peer that is not a chatnet server answers first, by the first four
#: bytes (which a chatnet client reads as a frame's length).
_GREETINGS = {
    b"HTTP": "it answered like HTTP",
    b"SSH-": "it answered like SSH",
    b"220 ": "it greeted like FTP or SMTP",
    b"220-": "it greeted like FTP or SMTP",
    b"* OK": "it greeted like IMAP",
    b"+OK ": "it greeted like POP3",
}


def lost_text(message: str, asked: bool, answered: bool, clean: bool = False) -> str:
    """
    What to tell the user when the connection ended unasked.

    :param message: the connection error's message.
    :param asked: whether we had sent any request (a username).
    :param answered: whether the server had sent anything at all.
    :param clean: whether the server closed the connection (rather than it
        being reset or lost): a server that stopped, or was killed, does so.
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
    if clean:
        return "the server closed the connection (it stopped or went away)"
    detail = message.partition(": ")[2].rstrip(".")
    return "the connection to the server was lost" + (f" ({detail})" if detail else "")


def not_chatnet(length: int) -> str:
    """
    What to say when the very first frame announces ``length`` bytes, more
    than the protocol allows: its four length bytes were the start of some
    other protocol's answer (``HTTP`` reads as 1,213,486,160).
    """
    head = length.to_bytes(4, "big")
    if head in _GREETINGS:
        why = _GREETINGS[head]
    elif 0x14 <= head[0] <= 0x17 and head[1] == 0x03:
        why = "it answered with TLS: use --tls"
    elif all(0x20 <= b < 0x7F for b in head):
        why = f"it answered {head.decode('ascii')!r}..."
    else:
        why = f"its first frame would be {length:,} bytes; at most {MAX_PAYLOAD:,} are allowed"
    return f"not a chatnet server ({why})"


def no_login_reply(seconds: float) -> str:
    """What to say when ``login`` got no answer in time."""
    return (f"no answer to login within {seconds:g} s: the server is stuck, "
            "or it is not a chatnet server")
