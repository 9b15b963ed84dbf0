"""An answer as terminal text: no markup, the highlight between ⟦ and ⟧."""

from __future__ import annotations

from datetime import tzinfo

from index.models import Answer
from index.render.answers import (
    describe_filters,
    header_notes,
    hit_meta,
    not_found_lines,
    other_outlets,
    split_quote,
)
from index.render.html import CONTROL, ELLIPSIS, one_line
from index.render.i18n import normalize_lang, t

__all__ = [
    "render_plain",
]


def _plain_text(text: str) -> str:
    """Article text safe for a terminal: no control characters or bidi overrides."""
    return CONTROL.sub("", text).replace("\r", "")


HL_OPEN, HL_CLOSE = "⟦", "⟧"


def render_plain(answer: Answer, *, lang: str = "en", tz: tzinfo | None = None) -> str:
    """Terminal text: no markup, lines not wrapped, the highlight between ⟦ and ⟧ (news
    text never uses them, unlike » « or quotation marks, which Italian articles are full of)."""
    lang = normalize_lang(lang)
    if not answer.hits:
        return "\n".join(not_found_lines(answer, lang, tz))
    question = one_line(answer.question)
    if len(answer.hits) == 1:
        lines = [t("header_one", lang, question=question)]
    else:
        lines = [t("header", lang, n=len(answer.hits), question=question)]
    if answer.filters.shown():
        lines.append(t("filters_line", lang, filters=describe_filters(answer.filters, lang, tz)))
    lines.extend(header_notes(answer, lang, tz))
    indent = "    "
    for n, hit in enumerate(answer.hits, 1):
        lines.append("")
        lines.append(f"[{n}] {one_line(hit.title) or t('untitled', lang)}")
        meta = hit_meta(hit, lang, tz)
        if meta:
            lines.append(indent + " · ".join(meta))
        if hit.url:
            lines.append(indent + one_line(hit.url))
        before, hl, after = (_plain_text(p) for p in split_quote(hit))
        quote = "".join(
            [
                ELLIPSIS + " " if hit.ellipsis_before else "",
                before,
                f"{HL_OPEN}{hl}{HL_CLOSE}" if hl else "",
                after,
                " " + ELLIPSIS if hit.ellipsis_after else "",
            ]
        )
        quote_lines = [line.strip() for line in quote.split("\n")]
        lines.extend(indent + "│ " + line if line else indent + "│" for line in quote_lines)
        outlets = other_outlets(hit.also_reported_by, hit.source)
        if outlets:
            shown = [f"{name} <{url}>" if url else name for name, url in outlets]
            lines.append(indent + t("also_reported_by", lang) + ", ".join(shown))
    return "\n".join(lines)
