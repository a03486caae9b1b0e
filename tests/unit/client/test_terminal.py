"""Tests for :mod:`chatnet.client.terminal`: options and the choice of mode."""

from typing import Any

import pytest

from chatnet.client import terminal


def test_defaults() -> None:
    """``chatnet-client`` alone connects to 127.0.0.1:8080, downloads to ./downloads."""
    args = terminal.parse_args([])
    assert (args.host, args.port, args.username, args.downloads) == (
        "127.0.0.1", 8080, None, "downloads")
    assert not (args.tls or args.json or args.plain)
    assert args.login_timeout == 10.0


def test_positional_and_options() -> None:
    """Host and port as the C original takes them, plus the options."""
    args = terminal.parse_args(["chat.example", "9000", "-u", "alice", "--downloads", "/tmp/d",
                                "--json"])
    assert (args.host, args.port, args.username, args.downloads, args.json) == (
        "chat.example", 9000, "alice", "/tmp/d", True)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["h", "0"], "port 0 is out of range"),
        (["h", "x"], "port 'x' is not a number"),
        (["h:1", "h:x"], "'h:x': the port must be a number"),
        (["--retry-for", "0"], "--retry-for must be more than 0 seconds"),
        (["-u", "bad name"], "Invalid username 'bad name'"),
        (["--ca", "/nonexistent.pem"], "--ca '/nonexistent.pem': no such file"),
        (["--login-timeout", "0"], "--login-timeout must be more than 0 seconds"),
        (["127.0.0.1:8080:5"], "'127.0.0.1:8080:5': expected host:port, [IPv6 address]:port"),
        (["h:1", "a:b:c"], "'a:b:c': expected host:port"),
    ],
)
def test_bad_options(argv: list[str], message: str, capsys: Any) -> None:
    """Bad options exit with status 2 and say what is wrong."""
    with pytest.raises(SystemExit) as info:
        terminal.parse_args(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_ca_implies_tls(tmp_path: Any) -> None:
    """``--ca FILE`` turns TLS on."""
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert terminal.parse_args(["--ca", str(ca)]).tls


def test_mode_choice(monkeypatch: Any) -> None:
    """Full screen only on a terminal and without --plain or --json."""
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert terminal.interactive(terminal.parse_args([]))
    assert not terminal.interactive(terminal.parse_args(["--plain"]))
    assert not terminal.interactive(terminal.parse_args(["--json"]))
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert not terminal.interactive(terminal.parse_args([]))


def test_several_servers() -> None:
    """``host1:8080 host2:8081``: every server, in order; the first is host/port."""
    args = terminal.parse_args(["h1:8080", "h2:8081", "h3"])
    assert [str(s) for s in args.server_list] == ["h1:8080", "h2:8081", "h3:8080"]
    assert (args.host, args.port) == ("h1", 8080)
    assert [str(s) for s in terminal.parse_args(["h", "9"]).server_list] == ["h:9"]
    assert args.reconnect and args.retry_for is None
    assert not terminal.parse_args(["--no-reconnect"]).reconnect


def test_ipv6_servers() -> None:
    """A bare IPv6 address, with or without a zone, or in brackets with a port."""
    servers = terminal.parse_args(["::1", "fe80::1%lo", "[::1]:9000"]).server_list
    assert [(s.host, s.port) for s in servers] == [("::1", 8080), ("fe80::1%lo", 8080), ("::1", 9000)]


def test_downloads_that_is_a_file_is_refused(tmp_path: Any, capsys: Any) -> None:
    """``--downloads`` naming a file: status 2 at once, not a discarded download later."""
    taken = tmp_path / "notes.txt"
    taken.write_text("x")
    with pytest.raises(SystemExit) as info:
        terminal.parse_args(["--downloads", str(taken)])
    assert info.value.code == 2
    assert f"--downloads {str(taken)!r}: not a folder" in capsys.readouterr().err
    assert terminal.parse_args(["--downloads", str(tmp_path / "new")]).downloads == str(tmp_path / "new")
