"""Filters understood from a question: explicit operators and natural IT/EN date phrases.

A question is split into the words to search for and :class:`~index.models.Filters`. Every
recognised operator or phrase is cut out of the search text, so "cosa è successo ieri a Roma"
searches for "cosa è successo a Roma" restricted to yesterday; everything not recognised is
left exactly as typed.

Dates are local calendar days in the user's time zone; the returned bounds are the UTC
instants of those local midnights (``date_from`` inclusive, ``date_to`` exclusive), so a
filter means the same day the user means even across a DST change.

Operators (case-insensitive, value right after the colon, quotes for spaces):

- ``source:``/``outlet:``/``fonte:`` — outlet name, lower-cased; repeatable, commas allowed.
- ``lang:``/``lingua:``/``language:`` — ISO 639-1 code (``it``, ``en``...) or a language name.
- ``after:``/``since:``/``dal:``/``da:`` — from the start of that date, *inclusive*:
  ``after:2024-01-01`` keeps 1 January. (Natural "after March 2024" instead starts once the
  month is over: that is what the phrase means in prose.)
- ``before:`` — up to the start of that date, *exclusive*: ``before:2024-02-01`` ends with
  31 January.
- ``until:``/``al:``/``fino:`` — through the end of that date, *inclusive*: ``until:2024-02``
  keeps all of February (an Italian "fino al 31 marzo" includes the 31st).

- ``asof:`` — answer as of that date (its last instant, local time): "oggi", "last week" and
  recency resolve against it instead of the clock. Not a restriction: later articles stay
  searchable unless a date filter says otherwise. A date value or ``today``/``ieri``...

Date values: ``YYYY-MM-DD``, ``YYYY-MM``, ``YYYY``, ``DD/MM/YYYY`` (also ``.`` or ``-``),
``today``/``oggi``/``ieri``... Malformed values are left in the text, like any unknown token.

Natural phrases are calendar periods ("last week" = the previous Monday–Sunday, "il mese
scorso" = the previous calendar month) or rolling windows ("last 3 days", "ultime 2
settimane", "the past month", "nell'ultimo anno") that start at local midnight N days/months
ago and end tonight, so they cover at least the last N×24 hours. "In the last week" (with
"the") is rolling, "last week" is calendar.

A bare year ("in 1973", "nel 2023") is **not** a filter: in a question to a news archive it
is almost always the time of the event asked about, and articles written about it later are
exactly the ones wanted. A year becomes a filter only with a word that makes it about the
publication range ("since 2023", "dal 2023", "prima del 2020", "tra il 2020 e il 2022").
A month with a year ("March 2024", "a marzo 2024") or a full date is a filter. A month or day
without a year ("a marzo", "il 5 marzo") means the most recent one not in the future.

Outlets named in prose ("according to ANSA", "secondo la Repubblica", "da Reuters") become a
source filter only when the name is one of ``known_sources``, so "da Roma" never filters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from index.models import Filters
from index.search.date_phrases import (
    RANGE,
    STANDALONE,
    TRIGGERED,
    VAGUE_KINDS,
    YEAR_ONLY,
    When,
    abs_when,
    rel_kind,
    rel_span,
    year_span,
)
from index.search.outlet_names import normalise_keys, source_matcher
from index.storage import keywords

__all__ = ["ParsedQuestion", "is_filler", "parse_question", "parse_question_full",
           "strip_relative_dates"]

_LANG_NAMES: dict[str, str] = {
    "italian": "it", "italiano": "it", "italiana": "it", "ita": "it",
    "english": "en", "inglese": "en", "eng": "en",
    "french": "fr", "francese": "fr", "german": "de", "tedesco": "de",
    "spanish": "es", "spagnolo": "es", "portuguese": "pt", "portoghese": "pt",
}  # fmt: skip

_OPERATOR = re.compile(
    r"(?<![\w:/.\-])(?P<key>sources?|outlets?|fonte|fonti|lang|language|lingua|after|since"
    r"|dal|da|before|until|al|fino):"
    r"(?P<val>\"[^\"]*\"|“[^”]*”|«[^»]*»|[^\s\"“«]+)",
    re.I,
)
_ASOF = re.compile(r"(?<![\w:/.\-])(?:asof|as-of|as_of):(?P<val>[^\s\"“«,;!?)]+)", re.I)

_OP_KIND = {
    "source": "source", "sources": "source", "outlet": "source", "outlets": "source",
    "fonte": "source", "fonti": "source",
    "lang": "lang", "language": "lang", "lingua": "lang",
    "after": "since", "since": "since", "dal": "since", "da": "since",
    "before": "before",
    "until": "until", "al": "until", "fino": "until",
}  # fmt: skip


@dataclass(slots=True)
class _State:
    text: str
    now_local: datetime
    spans: list[tuple[int, int]] = field(default_factory=list)
    # What each taken span was: "relative" (a date resolved against now: "oggi", "last
    # week", "ultimi 3 giorni"), "absolute" (a date in prose: "in March 2024"), "operator"
    # (``after:``...), "" (an outlet or a language). Set by a handler before it says yes.
    kinds: list[str] = field(default_factory=list)
    kind: str = ""
    date_from: date | None = None
    date_to: date | None = None
    sources: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)

    @property
    def today(self) -> date:
        return self.now_local.date()

    def free(self, start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in self.spans)

    def take(self, start: int, end: int) -> None:
        self.spans.append((start, end))
        self.kinds.append(self.kind)

    def since(self, d: date) -> None:
        self.date_from = d if self.date_from is None else max(self.date_from, d)

    def until(self, d: date) -> None:
        self.date_to = d if self.date_to is None else min(self.date_to, d)

    def period(self, span: tuple[date, date]) -> None:
        self.since(span[0])
        self.until(span[1])

    def add_source(self, name: str) -> None:
        if name and name not in self.sources:
            self.sources.append(name)

    def add_lang(self, code: str) -> None:
        if code not in self.langs:
            self.langs.append(code)


def _scan(state: _State, rx: re.Pattern[str], handle: Callable[[re.Match[str]], bool]) -> None:
    """Apply ``handle`` to every match not overlapping an earlier one; it says if it took it.

    A rejected or overlapping match is retried one character later, so a valid phrase that
    starts inside it is still found.
    """
    pos = 0
    text = state.text
    while pos < len(text):
        m = rx.search(text, pos)
        if m is None:
            return
        state.kind = ""
        if m.end() > m.start() and state.free(m.start(), m.end()) and handle(m):
            state.take(m.start(), m.end())
            pos = m.end()
        else:
            pos = m.start() + 1


_Span = tuple[date, date]


def _de_when(m: re.Match[str], p: str, state: _State) -> _Span | When | None:
    """The date expression in groups prefixed ``p``: a relative phrase's span, or a date."""
    if m.group(p + "rel"):
        return rel_span(m.group(p + "rel"), state.now_local)
    if m.group(p + "abs"):
        return abs_when(m.group(p + "abs"))
    if m.group(p + "year"):
        year = int(m.group(p + "year"))
        if 1900 <= year <= state.today.year + 1:
            return When(year)
    return None


def _when_span(when: When, today: date, *, allow_abbr: bool) -> _Span | None:
    if when.year is None and when.abbreviated and not allow_abbr:
        return None  # "set", "mar", "ago" are ordinary words without a year
    return when.most_recent(today).span()


def _handle_operator(state: _State, m: re.Match[str]) -> bool:
    kind = _OP_KIND[m.group("key").lower()]
    raw = m.group("val")
    quoted = raw[:1] in '"“«'
    value = raw[1:-1] if quoted else raw
    end = m.end()
    if not quoted:
        stripped = value.rstrip(".,;!?)")
        end -= len(value) - len(stripped)
        value = stripped
    value = value.strip()
    if not value:
        return False
    if kind == "source":
        names = [value] if quoted else value.split(",")
        for n in names:
            state.add_source(n.strip().lower())
    elif kind == "lang":
        codes = []
        for part in value.lower().split(","):
            code = _LANG_NAMES.get(part.strip(), part.strip())
            if not re.fullmatch(r"[a-z]{2}", code):
                return False
            codes.append(code)
        for code in codes:
            state.add_lang(code)
    else:
        span = _operator_date(value, state)
        if span is None:
            return False
        state.kind = "operator"
        if kind == "since":
            state.since(span[0])
        elif kind == "before":
            state.until(span[0])
        else:
            state.until(span[1])
    if end != m.end():
        state.take(m.start(), end)
        return False  # taken by hand: the stripped punctuation stays in the text
    return True


def _operator_date(value: str, state: _State) -> tuple[date, date] | None:
    if YEAR_ONLY.fullmatch(value):
        return year_span(int(value))
    when = abs_when(value.replace("_", " "))
    if when is not None:
        return when.span()  # an operator value must be a complete date: no guessing
    return rel_span(value.replace("_", " ").replace("-", " "), state.now_local)


def _handle_range(state: _State, m: re.Match[str]) -> bool:
    b = _de_when(m, "b_", state)
    if b is None:
        return False
    if isinstance(b, When):
        b_when = b.most_recent(state.today)
        found = b_when.span()
        if found is None:
            return False
        end_span = found
    else:
        end_span = b
        b_when = When(b[0].year, b[0].month, b[0].day)
    start_span: _Span | None
    if m.group("a_bd"):
        text = m.group("a_bd").lower()
        start_span = When(b_when.year, b_when.month, 1 if text == "primo" else int(text)).span()
    else:
        a = _de_when(m, "a_", state)
        if a is None:
            return False
        if isinstance(a, When):
            if a.year is None and a.month is not None and b_when.year is not None:
                year = b_when.year
                if (a.month, a.day or 1) > (b_when.month or 12, b_when.day or 31):
                    year -= 1  # "tra novembre e febbraio 2024": November 2023
                a = When(year, a.month, a.day)
            start_span = a.span()
        else:
            start_span = a
    if start_span is None or start_span[0] >= end_span[1]:
        return False
    relative = bool(m.group("a_rel") or m.group("b_rel"))
    state.kind = "relative" if relative else "absolute"
    state.since(start_span[0])
    state.until(end_span[1])
    return True


def _handle_triggered(state: _State, m: re.Match[str]) -> bool:
    de = _de_when(m, "x_", state)
    if de is None:
        return False
    span = _when_span(de, state.today, allow_abbr=False) if isinstance(de, When) else de
    if span is None:
        return False
    state.kind = "absolute" if isinstance(de, When) else "relative"
    if m.group("since"):
        if m.group("since").lower() == "from" and not isinstance(de, When):
            state.period(span)  # "news from last week" is last week's news
        else:
            state.since(span[0])
    elif m.group("after"):
        state.since(span[1])
    elif m.group("before"):
        state.until(span[0])
    else:
        state.until(span[1])
    return True


def _handle_standalone(state: _State, m: re.Match[str]) -> bool:
    if m.group("rel"):
        span = rel_span(m.group("rel"), state.now_local)
        if span is None:
            return False
        state.kind = "vague" if rel_kind(m.group("rel")) in VAGUE_KINDS else "relative"
        state.period(span)
        return True
    when = abs_when(m.group("abs"))
    if when is None:
        return False
    # "a marzo"/"in March" without a year: only with a preposition and a full month name.
    if when.year is None and when.day is None and (not m.group("pre").strip() or when.abbreviated):
        return False
    found = _when_span(when, state.today, allow_abbr=False)
    if found is None:
        return False
    state.kind = "absolute"
    state.period(found)
    return True


@dataclass(frozen=True, slots=True)
class ParsedQuestion:
    """A question split into search text and filters, and what kind of date phrases it held.

    ``relative_dates``: a phrase resolved against *now* ("oggi", "ieri", "last week", "ultimi
    3 giorni", "this year"): always a statement about publication. ``prose_dates``: an
    absolute date written in prose ("in March 2024", "nell'aprile 2000"), which may date
    the event rather than the article. ``operator_dates``: an explicit ``after:``/``before:``.
    """

    query: str
    filters: Filters
    relative_dates: bool = False
    # Only vague relative phrases ("this week", "negli ultimi giorni"), no other date: a
    # search may take them as a recency prior instead of the filter (see date_phrases).
    vague_dates: bool = False
    prose_dates: bool = False
    operator_dates: bool = False
    relative_spans: tuple[tuple[int, int], ...] = ()

    @property
    def dated(self) -> bool:
        return self.filters.date_from is not None or self.filters.date_to is not None


def parse_question(
    text: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    known_sources: Collection[str] = (),
) -> tuple[str, Filters]:
    """Split a question into search text and filters (see the module docstring for rules).

    ``now`` may be naive (taken as local time in ``tz``) or aware. ``known_sources`` are the
    lower-cased outlet names of the store; only they are recognised in prose.
    """
    parsed = parse_question_full(text, now=now, tz=tz, known_sources=known_sources)
    return parsed.query, parsed.filters


def parse_question_full(
    text: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    known_sources: Collection[str] = (),
) -> ParsedQuestion:
    """:func:`parse_question`, telling also which kinds of date phrases were understood."""
    now_local = now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)
    state = _State(text, now_local)
    as_of: datetime | None = None
    for m in _ASOF.finditer(text):
        span = _operator_date(m.group("val").rstrip("."), state)
        if span is not None:
            # The last instant of the day: all of that day's articles are already out.
            last = span[1] - timedelta(days=1)
            as_of = datetime.combine(last, time(23, 59, 59), tzinfo=tz)
            state.take(m.start(), m.end())
    if as_of is not None:
        state.now_local = as_of

    _scan(state, _OPERATOR, lambda m: _handle_operator(state, m))
    _scan(state, RANGE, lambda m: _handle_range(state, m))
    _scan(state, TRIGGERED, lambda m: _handle_triggered(state, m))
    _scan(state, STANDALONE, lambda m: _handle_standalone(state, m))
    keys = normalise_keys(known_sources)
    matcher = source_matcher(keys) if keys else None
    if matcher is not None:
        rx, names_rx, owners = matcher

        def handle_source(m: re.Match[str]) -> bool:
            for nm in names_rx.finditer(m.group("names")):
                for key in owners[re.sub(r"\s+", " ", nm.group(0).lower())]:
                    state.add_source(key)
            return True

        _scan(state, rx, handle_source)

    filters = Filters(
        date_from=_utc_midnight(state.date_from, tz) if state.date_from else None,
        date_to=_utc_midnight(state.date_to, tz) if state.date_to else None,
        sources=state.sources,
        langs=state.langs,
        as_of=as_of,
    )
    kinds = set(state.kinds)
    return ParsedQuestion(
        _remove_spans(text, state.spans),
        filters,
        relative_dates=bool(kinds & {"relative", "vague"}),
        vague_dates="vague" in kinds and not kinds & {"relative", "absolute", "operator"},
        prose_dates="absolute" in kinds,
        operator_dates="operator" in kinds,
        relative_spans=tuple(
            sorted(sp for sp, kind in zip(state.spans, state.kinds, strict=True)
                   if kind in ("relative", "vague"))
        ),
    )


def strip_relative_dates(text: str, *, now: datetime, tz: ZoneInfo) -> str:
    """``text`` without its relative date phrases ("oggi", "last week"...), all else as
    typed: for words whose period is given otherwise (a digest's topic)."""
    parsed = parse_question_full(text, now=now, tz=tz)
    if not parsed.relative_spans:
        return text.strip()
    return _remove_spans(text, list(parsed.relative_spans))


# What is left of "cosa è successo oggi?" or "any news from yesterday?" once the period is
# cut out: words that ask for the period's news and nothing else. Folded (lower case, no
# accents), punctuation and apostrophes as spaces. Kept small: a word about *what* (a
# place, a person, a topic) makes a question a search.
_FILLERS = frozenset({
    # Italian
    "cosa e successo", "che e successo", "che cosa e successo", "cos e successo",
    "cosa e accaduto", "che e accaduto", "cosa succede", "che succede", "cosa c e di nuovo",
    "che c e di nuovo", "novita", "le novita", "ci sono novita", "quali novita", "notizie",
    "le notizie", "ultime notizie", "le ultime notizie", "ultime", "le ultime",
    "quali sono le notizie", "quali sono le ultime notizie",
    # English
    "what happened", "what has happened", "what s happened", "what s new", "what is new",
    "anything new", "news", "the news", "any news", "latest news", "the latest news",
    "what s the news", "what is the news", "what are the news", "headlines", "the headlines",
    "top stories", "the top stories",
})  # fmt: skip


def is_filler(query: str) -> bool:
    """Whether a question's search text (its date phrases already removed) asks for nothing
    but "the news": empty, or only words such as "cosa è successo", "novità", "what's new",
    "any news" (IT and EN; case, accents and punctuation do not matter)."""
    words = " ".join(keywords.tokens(query))
    return not words or words in _FILLERS


def _utc_midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)


_CLOSING = tuple(",.;:!?)]»”’")


def _remove_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """The text outside ``spans``; pieces joined by one space, none before punctuation."""
    if not spans:
        return text.strip()
    out = ""
    pos = 0
    pieces = []
    for start, end in sorted(spans):
        pieces.append(text[pos:start])
        pos = max(pos, end)
    pieces.append(text[pos:])
    for piece in pieces:
        p = piece.strip()
        if not p:
            continue
        if out and not p.startswith(_CLOSING):
            out += " "
        out += p
    out = out.lstrip(",;: ").strip()
    return out if re.search(r"\w", out) else ""
