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

import calendar
import functools
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from index.models import Filters
from index.storage import keywords

__all__ = ["ParsedQuestion", "is_filler", "parse_question", "parse_question_full",
           "strip_relative_dates"]

# -- vocabulary -----------------------------------------------------------------------------

_MONTHS_FULL: dict[str, int] = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "gennaio": 1, "febbraio": 2, "marzo": 3, "aprile": 4, "maggio": 5, "giugno": 6,
    "luglio": 7, "agosto": 8, "settembre": 9, "ottobre": 10, "novembre": 11, "dicembre": 12,
}  # fmt: skip
_MONTHS_ABBR: dict[str, int] = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
    "gen": 1, "mag": 5, "giu": 6, "lug": 7, "ago": 8, "set": 9, "ott": 10, "dic": 12,
}  # fmt: skip
_MONTHS = {**_MONTHS_ABBR, **_MONTHS_FULL}

_NUM_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30,
    "un": 1, "uno": 1, "una": 1, "due": 2, "tre": 3, "quattro": 4, "cinque": 5, "sei": 6,
    "sette": 7, "otto": 8, "nove": 9, "dieci": 10, "undici": 11, "dodici": 12,
    "quindici": 15, "venti": 20, "trenta": 30,
}  # fmt: skip

_LANG_NAMES: dict[str, str] = {
    "italian": "it", "italiano": "it", "italiana": "it", "ita": "it",
    "english": "en", "inglese": "en", "eng": "en",
    "french": "fr", "francese": "fr", "german": "de", "tedesco": "de",
    "spanish": "es", "spagnolo": "es", "portuguese": "pt", "portoghese": "pt",
}  # fmt: skip

_MAX_COUNT = 3660  # "last N days" beyond ten years is not a date phrase


def _alt(words: Collection[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


def _plain(pattern: str) -> str:
    """The same pattern without group names, so copies can be embedded in a larger one."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


_AP = "['’]"
_NUM = r"(?:\d{1,4}|" + _alt(_NUM_WORDS)[3:]
_DAY = r"(?:3[01]|[12]\d|0?[1-9])"
_YEAR = r"(?:1[89]\d\d|2[01]\d\d)"
_ORD = r"(?:st|nd|rd|th|°|º)?"
_MONTH = _alt(_MONTHS) + r"(?!\w)"
# A year used alone must not be an amount ("da 2000 a 3000 euro").
_NOT_AMOUNT = (
    r"(?!\s*(?:%|€|\$|£|euro\b|eur\b|usd\b|dollar|dollari|sterline|pounds|percent|"
    r"per\s*cento|people|persone|abitanti|km\b|metri|meters|tonnellate|tons))"
)
_BARE_YEAR = rf"{_YEAR}(?![\d/.\-]?\d){_NOT_AMOUNT}"

# Absolute dates. Group names are only read by the detail parser (_abs_when).
_ABS = (
    rf"(?P<iy>{_YEAR})-(?P<im>1[0-2]|0?[1-9])(?:-(?P<id>{_DAY}))?(?![\d\-])"
    rf"|(?P<nd>{_DAY})[/.\-](?P<nm>1[0-2]|0?[1-9])[/.\-](?P<ny>{_YEAR})(?!\d)"
    rf"|(?P<m2>{_MONTH})(?:\.(?=\s*\d))?\s+(?P<d2>{_DAY}){_ORD}(?!\d)"
    rf"(?:,?\s+(?P<y2>{_YEAR})(?!\d))?"
    rf"|(?:(?P<d1>{_DAY}|primo){_ORD}\s+(?:of\s+|di\s+)?)?(?P<m1>{_MONTH})(?:\.(?=\s*\d))?"
    rf"(?:,?\s+(?:of\s+|del\s+)?(?P<y1>{_YEAR})(?!\d))?"
)

_EN_UNIT = r"(?:hours?|days?|weeks?|months?|years?)"
_IT_UNIT = r"(?:or[ae]|giorn[oi]|settiman[ae]|mes[ei]|ann[oi])"

# Relative periods, in the order they must be tried (longest/most specific first).
_REL_RULES: list[tuple[str, str]] = [
    ("dby", rf"(?:the\s+)?day\s+before\s+yesterday|l{_AP}\s*altro\s*ieri|altro\s*ieri"
            rf"|ieri\s+l{_AP}\s*altro|avantieri"),
    ("ago", rf"(?P<n>{_NUM})\s+(?P<u>{_EN_UNIT})\s+ago|(?P<n2>{_NUM})\s+(?P<u2>{_IT_UNIT})\s+fa"),
    ("roll", rf"(?:the\s+)?(?:last|past|previous|preceding)\s+(?P<n>{_NUM})\s+(?P<u>{_EN_UNIT})"
             rf"|(?:(?:gli|le)\s+)?ultim[ie]\s+(?P<n2>{_NUM})\s+(?P<u2>ore|giorni|settimane|mesi|anni)"),
    ("roll1", r"(?:the\s+(?:last|past)|past)\s+(?P<u>day|week|month|year)"
              rf"|(?:l{_AP}\s*)?ultim[oa]\s+(?P<u2>giorno|settimana|mese|anno)"),
    ("recent", r"(?:the\s+)?(?:last|past)\s+(?:few|couple\s+of)\s+days|recent\s+days"
               r"|(?:gli\s+)?ultimi\s+giorni"),
    ("today", r"today|oggi"),
    ("yesterday", r"yesterday|ieri"),
    ("this_week", r"this\s+week|(?:the\s+)?current\s+week|questa\s+settimana"
                  r"|(?:la\s+)?settimana\s+(?:in\s+corso|corrente)"),
    ("last_week", r"last\s+week|(?:the\s+)?previous\s+week"
                  r"|(?:la\s+)?settimana\s+(?:scorsa|passata|precedente)|(?:la\s+)?scorsa\s+settimana"),
    ("this_month", r"this\s+month|(?:the\s+)?current\s+month|questo\s+mese"
                   r"|(?:il\s+)?mese\s+(?:in\s+corso|corrente)"),
    ("last_month", r"last\s+month|(?:the\s+)?previous\s+month"
                   r"|(?:il\s+)?mese\s+(?:scorso|passato|precedente)|(?:lo\s+)?scorso\s+mese"),
    ("this_year", rf"this\s+year|(?:the\s+)?current\s+year|quest{_AP}\s*anno|questo\s+anno"
                  rf"|(?:l{_AP}\s*)?anno\s+(?:in\s+corso|corrente)"),
    ("last_year", rf"last\s+year|(?:the\s+)?previous\s+year"
                  rf"|(?:l{_AP}\s*)?anno\s+(?:scorso|passato|precedente)|(?:lo\s+)?scorso\s+anno"),
]  # fmt: skip
_REL = "(?:" + "|".join(_plain(body) for _, body in _REL_RULES) + ")"
_REL_DETAIL = [(kind, re.compile(body, re.I)) for kind, body in _REL_RULES]
_ABS_DETAIL = re.compile(_ABS, re.I)

# Words that may precede a date phrase and belong to it ("in March 2024", "nel 2024"...).
_PREFIX = (
    r"(?:(?:in|on|during|over|within|for|of|throughout|nel|nella|nei|negli|nelle|nello|"
    rf"durante|di|del|della|dei|degli|delle|il|a|ad)\s+|(?:nell|dell|l){_AP}\s*)?"
)
_POSSESSIVE = rf"(?:{_AP}s)?"

_STANDALONE = re.compile(
    rf"(?<![\w'’])(?P<pre>{_PREFIX})(?:(?P<rel>{_REL}){_POSSESSIVE}|(?P<abs>{_plain(_ABS)}))(?!\w)",
    re.I,
)

_SINCE = (
    rf"since|starting\s+(?:from|on|in)|as\s+of|from"
    rf"|a\s+partire\s+(?:dal|dalla|dallo|dai|dagli|da|dall{_AP})"
    rf"|dalla|dallo|dagli|dai|dal|da|dall{_AP}"
)
_AFTER = rf"after|dopo\s+(?:il|lo|la|i|gli|le|del|dello|della|l{_AP}|dell{_AP})|dopo"
_BEFORE = (
    rf"(?<!day\s)before|earlier\s+than"
    rf"|prima\s+(?:del|dello|della|dei|degli|delle|di|dell{_AP}|d{_AP})"
)
_UNTIL = (
    rf"until|till|up\s+(?:to|until)|through|thru"
    rf"|fino\s+(?:al|allo|alla|ai|agli|alle|a|ad|all{_AP})|entro\s+(?:il|lo|la|i|gli|le|l{_AP})|entro"
)
_GAP = rf"(?:\s+|(?<={_AP})\s*)"  # after a word, or right after an elided article
_DE = rf"(?:(?P<{{p}}rel>{_REL})|(?P<{{p}}abs>{_plain(_ABS)})|(?P<{{p}}year>{{year}}))"
# Outside a range, "da 2000 a 3000" is an amount, not a period.
_LONE_YEAR = _BARE_YEAR + r"(?!\s*(?:[-–]|a|ad|e|ed|to|and)\s*\d)"


def _de(prefix: str, year: str = _BARE_YEAR) -> str:
    return _DE.replace("{p}", prefix).replace("{year}", year)


_TRIGGERED = re.compile(
    rf"(?<![\w'’])(?:(?P<since>{_SINCE})|(?P<after>{_AFTER})|(?P<before>{_BEFORE})"
    rf"|(?P<until>{_UNTIL})){_GAP}{_de('x_', _LONE_YEAR)}{_POSSESSIVE}(?!\w)",
    re.I,
)

_ART = rf"(?:(?:the|il|lo|la|i|gli|le)\s+|l{_AP}\s*)?"
_RANGE = re.compile(
    rf"(?<![\w'’])(?P<open>between|from|tra|fra|dalla|dallo|dagli|dai|dal|da|dall{_AP}){_GAP}{_ART}"
    rf"(?:{_de('a_')}|(?P<a_bd>{_DAY}|primo){_ORD}(?!\d))"
    rf"\s*(?:\s(?:and|to|until|till|through|thru|e|ed|a|ad|al|allo|alla|ai|agli|alle"
    rf"|fino\s+(?:a|al|alla|allo))\s+|\sall{_AP}\s*|\s*[-–]\s*){_ART}"
    rf"{_de('b_')}(?!\w)",
    re.I,
)

_OPERATOR = re.compile(
    r"(?<![\w:/.\-])(?P<key>sources?|outlets?|fonte|fonti|lang|language|lingua|after|since"
    r"|dal|da|before|until|al|fino):"
    r"(?P<val>\"[^\"]*\"|“[^”]*”|«[^»]*»|[^\s\"“«]+)",
    re.I,
)
_OP_KIND = {
    "source": "source", "sources": "source", "outlet": "source", "outlets": "source",
    "fonte": "source", "fonti": "source",
    "lang": "lang", "language": "lang", "lingua": "lang",
    "after": "since", "since": "since", "dal": "since", "da": "since",
    "before": "before",
    "until": "until", "al": "until", "fino": "until",
}  # fmt: skip
_YEAR_ONLY = re.compile(_YEAR)


# -- calendar helpers -----------------------------------------------------------------------


def _add_months(d: date, months: int) -> date:
    """Same day ``months`` later (or earlier), clamped to the month's last day."""
    index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _month_span(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    return first, _add_months(first, 1)


def _year_span(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year + 1, 1, 1)


def _week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


@dataclass(slots=True)
class _When:
    """A possibly partial date as written: missing parts are filled from context."""

    year: int | None = None
    month: int | None = None
    day: int | None = None
    abbreviated: bool = False

    def span(self) -> tuple[date, date] | None:
        if self.year is None:
            return None
        try:
            if self.month is None:
                return _year_span(self.year)
            if self.day is None:
                return _month_span(self.year, self.month)
            d = date(self.year, self.month, self.day)
        except ValueError:
            return None
        return d, d + timedelta(days=1)

    def most_recent(self, today: date) -> _When:
        """Fill a missing year with the latest one that does not put the date in the future."""
        if self.year is not None or self.month is None:
            return self
        year = today.year
        if (self.month, self.day or 1) > (today.month, today.day):
            year -= 1
        return _When(year, self.month, self.day, self.abbreviated)


def _int_or_word(text: str) -> int:
    return int(text) if text.isdigit() else _NUM_WORDS[text.lower()]


def _abs_when(text: str) -> _When | None:
    m = _ABS_DETAIL.fullmatch(text.strip())
    if m is None:
        return None
    g = m.groupdict()
    if g["iy"]:
        return _When(int(g["iy"]), int(g["im"]), int(g["id"]) if g["id"] else None)
    if g["ny"]:
        return _When(int(g["ny"]), int(g["nm"]), int(g["nd"]))
    name = (g["m2"] or g["m1"] or "").lower()
    day_text = g["d2"] or g["d1"]
    year_text = g["y2"] or g["y1"]
    day = None
    if day_text:
        day = 1 if day_text.lower() == "primo" else int(day_text)
    return _When(
        int(year_text) if year_text else None,
        _MONTHS[name],
        day,
        abbreviated=name not in _MONTHS_FULL,
    )


def _unit_key(unit: str) -> str:
    u = unit.lower()
    if u.startswith(("hour", "or")):
        return "hour"
    if u.startswith(("day", "giorn")):
        return "day"
    if u.startswith(("week", "settiman")):
        return "week"
    if u.startswith(("month", "mes")):
        return "month"
    return "year"


def _rel_span(text: str, now_local: datetime) -> tuple[date, date] | None:
    """The local-date span of a relative phrase, or None if the phrase makes no sense."""
    today = now_local.date()
    tomorrow = today + timedelta(days=1)
    for kind, rx in _REL_DETAIL:
        m = rx.fullmatch(text.strip())
        if m is None:
            continue
        g = m.groupdict()
        if kind == "today":
            return today, tomorrow
        if kind == "yesterday":
            return today - timedelta(days=1), today
        if kind == "dby":
            return today - timedelta(days=2), today - timedelta(days=1)
        if kind in ("this_week", "last_week"):
            monday = _week_start(today) - timedelta(days=7 if kind == "last_week" else 0)
            return monday, monday + timedelta(days=7)
        if kind in ("this_month", "last_month"):
            first = _add_months(today.replace(day=1), -1 if kind == "last_month" else 0)
            return first, _add_months(first, 1)
        if kind in ("this_year", "last_year"):
            return _year_span(today.year - (1 if kind == "last_year" else 0))
        if kind == "recent":
            return today - timedelta(days=7), tomorrow
        n = _int_or_word(g["n"] or g["n2"]) if kind in ("roll", "ago") else 1
        unit = _unit_key(g["u"] or g["u2"])
        if not 0 < n <= _MAX_COUNT:
            return None
        if kind in ("roll", "roll1"):
            if unit == "hour":
                start = (now_local - timedelta(hours=n)).date()
            elif unit in ("day", "week"):
                start = today - timedelta(days=n * (7 if unit == "week" else 1))
            else:
                start = _add_months(today, -n * (12 if unit == "year" else 1))
            return start, tomorrow
        # "N units ago": the whole day/week/month/year that was N units back.
        if unit == "hour":
            d = (now_local - timedelta(hours=n)).date()
            return d, d + timedelta(days=1)
        if unit == "day":
            d = today - timedelta(days=n)
            return d, d + timedelta(days=1)
        if unit == "week":
            monday = _week_start(today - timedelta(days=7 * n))
            return monday, monday + timedelta(days=7)
        if unit == "month":
            back = _add_months(today.replace(day=1), -n)
            return back, _add_months(back, 1)
        return _year_span(today.year - n)
    return None


# -- the parser -----------------------------------------------------------------------------


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


def _de_when(m: re.Match[str], p: str, state: _State) -> _Span | _When | None:
    """The date expression in groups prefixed ``p``: a relative phrase's span, or a date."""
    if m.group(p + "rel"):
        return _rel_span(m.group(p + "rel"), state.now_local)
    if m.group(p + "abs"):
        return _abs_when(m.group(p + "abs"))
    if m.group(p + "year"):
        year = int(m.group(p + "year"))
        if 1900 <= year <= state.today.year + 1:
            return _When(year)
    return None


def _when_span(when: _When, today: date, *, allow_abbr: bool) -> _Span | None:
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
    if _YEAR_ONLY.fullmatch(value):
        return _year_span(int(value))
    when = _abs_when(value.replace("_", " "))
    if when is not None:
        return when.span()  # an operator value must be a complete date: no guessing
    return _rel_span(value.replace("_", " ").replace("-", " "), state.now_local)


def _handle_range(state: _State, m: re.Match[str]) -> bool:
    b = _de_when(m, "b_", state)
    if b is None:
        return False
    if isinstance(b, _When):
        b_when = b.most_recent(state.today)
        found = b_when.span()
        if found is None:
            return False
        end_span = found
    else:
        end_span = b
        b_when = _When(b[0].year, b[0].month, b[0].day)
    start_span: _Span | None
    if m.group("a_bd"):
        text = m.group("a_bd").lower()
        start_span = _When(b_when.year, b_when.month, 1 if text == "primo" else int(text)).span()
    else:
        a = _de_when(m, "a_", state)
        if a is None:
            return False
        if isinstance(a, _When):
            if a.year is None and a.month is not None and b_when.year is not None:
                year = b_when.year
                if (a.month, a.day or 1) > (b_when.month or 12, b_when.day or 31):
                    year -= 1  # "tra novembre e febbraio 2024": November 2023
                a = _When(year, a.month, a.day)
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
    span = _when_span(de, state.today, allow_abbr=False) if isinstance(de, _When) else de
    if span is None:
        return False
    state.kind = "absolute" if isinstance(de, _When) else "relative"
    if m.group("since"):
        if m.group("since").lower() == "from" and not isinstance(de, _When):
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
        span = _rel_span(m.group("rel"), state.now_local)
        if span is None:
            return False
        state.kind = "relative"
        state.period(span)
        return True
    when = _abs_when(m.group("abs"))
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


def _aliases(key: str) -> set[str]:
    """Ways a user may name an outlet: "ansa.it" → ansa; "la repubblica" → repubblica;
    "bbc news" → bbc; "wikinews (meantime)" → wikinews. Stop words never become names."""
    out = {key}
    bare = re.sub(r"^(?:https?://)?(?:www\.)?", "", key)
    bare = re.sub(r"\.(?:it|com|net|org|co\.uk|eu|news|info)(?:/.*)?$", "", bare)
    bare = re.sub(r"\s*\([^)]*\)\s*$", "", bare)
    out.add(bare)
    out.add(re.sub(r"\s+(?:news|notizie|online)$", "", bare))
    out |= {re.sub(r"^(?:the|il|lo|la|l['’])\s*", "", a) for a in list(out)}
    return {a.strip() for a in out if len(a.strip()) >= 2 and a.strip() not in keywords.STOPWORDS}


@lru_cache(maxsize=8)
def _source_matcher(
    keys: tuple[str, ...],
) -> tuple[re.Pattern[str], re.Pattern[str], dict[str, list[str]]] | None:
    """The prose pattern ("according to X and Y"), a pattern for each name, and their keys."""
    owners: dict[str, list[str]] = {}
    for key in keys:
        for alias in _aliases(key):
            owners.setdefault(alias.lower(), []).append(key)
    if not owners:
        return None
    names = (
        "(?:"
        + "|".join(
            r"\s+".join(re.escape(part) for part in alias.split())
            for alias in sorted(owners, key=len, reverse=True)
        )
        + r")(?!\w|\.\w)"
    )
    trig = (
        rf"according\s+to|as\s+reported\s+by|reported\s+by|from|secondo"
        rf"|stando\s+(?:al|allo|alla|ai|agli|alle|a|all{_AP})"
        rf"|riportat[oaie]\s+(?:dal|dalla|dallo|da|dall{_AP})"
        rf"|dalla|dallo|dagli|dai|dal|da|dall{_AP}"
    )
    sep = rf"\s*(?:,|\s(?:and|or|e|ed|o|od)\s|&)\s*{_ART}"
    rx = re.compile(
        rf"(?<![\w'’])(?:{trig}){_GAP}{_ART}(?P<names>{names}(?:{sep}{names})*)",
        re.I,
    )
    return rx, re.compile(names, re.I), owners


def _normalise_keys(known: Collection[str]) -> tuple[str, ...]:
    if isinstance(known, frozenset):  # the retriever's cached outlet set: sort it once
        return _normalise_frozen(known)
    return tuple(sorted({k.strip().lower() for k in known if k and k.strip()}))


@functools.lru_cache(maxsize=8)
def _normalise_frozen(known: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted({k.strip().lower() for k in known if k and k.strip()}))


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

    _scan(state, _OPERATOR, lambda m: _handle_operator(state, m))
    _scan(state, _RANGE, lambda m: _handle_range(state, m))
    _scan(state, _TRIGGERED, lambda m: _handle_triggered(state, m))
    _scan(state, _STANDALONE, lambda m: _handle_standalone(state, m))
    keys = _normalise_keys(known_sources)
    matcher = _source_matcher(keys) if keys else None
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
    )
    kinds = set(state.kinds)
    return ParsedQuestion(
        _remove_spans(text, state.spans),
        filters,
        relative_dates="relative" in kinds,
        prose_dates="absolute" in kinds,
        operator_dates="operator" in kinds,
        relative_spans=tuple(
            sorted(sp for sp, kind in zip(state.spans, state.kinds, strict=True)
                   if kind == "relative")
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
