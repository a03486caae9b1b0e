"""Tests for :mod:`chatnet.client.advice`: why a connection went, in words."""

import pytest

from chatnet.client.advice import lost_text, no_login_reply, not_chatnet


@pytest.mark.parametrize(
    "head, text",
    [
        (b"HTTP", "not a chatnet server (it answered like HTTP)"),
        (b"SSH-", "not a chatnet server (it answered like SSH)"),
        (b"220 ", "not a chatnet server (it greeted like FTP or SMTP)"),
        (b"\x15\x03\x01\x00", "not a chatnet server (it answered with TLS: use --tls)"),
        (b"<htm", "not a chatnet server (it answered '<htm'...)"),
        (b"\x00\x01\x00\x00",
         "not a chatnet server (its first frame would be 65,536 bytes; at most 65,541 are allowed)"),
    ],
)
def test_not_chatnet(head: bytes, text: str) -> None:
    """The four bytes read as a length name the protocol that sent them."""
    assert not_chatnet(int.from_bytes(head, "big")) == text


def test_http_length_from_the_issue() -> None:
    """1,213,486,160 is ``HTTP``."""
    assert not_chatnet(1_213_486_160) == "not a chatnet server (it answered like HTTP)"


def test_lost_wording() -> None:
    """A server that closed, a connection reset, and no answer to login, each said plainly."""
    assert lost_text("Connection was closed cleanly.", True, True, clean=True) == (
        "the server closed the connection (it stopped or went away)")
    assert lost_text(
        "Connection to the other side was lost in a non-clean fashion: "
        "[Errno 104] Connection reset by peer.", True, True) == (
        "the connection to the server was lost ([Errno 104] Connection reset by peer)")
    assert lost_text("Connection to the other side was lost in a non-clean fashion.", True, True) == (
        "the connection to the server was lost")
    assert no_login_reply(10) == (
        "no answer to login within 10 s: the server is stuck, or it is not a chatnet server")
