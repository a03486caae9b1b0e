"""Tests for :mod:`chatnet.testing`, the in-memory harness."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from chatnet.testing import make_server


def test_own_spool_folder_removed_on_close() -> None:
    """A server given no spool folder makes one, and close() removes it."""
    server = make_server()
    folder = server.spool.path
    assert os.path.isdir(folder)
    server.close()
    assert not os.path.exists(folder)
    server.close()  # twice is fine


def test_own_spool_folder_removed_when_collected() -> None:
    """A server nobody closes leaves no folder behind once it is collected."""
    server = make_server()
    folder = server.spool.path
    del server
    gc.collect()
    assert not os.path.exists(folder)


def test_given_spool_folder_is_kept(tmp_path: Path) -> None:
    """A folder the caller gave is the caller's: close() leaves it."""
    server = make_server(spool_dir=str(tmp_path / "spool"))
    server.close()
    assert (tmp_path / "spool").is_dir()
