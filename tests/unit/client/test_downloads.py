"""Tests for :mod:`chatnet.client.downloads`: safe names, spool, check, save."""

import hashlib
import os
from typing import Any

import pytest
from support.client_harness import Harness, connected
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from chatnet.client.downloads import sanitise


@pytest.mark.parametrize(
    "name, expected",
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/abs/path/x.txt", "x.txt"),
        ("..", "download"),
        (".", "download"),
        ("", "download"),
        (".bashrc", "bashrc"),
        ("a\x00b\x1bc.txt", "a_b_c.txt"),
        ("dir/", "download"),
        ("C:evil.txt", "C_evil.txt"),
        (None, "download"),
        (42, "download"),
        ("  spaced name.txt ", "spaced name.txt"),
        ("h\u00e9llo.txt", "h\u00e9llo.txt"),
        ("photo\u202egnp.exe", "photo_gnp.exe"),
        ("a\u200bb\u2066c\ufeff.txt", "a_b_c_.txt"),
        ("line\u2028sep.txt", "line_sep.txt"),
        ("caf\u00e9 \U0001f389.txt", "caf\u00e9 \U0001f389.txt"),
    ],
)
def test_sanitise(name: object, expected: str) -> None:
    """Whatever the server sends, the result is a plain base name."""
    assert sanitise(name) == expected


def test_sanitise_cuts_long_names_keeping_extension() -> None:
    """Names over 255 bytes of UTF-8 are cut before the extension."""
    result = sanitise("\u00e9" * 300 + ".pdf")
    assert result.endswith(".pdf")
    assert len(result.encode("utf-8")) <= 255


# -- downloads -------------------------------------------------------------


def start(h: Harness, transfer: int, name: str, content: bytes, **extra: Any) -> None:
    h.feed({"type": "file-start", "transfer": transfer, "from": "bob", "name": name,
            "size": len(content), **extra})


def end(h: Harness, transfer: int, content: bytes) -> None:
    h.feed({"type": "file-end", "transfer": transfer,
            "sha256": hashlib.sha256(content).hexdigest()})


def listing(folder: Any) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_download_saved_after_check(tmp_path: Any) -> None:
    """A file is invisible under its name until its sha256 matched."""
    dl = tmp_path / "dl"
    h = connected(str(dl))
    content = os.urandom(70_000)
    start(h, 9, "report.pdf", content)
    h.feed_data(9, content[:65536])
    assert "report.pdf" not in listing(dl)
    h.feed_data(9, content[65536:])
    end(h, 9, content)
    assert listing(dl) == ["report.pdf"]
    assert (dl / "report.pdf").read_bytes() == content
    download = h.core.downloads[9]
    assert (download.state, download.path) == ("saved", str(dl / "report.pdf"))
    assert [k for k in h.kinds() if k != "progress"] == ["receiving", "saved"]


def test_two_downloads_interleaved(tmp_path: Any) -> None:
    """Data frames of two transfers interleave; each file gets its own bytes."""
    dl = tmp_path / "dl"
    h = connected(str(dl))
    a, b = os.urandom(3000), os.urandom(5000)
    start(h, 1, "a.txt", a)
    start(h, 2, "b.txt", b)
    for i in range(0, 5000, 1000):
        if i < 3000:
            h.feed_data(1, a[i : i + 1000])
        h.feed({"type": "message", "room": "r", "from": "bob", "text": "hi", "ts": 0})
        h.feed_data(2, b[i : i + 1000])
    end(h, 2, b)
    end(h, 1, a)
    assert (dl / "a.txt").read_bytes() == a and (dl / "b.txt").read_bytes() == b
    assert listing(dl) == ["a.txt", "b.txt"]


def test_collision_picks_next_free_name(tmp_path: Any) -> None:
    """Existing files are never overwritten: report_1.pdf, then report_2.pdf."""
    dl = tmp_path / "dl"
    dl.mkdir()
    (dl / "report.pdf").write_bytes(b"mine")
    h = connected(str(dl))
    for transfer, content in ((1, b"one"), (2, b"two")):
        start(h, transfer, "report.pdf", content)
        h.feed_data(transfer, content)
        end(h, transfer, content)
    assert (dl / "report.pdf").read_bytes() == b"mine"
    assert (dl / "report_1.pdf").read_bytes() == b"one"
    assert (dl / "report_2.pdf").read_bytes() == b"two"
    (dl / "a.tar.gz").write_bytes(b"")
    start(h, 3, "a.tar.gz", b"x")
    h.feed_data(3, b"x")
    end(h, 3, b"x")
    assert (dl / "a.tar_1.gz").read_bytes() == b"x"


def test_sha256_mismatch_leaves_nothing(tmp_path: Any) -> None:
    """A damaged file is discarded: no final name, no spool file."""
    dl = tmp_path / "dl"
    h = connected(str(dl))
    start(h, 1, "r.pdf", b"abc")
    h.feed_data(1, b"abc")
    end(h, 1, b"abd")
    assert listing(dl) == []
    download = h.core.downloads[1]
    assert download.state == "discarded" and "sha256 mismatch" in (download.reason or "")


def test_aborted_leaves_nothing(tmp_path: Any) -> None:
    """``file-aborted`` removes the partial file."""
    dl = tmp_path / "dl"
    h = connected(str(dl))
    start(h, 1, "r.pdf", b"abcdef")
    h.feed_data(1, b"abc")
    h.feed({"type": "file-aborted", "transfer": 1, "reason": "sender-disconnected"})
    assert listing(dl) == []
    assert h.core.downloads[1].reason == "sender-disconnected"
    assert not h.core.busy()


def test_short_and_long_downloads_discarded(tmp_path: Any) -> None:
    """Fewer or more bytes than announced: discarded."""
    dl = tmp_path / "dl"
    h = connected(str(dl))
    start(h, 1, "short", b"abcdef")
    h.feed_data(1, b"abc")
    end(h, 1, b"abc")
    start(h, 2, "long", b"ab")
    h.feed_data(2, b"abc")
    assert listing(dl) == []
    assert h.core.downloads[1].reason == "got 3 of 6 bytes"
    assert h.core.downloads[2].reason == "more data than announced"


def test_lost_connection_discards_partial(tmp_path: Any) -> None:
    """A download cut by a lost connection leaves nothing."""
    dl = tmp_path / "dl"
    h = connected(str(dl))
    start(h, 1, "r.pdf", b"abcdef")
    h.feed_data(1, b"abc")
    h.protocol.connectionLost(Failure(ConnectionLost()))
    assert listing(dl) == []


def test_hostile_name_stays_inside(tmp_path: Any) -> None:
    """A path in ``file-start`` cannot write outside the folder."""
    dl = tmp_path / "dl"
    h = connected(str(dl))
    start(h, 1, "../../evil.sh", b"x")
    h.feed_data(1, b"x")
    end(h, 1, b"x")
    assert listing(dl) == ["evil.sh"] and listing(tmp_path) == ["dl"]


def test_renamed_by_server(tmp_path: Any) -> None:
    """The server's new name is used; the original is kept for display."""
    h = connected(str(tmp_path / "dl"))
    start(h, 1, "r_1.pdf", b"x", original="r.pdf")
    assert h.core.downloads[1].original == "r.pdf"
    h.feed_data(1, b"x")
    end(h, 1, b"x")
    assert listing(tmp_path / "dl") == ["r_1.pdf"]


def test_renamed_by_server_and_taken_here(tmp_path: Any) -> None:
    """``photo_1.bin`` (sent as ``photo.bin``) already here: ``photo_2.bin``."""
    dl = tmp_path / "dl"
    dl.mkdir()
    (dl / "photo.bin").write_bytes(b"old")
    (dl / "photo_1.bin").write_bytes(b"old")
    h = connected(str(dl))
    start(h, 1, "photo_1.bin", b"new", original="photo.bin")
    h.feed_data(1, b"new")
    end(h, 1, b"new")
    assert h.core.downloads[1].path == str(dl / "photo_2.bin")
    assert listing(dl) == ["photo.bin", "photo_1.bin", "photo_2.bin"]


def test_data_for_unknown_transfer_ignored(tmp_path: Any) -> None:
    """Stray data frames change nothing."""
    h = connected(str(tmp_path / "dl"))
    h.feed_data(42, b"zzz")
    assert h.events == [] and h.core.downloads == {}


def test_saved_file_permissions_follow_umask(tmp_path: Any) -> None:
    """A saved file is readable like any other new file, not 0600 like the spool."""
    dl = tmp_path / "dl"
    h = connected(str(dl))
    start(h, 1, "a.txt", b"x")
    h.feed_data(1, b"x")
    end(h, 1, b"x")
    assert (dl / "a.txt").stat().st_mode & 0o777 == h.core.store.mode



def test_oversized_download_refused(tmp_path: Any) -> None:
    """A file-start over the server's own size limit writes nothing at all."""
    dl = tmp_path / "dl"
    h = connected(str(dl), file_size=10)
    h.feed({"type": "file-start", "transfer": 1, "from": "bob", "name": "huge", "size": 11})
    h.feed_data(1, b"x" * 11)
    assert listing(dl) == []
    assert h.core.downloads[1].state == "discarded"
    assert "larger than the server's own limit" in (h.core.downloads[1].reason or "")
