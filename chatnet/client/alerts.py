"""
Which lines call for the user's attention, and when the terminal bell rings.

A message *mentions* you when your name stands in it as a word, in any case
(``carol:``, ``@Carol``, ``thanks carol!``; not ``carolina``).  Whispers are
addressed to you by definition.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import re

#: The ``--bell`` choices: ``mentions`` rings for mentions and whispers,
#: ``whispers`` for whispers only, ``all`` for every line someone else sends.
BELL_CHOICES = ("mentions", "whispers", "all", "none")
DEFAULT_BELL = "mentions"

#: Kinds of attention (see :func:`attention`).
MENTION, WHISPER, MESSAGE = "mention", "whisper", "message"


def mentions(text: str, me: str) -> bool:
    """Whether ``me`` stands in ``text`` as a word of its own, in any case."""
    if not me:
        return False
    pattern = rf"(?<![A-Za-z0-9]){re.escape(me)}(?![A-Za-z0-9])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def attention(kind: object, sender: object, text: object, me: str | None) -> str | None:
    """
    What a ``message`` or ``whisper`` event means to ``me``: :data:`WHISPER`,
    :data:`MENTION`, :data:`MESSAGE` (someone else said something), or
    ``None`` (our own line, or not something said).
    """
    if kind not in ("message", "whisper") or not isinstance(text, str):
        return None
    if me is not None and isinstance(sender, str) and sender.lower() == me.lower():
        return None
    if kind == "whisper":
        return WHISPER
    return MENTION if me and mentions(text, me) else MESSAGE


def rings(what: str | None, bell: str) -> bool:
    """Whether the bell rings for attention ``what`` under the ``--bell`` choice."""
    if what is None or bell == "none":
        return False
    if bell == "all":
        return True
    if bell == "whispers":
        return what == WHISPER
    return what in (WHISPER, MENTION)
