"""An answer as Telegram HTML messages (``parse_mode=HTML``), each within Telegram's limit: split
between hits only, a hit too long on its own shortened at a sentence or word boundary.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from datetime import tzinfo
from itertools import accumulate

from index.models import Answer, Hit
from index.render.answers import (
    MAX_HEADER_QUESTION,
    MAX_OUTLETS,
    MAX_TITLE,
    RAW_LIMIT,
    TELEGRAM_LIMIT,
    describe_filters,
    header_notes,
    hit_meta,
    not_found_lines,
    other_outlets,
    safe_url,
    split_quote,
    visible_length,
)
from index.render.html import ELLIPSIS, attr, clip, esc, one_line, utf16_len
from index.render.i18n import normalize_lang, t
from index.search.quotes import text_fragment_url

__all__ = [
    "render_telegram_html",
]

_SENTENCE_END = re.compile(r"[.!?…][\"'»”’)\]]*(?=\s)")


def _outlets_html(hit: Hit, lang: str) -> str:
    outlets = other_outlets(hit.also_reported_by, hit.source)
    if not outlets:
        return ""
    shown = [
        f'<a href="{attr(url)}">{esc(name)}</a>' if url else esc(name)
        for name, url in outlets[:MAX_OUTLETS]
    ]
    if len(outlets) > MAX_OUTLETS:
        shown.append(esc(t("and_more", lang, n=len(outlets) - MAX_OUTLETS)))
    return esc(t("also_reported_by", lang)) + ", ".join(shown)


def _hit_html(
    hit: Hit,
    n: int,
    lang: str,
    tz: tzinfo | None,
    pieces: tuple[str, str, str, bool, bool],
    *,
    title_limit: int = MAX_TITLE,
    with_outlets: bool = True,
    with_meta: bool = True,
) -> str:
    before, hl, after, ell_before, ell_after = pieces
    lines = [f"<b>{n}.</b>"]
    quote = "".join(
        [
            ELLIPSIS + " " if ell_before else "",
            esc(before),
            f"<b>{esc(hl)}</b>" if hl else "",
            esc(after),
            " " + ELLIPSIS if ell_after else "",
        ]
    )
    if quote.strip():
        lines.append(f"<blockquote>{quote}</blockquote>")
    url = safe_url(hit.url)
    title = esc(clip(one_line(hit.title) or t("untitled", lang), title_limit))
    lines.append(f'<b><a href="{attr(url)}">{title}</a></b>' if url else f"<b>{title}</b>")
    if with_meta:
        meta = [esc(p) for p in hit_meta(hit, lang, tz)]
        if url:
            link = text_fragment_url(url, hit.highlight or hit.quote)
            meta.append(f'<a href="{attr(link)}">{esc(t("open_at_passage", lang))}</a>')
        if meta:
            lines.append(" · ".join(meta))
    if with_outlets:
        also = _outlets_html(hit, lang)
        if also:
            lines.append(also)
    return "\n".join(lines)


def _fits(text: str, vis_limit: int, raw_limit: int) -> bool:
    return len(text) <= raw_limit and visible_length(text) <= vis_limit


class _Costs:
    """Cumulative visible and raw (escaped) length of every prefix of a text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.vis = [0, *accumulate(utf16_len(c) for c in text)]
        self.raw = [0, *accumulate(len(esc(c)) for c in text)]

    def total(self) -> tuple[int, int]:
        return self.vis[-1], self.raw[-1]

    def max_prefix(self, bv: int, br: int) -> int:
        """The longest prefix within both budgets."""
        return max(0, min(bisect_right(self.vis, bv), bisect_right(self.raw, br)) - 1)

    def min_suffix_start(self, bv: int, br: int) -> int:
        """Where the longest suffix within both budgets starts."""
        v, r = self.total()
        k = 0
        # vis[k] >= v - bv and raw[k] >= r - br; both arrays are non-decreasing.
        for arr, need in ((self.vis, v - bv), (self.raw, r - br)):
            lo = 0
            hi = len(arr) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if arr[mid] >= need:
                    hi = mid
                else:
                    lo = mid + 1
            k = max(k, lo)
        return k


def _cut_end(text: str, k: int) -> str:
    """A prefix of at most ``k`` characters, ending at a sentence end if one is near, else at a
    word end, else (one huge word) anywhere."""
    if k >= len(text):
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, k + 1) if m.end() <= k]
    if ends and ends[-1] >= k // 2:
        return text[: ends[-1]].rstrip()
    space = max((i for i in range(k, 0, -1) if text[i].isspace()), default=0)
    return (text[:space] if space > 0 else text[:k]).rstrip()


def _cut_start(text: str, k: int) -> str:
    """A suffix starting at or after ``k``: at a sentence start if one is near, else a word."""
    if k <= 0:
        return text
    n = len(text)
    for m in _SENTENCE_END.finditer(text):
        start = m.end()
        while start < n and text[start].isspace():
            start += 1
        if start >= k:
            if start - k <= (n - k) // 2:
                return text[start:]
            break
    i = k
    while i < n and not (text[i - 1].isspace() and not text[i].isspace()):
        i += 1
    return text[i:] if i < n else text[k:].lstrip()


def _shorten(
    pieces: tuple[str, str, str, bool, bool], bv: int, br: int
) -> tuple[str, str, str, bool, bool]:
    """Cut a quote to ``bv`` visible / ``br`` raw characters: context first, highlight last."""
    before, hl, after, eb, ea = pieces
    bv, br = max(0, bv), max(0, br)
    hc = _Costs(hl)
    hv, hr = hc.total()
    if hv > bv or hr > br:
        return "", _cut_end(hl, hc.max_prefix(bv, br)), "", eb or bool(before), True
    bv, br = bv - hv, br - hr
    bc, ac = _Costs(before), _Costs(after)
    (b_v, b_r), (a_v, a_r) = bc.total(), ac.total()
    if b_v + a_v <= bv and b_r + a_r <= br:
        return pieces
    # Each side may take half; what one side does not need, the other gets.
    after_v, after_r = bv - min(b_v, bv // 2), br - min(b_r, br // 2)
    new_after = after
    if a_v > after_v or a_r > after_r:
        new_after = _cut_end(after, ac.max_prefix(after_v, after_r))
        ea = True
    used_v, used_r = _Costs(new_after).total()
    new_before = before
    if b_v > bv - used_v or b_r > br - used_r:
        new_before = _cut_start(before, bc.min_suffix_start(bv - used_v, br - used_r))
        eb = True
    return new_before, hl, new_after, eb, ea


def _fit_hit(hit: Hit, n: int, lang: str, tz: tzinfo | None, vis_limit: int, raw_limit: int) -> str:
    """The hit's block, its quote shortened (then extras dropped) until it fits the limits."""
    before, hl, after = split_quote(hit)
    pieces = (before, hl, after, hit.ellipsis_before, hit.ellipsis_after)
    title_limit = min(MAX_TITLE, max(20, vis_limit // 8))
    for extras in ({}, {"with_outlets": False}, {"with_outlets": False, "with_meta": False}):
        full = _hit_html(hit, n, lang, tz, pieces, title_limit=title_limit, **extras)
        if _fits(full, vis_limit, raw_limit):
            return full
        empty = _hit_html(
            hit, n, lang, tz, ("", "", "", True, True), title_limit=title_limit, **extras
        )
        # +7 raw for the <b></b> around the highlight.
        bv = vis_limit - visible_length(empty)
        br = raw_limit - len(empty) - len("<blockquote></blockquote><b></b>") - 1
        if bv <= 0 or br <= 0:
            continue
        short = _hit_html(
            hit, n, lang, tz, _shorten(pieces, bv, br), title_limit=title_limit, **extras
        )
        if _fits(short, vis_limit, raw_limit):
            return short
    return f"<b>{n}.</b> " + esc(clip(one_line(hit.title) or t("untitled", lang), 20))


def _header_html(answer: Answer, lang: str, start_index: int, tz: tzinfo | None, limit: int) -> str:
    question = clip(one_line(answer.question), min(MAX_HEADER_QUESTION, max(20, limit // 8)))
    if start_index > 1:
        head = t("header_more", lang, question=question)
    elif len(answer.hits) == 1:
        head = t("header_one", lang, question=question)
    else:
        head = t("header", lang, n=len(answer.hits), question=question)
    lines = [f"<b>{esc(head)}</b>"]
    if answer.filters.shown():
        desc = describe_filters(answer.filters, lang, tz)
        lines.append(f"<i>{esc(t('filters_line', lang, filters=desc))}</i>")
    for line in header_notes(answer, lang, tz):
        lines.append(f"<i>{esc(line)}</i>")
    return "\n".join(lines)


def render_telegram_html(
    answer: Answer,
    *,
    lang: str = "en",
    max_len: int = TELEGRAM_LIMIT,
    start_index: int = 1,
    tz: tzinfo | None = None,
) -> list[str]:
    """Messages for ``parse_mode=HTML``, each within ``max_len`` visible characters.

    Hits are numbered from ``start_index`` (for "more" pages); the header goes with the first
    hit; messages are split only between hits, and a hit too long on its own has its quote
    shortened at a sentence or word boundary, marked with an ellipsis. ``tz`` is the user's
    time zone for dates (UTC when None).
    """
    lang = normalize_lang(lang)
    max_len = max(100, max_len)
    if not answer.hits:
        lines = not_found_lines(answer, lang, tz)
        text = "\n".join(esc(line) for line in lines)
        if visible_length(text) > max_len or len(text) > RAW_LIMIT:
            text = esc(clip("\n".join(lines), max_len // 2))
        return [text]

    header = _header_html(answer, lang, start_index, tz, max_len)
    sep = "\n\n"
    messages: list[str] = []
    current = header
    for i, hit in enumerate(answer.hits):
        n = start_index + i
        if i == 0:
            block = _fit_hit(
                hit,
                n,
                lang,
                tz,
                max_len - visible_length(header) - len(sep),
                RAW_LIMIT - len(header) - len(sep),
            )
            current = header + sep + block
            continue
        block = _fit_hit(hit, n, lang, tz, max_len, RAW_LIMIT)
        candidate = current + sep + block
        if _fits(candidate, max_len, RAW_LIMIT):
            current = candidate
        else:
            messages.append(current)
            current = block
    messages.append(current)
    return messages
