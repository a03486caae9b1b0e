"""Tests for :mod:`chatnet.client.downloads`: safe names, never overwriting."""

import pytest

from chatnet.client.downloads import free_name, numbered, sanitise, split_extension


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


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.tar.gz", ("a.tar", ".gz")),
        ("README", ("README", "")),
        (".profile", (".profile", "")),
        ("x.", ("x", ".")),
    ],
)
def test_split_extension(name: str, expected: tuple[str, str]) -> None:
    """The extension is what follows the last dot, unless the dot leads."""
    assert split_extension(name) == expected


@pytest.mark.parametrize(
    "name, number, expected",
    [
        ("report.pdf", 0, "report.pdf"),
        ("report.pdf", 1, "report_1.pdf"),
        ("a.tar.gz", 1, "a.tar_1.gz"),
        ("README", 1, "README_1"),
        ("README", 12, "README_12"),
    ],
)
def test_numbered(name: str, number: int, expected: str) -> None:
    """The suffix goes before the last extension, as on the server."""
    assert numbered(name, number) == expected


def test_numbered_stays_within_limit() -> None:
    """A numbered long name still fits in 255 bytes."""
    name = "x" * 251 + ".pdf"
    assert len(numbered(name, 123).encode()) <= 255
    assert numbered(name, 123).endswith("_123.pdf")


def test_free_name_skips_taken_names() -> None:
    """The first name not taken wins: name, name_1, name_2 ..."""
    taken = {"report.pdf", "report_1.pdf"}
    assert free_name("report.pdf", taken.__contains__) == "report_2.pdf"
    assert free_name("other.pdf", taken.__contains__) == "other.pdf"


def test_free_name_gives_up() -> None:
    """When every candidate is taken, the caller hears about it."""
    with pytest.raises(FileExistsError):
        free_name("a", lambda n: True, limit=5)
