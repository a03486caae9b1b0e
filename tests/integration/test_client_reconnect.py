"""
The client outlives its server: real ``twistd -n chatnet`` processes killed
(``kill -9``) and restarted on the same port, or a second server to move to.
"""

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import CLIENT, Server, start_client, start_server
from support.relay import Relay
from support.tmux import TMUX, Tmux

pytestmark = pytest.mark.scenario


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; all stopped afterwards."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in started:
            server.kill()


def test_line_mode_reconnects_to_the_restarted_server(servers: list[Server], tmp_path: Path) -> None:
    """
    kill -9, restart on the same port: the client says it lost the server,
    comes back as alice in groupA, and chats on; lines typed meanwhile wait.
    """
    first = start_server(tmp_path / "s1")
    servers.append(first)
    alice = start_client(first.port, "-u", "alice", cwd=tmp_path / "alice", name="alice")
    try:
        alice.send("/join groupA")
        alice.out.wait_for(r"^\[ok\] joined groupA")
        first.proc.send_signal(signal.SIGKILL)
        first.wait()
        alice.out.wait_for(r"^\[disconnected\] the server closed the connection .*"
                           rf"reconnecting to 127\.0\.0\.1:{first.port} in ")
        alice.send("typed while the server was away")
        second = start_server(tmp_path / "s2", port=first.port)
        servers.append(second)
        alice.out.wait_for(rf"^\[ok\] reconnected to 127\.0\.0\.1:{first.port} as alice, "
                           r"back in groupA$", timeout=40)
        bob = start_client(second.port, "-u", "bob", cwd=tmp_path / "bob", name="bob")
        try:
            bob.send("/join groupA")
            bob.out.wait_for(r"^\[ok\] joined groupA \(2 here: alice, bob\)")
            alice.out.wait_for(r"^\[groupA\] alice: typed while the server was away$")
            bob.send("welcome back")
            alice.out.wait_for(r"^\[groupA\] bob: welcome back$")
        finally:
            bob.kill()
        alice.close_stdin()
        assert alice.wait() == 0, alice.describe()
    finally:
        alice.kill()


def test_line_mode_moves_to_the_next_server(servers: list[Server], tmp_path: Path) -> None:
    """``host:port host:port``: the first one killed, the client moves to the second."""
    one = start_server(tmp_path / "s1")
    two = start_server(tmp_path / "s2")
    servers.extend([one, two])
    alice = start_client(None, f"127.0.0.1:{one.port}", f"127.0.0.1:{two.port}", "-u", "alice",
                         cwd=tmp_path / "alice", name="alice")
    try:
        alice.send("/join groupA")
        alice.out.wait_for(r"^\[ok\] joined groupA")
        one.proc.send_signal(signal.SIGKILL)
        one.wait()
        alice.out.wait_for(rf"^\[ok\] reconnected to 127\.0\.0\.1:{two.port} as alice, "
                           r"back in groupA$", timeout=40)
        assert "connection refused" in alice.out.text  # the first one was tried, then the next
        alice.send("/who")
        alice.out.wait_for(r"^\[who\] groupA: alice \(1\)$")
        alice.close_stdin()
        assert alice.wait() == 0, alice.describe()
    finally:
        alice.kill()


def test_no_reconnect_exits_with_the_status(servers: list[Server], tmp_path: Path) -> None:
    """``--no-reconnect``: the loss ends line mode with status 6, as before."""
    server = start_server(tmp_path / "s1")
    servers.append(server)
    alice = start_client(server.port, "-u", "alice", "--no-reconnect", cwd=tmp_path / "a",
                         name="alice")
    try:
        alice.out.wait_for(r"^\[ok\] logged in")
        server.proc.send_signal(signal.SIGKILL)
        assert alice.wait() == 6, alice.describe()
        assert "the server closed the connection (it stopped or went away)" in alice.err.text
        assert "reconnecting" not in alice.out.text
    finally:
        alice.kill()


def test_line_mode_gives_up(servers: list[Server], tmp_path: Path) -> None:
    """Nothing comes back within ``--retry-for``: status 6, saying why."""
    server = start_server(tmp_path / "s1")
    servers.append(server)
    alice = start_client(server.port, "-u", "alice", "--retry-for", "2", cwd=tmp_path / "a",
                         name="alice")
    try:
        alice.out.wait_for(r"^\[ok\] logged in")
        server.proc.send_signal(signal.SIGKILL)
        assert alice.wait() == 6, alice.describe()
        assert "giving up: no working connection for" in alice.err.text
    finally:
        alice.kill()


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")
def test_full_screen_stays_and_reconnects(servers: list[Server], tmp_path: Path) -> None:
    """
    The full-screen client in tmux: kill -9 of its server leaves the window
    with its scrollback, marked disconnected; restarted on the same port, it
    is back as alice in groupA, and chat goes on.
    """
    first = start_server(tmp_path / "s1")
    servers.append(first)
    home = tmp_path / "alice"
    home.mkdir()
    ui = Tmux([sys.executable, str(CLIENT), "127.0.0.1", str(first.port), "-u", "alice"], home)
    bob = start_client(first.port, "-u", "bob", "--no-reconnect", cwd=tmp_path / "bob", name="bob")
    try:
        ui.wait_for(r"logged in as alice")
        ui.type("/join groupA")
        ui.wait_for(r"\[ok\] joined groupA")
        bob.send("/join groupA", "before the crash")
        ui.wait_for(r"\[groupA\] bob: before the crash")

        first.proc.send_signal(signal.SIGKILL)
        first.wait()
        ui.wait_for(r"\[disconnected\] the server closed the connection")
        ui.wait_for(r"^ DISCONNECTED")  # the status bar
        assert "before the crash" in ui.screen()  # the scrollback stays
        ui.type("not sent")
        ui.wait_for(r"Not sent: disconnected")

        second = start_server(tmp_path / "s2", port=first.port)
        servers.append(second)
        ui.wait_for(rf"\[ok\] reconnected to 127\.0\.0\.1:{first.port} as alice, back in groupA",
                    timeout=40)
        ui.wait_for(r"^ alice \| room groupA \(1\)")  # the status bar, connected again
        carol = start_client(second.port, "-u", "carol", cwd=tmp_path / "carol", name="carol")
        try:
            carol.send("/join groupA", "after the restart")
            ui.wait_for(r"\[groupA\] bob: before the crash(.*\n)+.*\[groupA\] carol: after the restart")
            ui.type("welcome")
            carol.out.wait_for(r"^\[groupA\] alice: welcome$")
        finally:
            carol.kill()

        second.stop()  # a clean stop this time: its message stays on screen
        ui.wait_for(r"\[server\] shutting down: ")
        ui.wait_for(r"\[disconnected\] the server shut down; reconnecting")
        assert "Server shut down" not in ui.screen(), ui.screen()  # its message once
        ui.wait_for(r"^ DISCONNECTED")
        assert "before the crash" in ui.screen() and "welcome" in ui.screen()
        ui.send("C-c")
        assert ui.wait_exit() == 0
    finally:
        ui.close()
        bob.kill()


def test_name_still_held_by_the_old_session(servers: list[Server], tmp_path: Path) -> None:
    """
    Only the client's side of the path dies: the server still has alice, so
    the new login is refused as taken; the client says so, waits, and gets
    in once the server lets the old session go.
    """
    server = start_server(tmp_path / "s1")
    servers.append(server)
    relay = Relay(server.port)
    alice = start_client(relay.port, "-u", "alice", cwd=tmp_path / "alice", name="alice")
    try:
        alice.send("/join groupA")
        alice.out.wait_for(r"^\[ok\] joined groupA")
        relay.cut_clients()
        taken = alice.out.wait_for(
            rf"^\[disconnected\] alice is still logged in on 127\.0\.0\.1:{relay.port} "
            r"\(the old session, until the server notices it is gone\); reconnecting to "
            rf"127\.0\.0\.1:{relay.port} in (\S+) s")
        assert float(taken.group(1)) >= 5.0
        relay.release()
        alice.out.wait_for(rf"^\[ok\] reconnected to 127\.0\.0\.1:{relay.port} as alice, "
                           r"back in groupA$", timeout=40)
        alice.close_stdin()
        assert alice.wait() == 0, alice.describe()
    finally:
        alice.kill()
        relay.close()
