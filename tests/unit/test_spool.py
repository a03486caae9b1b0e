"""Tests for :mod:`chatnet.spool`: upload files on disk."""

from __future__ import annotations

import hashlib
import shutil
import stat
from pathlib import Path

from chatnet.spool import Spool, SpoolBudget


def test_write_hash_read_remove(tmp_path: Path) -> None:
    """A spool file takes chunks, hashes them, reads back, and is removed."""
    spool = Spool(tmp_path / "s")
    f = spool.create(7)
    f.write(b"hello ")
    f.write(b"world")
    assert f.received == 11
    assert f.finish() == hashlib.sha256(b"hello world").hexdigest()
    assert f.finish() == f.sha256  # idempotent
    with f.open() as reader:
        assert reader.read() == b"hello world"
    assert spool.leftovers() == [f.path]
    assert f.path.name == "chatnet-upload-7.part"
    f.remove()
    f.remove()
    assert spool.leftovers() == []


def test_files_are_private(tmp_path: Path) -> None:
    """The folder is created 0700 and each file 0600."""
    spool = Spool(tmp_path / "new" / "s")
    f = spool.create(1)
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    f.remove()


def test_remove_unfinished(tmp_path: Path) -> None:
    """An upload removed half-way leaves no file."""
    spool = Spool(tmp_path)
    f = spool.create(1)
    f.write(b"partial")
    f.remove()
    assert spool.leftovers() == []


def test_close_given_folder_keeps_folder(tmp_path: Path) -> None:
    """close() removes upload files from a given folder but not the folder or others."""
    (tmp_path / "keep.txt").write_text("mine")
    spool = Spool(tmp_path)
    spool.create(1).write(b"x")
    spool.create(2)
    spool.close()
    assert spool.leftovers() == [] and (tmp_path / "keep.txt").exists()


def test_private_folder_removed(tmp_path: Path) -> None:
    """Without a folder, a private temporary one is made and removed by close()."""
    spool = Spool()
    spool.create(1).write(b"x")
    path = spool.path
    assert path.is_dir()
    spool.close()
    assert not path.exists()


def test_empty_upload(tmp_path: Path) -> None:
    """A file with no data hashes as the empty string."""
    f = Spool(tmp_path).create(3)
    assert f.finish() == hashlib.sha256(b"").hexdigest() and f.received == 0
    f.remove()


def test_default_limit_is_half_the_free_space_at_most_a_gib(tmp_path: Path) -> None:
    """Without --spool-size the bound is half the free disk space, capped at 1 GiB."""
    free = shutil.disk_usage(tmp_path).free
    assert Spool(tmp_path).default_limit() == min(1024**3, free // 2)


def test_budget_bounds() -> None:
    """SpoolBudget: the total, files and bytes per key, one file alone over the byte bound."""
    budget = SpoolBudget(total=100, files_per_key=2, bytes_per_key=30)
    assert budget.fits("bob", 40)  # alone, over the per-key bytes
    budget.hold("bob", 40)
    assert not budget.fits("bob", 1) and budget.fits("ann", 60) and not budget.fits("ann", 61)
    budget.hold("ann", 10)
    budget.hold("ann", 20)
    assert not budget.fits("ann", 0)  # two files: the per-key count
    assert budget.held("ann") == (2, 30) and budget.used == 70
    assert budget.has_room(30) and not budget.has_room(31)
    budget.release("ann", 10)
    budget.release("ann", 20)
    budget.release("bob", 40)
    assert budget.used == 0 and budget.held("ann") == (0, 0) and budget._held == {}
