"""Tests for :mod:`chatnet.spool`: upload files on disk."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
from pathlib import Path

import pytest

from chatnet.spool import Spool, SpoolBudget, SpoolError, check_folder


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
        # unbuffered: a delivery may sendfile from its offset
        assert isinstance(reader, io.FileIO)
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


# Safety: the spool is the server's own (PROTOCOL.md section 5; issue 10 items 7, 8)


def test_a_planted_link_is_never_written_through(tmp_path: Path) -> None:
    """A link planted under the next spool file's name: creating it fails, the target is untouched."""
    spool = Spool(tmp_path / "s")
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    (spool.path / "chatnet-upload-1.part").symlink_to(target)
    with pytest.raises(FileExistsError):
        spool.create(1)
    assert target.read_bytes() == b"precious"
    (spool.path / "chatnet-upload-2.part").write_bytes(b"planted")
    with pytest.raises(FileExistsError):
        spool.create(2)
    assert (spool.path / "chatnet-upload-2.part").read_bytes() == b"planted"
    spool.close()
    assert target.read_bytes() == b"precious" and not (spool.path / "chatnet-upload-1.part").exists()


def test_reading_back_does_not_follow_a_link(tmp_path: Path) -> None:
    """A spool file swapped for a link after upload is not read through."""
    spool = Spool(tmp_path / "s")
    f = spool.create(1)
    f.write(b"data")
    f.finish()
    (tmp_path / "secret").write_bytes(b"secret")
    f.path.unlink()
    f.path.symlink_to(tmp_path / "secret")
    with pytest.raises(OSError):
        f.open()
    spool.close()


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """With umask 0 the folder is still made 0700 and each file 0600."""
    old = os.umask(0)
    try:
        spool = Spool(tmp_path / "new" / "s")
        f = spool.create(1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    spool.close()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o720])
def test_a_folder_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """A spool folder writable by group or others is refused, saying how to fix it, and left as it was."""
    folder = tmp_path / "s"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(SpoolError) as e:
        Spool(folder)
    assert f"mode {mode:04o}" in str(e.value) and f"chmod 700 {folder}" in str(e.value)
    assert stat.S_IMODE(folder.stat().st_mode) == mode
    with pytest.raises(SpoolError):
        check_folder(folder)


def test_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    """A spool folder given as a symbolic link is refused, even to a private folder."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    for check in (Spool, check_folder):
        with pytest.raises(SpoolError, match="symbolic link"):
            check(link)
    check_folder(real)
    check_folder(tmp_path / "not-yet")  # made 0700 when the server starts


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder away")
def test_someone_elses_folder_is_refused(tmp_path: Path) -> None:
    """A private folder that belongs to another user is refused."""
    folder = tmp_path / "s"
    folder.mkdir(mode=0o700)
    os.chown(folder, 4321, 4321)
    with pytest.raises(SpoolError, match="belongs to user id 4321"):
        Spool(folder)


def test_leftovers_removed_at_start_and_counted(tmp_path: Path) -> None:
    """Files of the server's own pattern are removed at start (links too, not their targets); nothing else."""
    folder = tmp_path / "s"
    folder.mkdir(mode=0o700)
    (folder / "chatnet-upload-1.part").write_bytes(b"x" * 100)
    (folder / "chatnet-upload-22.part").write_bytes(b"y" * 5)
    (tmp_path / "victim").write_bytes(b"keep")
    (folder / "chatnet-upload-3.part").symlink_to(tmp_path / "victim")
    (folder / "chatnet-upload-4.part").mkdir()
    others = ["keep.txt", "chatnet-upload-x.part", "chatnet-upload-5.part.bak", "xchatnet-upload-6.part"]
    for name in others:
        (folder / name).write_text("other")
    spool = Spool(folder)
    assert spool.cleaned == (3, 105)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*others, "chatnet-upload-4.part"])
    assert (tmp_path / "victim").read_bytes() == b"keep"
    assert spool.create(1).finish()  # the number is free again, and new
    spool.close()
    assert Spool(folder).cleaned == (0, 0)


def test_one_folder_one_server(tmp_path: Path) -> None:
    """A second spool on a folder in use is refused, so it cannot remove the first's files."""
    first = Spool(tmp_path / "s")
    first.create(1).write(b"live")
    with pytest.raises(SpoolError, match="in use by another chatnet server"):
        Spool(tmp_path / "s")
    assert [p.name for p in first.leftovers()] == ["chatnet-upload-1.part"]
    first.close()
    Spool(tmp_path / "s").close()


def test_remove_after_close_is_harmless(tmp_path: Path) -> None:
    """A spool file removed after its spool closed (shutdown) does nothing."""
    spool = Spool(tmp_path / "s")
    f = spool.create(1)
    spool.close()
    f.remove()
    spool.close()
    assert spool.leftovers() == []


def _abandoned(parent: Path, name: str, files: dict[str, bytes], age: float = 3600) -> Path:
    """A temporary spool as a killed server leaves it: private, unlocked, untouched for ``age``."""
    folder = parent / name
    folder.mkdir(mode=0o700)
    for entry, data in files.items():
        (folder / entry).write_bytes(data)
    old = folder.stat().st_mtime - age
    os.utime(folder, (old, old))
    return folder


def test_killed_servers_temporary_spools_are_swept_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a spool folder: abandoned temporary spools go; live, recent or foreign ones stay."""
    from chatnet.spool import sweep_abandoned

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    gone = _abandoned(tmp_path, "chatnet-spool-dead", {"chatnet-upload-7.part": b"x" * 10,
                                                       "chatnet-upload-8.part": b""})
    recent = _abandoned(tmp_path, "chatnet-spool-new", {"chatnet-upload-1.part": b"y"}, age=0)
    foreign = _abandoned(tmp_path, "chatnet-spool-mine", {"notes.txt": b"keep"})
    other = _abandoned(tmp_path, "other-spool-x", {"chatnet-upload-2.part": b"z"})
    live = Spool(_abandoned(tmp_path, "chatnet-spool-live", {}))  # locked by a running server
    os.utime(live.path, (0, 0))
    assert sweep_abandoned(tmp_path) == (2, 10)
    assert not gone.exists()
    assert recent.exists() and foreign.exists() and other.exists() and live.path.exists()

    _abandoned(tmp_path, "chatnet-spool-dead2", {"chatnet-upload-3.part": b"abc"})
    spool = Spool()  # a private temporary spool sweeps first and says so
    assert spool.cleaned == (1, 3) and not (tmp_path / "chatnet-spool-dead2").exists()
    spool.close()
    live.close()
