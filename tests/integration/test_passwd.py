"""``chatnet-passwd`` as a real process: on a terminal (a pty) and in a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import argon2
import pytest

from chatnet.accounts import Accounts

ROOT = Path(__file__).resolve().parents[2]
PASSWD = ROOT / "bin" / "chatnet-passwd"
verify = argon2.PasswordHasher().verify


def piped(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PASSWD), *args], input=stdin, capture_output=True, text=True,
        timeout=60,
    )


def on_a_terminal(args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run with a pty as its terminal; answer each prompt in turn. :returns: status, output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.execv(sys.executable, [sys.executable, str(PASSWD), *args])
    output = b""
    deadline = time.monotonic() + 30
    pending = list(answers)
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; output so far: {output!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.endswith(b": "):
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


def hashes(path: Path) -> dict[str, str]:
    return dict(
        line.split(":", 1) for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    )


def test_prompts_twice_without_echo(tmp_path: Path) -> None:
    """On a terminal: two unechoed prompts; the file gets an argon2id line, mode 0600."""
    path = tmp_path / "accounts"
    status, output = on_a_terminal([str(path), "alice"], ["s3cret-pw", "s3cret-pw"])
    assert status == 0, output
    assert "New password:" in output and "Again:" in output
    assert "s3cret-pw" not in output
    assert "alice added" in output
    hashed = hashes(path)["alice"]
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and verify(hashed, "s3cret-pw")
    assert path.stat().st_mode & 0o777 == 0o600


def test_different_answers_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "accounts"
    path.write_text("# mine\n")
    status, output = on_a_terminal([str(path), "alice"], ["one", "two"])
    assert status == 1 and "differ" in output
    assert path.read_text() == "# mine\n"


def test_from_standard_input_keeping_other_lines(tmp_path: Path) -> None:
    """In a pipe, the password is one line of input; comments and others stay in place."""
    path = tmp_path / "accounts"
    bob = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("b")
    path.write_text(f"# staff\nalice:{bob}\n\n# guests\nbob:{bob}\n")
    path.chmod(0o644)
    result = piped(str(path), "ALICE", stdin="new pass:word\n")
    assert result.returncode == 0, result.stderr
    assert "ALICE password changed" in result.stdout
    lines = path.read_text().splitlines()
    assert lines[0] == "# staff" and lines[1].startswith("ALICE:$argon2id$")
    assert lines[2:] == ["", "# guests", f"bob:{bob}"]
    assert verify(lines[1].split(":", 1)[1], "new pass:word")
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ["accounts"]  # no temporary file left
    assert Accounts.load(str(path)).verify("alice", "new pass:word")


def test_delete(tmp_path: Path) -> None:
    path = tmp_path / "accounts"
    piped(str(path), "alice", stdin="a\n")
    piped(str(path), "bob", stdin="b\n")
    result = piped("--delete", str(path), "Alice")
    assert result.returncode == 0 and "Alice deleted" in result.stdout
    assert list(hashes(path)) == ["bob"]
    again = piped("--delete", str(path), "alice")
    assert again.returncode == 1 and "no account" in again.stderr


def test_convert_clear_text_file(tmp_path: Path) -> None:
    """--convert hashes the clear-text passwords the server refuses, and keeps the rest."""
    path = tmp_path / "accounts"
    kept = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("c")
    path.write_text(f"# old file\nalice:s3cret\nbob:pass:with:colons\ncarol:{kept}\n")
    result = piped("--convert", str(path))
    assert result.returncode == 0, result.stderr
    assert "2 password(s) hashed (alice, bob)" in result.stdout
    accounts = Accounts.load(str(path))
    assert accounts.verify("alice", "s3cret") and accounts.verify("bob", "pass:with:colons")
    assert hashes(path)["carol"] == kept and path.read_text().startswith("# old file\n")


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["{f}", "bad name"], "x\n", "letters or digits"),
        (["{f}", "alice"], "\n", "empty password"),
        (["{f}"], "", "give USER"),
        (["--convert", "{f}", "alice"], "", "give USER"),
        (["--delete", "{f}/missing", "alice"], "", "No such file"),
        (["{f}", "alice"], "", "no password on standard input"),
        (["{f}/missing/accounts", "alice"], "pw\n", "{f}/missing/accounts: No such file or directory"),
    ],
)
def test_refusals(tmp_path: Path, args: list[str], stdin: str, message: str) -> None:
    result = piped(*[a.format(f=tmp_path / "accounts") for a in args], stdin=stdin)
    assert result.returncode != 0
    assert message.format(f=tmp_path / "accounts") in result.stderr
    assert not (tmp_path / "accounts").exists()
