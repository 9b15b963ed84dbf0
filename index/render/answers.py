"""Renderers of an :class:`~index.models.Answer`: Telegram HTML, plain terminal text, JSON.

Everything that comes from an article (quote, title, outlet, URL) is hostile text: it is
escaped at the last moment, only ``http(s)`` URLs become links, and length limits are met by
shortening plain text *before* escaping, so a cut can never land inside a tag or an entity.
"""

from __future__ import annotations

import html
import math
import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from itertools import accumulate
from typing import Any
from urllib.parse import urlsplit

from index.models import Answer, Filters, Hit, OutletRef
from index.render.html import CONTROL as _CONTROL
from index.render.html import ELLIPSIS
from index.render.html import attr as _attr
from index.render.html import clip as _clip
from index.render.html import esc as _esc
from index.render.html import one_line as _one_line
from index.render.i18n import date_prepositions, format_date, normalize_lang, t
from index.search.quotes import text_fragment_url

__all__ = [
    "RAW_LIMIT",
    "TELEGRAM_LIMIT",
    "answer_to_json",
    "describe_filters",
    "render_plain",
    "render_telegram_html",
    "safe_url",
    "visible_length",
]

TELEGRAM_LIMIT = 4096  # characters of a message after entity parsing
RAW_LIMIT = 10_000  # our own cap on the HTML source, so heavy escaping cannot balloon it
MAX_TITLE = 300
MAX_QUESTION = 300
# The bold header of a reply: on a phone ~35 characters make a line, so a long question is
# cut to about two lines (the asker knows what they asked; the passages matter).
MAX_HEADER_QUESTION = 64
MAX_OUTLETS = 5
MAX_OUTLET_NAME = 80

_TAG = re.compile(r"<[^>]*>")
# Characters never valid raw in a URL: encoded so no client or server rejects the link.
_URL_UNSAFE = str.maketrans({'"': "%22", "<": "%3C", ">": "%3E", "`": "%60", "\\": "%5C"})
# Whitespace (``str.isspace``, as ``\s`` in a str pattern) or an ASCII control character.
_URL_BAD_CHAR = re.compile(r"[\s\x00-\x1f\x7f]")
_SENTENCE_END = re.compile(r"[.!?…][\"'»”’)\]]*(?=\s)")


def visible_length(html_text: str) -> int:
    """Length Telegram checks against its limit: tags stripped, entities decoded.

    Counted in UTF-16 code units, Telegram's unit for entity offsets: an emoji counts twice,
    which can only make us cut earlier than necessary, never later.
    """
    return _utf16(html.unescape(_TAG.sub("", html_text)))


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def safe_url(url: str | None) -> str | None:
    """``url`` if it may become a link (absolute http/https, no spaces or controls), else None."""
    if not url:
        return None
    u = url.strip()
    if not u or _URL_BAD_CHAR.search(u):
        return None
    try:
        parts = urlsplit(u)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return u.translate(_URL_UNSAFE)


# -- dates ----------------------------------------------------------------------------------


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _local_date(dt: datetime, tz: tzinfo | None) -> date:
    return _aware(dt).astimezone(tz or UTC).date()


def _boundary_date(dt: datetime, tz: tzinfo | None) -> date:
    """The user's calendar day of a filter bound (a local midnight stored in UTC).

    Without ``tz``, the nearest UTC midnight is that day for any zone within ±12 h, which
    beats showing "29 February" for a filter the user typed as "March".
    """
    if tz is not None:
        return _local_date(dt, tz)
    return (_aware(dt).astimezone(UTC) + timedelta(hours=12)).date()


def describe_filters(filters: Filters, lang: str = "en", tz: tzinfo | None = None) -> str:
    """The filters in words ("since 1 March 2024 · source: ansa"), plain text, unescaped."""
    parts: list[str] = []
    start = _boundary_date(filters.date_from, tz) if filters.date_from else None
    last = _boundary_date(filters.date_to, tz) - timedelta(days=1) if filters.date_to else None
    if start and last:
        s, e = format_date(start, lang), format_date(last, lang)
        if start == last:
            parts.append(t("filter_day", lang, date=s, **date_prepositions(s)))
        else:
            parts.append(
                t(
                    "filter_between",
                    lang,
                    start=s,
                    end=e,
                    p_from=date_prepositions(s)["p_from"],
                    p_to=date_prepositions(e)["p_to"],
                )
            )
    elif start:
        s = format_date(start, lang)
        parts.append(t("filter_since", lang, date=s, **date_prepositions(s)))
    elif last:
        e = format_date(last, lang)
        parts.append(t("filter_until", lang, date=e, **date_prepositions(e)))
    if filters.sources:
        parts.append(t("filter_sources", lang, sources=", ".join(filters.sources)))
    if filters.langs:
        parts.append(t("filter_langs", lang, langs=", ".join(filters.langs)))
    return " · ".join(parts)


def _suggestion(answer: Answer, lang: str) -> str | None:
    """Retrieval's suggestion is a code ("filters", "rephrase") or, failing that, text."""
    code = answer.suggestion
    if code:
        try:
            return t(f"suggest_{code}", lang)
        except KeyError:
            return _clip(_one_line(code), 500)
    if not answer.filters.is_empty():
        return t("suggest_filters", lang)
    return None


def _not_found_lines(answer: Answer, lang: str, tz: tzinfo | None) -> list[str]:
    if answer.period_empty:
        # Counted: the period holds no article at all, so no search could have found one.
        desc = describe_filters(answer.filters, lang, tz)
        lines = [t("nothing_published", lang, filters=desc)]
    else:
        lines = [t("not_found", lang, question=_clip(_one_line(answer.question), MAX_QUESTION))]
    if not answer.filters.is_empty() and not answer.period_empty:
        lines.append(t("filters_active", lang, filters=describe_filters(answer.filters, lang, tz)))
    hint = _suggestion(answer, lang)
    if hint:
        lines.append(hint)
    if answer.keyword_only:
        lines.append(t("keyword_only_line", lang))
    return lines


# -- Telegram -------------------------------------------------------------------------------


def _split_quote(hit: Hit) -> tuple[str, str, str]:
    q = hit.quote
    hs = max(0, min(hit.highlight_start, len(q)))
    he = max(hs, min(hit.highlight_end, len(q)))
    return q[:hs], q[hs:he], q[he:]


def _outlet_name(ref: OutletRef) -> str:
    name = _one_line(ref.source) or _one_line(ref.title)
    if not name:
        url = safe_url(ref.url)
        name = urlsplit(url).hostname or "" if url else ""
    return _clip(name, MAX_OUTLET_NAME)


def _outlets(refs: Iterable[OutletRef], exclude: str | None) -> list[tuple[str, str | None]]:
    """Distinct (name, link) of other outlets, the hit's own outlet left out."""
    seen = {(_one_line(exclude) or "").lower()} if exclude else set()
    out: list[tuple[str, str | None]] = []
    for ref in refs:
        name = _outlet_name(ref)
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        out.append((name, safe_url(ref.url)))
    return out


def _outlets_html(hit: Hit, lang: str) -> str:
    outlets = _outlets(hit.also_reported_by, hit.source)
    if not outlets:
        return ""
    shown = [
        f'<a href="{_attr(url)}">{_esc(name)}</a>' if url else _esc(name)
        for name, url in outlets[:MAX_OUTLETS]
    ]
    if len(outlets) > MAX_OUTLETS:
        shown.append(_esc(t("and_more", lang, n=len(outlets) - MAX_OUTLETS)))
    return _esc(t("also_reported_by", lang)) + ", ".join(shown)


def _meta(hit: Hit, lang: str, tz: tzinfo | None) -> list[str]:
    parts = []
    source = _clip(_one_line(hit.source), MAX_OUTLET_NAME)
    if source:
        parts.append(source)
    if hit.published is not None:
        parts.append(format_date(_local_date(hit.published, tz), lang))
    return parts


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
            _esc(before),
            f"<b>{_esc(hl)}</b>" if hl else "",
            _esc(after),
            " " + ELLIPSIS if ell_after else "",
        ]
    )
    if quote.strip():
        lines.append(f"<blockquote>{quote}</blockquote>")
    url = safe_url(hit.url)
    title = _esc(_clip(_one_line(hit.title) or t("untitled", lang), title_limit))
    lines.append(f'<b><a href="{_attr(url)}">{title}</a></b>' if url else f"<b>{title}</b>")
    if with_meta:
        meta = [_esc(p) for p in _meta(hit, lang, tz)]
        if url:
            link = text_fragment_url(url, hit.highlight or hit.quote)
            meta.append(f'<a href="{_attr(link)}">{_esc(t("open_at_passage", lang))}</a>')
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
        self.vis = [0, *accumulate(_utf16(c) for c in text)]
        self.raw = [0, *accumulate(len(_esc(c)) for c in text)]

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
    before, hl, after = _split_quote(hit)
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
    return f"<b>{n}.</b> " + _esc(_clip(_one_line(hit.title) or t("untitled", lang), 20))


def _header_html(answer: Answer, lang: str, start_index: int, tz: tzinfo | None, limit: int) -> str:
    question = _clip(_one_line(answer.question), min(MAX_HEADER_QUESTION, max(20, limit // 8)))
    if start_index > 1:
        head = t("header_more", lang, question=question)
    elif len(answer.hits) == 1:
        head = t("header_one", lang, question=question)
    else:
        head = t("header", lang, n=len(answer.hits), question=question)
    lines = [f"<b>{_esc(head)}</b>"]
    if not answer.filters.is_empty():
        desc = describe_filters(answer.filters, lang, tz)
        lines.append(f"<i>{_esc(t('filters_line', lang, filters=desc))}</i>")
    for line in _notes(answer, lang, tz):
        lines.append(f"<i>{_esc(line)}</i>")
    return "\n".join(lines)


def _notes(answer: Answer, lang: str, tz: tzinfo | None) -> list[str]:
    """What the header says about how the hits were chosen (plain text, unescaped)."""
    out = []
    if answer.top_stories:
        out.append(t("top_stories_line", lang))
    if answer.relaxed is not None:
        # "Nothing published" only when the period was counted empty.
        key = "relaxed_line" if answer.period_empty else "relaxed_line_some"
        out.append(t(key, lang, filters=describe_filters(answer.relaxed, lang, tz)))
    if answer.keyword_only:
        out.append(t("keyword_only_line", lang))
    return out


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
        lines = _not_found_lines(answer, lang, tz)
        text = "\n".join(_esc(line) for line in lines)
        if visible_length(text) > max_len or len(text) > RAW_LIMIT:
            text = _esc(_clip("\n".join(lines), max_len // 2))
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


# -- plain text -----------------------------------------------------------------------------


def _plain_text(text: str) -> str:
    """Article text safe for a terminal: no control characters or bidi overrides."""
    return _CONTROL.sub("", text).replace("\r", "")


HL_OPEN, HL_CLOSE = "⟦", "⟧"


def render_plain(answer: Answer, *, lang: str = "en", tz: tzinfo | None = None) -> str:
    """Terminal text: no markup, lines not wrapped, the highlight between ⟦ and ⟧ (news
    text never uses them, unlike » « or quotation marks, which Italian articles are full of)."""
    lang = normalize_lang(lang)
    if not answer.hits:
        return "\n".join(_not_found_lines(answer, lang, tz))
    question = _one_line(answer.question)
    if len(answer.hits) == 1:
        lines = [t("header_one", lang, question=question)]
    else:
        lines = [t("header", lang, n=len(answer.hits), question=question)]
    if not answer.filters.is_empty():
        lines.append(t("filters_line", lang, filters=describe_filters(answer.filters, lang, tz)))
    lines.extend(_notes(answer, lang, tz))
    indent = "    "
    for n, hit in enumerate(answer.hits, 1):
        lines.append("")
        lines.append(f"[{n}] {_one_line(hit.title) or t('untitled', lang)}")
        meta = _meta(hit, lang, tz)
        if meta:
            lines.append(indent + " · ".join(meta))
        if hit.url:
            lines.append(indent + _one_line(hit.url))
        before, hl, after = (_plain_text(p) for p in _split_quote(hit))
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
        outlets = _outlets(hit.also_reported_by, hit.source)
        if outlets:
            shown = [f"{name} <{url}>" if url else name for name, url in outlets]
            lines.append(indent + t("also_reported_by", lang) + ", ".join(shown))
    return "\n".join(lines)


# -- JSON -----------------------------------------------------------------------------------


def _iso(dt: datetime | None) -> str | None:
    return _aware(dt).isoformat() if dt is not None else None


def _score(value: float) -> float | None:
    f = float(value)
    return f if math.isfinite(f) else None


def answer_to_json(answer: Answer) -> dict[str, Any]:
    """A JSON-ready dict: ``question``, ``hits`` (the documented fields, plus
    ``also_reported_by``) and the understood ``filters``."""
    f = answer.filters
    return {
        "question": answer.question,
        "hits": [
            {
                "article_id": h.article_id,
                "title": h.title,
                "source": h.source,
                "url": h.url,
                "published": _iso(h.published),
                "quote": h.quote,
                "highlight": h.highlight,
                "score": _score(h.score),
                "also_reported_by": [
                    {"article_id": r.article_id, "source": r.source, "url": r.url, "title": r.title}
                    for r in h.also_reported_by
                ],
            }
            for h in answer.hits
        ],
        "filters": {
            "date_from": _iso(f.date_from),
            "date_to": _iso(f.date_to),
            "sources": list(f.sources),
            "langs": list(f.langs),
        },
    }
