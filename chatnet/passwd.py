"""
``chatnet-passwd``: set, delete or convert passwords in an accounts file.

::

    chatnet-passwd FILE USER            set USER's password (asked twice, unechoed)
    chatnet-passwd --delete FILE USER   remove USER
    chatnet-passwd --convert FILE       hash every clear-text password in FILE

When standard input is not a terminal the password is read from it (one
line), for scripts.  The file is rewritten atomically, with mode 0600, and
its other lines and comments are kept as they were.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
from collections.abc import Sequence

import argon2

from chatnet import validation
from chatnet.accounts import is_argon2_hash
from chatnet.errors import ChatError

_hasher = argon2.PasswordHasher()


class Refused(Exception):
    """A message for the user, and exit status 1."""


def _key(line: str) -> str | None:
    """The folded user name a line sets, or ``None`` (blank, comment)."""
    text = line.strip()
    if not text or text.startswith("#") or ":" not in text:
        return None
    return validation.fold(text.partition(":")[0])


def set_password(lines: list[str], user: str, password: str) -> tuple[list[str], bool]:
    """``lines`` with ``user``'s line set; :returns: them and whether the user was new."""
    entry = f"{user}:{_hasher.hash(password)}\n"
    key = validation.fold(user)
    out, found = [], False
    for line in lines:
        if _key(line) == key:
            if not found:
                out.append(entry)
            found = True
        else:
            out.append(line)
    if not found:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(entry)
    return out, not found


def delete(lines: list[str], user: str) -> list[str]:
    key = validation.fold(user)
    out = [line for line in lines if _key(line) != key]
    if len(out) == len(lines):
        raise Refused(f"{user} has no account in this file")
    return out


def convert(lines: list[str]) -> tuple[list[str], list[str]]:
    """Hash every clear-text password; :returns: the lines and the users converted."""
    out, converted = [], []
    for line in lines:
        key = _key(line)
        if key is not None:
            name, _, secret = line.strip().partition(":")
            if not is_argon2_hash(secret) and not secret.startswith("$"):
                line = f"{name}:{_hasher.hash(secret)}\n"
                converted.append(name)
        out.append(line)
    return out, converted


def read_password(stdin_is_tty: bool) -> str:
    """Ask twice without echo on a terminal; otherwise read one line of standard input."""
    if not stdin_is_tty:
        line = sys.stdin.readline()
        if not line:
            raise Refused("no password on standard input (it was empty); nothing changed")
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise Refused("the passwords differ; nothing changed")
    if not password:
        raise Refused("empty password refused; nothing changed")
    return password


def write_atomically(path: str, lines: list[str]) -> None:
    """Replace ``path`` with ``lines``: mode 0600, same owner when possible, never half written."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, temp = tempfile.mkstemp(prefix=".chatnet-passwd-", dir=folder)
    except OSError as e:  # say the file asked for, not the temporary one
        raise OSError(e.errno, e.strerror, path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp makes it 0600
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        try:
            st = os.stat(path)
            os.chown(temp, st.st_uid, st.st_gid)
        except OSError:
            pass  # a new file, or not ours to give away: keep ours
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chatnet-passwd",
        description="Set, delete or convert passwords in a chatnet accounts file "
        "(username:argon2id-hash lines).  The password is asked twice without echo, "
        "or read from standard input when that is not a terminal.",
    )
    parser.add_argument("file", metavar="FILE", help="the accounts file (created if missing)")
    parser.add_argument("user", metavar="USER", nargs="?", help="the user name")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--delete", action="store_true", help="remove USER from FILE")
    action.add_argument("--convert", action="store_true",
                        help="hash every clear-text password in FILE (no USER)")
    args = parser.parse_args(argv)
    if args.convert == (args.user is not None):
        parser.error("give USER, or --convert without USER")
    try:
        lines = _read(args.file, must_exist=args.delete or args.convert)
        if args.convert:
            lines, converted = convert(lines)
            write_atomically(args.file, lines)
            print(f"{args.file}: {len(converted)} password(s) hashed"
                  + (f" ({', '.join(converted)})" if converted else ""))
            return 0
        try:
            validation.check_username(args.user)
        except ChatError as e:
            raise Refused(e.message) from None
        if args.delete:
            write_atomically(args.file, delete(lines, args.user))
            print(f"{args.file}: {args.user} deleted")
            return 0
        password = read_password(sys.stdin.isatty())
        lines, new = set_password(lines, args.user, password)
        write_atomically(args.file, lines)
        print(f"{args.file}: {args.user} {'added' if new else 'password changed'}")
        return 0
    except Refused as e:
        print(f"chatnet-passwd: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"chatnet-passwd: {e.filename or args.file}: {e.strerror}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("\nchatnet-passwd: nothing changed", file=sys.stderr)
        return 1


def _read(path: str, must_exist: bool) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readlines()
    except FileNotFoundError:
        if must_exist:
            raise
        return []


def main() -> None:
    raise SystemExit(run())
