"""Telegram HTML helpers every renderer shares (answers, digests): escaping and plain-text cuts.

Text is cut *before* it is escaped, so a cut can never land inside a tag or an entity.
"""

from __future__ import annotations

import html
import re

ELLIPSIS = "…"
SPACES = re.compile(r"\s+")
# ASCII controls (but tab and newline) and the bidirectional marks that can reorder a line.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def esc(text: str) -> str:
    """Text for the inside of an HTML element."""
    return html.escape(text, quote=False)


def attr(text: str) -> str:
    """Text for an attribute value (quotes escaped too)."""
    return html.escape(text, quote=True)


def one_line(text: str | None) -> str:
    """Whitespace folded to single spaces, control characters dropped."""
    return SPACES.sub(" ", CONTROL.sub("", text or "")).strip()


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2
