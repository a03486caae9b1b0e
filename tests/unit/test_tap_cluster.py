"""Tests for the cluster options of :mod:`chatnet.tap` (``--cluster`` and its company)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from twisted.python.usage import UsageError

from chatnet.cluster.keys import Address
from chatnet.config import ClusterSettings
from chatnet.tap import CLUSTER_OPTIONS, Options, makeService, warnings

URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def refused(*args: str) -> str:
    with pytest.raises(UsageError) as info:
        parse(*args)
    return str(info.value)


def cluster_of(*args: str) -> ClusterSettings:
    cluster = parse("--cluster", URL, "--node-id", "a", *args).settings.cluster
    assert cluster is not None
    return cluster


def test_single_server_by_default() -> None:
    """Without --cluster there are no cluster settings, and the login limits are unchanged."""
    settings = parse().settings
    assert settings.cluster is None and "upload_per_node" not in settings.limits()


def test_cluster_defaults() -> None:
    """--cluster alone: the given URL, the short host name, the contract's lease, shared slots."""
    host = socket.gethostname().split(".")[0]
    cluster = parse("--cluster", URL).settings.cluster
    assert cluster == ClusterSettings(URL, host)
    assert (cluster.lease, cluster.prefix, cluster.slots, cluster.password) == (10.0, "chatnet", "cluster", None)
    assert cluster.files == "tcp:0:interface=127.0.0.1" and cluster.files_host() == "127.0.0.1"
    assert parse("--cluster", URL).settings.limits()["upload_per_node"] == 0


def test_every_cluster_option_reaches_the_settings() -> None:
    """Each option lands in its field."""
    cluster = cluster_of(
        "--node-id", "node-2.eu_west", "--cluster-lease", "2.5", "--cluster-prefix", "chat:prod",
        "--upload-slots-scope", "node", "--cluster-files", "tcp:9200:interface=0.0.0.0",
        "--cluster-advertise", "node2.example.org",
    )
    assert cluster == ClusterSettings(
        URL, "node-2.eu_west", lease=2.5, prefix="chat:prod", slots="node",
        files="tcp:9200:interface=0.0.0.0", advertise="node2.example.org",
    )
    assert cluster.files_host() == "node2.example.org"
    assert parse("--cluster", URL, "--upload-slots-scope", "node").settings.limits()["upload_per_node"] == 1


def test_bare_port_for_the_files_endpoint_needs_an_advertised_host() -> None:
    """A bare port listens on every interface: the other nodes need to be told a host."""
    message = refused("--cluster", URL, "--cluster-files", "9200")
    assert message.startswith("--cluster-advertise: needed") and "tcp:9200" in message
    assert cluster_of("--cluster-files", "9200", "--cluster-advertise", "10.0.0.7").files == "tcp:9200"


def test_rediss_is_tls() -> None:
    """rediss:// asks for TLS; the address keeps the host for checking the certificate."""
    cluster = parse("--cluster", "rediss://redis.example.org:6380/2").settings.cluster
    assert cluster is not None
    assert cluster.address() == Address("redis.example.org", 6380, 2, tls=True)


@pytest.mark.parametrize("option", CLUSTER_OPTIONS)
def test_cluster_options_need_cluster(option: str, tmp_path: Path) -> None:
    """A cluster-only option without --cluster is refused, naming it."""
    value = {"cluster-lease": "5", "upload-slots-scope": "node", "cluster-files": "tcp:0:interface=127.0.0.1",
             "cluster-advertise": "h", "cluster-password-file": str(tmp_path / "pw")}.get(option, "x")
    message = refused(f"--{option}", value)
    assert message == f"--{option}: only for a cluster node; give --cluster URL too"


def test_several_cluster_options_without_cluster_all_named() -> None:
    assert refused("--node-id", "a", "--cluster-lease", "3").startswith("--node-id, --cluster-lease: only")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--cluster", "http://h"], "--cluster: not a redis:// or rediss:// URL"),
        (["--cluster", "redis://h:port"], "--cluster: bad port or database"),
        (["--cluster", "redis://h/x"], "--cluster: bad port or database"),
        (["--cluster", "redis://h?db=1"], "--cluster: options in a Redis URL"),
        (["--node-id", "bad id"], "--node-id: 'bad id' is not a node id: 1-64 letters"),
        (["--node-id", "a" * 65], "--node-id:"),
        (["--node-id", ""], "--node-id:"),
        (["--cluster-lease", "0"], "--cluster-lease: must be greater than 0"),
        (["--cluster-lease", "-3"], "--cluster-lease: must be greater than 0"),
        (["--cluster-lease", "0.5"], "--cluster-lease: at least 1 second"),
        (["--cluster-lease", "nan"], "--cluster-lease: expected a finite number"),
        (["--cluster-lease", "soon"], "--cluster-lease: expected a number"),
        (["--cluster-prefix", "a b"], "--cluster-prefix: bad cluster key prefix"),
        (["--cluster-prefix", ""], "--cluster-prefix: bad cluster key prefix"),
        (["--upload-slots-scope", "room"], "--upload-slots-scope: 'room' is not one of cluster, node"),
        (["--cluster-files", "unix:/tmp/x.sock"], "--cluster-files: 'unix:/tmp/x.sock' is not a tcp: or tcp6:"),
        (["--cluster-files", "tcp:notaport:interface=127.0.0.1"], "--cluster-files: 'tcp:notaport"),
        (["--cluster-files", "70000"], "--cluster-files: port 70000 is out of range"),
        (["--cluster-advertise", "not a host"], "--cluster-advertise: 'not a host' is not a host name"),
    ],
)
def test_bad_cluster_values(args: list[str], words: str) -> None:
    """Bad values are usage errors naming the option and saying why."""
    base = ["--cluster", URL, "--node-id", "a"]
    assert words in refused(*base, *args)


def test_node_id_from_a_host_name_that_is_no_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name that cannot be a node id asks for --node-id, not a traceback."""
    monkeypatch.setattr(socket, "gethostname", lambda: "my_host!.example.org")
    message = refused("--cluster", URL)
    assert message.startswith("--node-id: needed") and "'my_host!'" in message
    monkeypatch.setattr(socket, "gethostname", lambda: "web-3.example.org")
    assert cluster_of_default() == "web-3"


def cluster_of_default() -> str:
    cluster = parse("--cluster", URL).settings.cluster
    assert cluster is not None
    return cluster.node_id


def test_password_file(tmp_path: Path) -> None:
    """The file's one line, stripped, is the password; the URL keeps none."""
    path = tmp_path / "redis.pw"
    path.write_text("  s3cret:with spaces inside \n\n")
    path.chmod(0o600)
    cluster = cluster_of("--cluster-password-file", str(path))
    assert cluster.password == "s3cret:with spaces inside"
    assert cluster.address().password == "s3cret:with spaces inside"
    assert "s3cret" not in repr(cluster)


def test_password_file_errors(tmp_path: Path) -> None:
    """Unreadable, empty, several lines, or a password in the URL too: each says so."""
    missing = tmp_path / "missing"
    message = refused("--cluster", URL, "--cluster-password-file", str(missing))
    assert message == f"--cluster-password-file: cannot read {missing}: No such file or directory"
    path = tmp_path / "pw"
    path.write_text("\n  \n")
    assert "is empty" in refused("--cluster", URL, "--cluster-password-file", str(path))
    path.write_text("secret-1\nsecret-2\n")
    message = refused("--cluster", URL, "--cluster-password-file", str(path))
    assert "more than one line" in message and "secret-" not in message
    path.write_bytes(b"\xff\xfe")
    assert "not UTF-8" in refused("--cluster", URL, "--cluster-password-file", str(path))
    path.write_text("pw\n")
    message = refused("--cluster", "redis://:hunter2@h", "--cluster-password-file", str(path))
    assert message.startswith("--cluster-password-file: the --cluster URL")
    assert "carries a password too" in message and "hunter2" not in message
    assert "is a directory" in refused("--cluster", URL, "--cluster-password-file", str(tmp_path)).lower()


def test_password_from_the_url() -> None:
    """A password in the URL is used (and warned about: the process list shows it)."""
    options = parse("--cluster", "redis://:hunter2@127.0.0.1", "--node-id", "a")
    assert options.settings.cluster is not None
    assert options.settings.cluster.address().password == "hunter2"
    (warning,) = warnings(options)
    assert "process list" in warning and "--cluster-password-file" in warning and "hunter2" not in warning


def test_password_file_open_to_others_warned(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("pw\n")
    path.chmod(0o640)
    (warning,) = warnings(parse("--cluster", URL, "--cluster-password-file", str(path)))
    assert "0640" in warning and f"chmod 600 {path}" in warning
    path.chmod(0o400)
    assert warnings(parse("--cluster", URL, "--cluster-password-file", str(path))) == []


def test_cluster_without_txredisapi(monkeypatch: pytest.MonkeyPatch) -> None:
    """--cluster without the cluster extra says which to install."""
    monkeypatch.setitem(sys.modules, "txredisapi", None)
    message = refused("--cluster", URL, "--node-id", "a")
    assert message.startswith("--cluster: needs txredisapi") and "pip install 'chatnet[cluster]'" in message
    assert parse().settings.cluster is None  # a single server does not care


def test_single_server_never_imports_txredisapi(tmp_path: Path) -> None:
    """Without --cluster, neither parsing the options nor making the service loads txredisapi."""
    code = textwrap.dedent(f"""
        import sys
        from chatnet.tap import Options, makeService
        options = Options()
        options.parseOptions(["--port", "0", "--audit-log", {str(tmp_path / "a.log")!r},
                              "--metrics", "tcp:0:interface=127.0.0.1"])
        makeService(options)
        assert "txredisapi" not in sys.modules, "txredisapi was imported"
        assert not [m for m in sys.modules if m.startswith("chatnet.cluster.") and m not in
                    ("chatnet.cluster.keys",)], sorted(m for m in sys.modules if m.startswith("chatnet.cluster"))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr


def test_cluster_reaches_the_service(tmp_path: Path) -> None:
    """makeService hands the cluster settings to the service with the rest."""
    options = parse("--cluster", URL, "--node-id", "a", "--port", "0", "--audit-log", str(tmp_path / "a.log"))
    service = makeService(options)
    assert service.settings.cluster == ClusterSettings(URL, "a")


def test_help_lists_the_cluster_options() -> None:
    """Every cluster option is in --help, with what it defaults to."""
    text = " ".join(str(Options()).split())
    for option in ("--cluster=", *(f"--{o}=" for o in CLUSTER_OPTIONS)):
        assert option in text, option
    for default in ("[default: off, a single server]", "[default: the short host name]", "[default: 10]",
                    "[default: chatnet]", "[default: cluster]", "[default: tcp:0:interface=127.0.0.1",
                    "[default: the interface it listens on]", "rediss://", "pip install 'chatnet[cluster]'"):
        assert default in text, default


def test_readme_lists_every_option() -> None:
    """The README's option table has a row for every option --help shows."""
    readme = (ROOT / "README.rst").read_text()
    options = Options()
    names = [p[0] for p in options.optParameters] + [f[0] for f in options.optFlags]
    for name in names:
        assert f"``--{name}``" in readme, name


def test_cluster_ca(tmp_path: Path) -> None:
    """--cluster-ca takes a PEM file of certificates, for rediss:// only, checked at start."""
    pytest.importorskip("OpenSSL")
    from support.tls import make_certificate

    _, cert = make_certificate(tmp_path)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"# two authorities\n" + cert.read_bytes() * 2)
    cluster = parse("--cluster", "rediss://127.0.0.1", "--node-id", "a", "--cluster-ca", str(bundle)).settings.cluster
    assert cluster is not None and cluster.ca == str(bundle)
    assert parse("--cluster", "rediss://127.0.0.1").settings.cluster.ca is None  # type: ignore[union-attr]
    assert refused("--cluster", URL, "--cluster-ca", str(cert)) == "--cluster-ca: only for a rediss:// URL (TLS)"
    message = refused("--cluster", "rediss://h", "--cluster-ca", str(tmp_path / "none.pem"))
    assert message == f"--cluster-ca: cannot read {tmp_path / 'none.pem'}: No such file or directory"
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    assert "holds no PEM certificate" in refused("--cluster", "rediss://h", "--cluster-ca", str(empty))
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert "does not parse" in refused("--cluster", "rediss://h", "--cluster-ca", str(broken))


def test_plain_redis_across_machines_warned() -> None:
    """redis:// to another machine is warned about (clear text); loopback and rediss:// are not."""
    (warning,) = warnings(parse("--cluster", "redis://10.0.0.9:6379/0"))
    assert "10.0.0.9 is reached without TLS" in warning and "rediss://" in warning
    for url in ("redis://127.0.0.1", "redis://localhost", "redis://[::1]", "rediss://10.0.0.9"):
        assert warnings(parse("--cluster", url)) == [], url
