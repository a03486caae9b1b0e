"""Tests for :mod:`chatnet.config`: the defaults."""

from __future__ import annotations

from chatnet.config import Settings
from chatnet.testing import make_accounts


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
    """Password hashes never show in a printed Settings."""
    accounts = make_accounts({"alice": "hunter2"})
    assert "argon2" not in repr(Settings(accounts=accounts))
