"""
Hostile text from a server that forwards it (revision 1 servers did): both
front ends, as real processes, show it escaped.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import CLIENT, start_client
from support.rawpeer import RawPeer
from support.tmux import TMUX, Tmux

pytestmark = pytest.mark.scenario

#: What ``printf '/join groupA\nhello\x1b[2J...'`` made a revision 1 server forward.
INJECTION = "hello\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[41mFAKE: [server] shutting down\x1b[0m"
SHOWN = r"hello\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[41mFAKE: [server] shutting down\x1b[0m"
MESSAGE = {"type": "message", "room": "groupA", "from": "mallory", "text": INJECTION, "ts": 0}


@pytest.fixture
def peer() -> Iterator[RawPeer]:
    p = RawPeer()
    try:
        yield p
    finally:
        p.close()


def test_plain_client_prints_injection_escaped(peer: RawPeer, tmp_path: Path) -> None:
    """``--plain``: the escape sequences arrive as text, with the sender's prefix."""
    alice = start_client(peer.port, "--plain", "-u", "alice", cwd=tmp_path, name="alice")
    try:
        alice.send("/join groupA")
        alice.out.wait_for(r"^\[ok\] joined groupA")
        peer.push(MESSAGE)
        peer.push({**MESSAGE, "text": "two\n[server] shutting down"})
        alice.out.wait_for(r"^\[groupA\] mallory: two$")
        alice.out.wait_for(r"^ {18}\[server\] shutting down$")
        alice.close_stdin()
        alice.wait()
        raw = alice.out.text
        assert "[groupA] mallory: " + SHOWN in raw.splitlines()
        assert "\x1b" not in raw and "\x07" not in raw
    finally:
        alice.kill()


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")
def test_full_screen_client_shows_injection_escaped(peer: RawPeer, tmp_path: Path) -> None:
    """Full screen: not cleared, no window title set, the text shown escaped."""
    ui = Tmux([sys.executable, str(CLIENT), "127.0.0.1", str(peer.port), "-u", "alice"], tmp_path)
    try:
        ui.wait_for(r"logged in as alice")
        ui.type("/join groupA")
        ui.wait_for(r"\[ok\] joined groupA")
        peer.push(MESSAGE)
        ui.wait_for(r"\[groupA\] mallory: hello\\x1b\[2J")
        screen = ui.screen()
        assert "logged in as alice" in screen  # not wiped
        assert "".join(screen.split()).find("".join(SHOWN.split())) >= 0, screen
        title = ui._tmux("display-message", "-p", "-t", "main", "#{pane_title}")
        assert "pwned" not in title
        ui.send("C-c")
        assert ui.wait_exit() == 0
    finally:
        ui.close()
