"""Tests for :mod:`chatnet.tap`: the ``twistd chatnet`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python.usage import UsageError

from chatnet.config import Settings
from chatnet.service import ChatService
from chatnet.tap import Options, makeService, parse_size, warnings
from chatnet.testing import quick_hasher

MIB = 1024 * 1024


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def refused(*args: str) -> str:
    with pytest.raises(UsageError) as info:
        parse(*args)
    return str(info.value)


def test_defaults_are_the_contract() -> None:
    """With no options: port 8080 and every limit at the contract's default."""
    options = parse()
    assert options["port"] == "tcp:8080"
    assert options.settings == Settings()
    assert options["audit-log"] == "server.log" and options["spool-dir"] is None


@pytest.mark.parametrize(
    "port, expected",
    [("9000", "tcp:9000"), ("0", "tcp:0"), (" 65535 ", "tcp:65535"),
     ("tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1"), ("unix:/tmp/x.sock", "unix:/tmp/x.sock")],
)
def test_port(port: str, expected: str) -> None:
    """A bare port number becomes tcp:PORT; endpoint strings are kept."""
    assert parse("--port", port)["port"] == expected
    assert parse("-p", port)["port"] == expected


@pytest.mark.parametrize(
    "port, words",
    [("70000", "out of range"), ("", "empty"), ("bogus:1", "--port"), ("tcp:notaport", "--port")],
)
def test_bad_port(port: str, words: str) -> None:
    """Bad ports and endpoints are usage errors that say what is wrong."""
    assert words in refused("--port", port)


def test_limits_parsed() -> None:
    """Every limit option reaches the settings."""
    s = parse(
        "--max-clients", "3", "--room-capacity", "2", "--max-text", "100",
        "--max-file-size", "1MiB", "--upload-slots", "1", "--upload-queue", "0",
        "--login-timeout", "2.5", "--shutdown-grace", "0", "--max-output", "64KiB",
        "--stall-timeout", "0",
    ).settings
    assert (s.max_clients, s.room_capacity, s.max_text, s.max_file_size) == (3, 2, 100, MIB)
    assert (s.upload_slots, s.upload_queue, s.login_timeout, s.shutdown_grace) == (1, 0, 2.5, 0.0)
    assert s.max_output == 64 * 1024
    assert s.stall_timeout == 0.0
    assert parse().settings.stall_timeout == 60.0
    assert parse().settings.rate_limit == 0.0
    assert parse().settings.fast_path
    assert not parse("--no-fast-path").settings.fast_path
    assert not parse().settings.nagle and parse("--nagle").settings.nagle
    limited = parse("--rate-limit", "20", "--rate-burst", "50").settings
    assert (limited.rate_limit, limited.burst()) == (20.0, 50)
    assert parse("--rate-limit", "2.5").settings.burst() == 5


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--max-clients", "0", "greater than 0"),
        ("--max-clients", "-5", "greater than 0"),
        ("--max-clients", "many", "--max-clients: expected a whole number"),
        ("--room-capacity", "0", "greater than 0"),
        ("--max-text", "1.5", "--max-text: expected a whole number"),
        ("--max-file-size", "lots", "not a size"),
        ("--max-file-size", "0", "greater than 0"),
        ("--max-file-size", "4GiB", "4 GiB"),
        ("--upload-slots", "0", "greater than 0"),
        ("--upload-queue", "-1", "0 or more"),
        ("--login-timeout", "0", "greater than 0"),
        ("--shutdown-grace", "-1", "0 or more"),
        ("--shutdown-grace", "nan", "--shutdown-grace: expected a finite number"),
        ("--shutdown-grace", "inf", "--shutdown-grace: expected a finite number"),
        ("--login-timeout", "nan", "--login-timeout: expected a finite number"),
        ("--offer-timeout", "inf", "--offer-timeout: expected a finite number"),
        ("--flood-rate", "inf", "--flood-rate: expected a finite number"),
        ("--max-output", "0", "greater than 0"),
        ("--upload-idle-timeout", "0", "greater than 0"),
        ("--stall-timeout", "-1", "--stall-timeout: must be 0 or more"),
        ("--rate-limit", "-2", "--rate-limit: must be 0 or more"),
        ("--rate-burst", "0", "--rate-burst: must be greater than 0"),
        ("--rate-burst", "5", "--rate-burst: needs --rate-limit"),
    ],
)
def test_bad_values(option: str, value: str, words: str) -> None:
    """Bad values are UsageErrors with a message that says why."""
    assert words in refused(option, value)


def test_unknown_option() -> None:
    """An unknown option is a usage error naming it."""
    assert "--colour" in refused("--colour", "red")


@pytest.mark.parametrize(
    "text, size", [("3145728", 3 * MIB), ("3MiB", 3 * MIB), ("3m", 3 * MIB), ("512KiB", 512 * 1024),
                   ("1.5k", 1536), ("1G", 1024 * MIB), ("7b", 7)],
)
def test_parse_size(text: str, size: int) -> None:
    """Sizes take plain bytes or binary units."""
    assert parse_size(text) == size


def test_allow_ext() -> None:
    """--allow-ext restricts file types; * allows all; bad lists are refused."""
    assert parse("--allow-ext", "txt,.PDF, jpg png").settings.allowed_extensions == frozenset(
        {"txt", "pdf", "jpg", "png"})
    assert parse("--allow-ext", "*").settings.allowed_extensions is None
    assert "--allow-ext" in refused("--allow-ext", "t/xt")


def test_accounts(tmp_path: Path) -> None:
    """--accounts reads username:HASH lines, folding names."""
    path = tmp_path / "accounts"
    hashed = quick_hasher.hash("pw:with:colons")
    path.write_text(f"# operators\nAlice:{hashed}\n\nbob:{quick_hasher.hash('x')}\n")
    path.chmod(0o600)
    accounts = parse("--accounts", str(path)).settings.accounts
    assert accounts is not None and accounts.names() == ["alice", "bob"]
    assert accounts.verify("ALICE", "pw:with:colons") and not accounts.verify("alice", "x")


def test_accounts_errors(tmp_path: Path) -> None:
    """A missing file or a bad line is a usage error naming the file and line."""
    assert "cannot read" in refused("--accounts", str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.write_text(f"alice:{quick_hasher.hash('pw')}\nno colon here\n")
    assert "line 2" in refused("--accounts", str(bad))
    bad.write_text("not valid!:pw\n")
    assert "line 1" in refused("--accounts", str(bad))


def test_accounts_in_clear_text_refused(tmp_path: Path) -> None:
    """A clear-text password stops the server, saying how to convert the file."""
    path = tmp_path / "accounts"
    path.write_text(f"alice:{quick_hasher.hash('pw')}\nbob:hunter2\n")
    message = refused("--accounts", str(path))
    assert "line 2" in message and "clear text" in message
    assert "chatnet-passwd --convert FILE" in message and "hunter2" not in message


def test_warnings(tmp_path: Path) -> None:
    """Accounts readable by others, or sent over plain TCP, are warned about."""
    path = tmp_path / "accounts"
    path.write_text(f"alice:{quick_hasher.hash('pw')}\n")
    path.chmod(0o644)
    (loose, clear) = warnings(parse("--accounts", str(path), "--port", "0"))
    assert "0644" in loose and f"chmod 600 {path}" in loose
    assert "plain TCP" in clear and "ssl:" in clear
    path.chmod(0o600)
    assert warnings(parse("--accounts", str(path), "--port", "0")) == [clear]
    assert warnings(parse("--port", "0")) == []


def test_make_service(tmp_path: Path) -> None:
    """makeService builds a ChatService from the options."""
    options = parse("--port", "0", "--audit-log", str(tmp_path / "a.log"),
                    "--spool-dir", str(tmp_path / "spool"), "--room-capacity", "3")
    service = makeService(options)
    assert isinstance(service, ChatService)
    assert service.endpoint == "tcp:0" and service.settings.room_capacity == 3
    assert service.audit_log == str(tmp_path / "a.log")
    assert service.spool_dir == str(tmp_path / "spool")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version and exits."""
    with pytest.raises(SystemExit):
        parse("--version")
    assert capsys.readouterr().out.startswith("chatnet ")


def test_help_lists_options() -> None:
    """The usage text names the options."""
    text = str(Options())
    for option in ("--port", "--max-clients", "--allow-ext", "--shutdown-grace", "--accounts",
                   "--no-fast-path", "--nagle"):
        assert option in text


def test_upload_queue_per_user() -> None:
    """--upload-queue-per-user reaches the settings; 0 is allowed, a negative number is not."""
    assert parse().settings.upload_queue_per_user == 20
    assert parse("--upload-queue-per-user", "0").settings.upload_queue_per_user == 0
    assert "0 or more" in refused("--upload-queue-per-user", "-1")


def test_metrics_option(tmp_path: Path) -> None:
    """--metrics is off by default, takes a port or an endpoint, and reaches the service."""
    assert parse()["metrics"] is None
    assert parse("--metrics", "9108")["metrics"] == "tcp:9108"
    assert "--metrics" in refused("--metrics", "bogus:1")
    options = parse("--metrics", "tcp:0:interface=127.0.0.1", "--audit-log", str(tmp_path / "a.log"))
    assert makeService(options).metrics == "tcp:0:interface=127.0.0.1"
def test_spool_bounds() -> None:
    """The spool bounds reach the settings; auto (the default) is None; too small a spool is refused."""
    s = parse().settings
    assert (s.addressee_spool_files, s.addressee_spool_bytes, s.spool_size) == (16, 48 * MIB, None)
    s = parse("--addressee-spool-files", "3", "--addressee-spool-size", "5MiB",
              "--spool-size", "2GiB").settings
    assert (s.addressee_spool_files, s.addressee_spool_bytes, s.spool_size) == (3, 5 * MIB, 2048 * MIB)
    assert parse("--spool-size", "AUTO").settings.spool_size is None
    assert "greater than 0" in refused("--addressee-spool-files", "0")
    assert "smaller than --max-file-size" in refused("--spool-size", "1MiB")
    assert parse("--spool-size", "1MiB", "--max-file-size", "1MiB").settings.spool_size == MIB


def test_unsafe_spool_dir_refused(tmp_path: Path) -> None:
    """--spool-dir that is a link or writable by others stops the start with a one-line reason."""
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    assert "can be written by others (mode 0777)" in refused("--spool-dir", str(tmp_path / "open"))
    (tmp_path / "link").symlink_to(tmp_path / "open")
    assert "symbolic link" in refused("--spool-dir", str(tmp_path / "link"))
    assert parse("--spool-dir", str(tmp_path / "new"))["spool-dir"] == str(tmp_path / "new")


def test_systemd_port_without_sockets() -> None:
    """A systemd endpoint with no socket passed is a usage error that says so."""
    assert "no such socket was passed" in refused("--port", "systemd:domain=INET:index=0")


def test_audit_format_option(tmp_path: Path) -> None:
    """--audit-format is text by default, json on request, and nothing else."""
    assert parse()["audit-format"] == "text"
    options = parse("--audit-format", "json", "--audit-log", str(tmp_path / "a.log"))
    assert makeService(options).audit_format == "json"
    assert "--audit-format: 'xml' is not one of text, json" in refused("--audit-format", "xml")


def test_protective_limits_parsed() -> None:
    """The flood limit, the per-address limits and the frame deadline: defaults, values, 0 for off."""
    s = parse().settings
    assert (s.flood_rate, s.flood_burst, s.frame_timeout) == (200.0, 1000, 30.0)
    assert (s.max_per_address, s.max_pending_per_address, s.max_pending) == (256, 64, 2000)
    s = parse(
        "--flood-rate", "0", "--flood-burst", "5", "--frame-timeout", "0",
        "--max-per-address", "0", "--max-pending-per-address", "3", "--max-pending", "10",
    ).settings
    assert (s.flood_rate, s.flood_burst, s.frame_timeout) == (0.0, 5, 0.0)
    assert (s.max_per_address, s.max_pending_per_address, s.max_pending) == (0, 3, 10)
    assert "--flood-burst" in refused("--flood-burst", "0")
    assert "--max-pending" in refused("--max-pending", "-1")


def test_ssl_port_without_the_tls_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """ssl: without pyOpenSSL says which extra to install."""
    import sys

    import twisted.internet

    monkeypatch.setitem(sys.modules, "OpenSSL", None)
    monkeypatch.setitem(sys.modules, "twisted.internet.ssl", None)
    monkeypatch.delattr(twisted.internet, "ssl", raising=False)
    message = refused("--port", "ssl:8443:privateKey=k.pem:certKey=c.pem")
    assert "--port:" in message and "pip install 'chatnet[tls]'" in message


def test_ssl_port_with_a_missing_key(tmp_path: Path) -> None:
    """ssl: naming a key file that is not there says so, not a traceback."""
    pytest.importorskip("OpenSSL")
    key = tmp_path / "missing.key"
    message = refused("--port", f"ssl:8443:privateKey={key}:certKey={key}")
    assert message.startswith("--port: ") and f"cannot read {key}: No such file or directory" in message
