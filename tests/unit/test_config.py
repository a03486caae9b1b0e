"""Tests for :mod:`chatnet.config`: the defaults and the accounts file."""

from __future__ import annotations

import pytest

from chatnet.config import Settings, parse_accounts


def test_defaults_are_the_contract() -> None:
    """Every default is the one PROTOCOL.md gives."""
    s = Settings()
    assert (s.max_clients, s.room_capacity, s.max_text, s.max_file_size) == (10_000, 15, 4096, 3_145_728)
    assert (s.upload_slots, s.upload_queue, s.login_timeout, s.shutdown_grace) == (5, 100, 30.0, 5.0)
    assert s.max_output == 8 * 1024 * 1024
    assert s.allowed_extensions is None and s.accounts is None


def test_limits_object() -> None:
    """The login reply's limits are integers named as the contract names them."""
    limits = Settings(room_capacity=4, upload_queue=0).limits()
    assert limits == {"username": 16, "room": 32, "room_capacity": 4, "text": 4096,
                      "file_size": 3_145_728, "upload_slots": 5, "upload_queue": 0}
    assert all(type(v) is int for v in limits.values())


def test_accounts_not_in_repr() -> None:
    """Passwords never show in a printed Settings."""
    assert "hunter2" not in repr(Settings(accounts={"alice": "hunter2"}))


def test_parse_accounts() -> None:
    """Lines are name:password; blanks and comments skipped; names folded; passwords kept whole."""
    text = "# comment\n\n  Alice:pa ss:word  \nBOB:\n"
    assert parse_accounts(text) == {"alice": "pa ss:word", "bob": ""}


@pytest.mark.parametrize("text, line", [("nocolon", 1), ("ok:1\nbad name:x", 2), (":pw", 1)])
def test_parse_accounts_errors(text: str, line: int) -> None:
    """Malformed lines are a ValueError naming the line."""
    with pytest.raises(ValueError, match=f"line {line}"):
        parse_accounts(text)
