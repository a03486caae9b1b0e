"""Tests for :mod:`chatnet.names`: numbered names within 255 bytes (PROTOCOL.md 5)."""

import pytest

from chatnet.names import MAX_NAME_BYTES, free_name, numbered, split_extension, truncate


def size(name: str) -> int:
    return len(name.encode("utf-8"))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.tar.gz", ("a.tar", ".gz")),
        ("README", ("README", "")),
        (".profile", (".profile", "")),
        ("..a", ("..a", "")),
        (".a.b", (".a", ".b")),
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
        (".bashrc", 1, ".bashrc_1"),
        (".a.b", 2, ".a_2.b"),
    ],
)
def test_numbered(name: str, number: int, expected: str) -> None:
    """The suffix goes before the last extension; a leading dot starts none."""
    assert numbered(name, number) == expected


def test_numbered_long_name_shortens_the_stem() -> None:
    """A 255-byte name loses the end of its stem, never its extension."""
    name = "x" * 251 + ".pdf"
    result = numbered(name, 123)
    assert result == "x" * 247 + "_123.pdf"
    assert size(result) == MAX_NAME_BYTES


@pytest.mark.parametrize("char", ["\u00e9", "\u20ac", "\U0001f600"])  # 2, 3, 4 bytes
def test_numbered_cuts_at_a_character_boundary(char: str) -> None:
    """Multi-byte characters at the limit are dropped whole, never split."""
    width = size(char)
    stem = char * (MAX_NAME_BYTES // width)
    for ext in ("", ".txt"):
        name = truncate(stem, MAX_NAME_BYTES - len(ext)) + ext
        for number in (1, 9, 10, 12345):
            result = numbered(name, number)
            assert size(result) <= MAX_NAME_BYTES
            assert size(result) > MAX_NAME_BYTES - width - len(f"_{number}")
            assert result.endswith(f"_{number}{ext}")
            assert set(result[: -len(f"_{number}{ext}")]) == {char}
            result.encode("utf-8").decode("utf-8")  # whole characters only


def test_numbered_keeps_short_names_whole() -> None:
    """Where the suffix fits, nothing is cut."""
    name = "\u00e9" * 100 + ".txt"  # 204 bytes
    assert numbered(name, 7) == "\u00e9" * 100 + "_7.txt"


def test_numbered_huge_extension_still_fits() -> None:
    """An extension that leaves no room for the suffix is cut at its end."""
    name = "a." + "b" * 253
    result = numbered(name, 1)
    assert size(result) <= MAX_NAME_BYTES
    assert result.startswith("_1.bbb")


def test_truncate() -> None:
    """Cut to bytes, at a character boundary."""
    assert truncate("abc", 5) == "abc"
    assert truncate("\u00e9\u00e9", 3) == "\u00e9"
    assert truncate("abc", 0) == ""


def test_free_name_skips_taken_names() -> None:
    """The first name not taken wins: name, name_1, name_2 ..."""
    taken = {"report.pdf", "report_1.pdf"}
    assert free_name("report.pdf", taken.__contains__) == "report_2.pdf"
    assert free_name("other.pdf", taken.__contains__) == "other.pdf"


def test_free_name_goes_on_from_the_original() -> None:
    """A server-renamed name that is taken too goes on from the original."""
    taken = {"photo.bin", "photo_1.bin"}
    assert free_name("photo_1.bin", taken.__contains__, original="photo.bin") == "photo_2.bin"
    assert free_name("photo_1.bin", taken.__contains__) == "photo_1_1.bin"
    assert free_name("photo_1.bin", set().__contains__, original="photo.bin") == "photo_1.bin"
    taken = {"photo_1.bin", "photo_2.bin", "photo_3.bin"}
    assert free_name("photo_3.bin", taken.__contains__, original="photo.bin") == "photo_4.bin"


def test_free_name_within_255_bytes() -> None:
    """Every name it hands out fits, even for a name at the limit."""
    name = "\u20ac" * 85  # 255 bytes
    taken = {name}
    for _ in range(12):
        new = free_name(name, taken.__contains__)
        assert size(new) <= MAX_NAME_BYTES and new not in taken
        taken.add(new)


def test_free_name_gives_up() -> None:
    """When every candidate is taken, the caller hears about it."""
    with pytest.raises(FileExistsError):
        free_name("a", lambda n: True, limit=5)
