"""What every renderer of an :class:`~index.models.Answer` shares: length limits, text made
safe (``visible_length``, ``safe_url``), and the lines an answer is made of (filters in words,
"nothing found", outlets, a hit's source and date). The renderers: ``telegram_html``,
``plain``, ``answer_json``.

Everything that comes from an article (quote, title, outlet, URL) is hostile text: it is
escaped at the last moment, only ``http(s)`` URLs become links, and length limits are met by
shortening plain text *before* escaping, so a cut can never land inside a tag or an entity.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from urllib.parse import urlsplit

from index.models import Answer, Filters, Hit, OutletRef
from index.render.html import clip, one_line, utf16_len
from index.render.i18n import date_prepositions, format_date, t

__all__ = [
    "describe_filters",
    "RAW_LIMIT",
    "safe_url",
    "TELEGRAM_LIMIT",
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


def visible_length(html_text: str) -> int:
    """Length Telegram checks against its limit: tags stripped, entities decoded.

    Counted in UTF-16 code units, Telegram's unit for entity offsets: an emoji counts twice,
    which can only make us cut earlier than necessary, never later.
    """
    return utf16_len(html.unescape(_TAG.sub("", html_text)))





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


def as_aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _local_date(dt: datetime, tz: tzinfo | None) -> date:
    return as_aware(dt).astimezone(tz or UTC).date()


def _boundary_date(dt: datetime, tz: tzinfo | None) -> date:
    """The user's calendar day of a filter bound (a local midnight stored in UTC).

    Without ``tz``, the nearest UTC midnight is that day for any zone within ±12 h, which
    beats showing "29 February" for a filter the user typed as "March".
    """
    if tz is not None:
        return _local_date(dt, tz)
    return (as_aware(dt).astimezone(UTC) + timedelta(hours=12)).date()


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
    if filters.as_of is not None:
        d = format_date(_local_date(filters.as_of, tz) if tz else filters.as_of.date(), lang)
        parts.append(t("filter_as_of", lang, date=d, **date_prepositions(d)))
    return " · ".join(parts)


def _suggestion(answer: Answer, lang: str) -> str | None:
    """Retrieval's suggestion is a code ("filters", "rephrase") or, failing that, text."""
    code = answer.suggestion
    if code:
        try:
            return t(f"suggest_{code}", lang)
        except KeyError:
            return clip(one_line(code), 500)
    if not answer.filters.is_empty():
        return t("suggest_filters", lang)
    return None


def not_found_lines(answer: Answer, lang: str, tz: tzinfo | None) -> list[str]:
    if answer.period_empty:
        # Counted: the period holds no article at all, so no search could have found one.
        desc = describe_filters(answer.filters, lang, tz)
        lines = [t("nothing_published", lang, filters=desc)]
    else:
        lines = [t("not_found", lang, question=clip(one_line(answer.question), MAX_QUESTION))]
    if answer.filters.shown() and not answer.period_empty:
        lines.append(t("filters_active", lang, filters=describe_filters(answer.filters, lang, tz)))
    hint = _suggestion(answer, lang)
    if hint:
        lines.append(hint)
    if answer.keyword_only:
        lines.append(t("keyword_only_line", lang))
    return lines


# -- Telegram -------------------------------------------------------------------------------


def split_quote(hit: Hit) -> tuple[str, str, str]:
    q = hit.quote
    hs = max(0, min(hit.highlight_start, len(q)))
    he = max(hs, min(hit.highlight_end, len(q)))
    return q[:hs], q[hs:he], q[he:]


def _outlet_name(ref: OutletRef) -> str:
    name = one_line(ref.source) or one_line(ref.title)
    if not name:
        url = safe_url(ref.url)
        name = urlsplit(url).hostname or "" if url else ""
    return clip(name, MAX_OUTLET_NAME)


def other_outlets(refs: Iterable[OutletRef], exclude: str | None) -> list[tuple[str, str | None]]:
    """Distinct (name, link) of other outlets, the hit's own outlet left out."""
    seen = {(one_line(exclude) or "").lower()} if exclude else set()
    out: list[tuple[str, str | None]] = []
    for ref in refs:
        name = _outlet_name(ref)
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        out.append((name, safe_url(ref.url)))
    return out


def hit_meta(hit: Hit, lang: str, tz: tzinfo | None) -> list[str]:
    parts = []
    source = clip(one_line(hit.source), MAX_OUTLET_NAME)
    if source:
        parts.append(source)
    if hit.published is not None:
        parts.append(format_date(_local_date(hit.published, tz), lang))
    return parts


def header_notes(answer: Answer, lang: str, tz: tzinfo | None) -> list[str]:
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
