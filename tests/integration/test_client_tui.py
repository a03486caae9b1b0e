"""The full-screen client end to end, in tmux against a real server."""

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import CLIENT, Server, start_client, start_server
from support.tmux import TMUX, Tmux

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh server for the test, stopped afterwards."""
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
        srv.kill()


def test_interactive_session(server: Server, tmp_path: Path) -> None:
    """
    Log in when asked, join, see another user's message without pressing a
    key, watch progress bars reach 100% both ways, leave with Ctrl+C.
    """
    home = tmp_path / "alice"
    home.mkdir()
    ui = Tmux([sys.executable, str(CLIENT), "127.0.0.1", str(server.port)], home)
    bob = start_client(server.port, "-u", "bob", cwd=tmp_path / "bob", name="bob")
    try:
        ui.wait_for(r"Choose a username")
        ui.wait_for(r"^Username:")
        bob.out.wait_for(r"^\[ok\] logged in as bob")
        ui.type("bob")  # taken: asked again
        ui.wait_for(r"Username 'bob' is already taken; choose another$")  # said once
        assert "Choose another username" not in ui.screen()
        ui.type("alice")
        ui.wait_for(r"logged in as alice")
        ui.wait_for(r"^ alice \| no room")
        ui.send("/jo", "Tab")
        ui.wait_for(r"^> /join\s*$")
        ui.type("lobby")
        ui.wait_for(r"\[ok\] joined lobby \(1 here: alice\)")

        bob.send("/join lobby")
        ui.wait_for(r"\[lobby\] \* bob joined")
        ui.wait_for(r"\| room lobby \(2\)")  # names in the list beside the messages
        ui.wait_for(r"lobby \(2\)\s*\n(.*\n)?.*alice\s*\n.*bob\s*$")
        bob.send("hello from bob")
        ui.wait_for(r"^\d\d:\d\d:\d\d \[lobby\] bob: hello from bob")  # no key pressed

        ui.type("hi bob")
        bob.out.wait_for(r"^\[lobby\] alice: hi bob$")

        incoming = os.urandom(2_500_000)
        (tmp_path / "bob" / "photo.png").write_bytes(incoming)
        bob.send("/sendfile photo.png alice")
        ui.wait_for(r"bob offers photo\.png \(2\.4 MiB\): accept\? \[y/N\]", timeout=30)
        ui.type("y")
        ui.wait_for(r"down #\d+ photo\.png <- bob .*100% 2\.4 MiB/2\.4 MiB", timeout=30)
        ui.wait_for(r"\[file\] received photo\.png from bob \(2\.4 MiB\), sha256 matched")
        assert (home / "downloads" / "photo.png").read_bytes() == incoming

        outgoing = os.urandom(1_500_000)
        (home / "notes.txt").write_bytes(outgoing)
        ui.send("/sendfile not", "Tab")
        ui.wait_for(r"^> /sendfile notes\.txt\s*$")
        ui.type("bob")
        ui.wait_for(r"up   #\d+ notes\.txt -> bob .*100% ", timeout=30)
        ui.wait_for(r"\[file\] bob received notes\.txt, sha256 verified", timeout=30)
        bob.out.wait_for(r"^\[file\] received notes\.txt from alice")
        assert (tmp_path / "bob" / "downloads" / "notes.txt").read_bytes() == outgoing

        ui.type("/frobnicate")
        ui.wait_for(r"Unknown command /frobnicate")

        ui.resize(50, 16)
        ui.wait_for(r"^ alice \| room lobby \(2: alice, bob\)")
        bob.send("after the resize, a long line that has to wrap on a narrow screen")
        # Wrapped rows start under the text, not under the time.
        ui.wait_for(r"\[lobby\] bob: after the resize, a long\s*\n {9}line that has to wrap")
        assert ui.screen().rstrip().endswith(">")

        ui.send("C-c")
        assert ui.wait_exit() == 0
        bob.out.wait_for(r"^\[lobby\] \* alice left$")
    finally:
        ui.close()
        bob.kill()


def test_screen_scrollback_nicks_and_keys(server: Server, tmp_path: Path) -> None:
    """
    On a real terminal: the member list beside the messages, '-- more --'
    while scrolled up, End back down, a long message whole after scrolling
    back, a mention highlighted, Tab addressing a nick, /help listing keys.
    """
    home = tmp_path / "alice"
    home.mkdir()
    ui = Tmux([sys.executable, str(CLIENT), "127.0.0.1", str(server.port), "-u", "alice"],
              home, width=110, height=24)
    bob = start_client(server.port, "-u", "bob", cwd=tmp_path / "bob", name="bob")
    try:
        ui.wait_for(r"logged in as alice")
        ui.type("/join lobby")
        ui.wait_for(r"\[ok\] joined lobby")
        bob.send("/join lobby")
        ui.wait_for(r"lobby \(2\)\s*$")  # the member list's title, at the right
        ui.wait_for(r"^\d\d:.*\s+bob\s*$")
        for i in range(40):
            bob.send(f"filler {i}")
        ui.wait_for(r"bob: filler 39")

        ui.send("PPage")
        ui.wait_for(r"^ alice \| room lobby \(2\)")
        bob.send("while you were away")
        ui.wait_for(r"^ -- more \(1\) --")
        assert "while you were away" not in ui.screen()
        ui.send("End")
        ui.wait_for(r"bob: while you were away")
        assert "-- more" not in ui.screen()

        ui.send("PPage")
        ui.send("NPage")
        ui.send("NPage")
        long = " ".join(f"w{i:03d}" for i in range(200)) + " END"
        bob.send(long)
        ui.wait_for(r"END\s*(│|\|)?\s")  # the last row is on screen...
        ui.wait_for(r"bob: w000 w001")  # ...and so is the first

        ui.send("c", "a", "b", "o", "Tab")  # no such nick: left alone
        ui.send("C-u")
        ui.send("b", "o", "Tab")
        ui.wait_for(r"^> bob:\s*$")
        ui.type("hello")
        bob.out.wait_for(r"^\[lobby\] alice: bob: hello$")

        assert not ui.rang()  # plain messages do not ring
        bob.send("alice: are you there?")
        ui.wait_for(r"bob: alice: are you there\?")
        assert ui.rang()  # a mention does (--bell mentions, the default)
        coloured = ui.coloured_screen().splitlines()
        (mention,) = [row for row in coloured if "are you there" in row]
        (plain,) = [row for row in coloured if "bob: w000" in row]
        yellow_background = re.compile(r"\x1b\[(4|10)3m")  # highlighted
        assert yellow_background.search(mention) and not yellow_background.search(plain)

        ui.type("/help")
        ui.wait_for(r"^\d\d:\d\d:\d\d Keys:")
        ui.wait_for(r"Page Up, Page Down")
        ui.send("C-c")
        assert ui.wait_exit() == 0
    finally:
        ui.close()
        bob.kill()
