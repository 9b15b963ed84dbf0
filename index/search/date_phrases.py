"""Natural IT/EN date phrases: what they look like (regular expressions over the question)
and which local calendar days they mean (see index/search/query_parse.py for the rules).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = [
    "AP", "ART", "GAP", "RANGE", "STANDALONE", "TRIGGERED", "YEAR_ONLY", "When", "abs_when",
    "VAGUE_KINDS", "rel_kind", "rel_span", "year_span",
]  # fmt: skip

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


_MAX_COUNT = 3660  # "last N days" beyond ten years is not a date phrase


def _alt(words: Collection[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


def _plain(pattern: str) -> str:
    """The same pattern without group names, so copies can be embedded in a larger one."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


AP = "['’]"
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

# Absolute dates. Group names are only read by the detail parser (abs_when).
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
    ("dby", rf"(?:the\s+)?day\s+before\s+yesterday|l{AP}\s*altro\s*ieri|altro\s*ieri"
            rf"|ieri\s+l{AP}\s*altro|avantieri"),
    ("ago", rf"(?P<n>{_NUM})\s+(?P<u>{_EN_UNIT})\s+ago|(?P<n2>{_NUM})\s+(?P<u2>{_IT_UNIT})\s+fa"),
    ("roll", rf"(?:the\s+)?(?:last|past|previous|preceding)\s+(?P<n>{_NUM})\s+(?P<u>{_EN_UNIT})"
             rf"|(?:(?:gli|le)\s+)?ultim[ie]\s+(?P<n2>{_NUM})\s+(?P<u2>ore|giorni|settimane|mesi|anni)"),
    ("roll1", r"(?:the\s+(?:last|past)|past)\s+(?P<u>day|week|month|year)"
              rf"|(?:l{AP}\s*)?ultim[oa]\s+(?P<u2>giorno|settimana|mese|anno)"),
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
    ("this_year", rf"this\s+year|(?:the\s+)?current\s+year|quest{AP}\s*anno|questo\s+anno"
                  rf"|(?:l{AP}\s*)?anno\s+(?:in\s+corso|corrente)"),
    ("last_year", rf"last\s+year|(?:the\s+)?previous\s+year"
                  rf"|(?:l{AP}\s*)?anno\s+(?:scorso|passato|precedente)|(?:lo\s+)?scorso\s+anno"),
]  # fmt: skip
_REL = "(?:" + "|".join(_plain(body) for _, body in _REL_RULES) + ")"
_REL_DETAIL = [(kind, re.compile(body, re.I)) for kind, body in _REL_RULES]
_ABS_DETAIL = re.compile(_ABS, re.I)

# Words that may precede a date phrase and belong to it ("in March 2024", "nel 2024"...).
_PREFIX = (
    r"(?:(?:in|on|during|over|within|for|of|throughout|nel|nella|nei|negli|nelle|nello|"
    rf"durante|di|del|della|dei|degli|delle|il|a|ad)\s+|(?:nell|dell|l){AP}\s*)?"
)
_POSSESSIVE = rf"(?:{AP}s)?"

STANDALONE = re.compile(
    rf"(?<![\w'’])(?P<pre>{_PREFIX})(?:(?P<rel>{_REL}){_POSSESSIVE}|(?P<abs>{_plain(_ABS)}))(?!\w)",
    re.I,
)

_SINCE = (
    rf"since|starting\s+(?:from|on|in)|as\s+of|from"
    rf"|a\s+partire\s+(?:dal|dalla|dallo|dai|dagli|da|dall{AP})"
    rf"|dalla|dallo|dagli|dai|dal|da|dall{AP}"
)
_AFTER = rf"after|dopo\s+(?:il|lo|la|i|gli|le|del|dello|della|l{AP}|dell{AP})|dopo"
_BEFORE = (
    rf"(?<!day\s)before|earlier\s+than"
    rf"|prima\s+(?:del|dello|della|dei|degli|delle|di|dell{AP}|d{AP})"
)
_UNTIL = (
    rf"until|till|up\s+(?:to|until)|through|thru"
    rf"|fino\s+(?:al|allo|alla|ai|agli|alle|a|ad|all{AP})|entro\s+(?:il|lo|la|i|gli|le|l{AP})|entro"
)
GAP = rf"(?:\s+|(?<={AP})\s*)"  # after a word, or right after an elided article
_DE = rf"(?:(?P<{{p}}rel>{_REL})|(?P<{{p}}abs>{_plain(_ABS)})|(?P<{{p}}year>{{year}}))"
# Outside a range, "da 2000 a 3000" is an amount, not a period.
_LONE_YEAR = _BARE_YEAR + r"(?!\s*(?:[-–]|a|ad|e|ed|to|and)\s*\d)"


def _de(prefix: str, year: str = _BARE_YEAR) -> str:
    return _DE.replace("{p}", prefix).replace("{year}", year)


TRIGGERED = re.compile(
    rf"(?<![\w'’])(?:(?P<since>{_SINCE})|(?P<after>{_AFTER})|(?P<before>{_BEFORE})"
    rf"|(?P<until>{_UNTIL})){GAP}{_de('x_', _LONE_YEAR)}{_POSSESSIVE}(?!\w)",
    re.I,
)

ART = rf"(?:(?:the|il|lo|la|i|gli|le)\s+|l{AP}\s*)?"
RANGE = re.compile(
    rf"(?<![\w'’])(?P<open>between|from|tra|fra|dalla|dallo|dagli|dai|dal|da|dall{AP}){GAP}{ART}"
    rf"(?:{_de('a_')}|(?P<a_bd>{_DAY}|primo){_ORD}(?!\d))"
    rf"\s*(?:\s(?:and|to|until|till|through|thru|e|ed|a|ad|al|allo|alla|ai|agli|alle"
    rf"|fino\s+(?:a|al|alla|allo))\s+|\sall{AP}\s*|\s*[-–]\s*){ART}"
    rf"{_de('b_')}(?!\w)",
    re.I,
)

YEAR_ONLY = re.compile(_YEAR)


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


def year_span(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year + 1, 1, 1)


def _week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


@dataclass(slots=True)
class When:
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
                return year_span(self.year)
            if self.day is None:
                return _month_span(self.year, self.month)
            d = date(self.year, self.month, self.day)
        except ValueError:
            return None
        return d, d + timedelta(days=1)

    def most_recent(self, today: date) -> When:
        """Fill a missing year with the latest one that does not put the date in the future."""
        if self.year is not None or self.month is None:
            return self
        year = today.year
        if (self.month, self.day or 1) > (today.month, today.day):
            year -= 1
        return When(year, self.month, self.day, self.abbreviated)


def _int_or_word(text: str) -> int:
    return int(text) if text.isdigit() else _NUM_WORDS[text.lower()]


def abs_when(text: str) -> When | None:
    m = _ABS_DETAIL.fullmatch(text.strip())
    if m is None:
        return None
    g = m.groupdict()
    if g["iy"]:
        return When(int(g["iy"]), int(g["im"]), int(g["id"]) if g["id"] else None)
    if g["ny"]:
        return When(int(g["ny"]), int(g["nm"]), int(g["nd"]))
    name = (g["m2"] or g["m1"] or "").lower()
    day_text = g["d2"] or g["d1"]
    year_text = g["y2"] or g["y1"]
    day = None
    if day_text:
        day = 1 if day_text.lower() == "primo" else int(day_text)
    return When(
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


# Relative phrases that, in a question, say "lately" rather than name a period: "this week"
# asked on a Monday still means last Friday's news, "in recent days" has no edge. A search
# question treats them as a recency prior (index/search/recency.py), not a filter.
VAGUE_KINDS = frozenset({"this_week", "recent"})


def rel_kind(text: str) -> str | None:
    """The rule name of a relative phrase ("this_week", "yesterday"...), or None."""
    for kind, rx in _REL_DETAIL:
        if rx.fullmatch(text.strip()):
            return kind
    return None


def rel_span(text: str, now_local: datetime) -> tuple[date, date] | None:
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
            return year_span(today.year - (1 if kind == "last_year" else 0))
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
        return year_span(today.year - n)
    return None


# -- the parser -----------------------------------------------------------------------------
