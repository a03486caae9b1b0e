"""Tests for :mod:`chatnet.accounts`: the accounts file, checks, reloads."""

from __future__ import annotations

import os
from pathlib import Path

import argon2
import pytest

from chatnet.accounts import Accounts, AccountsError, mode_warning, parse_accounts
from chatnet.testing import make_accounts, quick_hasher


def write(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_parse_accounts() -> None:
    """Lines are name:HASH; blanks and comments skipped; names folded; hashes kept whole."""
    h1, h2 = quick_hasher.hash("a"), quick_hasher.hash("b")
    text = f"# comment\n\n  Alice:{h1}  \nBOB:{h2}\n"
    assert parse_accounts(text) == {"alice": h1, "bob": h2}


def test_standard_phc_hashes_from_other_tools() -> None:
    """A hash with argon2-cffi's default parameters, as other tools write it, is accepted."""
    default = argon2.PasswordHasher().hash("s3cret")
    assert default.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    accounts = Accounts(parse_accounts(f"alice:{default}\n"))
    assert accounts.verify("alice", "s3cret")


@pytest.mark.parametrize(
    "text, words",
    [
        ("nocolon", ["line 1", "username:HASH"]),
        ("bad name:$argon2id$x", ["line 1"]),
        (":pw", ["line 1"]),
        ("alice:hunter2", ["line 1", "clear text", "chatnet-passwd --convert FILE",
                           "chatnet-passwd FILE alice"]),
        ("alice:", ["clear text"]),
        ("alice:$6$salt$sha512crypt", ["not an argon2 hash", "chatnet-passwd FILE alice"]),
        ("alice:$argon2id$garbage", ["malformed"]),
    ],
)
def test_parse_errors(text: str, words: list[str]) -> None:
    """Malformed lines stop the server with the line and what to do."""
    with pytest.raises(AccountsError) as info:
        parse_accounts("# first\n" * 0 + text, "accounts.txt")
    message = str(info.value)
    assert message.startswith("accounts.txt, line")
    for word in words:
        assert word in message
    assert "hunter2" not in message


def test_duplicate_names_refused() -> None:
    """A name listed twice, in any case, is an error rather than a silent choice."""
    h = quick_hasher.hash("x")
    with pytest.raises(AccountsError, match="line 2: ALICE is listed twice"):
        parse_accounts(f"alice:{h}\nALICE:{h}\n")


def test_verify() -> None:
    """Right password, wrong password, unknown name; names case-insensitive."""
    accounts = make_accounts({"alice": "s3cret", "bob": ""})
    assert accounts.verify("alice", "s3cret") and accounts.verify("ALICE", "s3cret")
    assert not accounts.verify("alice", "S3cret")
    assert not accounts.verify("carol", "s3cret")
    assert accounts.verify("bob", "") and not accounts.verify("bob", "x")
    assert not accounts.verify("alice", "\udc80")  # lone surrogate: no crash


def test_unknown_names_cost_the_same() -> None:
    """The dummy hash for unknown names has the parameters the file's hashes use."""
    slow = argon2.PasswordHasher(time_cost=2, memory_cost=1024, parallelism=2)
    quick = quick_hasher
    hashes = {"a": slow.hash("x"), "b": slow.hash("y"), "c": quick.hash("z")}
    accounts = Accounts(hashes)
    dummy = argon2.extract_parameters(accounts._dummy)
    assert dummy == argon2.extract_parameters(hashes["a"])
    assert Accounts({})._dummy.startswith("$argon2id$")


def test_reload(tmp_path: Path) -> None:
    """reload() re-reads the file and says what changed; new passwords count at once."""
    path = tmp_path / "accounts"
    a, b = quick_hasher.hash("a"), quick_hasher.hash("b")
    accounts = Accounts.load(write(path, f"alice:{a}\nbob:{b}\n"))
    write(path, f"alice:{quick_hasher.hash('new')}\ncarol:{b}\n")
    changes = accounts.reload()
    assert (changes.added, changes.removed, changes.changed) == (["carol"], ["bob"], ["alice"])
    assert changes.describe() == "added carol; removed bob; password changed for alice"
    assert accounts.verify("alice", "new") and not accounts.verify("alice", "a")
    assert not accounts.verify("bob", "b")
    assert not accounts.reload() and accounts.reload().describe() == "no change"


def test_reload_error_keeps_the_accounts(tmp_path: Path) -> None:
    """A file broken since start is refused on reload; the accounts in use stay."""
    path = tmp_path / "accounts"
    accounts = Accounts.load(write(path, f"alice:{quick_hasher.hash('a')}\n"))
    write(path, "alice:plain\n")
    with pytest.raises(AccountsError, match="clear text"):
        accounts.reload()
    assert accounts.verify("alice", "a")
    os.unlink(path)
    with pytest.raises(AccountsError, match="cannot read"):
        accounts.reload()
    assert accounts.verify("alice", "a")


def test_load_errors(tmp_path: Path) -> None:
    """Missing and non-UTF-8 files are AccountsErrors."""
    with pytest.raises(AccountsError, match="cannot read"):
        Accounts.load(str(tmp_path / "missing"))
    (tmp_path / "latin").write_bytes(b"\xe9t\xe9:x\n")
    with pytest.raises(AccountsError, match="not UTF-8"):
        Accounts.load(str(tmp_path / "latin"))


def test_mode_warning(tmp_path: Path) -> None:
    """A file other users can read (or write) is warned about, with the fix."""
    path = write(tmp_path / "accounts", "", 0o640)
    warning = mode_warning(path)
    assert warning is not None and "0640" in warning and f"chmod 600 {path}" in warning
    os.chmod(path, 0o600)
    assert mode_warning(path) is None
    assert mode_warning(str(tmp_path / "missing")) is None
