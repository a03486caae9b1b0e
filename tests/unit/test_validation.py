"""Tests for :mod:`chatnet.validation`: the contract's naming and size rules."""

from __future__ import annotations

from typing import Any

import pytest

from chatnet import validation
from chatnet.errors import ChatError, ErrorCode

MIB = 1024 * 1024


def code_of(fn: Any, *args: Any) -> ErrorCode:
    with pytest.raises(ChatError) as info:
        fn(*args)
    assert info.value.message
    return info.value.code


@pytest.mark.parametrize("name", ["a", "Z", "7", "alice", "Bob42", "a" * 16, "0123456789abcdef"])
def test_username_valid(name: str) -> None:
    """1-16 ASCII letters or digits are a username."""
    assert validation.check_username(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a" * 17, "al ice", "al_ice", "al-ice", "alice\n", "\u00e9mile", "\uff41",
     "\u0661", None, 7, ["alice"], {"a": 1}, True],
)
def test_username_invalid(name: Any) -> None:
    """Anything else, including 17 characters and Unicode letters, is invalid-username."""
    assert code_of(validation.check_username, name) is ErrorCode.INVALID_USERNAME


@pytest.mark.parametrize("name", ["r", "a" * 32, "groupA", "42"])
def test_room_valid(name: str) -> None:
    """1-32 ASCII letters or digits are a room name."""
    assert validation.check_room(name) == name


@pytest.mark.parametrize("name", ["", "a" * 33, "group A", "#x", "r\n", "\u00e9", None, 3])
def test_room_invalid(name: Any) -> None:
    """33 characters, spaces, punctuation and non-strings are invalid-room."""
    assert code_of(validation.check_room, name) is ErrorCode.INVALID_ROOM


@pytest.mark.parametrize(
    "text",
    ["x", "a" * 4096, "\u00e9" * 2048, "\u20ac" * 1365 + "a", "\U0001f600" * 1024, " ", "\n"],
)
def test_text_valid(text: str) -> None:
    """Non-empty text up to 4096 bytes of UTF-8 is accepted, however many characters."""
    assert len(text.encode()) <= 4096
    assert validation.check_text(text, 4096) == text


@pytest.mark.parametrize(
    "text",
    ["", "a" * 4097, "\u00e9" * 2048 + "a", "\u20ac" * 1366, "\U0001f600" * 1024 + "a", None, 5, ["x"]],
)
def test_text_invalid(text: Any) -> None:
    """Empty, 4097 bytes (multi-byte included) and non-strings are invalid-text."""
    assert code_of(validation.check_text, text, 4096) is ErrorCode.INVALID_TEXT


@pytest.mark.parametrize(
    "text",
    ["tab\there", "two\nlines", "\t\n", "caf\u00e9 \u00a0nbsp", "\u2028", "\u202e bidi",
     "\U0001f600", "~\x20!"],
)
def test_text_tab_newline_and_printable_unicode_pass(text: str) -> None:
    """Tab and newline are allowed, and so is every non-control character."""
    assert validation.check_text(text, 4096) == text


@pytest.mark.parametrize("code", [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])
def test_text_control_characters_refused(code: int) -> None:
    """C0 (but tab and newline), DEL and C1: invalid-text, naming the character and where."""
    with pytest.raises(ChatError) as info:
        validation.check_text("hello" + chr(code) + "[31m", 4096)
    assert info.value.code is ErrorCode.INVALID_TEXT
    assert f"U+{code:04X}" in info.value.message and "at character 6" in info.value.message


def test_text_escape_sequence_message() -> None:
    with pytest.raises(ChatError) as info:
        validation.check_text("red: \x1b[31mX", 4096)
    assert info.value.message == (
        "Text contains the control character U+001B (ESC) at character 6; "
        "only tab and newline are allowed")


def test_text_limit_is_in_bytes_not_characters() -> None:
    """2049 two-byte characters are 4098 bytes: refused though only 2049 long."""
    with pytest.raises(ChatError) as info:
        validation.check_text("\u00e9" * 2049, 4096)
    assert "4098" in info.value.message


@pytest.mark.parametrize(
    "name",
    ["a", "report.pdf", ".bashrc", "...", "a b", "\u00e9t\u00e9.txt", "x" * 255,
     "\u00e9" * 127 + "x", "a..b", "-rf"],
)
def test_filename_valid(name: str) -> None:
    """Base names of 1-255 UTF-8 bytes without separators or controls are accepted."""
    assert validation.check_filename(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "/etc", "a\\b", "a\x00b", "a\nb", "a\tb", "\x1b[31m", "a\x7f",
     "a\x85", "x" * 256, "\u00e9" * 128, "\ud800.txt", None, 1],
)
def test_filename_invalid(name: Any) -> None:
    """Separators, NUL, controls, . and .., 256 bytes and lone surrogates are invalid-filename."""
    assert code_of(validation.check_filename, name) is ErrorCode.INVALID_FILENAME


def test_extension_any_by_default() -> None:
    """With no restriction every name passes, with or without an extension."""
    for name in ("a.exe", "README", ".bashrc"):
        assert validation.check_extension(name, None) == name


@pytest.mark.parametrize("name", ["a.txt", "A.PDF", "x.y.jpg", "p.Png"])
def test_extension_allowed(name: str) -> None:
    """Allowed extensions match case-insensitively on the last extension."""
    assert validation.check_extension(name, frozenset({"txt", "pdf", "jpg", "png"})) == name


@pytest.mark.parametrize("name", ["a.exe", "README", ".txt", "a.txt.exe", "a.", "txt"])
def test_extension_refused(name: str) -> None:
    """Other types, no extension, and a bare dotfile are file-type-not-allowed."""
    allowed = frozenset({"txt", "pdf", "jpg", "png"})
    with pytest.raises(ChatError) as info:
        validation.check_extension(name, allowed)
    assert info.value.code is ErrorCode.FILE_TYPE_NOT_ALLOWED
    assert ".jpg, .pdf, .png, .txt" in info.value.message


def test_size_boundaries() -> None:
    """0 to 3 MiB is accepted; 3 MiB + 1 is file-too-large."""
    assert validation.check_size(0, 3 * MIB) == 0
    assert validation.check_size(3 * MIB, 3 * MIB) == 3 * MIB
    assert code_of(validation.check_size, 3 * MIB + 1, 3 * MIB) is ErrorCode.FILE_TOO_LARGE
    assert code_of(validation.check_size, 2**64, 3 * MIB) is ErrorCode.FILE_TOO_LARGE


@pytest.mark.parametrize("size", [-1, 1.0, "10", None, True, [1]])
def test_size_not_an_integer(size: Any) -> None:
    """A size that is not a non-negative integer is refused (as bad-frame)."""
    assert code_of(validation.check_size, size, 3 * MIB) is ErrorCode.BAD_FRAME


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("*", None),
        ("", None),
        ("txt,pdf", frozenset({"txt", "pdf"})),
        (".TXT, .Pdf jpg", frozenset({"txt", "pdf", "jpg"})),
        ("png,,png", frozenset({"png"})),
    ],
)
def test_parse_extensions(spec: str, expected: frozenset[str] | None) -> None:
    """Extension lists take commas or spaces, dots and any case; * means all."""
    assert validation.parse_extensions(spec) == expected


@pytest.mark.parametrize("spec", ["t/xt", "a" * 17, "tar.gz", "*,txt"])
def test_parse_extensions_invalid(spec: str) -> None:
    """Extensions that are not 1-16 letters or digits are a ValueError."""
    with pytest.raises(ValueError):
        validation.parse_extensions(spec)


def test_fold_and_show() -> None:
    """Names fold to lower case; show() shortens and quotes client values."""
    assert validation.fold("GroupA") == "groupa"
    assert validation.show("x" * 50) == repr("x" * 37 + "...")
    assert validation.show(3) == "of type int"
    assert validation.show(None) == "(none given)"  # not "of type NoneType"
    assert validation.format_size(3 * MIB) == "3.0 MiB"
    assert validation.format_size(512) == "512 B"


INVISIBLE_CHARACTERS = [
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff",
]


@pytest.mark.parametrize("char", INVISIBLE_CHARACTERS)
def test_filename_with_invisible_or_bidi_character_is_invalid(char: str) -> None:
    """Every bidi-override and invisible formatting character of the contract is refused, named, escaped."""
    name = f"invoice{char}fdp.exe"
    with pytest.raises(ChatError) as e:
        validation.check_filename(name)
    assert e.value.code is ErrorCode.INVALID_FILENAME
    assert f"(U+{ord(char):04X})" in e.value.message
    assert char not in e.value.message and f"\\u{ord(char):04x}" in e.value.message


@pytest.mark.parametrize("char", ["\u200a", "\u2010", "\u00e9", "\u2065", "\u206a", "\ufefe", "\u00ad"])
def test_filename_neighbours_of_the_refused_ranges_pass(char: str) -> None:
    """Characters just outside the refused ranges (and the soft hyphen, which shows) are accepted."""
    assert validation.check_filename(f"a{char}b") == f"a{char}b"


def test_fold_keeps_an_already_folded_name_as_it_is() -> None:
    """A name already in lower case is its own key: one string kept, not two."""
    name = "".join(["ali", "ce"])
    assert validation.fold(name) is name
    assert validation.fold("Alice") == "alice"
