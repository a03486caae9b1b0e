"""
The accounts file (``--accounts``): one ``username:HASH`` line per user,
``HASH`` an argon2id hash in the standard PHC string form, the form
``argon2.PasswordHasher().hash()`` returns::

    # chatnet accounts
    alice:$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$...

:class:`Accounts` holds the hashes, verifies a password (blocking: the
server calls :meth:`Accounts.verify` in a thread, see :mod:`chatnet.auth`)
and re-reads its file on :meth:`Accounts.reload`.  ``chatnet-passwd``
(:mod:`chatnet.passwd`) writes the file.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from chatnet import validation
from chatnet.errors import ChatError

#: The command that converts or sets passwords, named in error messages.
PASSWD_COMMAND = "chatnet-passwd"


class AccountsError(ValueError):
    """The accounts file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Changes:
    """What a :meth:`Accounts.reload` changed (folded user names)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @classmethod
    def between(cls, old: dict[str, str], new: dict[str, str]) -> Changes:
        """The changes from ``old`` to ``new`` (``{name: hash}``)."""
        return cls(
            added=sorted(new.keys() - old.keys()),
            removed=sorted(old.keys() - new.keys()),
            changed=sorted(k for k in old.keys() & new.keys() if old[k] != new[k]),
        )

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self) -> str:
        """``added carol; removed bob; password changed for alice``, or ``no change``."""
        parts = []
        for label, names in (
            ("added", self.added), ("removed", self.removed), ("password changed for", self.changed)
        ):
            if names:
                parts.append(f"{label} {', '.join(names)}")
        return "; ".join(parts) or "no change"


def is_argon2_hash(text: str) -> bool:
    """Whether ``text`` looks like a PHC argon2 hash (``$argon2id$...``)."""
    return text.startswith(("$argon2id$", "$argon2i$", "$argon2d$"))


def parse_accounts(text: str, source: str = "the accounts file") -> dict[str, str]:
    """
    Parse an accounts file into ``{folded username: hash}``.  Blank lines and
    lines starting with ``#`` are skipped; spaces around a line are ignored.

    :raises AccountsError: a line that is not ``username:HASH`` with a valid
        name and an argon2 hash; a password in clear text is refused with
        the command that converts the file.
    """
    accounts: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, secret = line.partition(":")
        where = f"{source}, line {number}"
        if not sep:
            raise AccountsError(f"{where}: expected username:HASH")
        try:
            validation.check_username(name)
        except ChatError as e:
            raise AccountsError(f"{where}: {e.message}") from None
        if not is_argon2_hash(secret):
            if secret.startswith("$"):
                raise AccountsError(
                    f"{where}: {name}'s hash is not an argon2 hash; chatnet accepts argon2id "
                    f"hashes only: set a new password with: {PASSWD_COMMAND} FILE {name}"
                )
            raise AccountsError(
                f"{where}: {name}'s password is stored in clear text; chatnet keeps only "
                f"argon2id hashes.  Convert every clear-text password in the file with: "
                f"{PASSWD_COMMAND} --convert FILE (or set this one: {PASSWD_COMMAND} FILE {name})"
            )
        try:
            argon2.extract_parameters(secret)
        except InvalidHashError:
            raise AccountsError(
                f"{where}: {name}'s hash is malformed; set a new password with: "
                f"{PASSWD_COMMAND} FILE {name}"
            ) from None
        key = validation.fold(name)
        if key in accounts:
            raise AccountsError(f"{where}: {name} is listed twice")
        accounts[key] = secret
    return accounts


def mode_warning(path: str) -> str | None:
    """A warning when the file at ``path`` is readable or writable by others."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    loose = mode & (stat.S_IRWXG | stat.S_IRWXO)
    if not loose:
        return None
    return (
        f"the accounts file {path} is open to other users (mode {stat.S_IMODE(mode):04o}); "
        f"make it readable by the server's user only: chmod 600 {path}"
    )


class Accounts:
    """
    The accounts a server accepts, by folded user name.

    :param hashes: ``{folded username: argon2 hash}``.
    :param path: the file they came from, re-read by :meth:`reload`.
    """

    def __init__(self, hashes: dict[str, str], path: str | None = None) -> None:
        self.path = path
        self._hashes: dict[str, str] = {}
        self._dummy = ""
        self._set(hashes)

    @classmethod
    def load(cls, path: str) -> Accounts:
        """
        Read the accounts file at ``path``.

        :raises AccountsError: it cannot be read, or a line is wrong.
        """
        return cls(_read(path), path)

    def _set(self, hashes: dict[str, str]) -> None:
        self._hashes = dict(hashes)
        self._dummy = _dummy_hash(hashes.values())

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and validation.fold(name) in self._hashes

    def names(self) -> list[str]:
        """The folded names, sorted."""
        return sorted(self._hashes)

    def verify(self, username: str, password: str) -> bool:
        """
        Whether ``password`` is ``username``'s.  Slow on purpose (argon2):
        call it off the reactor thread.  A name without an account is checked
        against a dummy hash of the same cost, so that the time taken does not
        tell which names exist.
        """
        secret = self._hashes.get(validation.fold(username))
        try:
            if secret is None:
                _hasher.verify(self._dummy, _encode(password))
                return False
            return _hasher.verify(secret, _encode(password))
        except (VerificationError, InvalidHashError):
            return False

    def reload(self) -> Changes:
        """
        Re-read the file.  On success the new accounts are used at once (a
        login being checked finishes with the old ones).

        :returns: what changed.
        :raises AccountsError: the file cannot be read or has a wrong line;
            the accounts in use are kept.
        """
        if self.path is None:
            raise AccountsError("these accounts were not read from a file")
        new = _read(self.path)
        changes = Changes.between(self._hashes, new)
        self._set(new)
        return changes


_hasher = argon2.PasswordHasher()


def _encode(password: str) -> bytes:
    return password.encode("utf-8", "surrogatepass")


def _read(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise AccountsError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise AccountsError(f"{path} is not UTF-8 text") from None
    return parse_accounts(text, path)


def _dummy_hash(hashes: Iterable[str]) -> str:
    """
    A hash of a random secret with the parameters most of ``hashes`` use,
    so that checking a name without an account costs what checking one
    with an account does.
    """
    params = [argon2.extract_parameters(h) for h in hashes]
    counts = Counter(
        (p.type, p.version, p.salt_len, p.hash_len, p.time_cost, p.memory_cost, p.parallelism)
        for p in params
    )
    if counts:
        common = counts.most_common(1)[0][0]
        p = next(p for p in params if common[0] == p.type and common[4:] == (
            p.time_cost, p.memory_cost, p.parallelism) and common[2:4] == (p.salt_len, p.hash_len))
        hasher = argon2.PasswordHasher(
            time_cost=p.time_cost, memory_cost=p.memory_cost, parallelism=p.parallelism,
            hash_len=p.hash_len, salt_len=p.salt_len, type=p.type,
        )
    else:
        hasher = _hasher
    return hasher.hash(os.urandom(16))
